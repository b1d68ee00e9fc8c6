"""Empirical Rademacher complexity, estimated by fitting random signs (C12).

For a class F of functions with values in [-1, 1] and points x_1..x_n,

    R_n(F) = E_sigma [ sup_{f in F} (1/n) sum_i sigma_i f(x_i) ],

sigma_i independent uniform +-1. A class that can fit any labelling has
R_n = 1, the largest value possible, and then every bound built on it
says nothing (Zhang et al. 2017, section 2.2). Here the supremum is reached
by fitting: a fitter returns the outputs on x of the member of F it found
for sigma; outputs are clipped to [-1, 1] (clipping is itself two ReLUs,
relu(t + 1) - relu(t - 1) - 1, so a clipped ReLU network is still one).
A fitter that misses the supremum gives a lower estimate; for bounded-norm
linear functions the supremum has a closed form and is computed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from harness.theory.expressivity import fit_two_layer

Fitter = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x (n, d), signs (n,)) -> outputs (n,)


@dataclass
class RademacherEstimate:
    """Mean over draws of the correlation (1/n) sum_i sigma_i f_sigma(x_i), with its spread."""

    mean: float
    standard_error: float
    per_draw: list[float]

    @classmethod
    def from_draws(cls, values) -> RademacherEstimate:
        values = [float(v) for v in values]
        spread = float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
        return cls(float(np.mean(values)), spread, values)


def rademacher_signs(n: int, draws: int, seed: int = 0) -> np.ndarray:
    """(draws, n) independent uniform +-1 signs, seeded."""
    if n < 1 or draws < 1:
        raise ValueError(f"need n >= 1 and draws >= 1; got n = {n}, draws = {draws}")
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(draws, n))


def empirical_rademacher(fitter: Fitter, x, draws: int = 5, seed: int = 0) -> RademacherEstimate:
    """Fit each of `draws` random sign vectors with `fitter` and average the correlation."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (n, d) with n >= 1; got {x.shape}")
    correlations = []
    for signs in rademacher_signs(x.shape[0], draws, seed):
        outputs = np.asarray(fitter(x, signs), dtype=np.float64)
        if outputs.shape != signs.shape:
            raise ValueError(f"fitter returned shape {outputs.shape}, expected {signs.shape}")
        correlations.append(float(np.mean(signs * np.clip(outputs, -1.0, 1.0))))
    return RademacherEstimate.from_draws(correlations)


def interpolating_network_fitter(target_scale: float = 2.0, **options) -> Fitter:
    """Theorem 1's two-layer network (2n + d parameters) fitted to target_scale * signs.

    With target_scale > 1 the clipped outputs equal the signs exactly as long
    as the fit is within target_scale - 1 of its targets, so a correlation
    of exactly 1 is not at the mercy of rounding. Options as fit_two_layer.
    """
    if not target_scale >= 1.0:
        raise ValueError(f"target_scale must be at least 1; got {target_scale}")

    def fit(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
        net = fit_two_layer(x, target_scale * signs, **options)
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    return fit


def trained_relu_net_fitter(width: int = 256, max_steps: int = 2000, lr: float = 3e-3, seed: int = 0) -> Fitter:
    """A two-layer ReLU net (width hidden units) trained by full-batch Adam on the
    squared hinge loss mean(relu(1 - sigma f)^2) until every margin sigma_i f(x_i)
    is at least 1 (then its clipped outputs equal sigma exactly) or max_steps."""

    def fit(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.from_numpy(x).float()
        targets = torch.from_numpy(signs).float()
        hidden = torch.nn.Linear(x.shape[1], width)
        output = torch.nn.Linear(width, 1)
        for layer in (hidden, output):  # seeded, independent of the global RNG
            bound = 1.0 / math.sqrt(layer.in_features)
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        net = torch.nn.Sequential(hidden, torch.nn.ReLU(), output)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(max_steps):
            f = net(inputs)[:, 0]
            if bool((targets * f >= 1).all()):
                break
            loss = torch.relu(1 - targets * f).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return net(inputs)[:, 0].double().numpy()

    return fit


def least_squares_sign_fitter(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """sign(X w) for w the least-squares fit of the signs: the linear classifier's
    correlation 1 - 2 (training error). Far below 1 when n >> d."""
    w = np.linalg.lstsq(x, signs, rcond=None)[0]
    return np.sign(x @ w)


def bounded_linear_rademacher(x, norm_bound: float | None = None, draws: int = 5, seed: int = 0):
    """R_n of {x -> <w, x> : ||w|| <= B}, exactly per draw: sup = B ||X^T sigma|| / n.

    B defaults to 1 / max_i ||x_i||, the largest bound that keeps every
    output in [-1, 1] on these points. Returns (estimate, jensen_bound) with
    jensen_bound = B sqrt(sum_i ||x_i||^2) / n >= R_n, about B rms||x|| / sqrt(n).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (n, d) with n >= 1; got {x.shape}")
    n = x.shape[0]
    row_norms = np.linalg.norm(x, axis=1)
    if norm_bound is None:
        if row_norms.max() == 0:
            raise ValueError("every point is zero; the linear class is {0} and its complexity is 0")
        norm_bound = 1.0 / float(row_norms.max())
    sups = [norm_bound * float(np.linalg.norm(x.T @ s)) / n for s in rademacher_signs(n, draws, seed)]
    jensen = norm_bound * math.sqrt(float((row_norms**2).sum())) / n
    return RademacherEstimate.from_draws(sups), jensen
