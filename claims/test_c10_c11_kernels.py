"""C10-C11: Gaussian-kernel interpolation generalises without regularisation;
a smaller norm is not a better model.

Paper (section 5): on MNIST, solving K alpha = Y (Y one-hot, no ridge) with
k(x, x') = exp(-0.02 ||x - x'||^2) on pixels in [0, 1] gives 1.2% test error
on all 60,000 training images (C10). After a Gabor wavelet transform the
error halves (0.6%) while the norm of the solution grows (about 390 vs 220),
so the minimum-norm principle does not predict which model is better (C11).

Scales: CPU, nested random subsets of 1,000, 2,000 and 4,000 training
images (seed 0), all 10,000 test images, float64; GPU (marked gpu and slow),
all 60,000. Preprocessing for C11: first-order wavelet-modulus features
(2 scales x 8 orientations of Morlet/Gabor filters, modulus, Gaussian
averaging, 17 x 7 x 7 = 833 features; harness.theory.kernels.gabor_features),
fixed before measuring; its gamma matches the median gamma ||x - x'||^2 of the
pixel kernel on the training subset (no labels, no test data).
"""

import math

import numpy as np
import pytest
import torch

from harness.theory.kernels import (
    PAPER_GAMMA,
    fit_interpolant,
    gabor_features,
    matched_gamma,
    nearest_neighbour_error,
    pixels,
)

TRAIN_SIZES = (1000, 2000, 4000)  # CPU scale: a kernel solve of 4,000 takes seconds
PAPER_ERROR_PIXELS = 0.012  # C10, all 60,000
PAPER_ERROR_GABOR = 0.006  # C11
PAPER_NORMS = (220.0, 390.0)  # C11, pixels vs wavelet-preprocessed (approximate)


def paired_standard_error(wrong_a: np.ndarray, wrong_b: np.ndarray) -> float:
    """Standard error of err_a - err_b on the same test points (McNemar): sqrt(discordant) / N."""
    discordant = int(np.sum(wrong_a != wrong_b))
    return math.sqrt(discordant) / wrong_a.size


@pytest.fixture(scope="module")
def learning_curve(mnist_arrays):
    """Pixel and Gabor interpolants at every CPU size, with a 1-NN baseline: one pass for C10 and C11."""
    rows = np.random.default_rng(0).permutation(len(mnist_arrays["train_y"]))[: max(TRAIN_SIZES)]
    train_images, train_labels = mnist_arrays["train_x"][rows], mnist_arrays["train_y"][rows]
    test_images, test_labels = mnist_arrays["test_x"], mnist_arrays["test_y"]
    pixel_train, pixel_test = pixels(train_images), pixels(test_images)
    gabor_train, gabor_test = gabor_features(train_images), gabor_features(test_images)
    gabor_gamma = matched_gamma(gabor_train, pixel_train, PAPER_GAMMA)
    curve = []
    for n in TRAIN_SIZES:
        entry = {"n": n}
        for name, train, test, gamma in (
            ("pixels", pixel_train, pixel_test, PAPER_GAMMA),
            ("gabor", gabor_train, gabor_test, gabor_gamma),
        ):
            fit = fit_interpolant(train[:n], train_labels[:n], gamma)
            entry[name] = {
                "fit": fit,
                "wrong": fit.predict(test) != test_labels,
                "norm": fit.rkhs_norm,
                "gamma": gamma,
            }
            entry[name]["error"] = float(entry[name]["wrong"].mean())
        entry["nearest_neighbour_error"] = nearest_neighbour_error(
            pixel_train[:n], train_labels[:n], pixel_test, test_labels
        )
        curve.append(entry)
    return curve


def test_c10_kernel_interpolation_generalises_without_regularisation(learning_curve, claim_figure):
    """C10 at CPU scale: the unregularised interpolant fits every training label and generalises.

    Paper: 1.2% test error on all 60,000 MNIST images, no regularisation.
    Thresholds, derived: every solve interpolates (max |K alpha - Y| < 0.5,
    so every training image is classified correctly: zero training error);
    at every size the test error is below that of 1-nearest-neighbour on the
    same pixels and split (the simplest interpolating rule, measured here,
    not a tuned number); and it falls as n grows. The power law through the
    measured points, extrapolated to 60,000, is reported beside the paper's
    1.2% (not asserted: an extrapolation). Scale: 1,000 / 2,000 / 4,000
    training images, 10,000 test images, gamma 0.02, float64.
    """
    errors = []
    for entry in learning_curve:
        pixel = entry["pixels"]
        fit = pixel["fit"]
        errors.append(pixel["error"])
        claim_figure(
            "C10",
            f"n={entry['n']}: max |K alpha - Y|",
            fit.max_abs_residual,
            "< 0.5 (zero training error)",
            fit.max_abs_residual < 0.5,
            solver=fit.solver,
            check="deferred",  # checked with the test error's figure, once both are recorded
        )
        claim_figure(
            "C10",
            f"n={entry['n']}: test error, pixels",
            pixel["error"],
            f"< 1-NN {entry['nearest_neighbour_error']:.4f}",
            pixel["error"] < entry["nearest_neighbour_error"],
            rkhs_norm=pixel["norm"],
        )
    slope = float(np.polyfit(np.log(TRAIN_SIZES), np.log(errors), 1)[0])
    extrapolated = errors[-1] * (60_000 / TRAIN_SIZES[-1]) ** slope
    claim_figure(
        "C10",
        "test error extrapolated to 60,000 (power law)",
        extrapolated,
        f"reported; paper {PAPER_ERROR_PIXELS}",
        True,
        slope=slope,
    )
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_c11_the_smaller_norm_is_not_the_better_model(learning_curve, claim_figure):
    """C11 at CPU scale: the Gabor-preprocessed interpolant has the larger norm and the lower error.

    Paper: wavelet preprocessing halves the error (1.2% -> 0.6%) while the
    norm grows (about 220 -> 390). Thresholds, at every size: norm(gabor) >
    norm(pixels), and error(pixels) - error(gabor) > 3 standard errors of
    the paired difference on the same 10,000 test images (sqrt(discordant) /
    10,000), so the ordering is not test-set noise. Norm: sqrt(trace(alpha^T
    K alpha)), the RKHS norm summed over the ten class outputs. Scale:
    1,000 / 2,000 / 4,000 training images.
    """
    for entry in learning_curve:
        pixel, gabor = entry["pixels"], entry["gabor"]
        margin = 3 * paired_standard_error(pixel["wrong"], gabor["wrong"])
        claim_figure(
            "C11",
            f"n={entry['n']}: norm gabor vs pixels",
            f"{gabor['norm']:.1f} vs {pixel['norm']:.1f}",
            "gabor > pixels",
            gabor["norm"] > pixel["norm"],
            check="deferred",
        )
        claim_figure(
            "C11",
            f"n={entry['n']}: error pixels - gabor",
            pixel["error"] - gabor["error"],
            f"> 3 paired SE = {margin:.4f}",
            pixel["error"] - gabor["error"] > margin,
            error_pixels=pixel["error"],
            error_gabor=gabor["error"],
            gamma_gabor=gabor["gamma"],
        )
        assert gabor["fit"].max_abs_residual < 0.5  # the Gabor interpolant fits too (no figure of its own)


# --------------------------------------------------------------------------- GPU tier: all 60,000


def _full_scale_fit(mnist_arrays, features: str):
    train_images, train_labels = mnist_arrays["train_x"], mnist_arrays["train_y"]
    test_images, test_labels = mnist_arrays["test_x"], mnist_arrays["test_y"]
    if features == "pixels":
        train, test, gamma = pixels(train_images), pixels(test_images), PAPER_GAMMA
    else:
        train = gabor_features(train_images, device="cuda")
        test = gabor_features(test_images, device="cuda")
        gamma = matched_gamma(train, pixels(train_images), PAPER_GAMMA)
    # float64 throughout: K is 28.8 GB and its Cholesky factor as much again,
    # which fits one 80 GB GPU; float32 would lose the solve on this conditioning.
    fit = fit_interpolant(train, train_labels, gamma, device="cuda", dtype=torch.float64)
    return fit, fit.predict(test) != test_labels


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="all 60,000 need a CUDA GPU with about 60 GB")


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_c10_full_mnist_kernel_interpolation_gpu(mnist_arrays, claim_figure):
    """C10 at the paper's scale: all 60,000 training images, pixels, gamma 0.02.

    Threshold: test error <= 1.2% (the paper's) + 3 binomial standard errors
    on 10,000 test images (sqrt(0.012 * 0.988 / 10,000) = 0.11%): 1.53%;
    and zero training error (max |K alpha - Y| < 0.5).
    """
    fit, wrong = _full_scale_fit(mnist_arrays, "pixels")
    error = float(wrong.mean())
    threshold = PAPER_ERROR_PIXELS + 3 * math.sqrt(PAPER_ERROR_PIXELS * (1 - PAPER_ERROR_PIXELS) / wrong.size)
    claim_figure(
        "C10",
        "n=60000: max |K alpha - Y|",
        fit.max_abs_residual,
        "< 0.5",
        fit.max_abs_residual < 0.5,
        solver=fit.solver,
        check="deferred",
    )
    claim_figure(
        "C10",
        "n=60000: test error, pixels",
        error,
        f"<= {threshold:.4f} (paper 0.012 + 3 SE)",
        error <= threshold,
        rkhs_norm=fit.rkhs_norm,
    )


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_c11_full_mnist_norm_versus_error_gpu(mnist_arrays, claim_figure):
    """C11 at the paper's scale: all 60,000, pixels vs Gabor features.

    Thresholds as on the CPU: norm(gabor) > norm(pixels) and error(pixels) -
    error(gabor) > 3 paired standard errors. The paper's 0.6% and norms
    (220 vs 390) are reported beside the measured ones; our wavelet
    features are not the paper's exact transform, so they are not asserted.
    """
    pixel_fit, pixel_wrong = _full_scale_fit(mnist_arrays, "pixels")
    gabor_fit, gabor_wrong = _full_scale_fit(mnist_arrays, "gabor")
    margin = 3 * paired_standard_error(pixel_wrong, gabor_wrong)
    difference = float(pixel_wrong.mean() - gabor_wrong.mean())
    claim_figure(
        "C11",
        "n=60000: norm gabor vs pixels",
        f"{gabor_fit.rkhs_norm:.1f} vs {pixel_fit.rkhs_norm:.1f}",
        f"gabor > pixels (paper {PAPER_NORMS[1]:.0f} vs {PAPER_NORMS[0]:.0f})",
        gabor_fit.rkhs_norm > pixel_fit.rkhs_norm,
        check="deferred",
    )
    claim_figure(
        "C11",
        "n=60000: error pixels - gabor",
        difference,
        f"> {margin:.4f}",
        difference > margin,
        error_gabor=float(gabor_wrong.mean()),
        paper_error_gabor=PAPER_ERROR_GABOR,
    )
    assert gabor_fit.max_abs_residual < 0.5  # the Gabor interpolant fits too (no figure of its own)
