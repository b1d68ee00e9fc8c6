"""Finite-sample expressivity: Theorem 1 of Zhang et al. (2017) and its depth-k form.

Theorem 1: a two-layer ReLU network with 2n + d weights represents any
function on any n distinct points in d dimensions. The construction
projects the points on a direction a, z_i = <a, x_i>, sorts them, places one
ReLU threshold b_j in each gap (b_1 < z_1 < b_2 < z_2 < ... < b_n < z_n) and
solves the lower-triangular system A w = y, A_ij = max(z_i - b_j, 0), for the
output weights w. The network is

    c(x) = sum_j w_j * max(<a, x> - b_j, 0).

Numerics (float64), and the choices they dictate here:

* Where b_j sits in its gap decides how large w gets. Just below its own
  z_j makes the recurrence multiply by (gap / tiny) at every step, so w
  overflows after about a hundred points; midpoints keep |factor| = 1, so
  slopes alternate and grow; just above the previous point z_{j-1} makes the
  factor tiny (theta / (1 - theta)) and the network is, up to theta, the
  piecewise-linear interpolant. "above_previous" is the default; the other
  two are kept to show why.
* Among several random directions the one with the largest minimum gap
  between neighbouring z (relative to their range) is taken: the smallest
  gap sets the largest slope, hence the size of w.
* w is built in O(n) by forward substitution along the sorted points
  (value and slope of the partial network carried from one point to the
  next), never with the dense n x n matrix. The carried value and slope are
  kept in double-double (compensated) arithmetic, so the network that is
  returned, with its rounded weights, fits each target in exact arithmetic
  to about eps times its own largest term |w_i (z_i - b_i)| (no error is
  carried from one point to the next); what is left is the rounding of its
  own evaluation (bounds in `residual_bound`).
* The forward pass sums with torch's pairwise reduction, not a BLAS dot
  product, whose long sequential accumulation loses about ten times more
  on these strongly cancelling sums. `forward_compensated` evaluates the
  same network with error-free transformations for a further gain.

Deciding "the network fits y". A residual bound is evidence of a fit only
at scales above it. For targets from a finite set (labels) the decision is
which target each output stands for, and it is decided iff the bound is
below `decision_margin(y)`, half the smallest gap between distinct target
values: then every output is nearer its own target than any other.
Near-duplicate points make ||w||_1, hence the plain bound, grow past that margin
while the residual still sits "within the bound"; `check_fit` then decides
with the compensated forward if its bound is below the margin, and
otherwise refuses (evaluation None), never passes. Real-valued targets are
held to the same margin (their spacing) by default; a caller may choose the
weaker scale `constant_fit_residual(y)` (what the best constant function
achieves) and must say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PLACEMENTS = ("above_previous", "midpoint", "below_own")
DEFAULT_BIAS_FRACTION = 2.0**-10  # theta: where in its gap a threshold sits, as a fraction of the gap
DEFAULT_DIRECTIONS = 8  # random directions tried for a; the largest minimum gap wins
_EPS = float(np.finfo(np.float64).eps)
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's splitting constant for float64
_SPLIT_SAFE = 2.0**995  # above this, splitting a float64 could overflow
_CHUNK_ELEMENTS = 2**18  # rows x units per reused chunk of the forward pass: 2 MiB of float64, cache-sized
_LARGE_CHUNK_ELEMENTS = 2**22  # per freshly allocated chunk: 32 MiB, which the C allocator maps whole


# --------------------------------------------------------------------------- input checks


def check_points_and_targets(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate (x, y) and return them as float64 arrays of shapes (n, d) and (n,).

    Raises ValueError with a one-line message for: x not 2-D, no points,
    no features, y not of shape (n,), NaN or infinite values.
    """
    x = _as_float64(x, "x")
    y = _as_float64(y, "y")
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array of shape (n, d); got shape {tuple(x.shape)}")
    n, d = x.shape
    if n == 0:
        raise ValueError("x holds no points (n = 0); pass at least one point")
    if d == 0:
        raise ValueError("x has no features (d = 0); each point needs at least one coordinate")
    if y.shape != (n,):
        raise ValueError(f"y must have shape (n,) = ({n},) to match x; got shape {tuple(y.shape)}")
    for name, values in (("x", x), ("y", y)):
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{name} contains NaN or infinite values (first at row {row}); remove or replace them")
    return x, y


def _as_float64(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric array; {error}") from None


# --------------------------------------------------------------------------- duplicates


def merge_duplicates(x: np.ndarray, y: np.ndarray, projections: np.ndarray | None = None):
    """Merge exactly repeated points; refuse repeats whose targets differ.

    Returns (keep, representative, groups): `keep` indexes one row per
    distinct point (ascending), `representative[i]` is the position in `keep`
    of row i's representative, `groups` lists the index groups merged. Identical points with different targets cannot be fitted by any
    function: ValueError naming the indices.

    Cheap for large n: only rows whose projection (any column of
    `projections`, default a fresh random one) lies within the rounding
    bound of a neighbour's are compared exactly.
    """
    n, d = x.shape
    if n == 1:
        return np.arange(1), np.zeros(1, dtype=np.int64), []
    if projections is None:
        a = np.random.default_rng(0).standard_normal(d)
        z = x @ (a / np.linalg.norm(a))
    else:
        z = projections[:, 0]
    # Identical rows give projections that differ by at most the rounding of
    # two d-term dot products with a unit direction: 2 * gamma_d * ||x||.
    # (||x||_2 <= sqrt(d) max|x_k|, which cannot overflow.)
    x_t = torch.from_numpy(x)
    slack = 2.0 * _gamma(d) * math.sqrt(d) * torch.linalg.vector_norm(x_t, ord=math.inf, dim=1).numpy()
    order = np.argsort(z, kind="stable")
    close = np.diff(z[order]) <= np.maximum(slack[order[1:]], slack[order[:-1]])
    candidate = np.zeros(n, dtype=bool)
    candidate[order[1:][close]] = True
    candidate[order[:-1][close]] = True
    rows_by_bytes: dict[bytes, list[int]] = {}
    for i in np.flatnonzero(candidate):
        # + 0.0 turns -0.0 into 0.0: equal values, equal bytes
        rows_by_bytes.setdefault((x[i] + 0.0).tobytes(), []).append(int(i))
    groups = [sorted(g) for g in rows_by_bytes.values() if len(g) > 1]
    conflicts = [g for g in groups if np.any(y[g] != y[g[0]])]
    if conflicts:
        shown = "; ".join(
            f"points {', '.join(map(str, g[:4]))}{' ...' if len(g) > 4 else ''} have targets "
            f"{', '.join(f'{y[i]:g}' for i in g[:4])}"
            for g in conflicts[:3]
        )
        more = f" (and {len(conflicts) - 3} more groups)" if len(conflicts) > 3 else ""
        raise ValueError(
            f"identical points with different targets cannot be fitted by any network: {shown}{more}; "
            "drop the repeats or give them the same target"
        )
    first = np.arange(n)
    for g in groups:
        first[g] = g[0]
    keep = np.flatnonzero(first == np.arange(n))
    position = np.full(n, -1, dtype=np.int64)
    position[keep] = np.arange(keep.size)
    return keep, position[first], groups


def _gamma(m: int) -> float:
    """Higham's gamma_m = m eps / (1 - m eps): the relative error bound of an m-term sum."""
    return m * _EPS / (1.0 - m * _EPS)


# --------------------------------------------------------------------------- direction and thresholds


def random_directions(d: int, count: int, seed: int) -> np.ndarray:
    """`count` unit vectors in R^d as columns of a (d, count) float64 array."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(d, count, generator=generator, dtype=torch.float64)
    return (directions / directions.norm(dim=0, keepdim=True)).numpy()


def relative_min_gap(z: np.ndarray) -> float:
    """Smallest gap between neighbouring sorted values, divided by their range (inf for one value)."""
    if z.size < 2:
        return math.inf
    zs = np.sort(z)
    spread = zs[-1] - zs[0]
    return float(np.diff(zs).min() / spread) if spread > 0 else 0.0


def bias_positions(z_sorted: np.ndarray, placement: str = "above_previous", fraction: float = DEFAULT_BIAS_FRACTION):
    """Thresholds b with b_1 < z_1 and b_j in (z_{j-1}, z_j] for j >= 2.

    placement: "above_previous" b_j = z_{j-1} + fraction * gap; "midpoint"
    b_j = z_{j-1} + gap / 2; "below_own" b_j = z_j - fraction * gap. The first
    threshold sits one data range (one unit for a single point) below z_1,
    so that the first ReLU is active on every point.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {placement!r}")
    if not 0.0 < fraction < 0.5:
        raise ValueError(f"fraction must lie in (0, 0.5); got {fraction}")
    n = z_sorted.size
    spread = z_sorted[-1] - z_sorted[0] if n > 1 else 0.0
    b = np.empty(n)
    b[0] = z_sorted[0] - (spread if spread > 0 else max(abs(z_sorted[0]), 1.0))
    gaps = np.diff(z_sorted)
    if placement == "above_previous":
        b[1:] = z_sorted[:-1] + fraction * gaps
    elif placement == "midpoint":
        b[1:] = z_sorted[:-1] + 0.5 * gaps
    else:
        b[1:] = z_sorted[1:] - fraction * gaps
    return b


# --------------------------------------------------------------------------- output weights


def output_weights(z_sorted: np.ndarray, b: np.ndarray, y_sorted: np.ndarray) -> np.ndarray:
    """Solve A w = y, A_ij = max(z_i - b_j, 0), in O(n) for sorted z and interleaved b.

    Forward substitution along the sorted points: on [z_{i-1}, z_i] the
    units j < i form a line of slope S = sum_{j<i} w_j, so their value at z_i
    is V(z_{i-1}) + S (z_i - z_{i-1}); unit i must add the rest,
    w_i = (y_i - that) / (z_i - b_i). V and S are carried as double-double
    numbers (Dekker/Knuth error-free transformations), so each w_i corrects
    the rounding of all before it instead of inheriting it.

    Raises ValueError if a threshold is not strictly inside its gap and
    OverflowError if w leaves the float64 range (unstable placements do).
    """
    n = z_sorted.size
    z = z_sorted.tolist()
    bl = b.tolist()
    yl = y_sorted.tolist()
    w = [0.0] * n
    s_hi = s_lo = 0.0  # slope of the partial network
    v_hi = v_lo = 0.0  # its value at the previous point
    z_prev = z[0]
    split, safe = _SPLIT, _SPLIT_SAFE
    for i in range(n):
        zi = z[i]
        # b_i = z_{i-1} is allowed: relu(z_{i-1} - b_i) is still exactly 0, A stays triangular
        inside = bl[i] < zi and (i == 0 or bl[i] >= z_prev)
        if not inside:
            raise ValueError(
                f"threshold {i} ({bl[i]!r}) is not inside its gap [{z_prev!r}, {zi!r}): "
                "the points are too close for this bias placement; use 'above_previous'"
            )
        if i == 0:
            p_hi = p_lo = 0.0
        else:
            # g = zi - z_prev exactly, as g_hi + g_lo (TwoSum)
            g_hi = zi - z_prev
            t = g_hi - zi
            g_lo = (zi - (g_hi - t)) + (-z_prev - t)
            # slope * gap as a double-double: TwoProduct(s_hi, g_hi) + cross terms
            p_hi, p_lo = _two_product(s_hi, g_hi, split, safe)
            p_lo += s_hi * g_lo + s_lo * g_hi
            # prediction = value + slope * gap (double-double addition)
            q = v_hi + p_hi
            t = q - v_hi
            e = (v_hi - (q - t)) + (p_hi - t)
            e += v_lo + p_lo
            p_hi = q + e
            p_lo = e - (p_hi - q)
        # what unit i must contribute at z_i: r = y_i - prediction
        r = yl[i] - p_hi
        t = r - yl[i]
        r_lo = (yl[i] - (r - t)) + (-p_hi - t) - p_lo
        r = r + r_lo
        # A_ii = z_i - b_i exactly, as a_hi + a_lo
        a_hi = zi - bl[i]
        t = a_hi - zi
        a_lo = (zi - (a_hi - t)) + (-bl[i] - t)
        wi = r / a_hi
        if not math.isfinite(wi) or abs(wi) > safe:
            raise OverflowError(
                f"output weight {i} overflowed ({wi!r}): this bias placement is numerically unstable "
                "for these points; use 'above_previous'"
            )
        w[i] = wi
        # new value at z_i = prediction + w_i * A_ii ; new slope = slope + w_i
        c_hi, c_lo = _two_product(wi, a_hi, split, safe)
        c_lo += wi * a_lo
        q = p_hi + c_hi
        t = q - p_hi
        e = (p_hi - (q - t)) + (c_hi - t) + p_lo + c_lo
        v_hi = q + e
        v_lo = e - (v_hi - q)
        q = s_hi + wi
        t = q - s_hi
        e = (s_hi - (q - t)) + (wi - t) + s_lo
        s_hi = q + e
        s_lo = e - (s_hi - q)
        z_prev = zi
    return np.array(w)


def _two_product(a: float, b: float, split: float, safe: float) -> tuple[float, float]:
    """a * b = p + e exactly (Dekker), for |a|, |b| below 2**995."""
    p = a * b
    if abs(a) > safe or abs(b) > safe:
        return p, 0.0  # splitting would overflow; lose the error term instead
    c = split * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = split * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


# --------------------------------------------------------------------------- the networks


class TwoLayerInterpolant(nn.Module):
    """c(x) = sum_j w_j relu(<a, x> - b_j): direction a (d), biases b (n), weights w (n).

    A real nn.Module with exactly d + 2n parameters (float64). The forward
    pass takes (m, d) or (d,) inputs. Biases are kept sorted ascending by the
    construction; the forward pass uses that to skip units that are off for
    a whole chunk of inputs (exact: an inactive ReLU adds exactly zero), and
    falls back to all units if training has unsorted them.
    """

    def __init__(self, direction: torch.Tensor, biases: torch.Tensor, out_weights: torch.Tensor):
        super().__init__()
        self.direction = nn.Parameter(torch.as_tensor(direction, dtype=torch.float64).clone())
        self.biases = nn.Parameter(torch.as_tensor(biases, dtype=torch.float64).clone())
        self.out_weights = nn.Parameter(torch.as_tensor(out_weights, dtype=torch.float64).clone())

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """z = <a, x> for each row of x: the first layer's shared pre-activation."""
        return _as_rows(x, self.direction) @ self.direction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = torch.as_tensor(x).ndim == 1
        out = _relu_sum(self.project(x), self.biases, self.out_weights, compensated=False)
        return out[0] if single else out

    @torch.no_grad()
    def forward_compensated(self, x: torch.Tensor) -> torch.Tensor:
        """The same network, evaluated with exact differences, exact products and a
        compensated (TwoSum cascade) sum: rounding then costs about eps * |c(x)| plus
        eps^2 times the cancellation, instead of eps times it."""
        single = torch.as_tensor(x).ndim == 1
        out = _relu_sum(self.project(x), self.biases, self.out_weights, compensated=True)
        return out[0] if single else out


class DeepInterpolant(nn.Module):
    """The depth-k form: the 2n + d network's units spread over k - 1 hidden layers.

    Hidden layer 1 holds u = relu(<a, x> - beta) (beta = b_1, the lowest
    threshold) and the first block of units relu(<a, x> - b_j). Each later
    hidden layer l holds u again, the running sum so far split into
    relu(s) and relu(-s) (a ReLU layer can only pass signed numbers that way),
    and block l: relu(u - t_j), t_j = b_j - beta (block 1 reads <a, x> and keeps
    its biases b_j). The linear output layer adds
    the last block to the running sum. Every layer has width at most
    ceil(n / (k - 1)) + 3 and at most 2 ceil(n / (k - 1)) (+ d + 1 for the
    first) free parameters; the fixed +-1 carry weights are structure, not
    parameters. For points with <a, x> >= beta this is exactly the two-layer
    network; below beta both are zero.
    """

    def __init__(self, direction, offset: float, thresholds: list, weights: list):
        super().__init__()
        if len(thresholds) != len(weights) or not thresholds:
            raise ValueError("one block of thresholds and one block of weights per hidden layer")
        self.direction = nn.Parameter(torch.as_tensor(direction, dtype=torch.float64).clone())
        self.offset = nn.Parameter(torch.tensor([offset], dtype=torch.float64))
        self.thresholds = nn.ParameterList(
            [nn.Parameter(torch.as_tensor(t, dtype=torch.float64).clone()) for t in thresholds]
        )
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.as_tensor(w, dtype=torch.float64).clone()) for w in weights]
        )

    @property
    def depth(self) -> int:
        """Layers with weights: the hidden layers plus the output layer."""
        return len(self.thresholds) + 1

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def layer_parameter_counts(self) -> list[int]:
        """Free parameters per weight layer, input side first; they sum to parameter_count."""
        counts = [self.direction.numel() + 1 + self.thresholds[0].numel()]
        for l in range(1, len(self.thresholds)):
            counts.append(self.weights[l - 1].numel() + self.thresholds[l].numel())
        counts.append(self.weights[-1].numel())
        return counts

    def layer_widths(self) -> list[int]:
        """Units per hidden layer."""
        return [1 + self.thresholds[0].numel()] + [3 + t.numel() for t in self.thresholds[1:]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = torch.as_tensor(x).ndim == 1
        z = _as_rows(x, self.direction) @ self.direction
        u = torch.relu(z - self.offset)  # hidden layer 1: the carry unit ...
        block = torch.relu(z[:, None] - self.thresholds[0])  # ... and block 1, biases b_j
        running = torch.zeros_like(z)
        for l in range(1, len(self.thresholds)):
            s = running + (block * self.weights[l - 1]).sum(-1)
            positive, negative = torch.relu(s), torch.relu(-s)  # hidden layer l + 1
            block = torch.relu(u[:, None] - self.thresholds[l])
            u = torch.relu(u)
            running = positive - negative
        out = running + (block * self.weights[-1]).sum(-1)
        return out[0] if single else out


def _as_rows(x, like: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != like.shape[0]:
        raise ValueError(f"input must have shape (m, {like.shape[0]}) or ({like.shape[0]},); got {tuple(x.shape)}")
    return x.to(like.dtype)


def _relu_sum(z: torch.Tensor, b: torch.Tensor, w: torch.Tensor, compensated: bool) -> torch.Tensor:
    """sum_j w_j relu(z_i - b_j) for every i, chunked over i, skipping all-off units."""
    m, n = z.numel(), b.numel()
    if m == 0:
        return z.new_zeros(0)
    sorted_b = n < 2 or bool((b[1:] >= b[:-1]).all())
    order = torch.argsort(z.detach())
    zs = z[order]
    graph = torch.is_grad_enabled() and (z.requires_grad or b.requires_grad or w.requires_grad)
    # Chunks of changing size, freed and allocated again, fragment the C heap
    # until memory runs out (seen at n = 100,000). Without a graph the plain sum
    # reuses one buffer; otherwise chunks are large enough (32 MiB) for the
    # allocator to map and unmap them whole.
    buffered = not (graph or compensated)
    rows = max(1, (_CHUNK_ELEMENTS if buffered else _LARGE_CHUNK_ELEMENTS) // max(n, 1))
    buffer = z.new_empty(rows * n) if buffered else None
    pieces = []
    for start in range(0, m, rows):
        zc = zs[start : start + rows]
        # units with b_j >= max(zc) are off for the whole chunk
        active = int(torch.searchsorted(b.detach(), zc[-1:].detach()).item()) if sorted_b else n
        if compensated:
            pieces.append(_compensated_relu_sum(zc, b[:active], w[:active]))
        elif buffered:
            view = buffer[: zc.numel() * active].view(zc.numel(), active)
            torch.sub(zc[:, None], b[:active], out=view)
            pieces.append(view.relu_().mul_(w[:active]).sum(-1))
        else:
            pieces.append((torch.relu(zc[:, None] - b[:active]) * w[:active]).sum(-1))
    out_sorted = torch.cat(pieces)
    return out_sorted[torch.argsort(order)]


def _compensated_relu_sum(z: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if b.numel() == 0:
        return torch.zeros_like(z)
    if w.abs().max() > _SPLIT_SAFE or (z.abs().max() + b.abs().max()) > _SPLIT_SAFE:
        return (torch.relu(z[:, None] - b) * w).sum(-1)  # too large to split exactly; plain sum
    diff, diff_lo = _two_sum_t(z[:, None], -b)  # z - b exactly
    on = diff > 0
    diff = torch.where(on, diff, 0.0)
    diff_lo = torch.where(on, diff_lo, 0.0)
    product, product_lo = _two_product_t(w, diff)  # w * diff exactly
    small = product_lo + w * diff_lo  # the part below the products' last bits
    return _cascade_sum(product) + small.sum(-1)


def _two_sum_t(a, b):
    s = a + b
    t = s - a
    return s, (a - (s - t)) + (b - t)


def _split_t(a):
    c = _SPLIT * a
    high = c - (c - a)
    return high, a - high


def _two_product_t(a, b):
    p = a * b
    a_hi, a_lo = _split_t(a)
    b_hi, b_lo = _split_t(b)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _cascade_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension by pairwise TwoSum, collecting every rounding error
    (Ogita, Rump and Oishi's Sum2, in pairwise order so that it vectorises)."""
    errors = torch.zeros(values.shape[:-1], dtype=values.dtype)
    while values.shape[-1] > 1:
        if values.shape[-1] % 2:
            values = torch.nn.functional.pad(values, (0, 1))
        s, e = _two_sum_t(values[..., 0::2], values[..., 1::2])
        errors = errors + e.sum(-1)
        values = s
    return values[..., 0] + errors


# --------------------------------------------------------------------------- deciding


def decision_margin(y) -> float:
    """Half the smallest positive gap between distinct values of y (n,); inf for fewer than two.

    An output within it of its own target is strictly nearer that target than
    any other target value (the other is at least 2 margin away), so the
    output identifies its target: for labels (+-1 gives 1) the nearest label
    is right; for real targets it is the resolution at which the network
    reproduces them. Same units as y. ValueError for NaN or infinite values.
    """
    values = np.unique(_finite_targets(y))
    return float(np.diff(values).min() / 2) if values.size > 1 else math.inf


def constant_fit_residual(y) -> float:
    """(max y - min y) / 2: the worst residual of the best constant function on targets y (n,).

    A residual bound at or above it shows nothing that a constant could not
    do; below it, the outputs carry information about which target is which.
    For two distinct values it equals `decision_margin`. Same units as y;
    0.0 when all targets are equal. ValueError for NaN or infinite values.
    """
    values = _finite_targets(y)
    return float((values.max() - values.min()) / 2) if values.size else 0.0


def nearest_target(outputs, y) -> np.ndarray:
    """Each of `outputs` (m,) replaced by the nearest distinct value of y (n,) (ties go to the lower value).

    The classifier a fit is judged by: with labels as targets, the predicted
    label. ValueError for an empty y or NaN or infinite targets.
    """
    values = np.unique(_finite_targets(y))
    outputs = np.asarray(outputs, dtype=np.float64)
    if values.size == 0:
        raise ValueError("y holds no targets to compare the outputs with")
    if values.size == 1:
        return np.full(outputs.shape, values[0])
    upper = np.clip(np.searchsorted(values, outputs), 1, values.size - 1)
    lower = upper - 1
    take_upper = np.abs(values[upper] - outputs) < np.abs(outputs - values[lower])
    return np.where(take_upper, values[upper], values[lower])


def _finite_targets(y) -> np.ndarray:
    values = _as_float64(y, "y").ravel()
    if not np.isfinite(values).all():
        raise ValueError("y contains NaN or infinite values; remove or replace them")
    return values


@dataclass
class FitCheck:
    """Whether a network fits its targets, decided at a stated scale.

    evaluation: "plain" (forward), "compensated" (forward_compensated),
        "deep" (DeepInterpolant.forward), or None: refused, no evaluation's
        bound is below the margin, so nothing can be concluded.
    residual: max_i |c(x_i) - y_i| of that evaluation (of the plain or deep
        forward when refused), in y's units.
    bound: its rounding bound (`residual_bound`); when refused, the smallest
        bound tried. margin: the decision scale it had to be below
        (`decision_margin(y)` unless the caller chose another).
    forward_bound: the bound of the network's own forward (plain, or deep);
        compensated_bound: the compensated forward's (nan if not computed).
    identified_share: share of points whose output is nearest its own target
        value (`nearest_target`); 1.0 whenever `holds`.
    reason: one line saying which evaluation decided and why, or why refused.
    """

    evaluation: str | None
    residual: float
    bound: float
    margin: float
    forward_bound: float
    compensated_bound: float
    identified_share: float
    reason: str

    @property
    def decided(self) -> bool:
        return self.evaluation is not None

    @property
    def holds(self) -> bool:
        """Decided, and the residual within the bound (hence below the margin)."""
        return self.decided and self.residual <= self.bound


def check_fit(built: Construction, x, y, *, network: nn.Module | None = None, margin: float | None = None) -> FitCheck:
    """Decide whether a network fits y (n,) on x (n, d) at the scale `margin`, or refuse.

    built: the construction the network came from (its bound needs
    built.z_sorted and the weights). network: None for built.network (the
    two-layer net), or the DeepInterpolant made from it by `fit_deep`.
    margin: default `decision_margin(y)`; pass `constant_fit_residual(y)`
    to decide only against a constant function (real-valued targets).

    Two-layer: the plain forward decides if its bound is below the margin;
    else the compensated forward if its bound is; else refused. Deep: the
    deep forward decides if its bound is below the margin; else refused (no
    more exact evaluation of the deep network exists here). Refused means
    evaluation None and holds False: a bound at or above the margin cannot
    tell the target from its neighbour, so the check never passes on it.
    Raises ValueError for bad x or y (`check_points_and_targets`) and a
    NaN margin; TypeError for a network that is neither built.network nor a
    DeepInterpolant (the bounds are derived for those two forwards only; to
    check another two-layer network, put it in the record first:
    dataclasses.replace(built, network=other)).
    """
    x, y = check_points_and_targets(x, y)
    margin = decision_margin(y) if margin is None else float(margin)
    if math.isnan(margin):
        raise ValueError("margin must be a number (inf allowed); got nan")
    deep = network is not None and network is not built.network
    if deep and not isinstance(network, DeepInterpolant):
        raise TypeError(
            f"network must be built.network or a DeepInterpolant from fit_deep; got {type(network).__name__}"
        )
    forward_kind = "deep" if deep else "plain"
    evaluated = network if deep else built.network
    forward_bound = residual_bound(built, x, y, forward_kind)
    compensated_bound = math.nan
    if forward_bound < margin:
        reason = f"{forward_kind} forward decides: its bound {forward_bound:.3g} < margin {margin:.3g}"
        return _fit_check(
            forward_kind, evaluated, x, y, forward_bound, margin, forward_bound, compensated_bound, reason
        )
    if not deep:
        compensated_bound = residual_bound(built, x, y, "compensated")
        if compensated_bound < margin:
            reason = (
                f"compensated forward decides: its bound {compensated_bound:.3g} < margin {margin:.3g} "
                f"(the plain bound {forward_bound:.3g} is not)"
            )
            return _fit_check(
                "compensated", evaluated, x, y, compensated_bound, margin, forward_bound, compensated_bound, reason
            )
    tried = f"{forward_kind} {forward_bound:.3g}" + ("" if deep else f", compensated {compensated_bound:.3g}")
    reason = f"refused: no bound is below the margin {margin:.3g} ({tried}); the fit cannot be decided at this scale"
    smallest = forward_bound if deep else min(forward_bound, compensated_bound)
    return _fit_check(None, evaluated, x, y, smallest, margin, forward_bound, compensated_bound, reason)


def _fit_check(evaluation, network, x, y, bound, margin, forward_bound, compensated_bound, reason) -> FitCheck:
    with torch.no_grad():
        x_t = torch.from_numpy(x)
        outputs = (network.forward_compensated(x_t) if evaluation == "compensated" else network(x_t)).numpy()
    return FitCheck(
        evaluation=evaluation,
        residual=float(np.abs(outputs - y).max()),
        bound=bound,
        margin=margin,
        forward_bound=forward_bound,
        compensated_bound=compensated_bound,
        identified_share=float(np.mean(nearest_target(outputs, y) == y)),
        reason=reason,
    )


# --------------------------------------------------------------------------- constructions


@dataclass
class Construction:
    """What the construction decided, for checks and diagnostics.

    network: the fitted TwoLayerInterpolant.
    z_sorted: the projections <a, x> of the distinct points, ascending, as the
        construction computed them (the network's biases interleave these).
    rank_of_point: for every input row, the index of its point in z_sorted
        (merged repeats share one).
    merged_groups: index groups of repeated points that were merged.
    direction_index: which of the random directions was chosen.
    relative_min_gap: its smallest neighbour gap over the range of z.
    """

    network: TwoLayerInterpolant
    z_sorted: np.ndarray
    rank_of_point: np.ndarray
    merged_groups: list
    direction_index: int
    relative_min_gap: float


def construct_two_layer(
    x,
    y,
    *,
    placement: str = "above_previous",
    bias_fraction: float = DEFAULT_BIAS_FRACTION,
    n_directions: int = DEFAULT_DIRECTIONS,
    seed: int = 0,
) -> Construction:
    """Theorem 1's network for points x (n, d) and real targets y (n,), with its record.

    Repeated points with equal targets are merged (the network then has
    2 n_unique + d parameters); repeated points with different targets, NaN
    or infinite values, n = 0 and mismatched shapes raise ValueError. Points
    that are distinct but project to the same float64 value along every
    direction tried raise ValueError too. The direction a is the best of
    `n_directions` random unit vectors (seeded), by relative minimum gap.
    O(n d) for the projections plus O(n log n) for the sort; no n x n matrix.
    """
    x, y = check_points_and_targets(x, y)
    if n_directions < 1:
        raise ValueError(f"n_directions must be at least 1; got {n_directions}")
    n, d = x.shape
    directions = random_directions(d, n_directions, seed)
    projections = x @ directions
    keep, representative, groups = merge_duplicates(x, y, projections)
    if keep.size < n:  # (no copy of a large x when nothing was merged)
        x, y, projections = x[keep], y[keep], projections[keep]
    x_unique, y_unique = x, y
    scores = [relative_min_gap(projections[:, k]) for k in range(n_directions)]
    x_t = torch.from_numpy(np.ascontiguousarray(x_unique))
    for k in sorted(range(n_directions), key=lambda k: -scores[k]):
        a = torch.from_numpy(directions[:, k].copy())
        # the projection exactly as the forward pass computes it, so that the
        # network is fitted to the z it will see
        z = (x_t @ a).numpy()
        order = np.argsort(z, kind="stable")
        z_sorted = z[order]
        if z_sorted.size < 2 or np.diff(z_sorted).min() > 0:
            break
    else:
        tie = int(np.argmin(np.diff(z_sorted)))
        i, j = sorted((int(keep[order[tie]]), int(keep[order[tie + 1]])))
        raise ValueError(
            f"points {i} and {j} are distinct but too close to separate in float64 along any of "
            f"{n_directions} random directions; merge them or raise n_directions"
        )
    b = bias_positions(z_sorted, placement, bias_fraction)
    w = output_weights(z_sorted, b, y_unique[order])
    rank = np.empty(keep.size, dtype=np.int64)
    rank[order] = np.arange(keep.size)
    return Construction(
        network=TwoLayerInterpolant(a, torch.from_numpy(b), torch.from_numpy(w)),
        z_sorted=z_sorted,
        rank_of_point=rank[representative],
        merged_groups=groups,
        direction_index=k,
        relative_min_gap=relative_min_gap(z_sorted),
    )


def fit_two_layer(x, y, **options) -> TwoLayerInterpolant:
    """Theorem 1's network fitted to x (n, d) and y (n,); options as construct_two_layer.

    The network has exactly 2 n_unique + d parameters and reproduces y up to
    float64 rounding (see the module docstring for the numerics).
    """
    return construct_two_layer(x, y, **options).network


def fit_deep(x, y, depth: int, **options) -> DeepInterpolant:
    """The depth-k network (k = `depth` weight layers, k - 1 hidden) fitting y on x.

    Built from the two-layer construction (same options): its n units are cut
    into k - 1 consecutive blocks of at most ceil(n / (k - 1)), one per hidden
    layer, so each layer has O(n / k) parameters and the total is 2n + d + 1.
    depth must lie in [2, n_unique + 1].
    """
    if not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"depth must be an integer >= 2 (weight layers, output included); got {depth!r}")
    shallow = fit_two_layer(x, y, **options)
    n = shallow.biases.numel()
    if depth - 1 > n:
        raise ValueError(f"depth {depth} needs {depth - 1} hidden layers but there are only {n} distinct points")
    with torch.no_grad():
        b = shallow.biases.detach()
        w = shallow.out_weights.detach()
        offset = float(b[0])
        bounds = np.linspace(0, n, depth).round().astype(int)
        # layer 1 reads <a, x> and keeps the absolute biases; later layers read u = <a, x> - beta
        thresholds = [b[lo:hi] - (offset if lo > 0 else 0.0) for lo, hi in zip(bounds[:-1], bounds[1:])]
        weights = [w[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
    return DeepInterpolant(shallow.direction.detach(), offset, thresholds, weights)


def max_abs_residual(net: nn.Module, x, y, compensated: bool = False) -> float:
    """max_i |net(x_i) - y_i| in float64, without building a graph."""
    x, y = check_points_and_targets(x, y)
    with torch.no_grad():
        x_t = torch.from_numpy(x)
        out = net.forward_compensated(x_t) if compensated else net(x_t)
    return float((out - torch.from_numpy(y)).abs().max())


def residual_bound(built: Construction, x, y, kind: str = "plain") -> float:
    """A rigorous float64 bound on max_i |c(x_i) - y_i| for the points a network was built from.

    Notation: eps = 2^-52, gamma_m = m eps / (1 - m eps) (Higham's bound for
    an m-term sum), n distinct points, W = ||w||_1, span = max z - b_1 (no
    ReLU argument on the data exceeds it), delta = max_i |z_i(forward) -
    z_i(construction)| measured here (zero when the forward pass projects
    bit for bit as the construction did); a shift delta of z moves c by at
    most its slope, |sum of some w_j| <= W, times delta.

    The build: carrying value and slope in double-double leaves the exact
    network with the rounded weights within 3 eps |w_i (z_i - b_i)| <=
    3 eps W span of y_i (w_i is one rounded division; its error is tracked
    by the next steps, not accumulated).

    kind="plain" (forward): each term w_j fl(z - b_j) carries 2 roundings,
        the pairwise sum of at most n terms gamma_{n-1}: all within
        gamma_{n+1} W span; with the build, gamma_{n+4} W span + W delta.
    kind="deep" (DeepInterpolant.forward): blocks after the first also
        round u = z - beta and t_j = b_j - beta (both <= span): 4 more
        roundings per term, gamma_{n+8} W span + W delta.
    kind="compensated" (forward_compensated): differences and products are
        exact; the TwoSum cascade leaves eps |c| + gamma_n^2 sum|terms|, the
        low-order parts add 2 gamma_2n eps sum|terms|: with the build,
        3 eps max_i |w_i (z_i - b_i)| + 2 eps max|y| + 4 gamma_2n^2 W span + W delta.
    """
    if kind not in ("plain", "deep", "compensated"):
        raise ValueError(f"kind must be 'plain', 'deep' or 'compensated'; got {kind!r}")
    x, y = check_points_and_targets(x, y)
    net = built.network
    with torch.no_grad():
        b = net.biases.detach().numpy()
        w = net.out_weights.detach().numpy()
        z_forward = net.project(torch.from_numpy(x)).numpy()
    n = w.size
    weights_l1 = float(np.abs(w).sum())
    span = float(built.z_sorted[-1] - b[0])
    shift = weights_l1 * float(np.abs(z_forward - built.z_sorted[built.rank_of_point]).max())
    if kind == "plain":
        return _gamma(n + 4) * weights_l1 * span + shift
    if kind == "deep":
        return _gamma(n + 8) * weights_l1 * span + shift
    own_terms = float(np.abs(w * (built.z_sorted - b)).max())
    return 3 * _EPS * own_terms + 2 * _EPS * float(np.abs(y).max()) + 4 * _gamma(2 * n) ** 2 * weights_l1 * span + shift
