"""Gaussian-kernel interpolation without regularisation (C10) and the norm of its solution (C11).

Zhang et al. (2017), section 5: the kernel version of SGD's minimum-norm
solution is the interpolant f(x) = sum_i alpha_i k(x_i, x) with K alpha = Y
(Y one-hot, no ridge). On MNIST with k(x, x') = exp(-gamma ||x - x'||^2),
pixels in [0, 1] and gamma = 0.02 it gives 1.2% test error on all 60,000
training images; after a Gabor wavelet transform the error halves (0.6%)
while the RKHS norm of the solution grows (about 390 vs 220), so a smaller
norm does not mean a better model.

Everything here takes plain arrays. Kernel matrices are built blockwise
from ||a||^2 + ||b||^2 - 2 a.b (so memory is n^2 for K itself and blocks
otherwise); K alpha = Y is solved by Cholesky, with an LU solve as the
fallback when rounding has made K numerically indefinite. The dtype and
device are the caller's: float64 on a CPU subset, float64 or float32 on a
GPU for all 60,000 (K is 28.8 GB in float64). Whatever the caller set,
every computation here runs with TF32 off (`full_float32`): C10 and C11
compare norms and interpolation errors that TF32's 10-bit mantissa would
blur in float32 matmuls and convolutions on a GPU.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PAPER_GAMMA = 0.02  # exp(-0.02 ||x - x'||^2) on pixels in [0, 1]
_BLOCK_ELEMENTS = 2**24  # entries of one kernel block: 128 MiB of float64


@contextmanager
def full_float32():
    """TF32 off for CUDA matmuls and cuDNN convolutions inside; the caller's settings come back after.

    Usable as a decorator. Where torch has them (newer versions), through the per-backend
    fp32_precision settings ("ieee"): the legacy allow_tf32 flags raise
    there once a caller has used the newer API, and the newer ones read
    and restore either. On older torch through allow_tf32. No effect on a
    CPU, nor on float64, which TF32 never touches.
    """
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        owners, name, off = (torch.backends.cuda.matmul, torch.backends.cudnn.conv), "fp32_precision", "ieee"
    else:  # older torch: only the legacy flags
        owners, name, off = (torch.backends.cuda.matmul, torch.backends.cudnn), "allow_tf32", False
    saved = [getattr(owner, name) for owner in owners]
    for owner in owners:
        setattr(owner, name, off)
    try:
        yield
    finally:
        for owner, value in zip(owners, saved):
            setattr(owner, name, value)


@dataclass
class KernelFit:
    """An interpolant f = sum_i alpha_i k(x_i, .) and what its solve achieved.

    alpha: (n, classes). rkhs_norm: sqrt(trace(alpha^T K alpha)), the norm
    of f in the kernel's Hilbert space (its sum over the class outputs).
    relative_residual: ||K alpha - Y||_F / ||Y||_F; max_abs_residual: max |K alpha - Y|
    (below 0.5, every training point is classified correctly). solver: "cholesky" or "lu".
    """

    train_x: torch.Tensor
    alpha: torch.Tensor
    gamma: float
    rkhs_norm: float
    relative_residual: float
    max_abs_residual: float
    solver: str

    def decision(self, x) -> torch.Tensor:
        """f(x) for each row of x: (m, classes)."""
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(self.train_x)
        return kernel_times(x, self.train_x, self.alpha, self.gamma)

    def predict(self, x) -> np.ndarray:
        """The argmax class for each row of x."""
        return self.decision(x).argmax(1).cpu().numpy()

    def error_rate(self, x, labels) -> float:
        """Fraction of rows of x whose argmax class is not the label."""
        return float(np.mean(self.predict(x) != np.asarray(labels)))


def pixels(images) -> np.ndarray:
    """uint8 images (N, H, W) -> float64 rows (N, H*W) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


def one_hot(labels, classes: int = 10) -> torch.Tensor:
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes}); got {int(labels.min())}..{int(labels.max())}")
    return F.one_hot(labels, classes).double()


@full_float32()
def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 (m, k), clamped at zero (the expansion can round below it)."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d2.clamp_(min=0.0)


@full_float32()
def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, gamma: float) -> torch.Tensor:
    """exp(-gamma ||a_i - b_j||^2), built in row blocks."""
    out = torch.empty(a.shape[0], b.shape[0], dtype=a.dtype, device=a.device)
    rows = max(1, _BLOCK_ELEMENTS // max(b.shape[0], 1))
    for start in range(0, a.shape[0], rows):
        block = squared_distances(a[start : start + rows], b)
        out[start : start + rows] = block.mul_(-gamma).exp_()
    return out


@full_float32()
def kernel_times(a: torch.Tensor, b: torch.Tensor, coefficients: torch.Tensor, gamma: float) -> torch.Tensor:
    """K(a, b) @ coefficients without holding K(a, b): blocks of rows of a."""
    out = torch.empty(a.shape[0], coefficients.shape[1], dtype=a.dtype, device=a.device)
    rows = max(1, _BLOCK_ELEMENTS // max(b.shape[0], 1))
    for start in range(0, a.shape[0], rows):
        block = squared_distances(a[start : start + rows], b).mul_(-gamma).exp_()
        out[start : start + rows] = block @ coefficients
    return out


@full_float32()
def fit_interpolant(
    train_x,
    train_labels,
    gamma: float = PAPER_GAMMA,
    *,
    classes: int = 10,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> KernelFit:
    """Solve K alpha = Y exactly (no ridge) for Y one-hot of the labels.

    train_x: (n, features) array or tensor; train_labels: (n,) ints.
    """
    x = torch.as_tensor(np.asarray(train_x) if not isinstance(train_x, torch.Tensor) else train_x)
    x = x.to(device=device, dtype=dtype)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"train_x must have shape (n, features) with n >= 1; got {tuple(x.shape)}")
    targets = one_hot(train_labels, classes).to(device=device, dtype=dtype)
    if targets.shape[0] != x.shape[0]:
        raise ValueError(f"train_labels has {targets.shape[0]} entries for {x.shape[0]} rows of train_x")
    if not torch.isfinite(x).all():
        raise ValueError("train_x must be finite; remove or replace NaN and infinite values")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive; got {gamma}")
    kernel = gaussian_kernel(x, x, gamma)
    # At most two n x n matrices live at once (n = 60,000: 2 x 28.8 GB in
    # float64): K until its Cholesky factor L exists, then L and one solve's
    # workspace; K alpha is recomputed blockwise afterwards.
    factor, info = torch.linalg.cholesky_ex(kernel)
    if int(info) == 0:
        del kernel
        half = torch.linalg.solve_triangular(factor, targets, upper=False)
        alpha = torch.linalg.solve_triangular(factor.mT, half, upper=True)
        solver = "cholesky"
        del factor, half
    else:  # K is positive definite in exact arithmetic; rounding can break that
        del factor
        alpha = torch.linalg.solve(kernel, targets)
        solver = "lu"
        del kernel
    if x.is_cuda:  # hand the n x n blocks back whole: the next fit of this size needs them unsplit
        torch.cuda.empty_cache()
    fitted = kernel_times(x, x, alpha, gamma)
    residual = float(torch.linalg.matrix_norm(fitted - targets) / torch.linalg.matrix_norm(targets))
    worst = float((fitted - targets).abs().max())
    norm = math.sqrt(max(float((alpha * fitted).sum()), 0.0))
    return KernelFit(x, alpha, gamma, norm, residual, worst, solver)


# --------------------------------------------------------------------------- preprocessing for C11


def gabor_bank(scales: int = 2, orientations: int = 8, dtype=torch.float64) -> list[torch.Tensor]:
    """Complex Morlet (zero-mean Gabor) filters, one (2 L, 1, k, k) tensor per scale.

    Channels 2l and 2l + 1 are the real and imaginary parts at orientation
    pi l / L. Scale j has envelope width sigma = 0.8 * 2^j and centre
    frequency xi = 3 pi / 4 / 2^j: the Morlet parameters of the scattering
    transform (Bruna and Mallat 2013).
    """
    bank = []
    for j in range(scales):
        sigma, xi = 0.8 * 2**j, 3 * math.pi / 4 / 2**j
        half = math.ceil(3 * sigma)
        grid = torch.arange(-half, half + 1, dtype=dtype)
        yy, xx = torch.meshgrid(grid, grid, indexing="ij")
        envelope = torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        parts = []
        for l in range(orientations):
            theta = math.pi * l / orientations
            phase = xi * (xx * math.cos(theta) + yy * math.sin(theta))
            wave = torch.complex(torch.cos(phase), torch.sin(phase)) * envelope
            wave = wave - envelope * (wave.sum() / envelope.sum())  # zero mean: a wavelet
            wave = wave / envelope.sum()
            parts += [wave.real, wave.imag]
        bank.append(torch.stack(parts)[:, None])
    return bank


@full_float32()
def gabor_features(images, scales: int = 2, orientations: int = 8, batch: int = 256, device="cpu") -> np.ndarray:
    """First-order wavelet-modulus features of uint8 images (N, H, W) -> (N, F) float64
    (computed in float32).

    Fixed, data-independent, chosen before measuring: |x * psi_{j,l}| for 2
    scales x 8 orientations, plus the image itself, each averaged by a
    Gaussian of width 0.8 * 2^J and subsampled by 2^J (J = scales): the
    first-order coefficients of a scattering transform. For 28 x 28 MNIST
    that is 17 channels of 7 x 7 = 833 features. The modulus and averaging
    make the representation stable to small deformations, which plain pixels
    are not; that is what a Gabor "wavelet transform" buys a Gaussian kernel.
    `device` only says where the convolutions run.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {images.shape}")
    # float32: eight times faster convolutions on a CPU, and a fixed
    # preprocessing needs no more than its 7 digits
    bank = [filters.to(device) for filters in gabor_bank(scales, orientations, torch.float32)]
    step = 2**scales
    sigma = 0.8 * step
    half = math.ceil(3 * sigma)
    grid = torch.arange(-half, half + 1, dtype=torch.float32)
    low = torch.exp(-(grid**2) / (2 * sigma**2))
    low = (low / low.sum()).to(device)
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start : start + batch].astype(np.float32) / 255.0)[:, None].to(device)
        channels = [x]
        for filters in bank:
            response = F.conv2d(x, filters, padding=filters.shape[-1] // 2)  # (b, 2 L, H, W)
            channels.append(response.pow(2).unflatten(1, (-1, 2)).sum(2).sqrt())  # modulus per orientation
        stacked = torch.cat(channels, 1)
        b, c, h, w = stacked.shape
        flat = stacked.reshape(b * c, 1, h, w)
        # separable Gaussian average, evaluated only at the centres step/2 + k step:
        # zero padding of half - step/2 before and half after each axis
        flat = F.pad(flat, (half - step // 2, half, half - step // 2, half))
        flat = F.conv2d(flat, low[None, None, None, :], stride=(1, step))
        flat = F.conv2d(flat, low[None, None, :, None], stride=(step, 1))
        out.append(flat.reshape(b, -1).double().cpu().numpy())
    return np.concatenate(out)


def matched_gamma(features, reference, gamma: float = PAPER_GAMMA, pairs: int = 20_000, seed: int = 0) -> float:
    """gamma for `features` giving the same median gamma ||x - x'||^2 as `reference` with `gamma`.

    The paper's gamma is for pixels; a different representation has a
    different scale of distances. Matching the median pairwise squared
    distance over random pairs of the same training rows (no labels, no test
    data) keeps the kernel's width relative to the data.
    """
    features = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    reference = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    if features.shape[0] != reference.shape[0] or features.shape[0] < 2:
        raise ValueError("features and reference must describe the same rows (at least two)")
    generator = torch.Generator().manual_seed(seed)
    i = torch.randint(features.shape[0], (pairs,), generator=generator)
    j = torch.randint(features.shape[0], (pairs,), generator=generator)
    distinct = i != j
    i, j = i[distinct], j[distinct]
    median_ref = ((reference[i] - reference[j]) ** 2).sum(1).median()
    median_feat = ((features[i] - features[j]) ** 2).sum(1).median()
    return float(gamma * median_ref / median_feat)


@full_float32()
def nearest_neighbour_error(train_x, train_labels, test_x, test_labels, block: int = 1024) -> float:
    """Test error of the 1-nearest-neighbour rule (Euclidean): the simplest
    interpolating classifier, as a baseline measured on the same split."""
    train = torch.as_tensor(np.asarray(train_x), dtype=torch.float64)
    test = torch.as_tensor(np.asarray(test_x), dtype=torch.float64)
    train_labels = torch.as_tensor(np.asarray(train_labels))
    test_labels = torch.as_tensor(np.asarray(test_labels))
    wrong = 0
    for start in range(0, test.shape[0], block):
        nearest = squared_distances(test[start : start + block], train).argmin(1)
        wrong += int((train_labels[nearest] != test_labels[start : start + block]).sum())
    return wrong / test.shape[0]
