"""Measured evidence that a run's variant and settings took effect, and the refusal when they did not.

A harness that measures a broken run passes claims: random labels that
changed no label, weight decay that never reached the optimizer, a test set
that is the training set. So before any pass, every run measures what its
config implies from the data, model and optimizer it actually uses, never
from what the code that made them reports (a label count is recounted
against the dataset's own labels, not read from `label_changed`). Each item
is `{"measured": ..., "expected": str, "holds": bool}` under the record's
`evidence` field:

- labels: training labels that differ from the dataset's labels of the same
  rows, against Binomial(n, (1 - 1/K) p) at the run's label corruption p
  (`label_count_interval`, two-sided at LABEL_COUNT_ALPHA);
- label_flags: rows whose `label_changed` flag disagrees with that recount
  (0: the noise curves and `labels_changed` read the right rows);
- test_labels: test labels that differ from the dataset's (test labels are
  never corrupted; 0);
- pixels: on a fixed sample of PIXEL_SAMPLE training rows, the inputs
  against the source images (crop and per-image standardisation of the raw
  rows): equal for the label variants; the same values at other positions
  for shuffled and random pixels; other values for Gaussian images;
- train_test_overlap: test inputs bit-identical to a training input, at
  most the exact duplicates the dataset's own splits share plus a margin
  (`overlap_allowance`, derived from the real data files);
- n_train, n_test: images used, against the split's size or the config's
  smaller subset;
- dropout: with dropout on, two train-mode passes over the same batch differ
  and two eval-mode passes agree; with it off, no active dropout module;
- weight_decay: the coefficient the update applies: the optimizer's param
  groups (eager loop), or one probe step of the loop's own update (graph
  and batched loops);
- augmentation: with random crops, two draws over the same rows differ and
  the crops differ from the uncropped images; without, no augmentation.

When an item does not hold, `refuse_contradictions` raises a
`ManipulationError` naming the run and each contradiction, before any pass:
nothing trains and no record is written. The store trusts a record only
when its evidence is there and holds (harness.core.store).

Cost, measured on 2 shared CPU cores for 50,000 training and 10,000 test
images of 3x28x28 (the CIFAR-10 JPEG copy): 0.13-0.17 s per run for the
data items (mostly the checksums of the run's 60,000 inputs), plus 0.3-0.35
s once per dataset and process for the dataset's own split overlap
(`dataset_split_overlap`); the dropout probe takes 0.01 s for MLP 1x512 and
0.27 s for AlexNet (four forward passes over 64 images), the weight-decay
and crop checks milliseconds. Next to a pass over those images (about 7 s
for MLP 1x512 on the same cores) that is a few percent of one pass. On a
GPU the checksums run on the device.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from harness.core.config import RunConfig
from harness.core.data import RawDataset, subset_indices
from harness.core.optim import builtin_name, spec_kwargs
from harness.core.prepare import CROP, centre_crop, standardise_per_image, to_unit_float


class ManipulationError(ValueError):
    """A run's data, model or optimizer contradicts its config; raised before training, so nothing trains."""


@dataclass(frozen=True)
class Finding:
    """One measured item: what was measured, what the config implies, whether they agree.

    measured: a JSON-ready number, dict or None. expected: the config's
    implication in words and numbers. holds: whether the measurement agrees.
    said: the finding as one clause for an error message ("0 of 5,000
    training labels differ from the dataset's, expected about 4,500 ...").
    """

    measured: object
    expected: str
    holds: bool
    said: str

    def as_record(self) -> dict:
        return {"measured": self.measured, "expected": self.expected, "holds": self.holds}


# The items every run record carries, whatever its loop or outcome; weight_decay and
# augmentation are measured once the optimizer exists (not for a run refused before it).
REQUIRED_ITEMS = (
    "labels",
    "label_flags",
    "test_labels",
    "pixels",
    "train_test_overlap",
    "n_train",
    "n_test",
    "dropout",
)

# Significance of the label-count bound, two-sided. The bound must never refuse an honest
# run: a claims session trains some hundreds of runs and the project some tens of
# thousands over its life, so by the union bound the chance of ever refusing an honest
# run is at most 1e4 x 1e-9 = 1e-5. It costs no power against what it is for: at n =
# 5,000 and p = 1 (K = 10) the interval is 4,366-4,625 around 4,500 (sd 21.2); a run that
# changed no label is 212 sd away (probability 0.1^5000), one that applied p = 0.25 for
# p = 0.5 (1,125 changed where 2,250 are expected, sd 35) is 32 sd away.
LABEL_COUNT_ALPHA = 1e-9

# Training rows whose inputs are compared with their source images: a fixed sample (its own
# generator, so training draws are untouched) keeps the check at milliseconds.
PIXEL_SAMPLE = 256
PIXEL_SAMPLE_SEED = 0xE71D
# Standardised inputs whose largest difference stays within this are the same input: a
# permutation changes the order of the per-image sums, hence the last bits (about 1e-6 at
# the values' scale of a few units); any real change of a pixel is at least 1/255 before
# standardisation, about 1e-2 after.
SAME_INPUT_TOLERANCE = 1e-4
# Share of the sampled non-uniform images a pixel variant must have changed. An honest
# permutation leaves an image unchanged only if it maps every pixel onto one of equal value
# (1 in 784 for an image that is uniform but for one pixel); a variant never applied changes none.
CHANGED_SHARE = 0.9

# Train/test overlap. Measured on the real data files, whole train split against whole test
# split, as raw uint8 bytes, as the 28x28 centre crop the runs take, and as the prepared
# (standardised) inputs: MNIST (lossless arrays copy, 60,000 / 10,000) shares 0 exact images
# at every level, the CIFAR-10 JPEG q75 copy (50,000 / 10,000) shares 0 too; neither holds
# a uniform image, and within each split no image repeats. So a run's overlap is what its
# dataset's own splits share (counted per dataset, `dataset_split_overlap`) plus what
# preprocessing can merge beyond the crop: only images that are brightness and contrast
# changes of each other, none in either file. The margin for those is 0.1% of the test
# inputs (10 of 10,000; at least 1). A test set replaced by training rows overlaps 100%.
OVERLAP_MARGIN_SHARE = 0.001

# Images of the batch the dropout and crop probes run on.
PROBE_ROWS = 64

VARIANT_WORDS = {
    "true": "true labels",
    "random": "random labels",
    "shuffled_pixels": "shuffled pixels",
    "random_pixels": "random pixels",
    "gaussian": "Gaussian images",
}


def variant_words(config: RunConfig) -> str:
    """'random labels', 'label corruption 0.5', 'shuffled pixels': the variant as a reader names it."""
    if config.variant == "partial":
        return f"label corruption {config.corruption:g}"
    return VARIANT_WORDS.get(config.variant, config.variant)


def run_name(config: RunConfig) -> str:
    """'mlp_1x512, random labels (label corruption 1), seed 0': the run in an error message."""
    return f"{config.model}, {variant_words(config)} (label corruption {config.label_corruption:g}), seed {config.seed}"


def as_record(findings: dict[str, Finding]) -> dict:
    """The record's `evidence` field: name -> {measured, expected, holds}."""
    return {name: finding.as_record() for name, finding in findings.items()}


def refuse_contradictions(config: RunConfig, findings: dict[str, Finding]) -> None:
    """Raise ManipulationError naming the run and every finding that does not hold; return when all hold."""
    failing = [f"{name}: {finding.said}" for name, finding in findings.items() if not finding.holds]
    if failing:
        raise ManipulationError(
            f"run {run_name(config)} contradicts its config, so nothing was trained: {'; '.join(failing)}"
        )


# --- the data: labels, inputs, sizes, train/test overlap -----------------------------------


def data_evidence(config: RunConfig, data, raw: RawDataset) -> dict[str, Finding]:
    """Labels, pixels, overlap and sizes of `data` (a DeviceData) against the raw dataset `raw` of the same rows.

    The rows are drawn again here from the config (harness.core.data.subset_indices), so a
    run whose prepared data lost or swapped rows shows it as a size, label or pixel contradiction.
    """
    train_rows = subset_indices(len(raw.train_y), config.n_train, config.seed)
    test_rows = subset_indices(len(raw.test_y), config.n_test, config.seed)
    train_y = data.train_y.detach().cpu().numpy()
    raw_train_y = raw.train_y[train_rows]
    findings = {}
    if len(train_y) == len(raw_train_y):
        changed = train_y != raw_train_y
        findings["labels"] = label_count_finding(int(changed.sum()), len(changed), raw.num_classes, config)
        flags = data.label_changed.detach().cpu().numpy().astype(bool)
        findings["label_flags"] = _flags_finding(flags, changed)
    else:
        said = f"the run trains on {len(train_y):,} labels for the {len(raw_train_y):,} rows its config draws"
        findings["labels"] = Finding(None, f"{len(raw_train_y):,} labels to compare", False, said)
        findings["label_flags"] = Finding(None, "a flag per training label", False, said)
    test_y = data.test_y.detach().cpu().numpy()
    raw_test_y = raw.test_y[test_rows]
    if len(test_y) == len(raw_test_y):
        differing = int((test_y != raw_test_y).sum())
        findings["test_labels"] = Finding(
            differing,
            "0 (test labels are never changed)",
            differing == 0,
            f"{differing:,} of {len(test_y):,} test labels differ from the dataset's, expected none",
        )
    else:
        findings["test_labels"] = Finding(
            None,
            f"{len(raw_test_y):,} test labels to compare",
            False,
            f"the run tests on {len(test_y):,} labels for the {len(raw_test_y):,} rows its config draws",
        )
    findings["pixels"] = pixel_finding(config, data.train_x, raw, train_rows)
    findings["train_test_overlap"] = overlap_finding(data.train_x, data.test_x, dataset_split_overlap(raw))
    findings["n_train"] = _size_finding("training", len(data.train_x), len(train_y), len(raw.train_y), config.n_train)
    findings["n_test"] = _size_finding("test", len(data.test_x), len(test_y), len(raw.test_y), config.n_test)
    return findings


def label_count_interval(n: int, q: float, alpha: float = LABEL_COUNT_ALPHA) -> tuple[int, int]:
    """The central 1 - alpha interval [lo, hi] of Binomial(n, q): P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2.

    Exact (log-pmf from log-factorials, no normal approximation), so it
    behaves at any n: n = 0 or q = 0 gives (0, 0), q = 1 gives (n, n), and a
    small n gives the whole range where no count is unlikely enough.
    """
    if n <= 0 or q <= 0.0:
        return 0, 0
    if q >= 1.0:
        return n, n
    counts = np.arange(n + 1)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_pmf = (
        log_factorial[n]
        - log_factorial[counts]
        - log_factorial[n - counts]
        + counts * math.log(q)
        + (n - counts) * math.log1p(-q)
    )
    pmf = np.exp(log_pmf - log_pmf.max())
    pmf /= pmf.sum()
    at_most = np.cumsum(pmf)  # P(X <= k)
    at_least = np.cumsum(pmf[::-1])[::-1]  # P(X >= k), summed from the small end of the upper tail
    lo = int(np.argmax(at_most > alpha / 2))  # first k with P(X <= k) > alpha/2, so P(X < k) <= alpha/2
    hi = int(n - np.argmax(at_least[::-1] > alpha / 2))  # last k with P(X >= k) > alpha/2
    return lo, hi


def label_count_finding(changed: int, n: int, num_classes: int, config: RunConfig) -> Finding:
    """`changed` of `n` training labels differ from the dataset's: inside the binomial interval of the config's p?

    A label is redrawn with probability p and the draw is uniform over the
    K classes, so it changes with probability (1 - 1/K) p, independently:
    the count is Binomial(n, (1 - 1/K) p). K = 1 and p = 0 expect exactly 0.
    """
    p = config.label_corruption
    q = (1.0 - 1.0 / num_classes) * p
    lo, hi = label_count_interval(n, q)
    mean = q * n
    words = variant_words(config)
    expected = (
        f"about {mean:,.0f} ({lo:,}-{hi:,}) of {n:,}: (1 - 1/{num_classes}) x {p:g} x {n:,} for {words}"
        if lo != hi
        else f"{lo:,} of {n:,} for {words}"
    )
    said = f"{changed:,} of {n:,} training labels differ from the dataset's, expected " + (
        f"about {mean:,.0f} ({lo:,}-{hi:,}) for {words}" if lo != hi else f"{lo:,} for {words}"
    )
    return Finding(changed, expected, lo <= changed <= hi, said)


def _flags_finding(flags: np.ndarray, changed: np.ndarray) -> Finding:
    """The run's per-label `label_changed` flags against the recount (what the noise curves split by)."""
    if flags.shape != changed.shape:
        return Finding(
            None,
            "one flag per training label",
            False,
            f"the run flags {len(flags):,} labels as changed or kept for {len(changed):,} training labels",
        )
    wrong = int((flags != changed).sum())
    return Finding(
        wrong,
        "0 flags that disagree with the recount",
        wrong == 0,
        f"{wrong:,} of {len(flags):,} label_changed flags disagree with the labels' recount "
        f"(they flag {int(flags.sum()):,} changed, {int(changed.sum()):,} are)",
    )


def _size_finding(split: str, images: int, labels: int, whole: int, asked: int | None) -> Finding:
    """Images used of a split against its size, or the config's smaller subset."""
    wanted = whole if asked is None else min(asked, whole)
    because = f"the whole {split} split" if wanted == whole else f"the config's subset of {asked:,}"
    holds = images == labels == wanted
    said = f"the run uses {images:,} {split} images ({labels:,} labels), expected {wanted:,} ({because})"
    return Finding(labels, f"{wanted:,} ({because})", holds, said)


def _sample_rows(n: int) -> np.ndarray:
    """The fixed sample of training rows the pixel check compares (all rows of a set smaller than PIXEL_SAMPLE)."""
    if n <= PIXEL_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(PIXEL_SAMPLE_SEED).choice(n, size=PIXEL_SAMPLE, replace=False))


def pixel_finding(config: RunConfig, train_x: torch.Tensor, raw: RawDataset, train_rows: np.ndarray) -> Finding:
    """The run's training inputs (N, C, H, W) on a sample of rows against their source images (raw rows prepared).

    Expected per variant: the label variants train on the source images
    themselves; shuffled and random pixels keep each image's values and move
    them (at least CHANGED_SHARE of the non-uniform images changed, every
    one keeping its values); Gaussian images replace them (at least that
    share changed, at most 1 - CHANGED_SHARE keeping their values). Uniform
    images (all zero once standardised) are left out of the shares: no
    permutation changes them.
    """
    rows = _sample_rows(min(len(train_x), len(train_rows)))
    source = standardise_per_image(to_unit_float(raw.train_x[train_rows[rows]], CROP)).flatten(1)
    used = train_x[torch.from_numpy(rows).to(train_x.device)].detach().float().cpu().flatten(1)
    if used.shape != source.shape:
        return Finding(
            None,
            f"inputs of shape {tuple(source.shape[1:])} per image",
            False,
            f"the training inputs have {used.shape[1]} values per image, their source images {source.shape[1]}",
        )
    uniform = source.amin(dim=1) == source.amax(dim=1)
    same_place = (used - source).abs().amax(dim=1) <= SAME_INPUT_TOLERANCE
    same_values = same_place.clone()  # an input in its place keeps its values; the others are sorted to tell
    moved = ~same_place
    if moved.any():
        in_order = (used[moved].sort(dim=1).values - source[moved].sort(dim=1).values).abs().amax(dim=1)
        same_values[moved] = in_order <= SAME_INPUT_TOLERANCE
    sampled, informative = len(rows), int((~uniform).sum())
    changed = int((~same_place & ~uniform).sum())
    kept = int((same_values & ~uniform).sum())
    measured = {"sampled": sampled, "uniform": sampled - informative, "changed": changed, "values_kept": kept}
    least_changed = math.ceil(CHANGED_SHARE * informative)
    of = f"of {informative:,} sampled non-uniform training images"
    if config.variant in ("shuffled_pixels", "random_pixels"):
        expected = f"all {of} moved (at least {least_changed:,}), each keeping its values"
        holds = changed >= least_changed and kept == informative
    elif config.variant == "gaussian":
        expected = (
            f"all {of} replaced (at least {least_changed:,} changed, "
            f"at most {informative - least_changed:,} keeping their values)"
        )
        holds = changed >= least_changed and kept <= informative - least_changed
    else:
        expected = f"none {of} changed ({variant_words(config)} leave the inputs as they are)"
        holds = changed == 0 and bool(same_place.all())
    said = f"{changed:,} {of} differ from their source images and {kept:,} keep their values, expected {expected}"
    return Finding(measured, expected, holds, said)


_SPLIT_OVERLAPS: dict[str, int] = {}


def dataset_split_overlap(raw: RawDataset) -> int:
    """Test images of the whole dataset identical to a training image, as the runs' centre crop sees them.

    Counted on the raw uint8 crops (blake2b per image), uniform crops taken
    as one image (they standardise alike). Once per dataset and process:
    0.3 s for 60,000 images of 3x32x32.
    """
    if raw.fingerprint not in _SPLIT_OVERLAPS:
        train = _crop_digests(raw.train_x)
        _SPLIT_OVERLAPS[raw.fingerprint] = sum(digest in train for digest in _crop_digests(raw.test_x, as_list=True))
    return _SPLIT_OVERLAPS[raw.fingerprint]


def _crop_digests(images: np.ndarray, as_list: bool = False):
    """blake2b of each image's centre crop (uint8 bytes); one shared digest for every uniform crop."""
    crops = np.ascontiguousarray(centre_crop(images, CROP)).reshape(len(images), -1)
    uniform = crops.min(axis=1) == crops.max(axis=1)
    digests = [
        b"uniform" if flat else hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        for row, flat in zip(crops, uniform)
    ]
    return digests if as_list else set(digests)


def overlap_allowance(dataset_overlap: int, n_test: int) -> int:
    """Test inputs a run may find among its training inputs: its dataset's own count plus the margin (see above)."""
    return dataset_overlap + max(1, math.ceil(OVERLAP_MARGIN_SHARE * n_test))


def overlap_finding(train_x: torch.Tensor, test_x: torch.Tensor, dataset_overlap: int) -> Finding:
    """Test inputs bit-identical to a training input, as the model sees them (exact duplicates; near ones differ)."""
    overlap = identical_across(train_x, test_x)
    allowed = overlap_allowance(dataset_overlap, len(test_x))
    expected = (
        f"at most {allowed:,} of {len(test_x):,} (the dataset's own splits share {dataset_overlap:,} exact images, "
        f"plus a margin of {allowed - dataset_overlap:,})"
    )
    said = f"{overlap:,} of {len(test_x):,} test inputs are training inputs, expected {expected}"
    return Finding(
        {"test_inputs_in_train": overlap, "dataset_splits_share": dataset_overlap}, expected, overlap <= allowed, said
    )


def input_checksums(images: torch.Tensor) -> np.ndarray:
    """(N, 2) int64 checksums of each input's bits, computed where the images are: equal inputs, equal checksums.

    The sum of each input's values read as int32 bits, and the same sum over
    every other position (exact integer sums, so equal inputs always share
    both); only rows that share both are compared exactly. On the CPU numpy
    sums without a copy (0.1 s for 50,000 inputs of 3x28x28).
    """
    flat = images.detach().reshape(len(images), -1)
    if flat.element_size() != 4:
        flat = flat.float()
    flat = flat.contiguous()
    if flat.device.type == "cpu":
        bits = flat.numpy().view(np.int32)
        return np.stack([bits.sum(axis=1, dtype=np.int64), bits[:, ::2].sum(axis=1, dtype=np.int64)], axis=1)
    bits = flat.view(torch.int32)
    sums = torch.stack([bits.sum(dim=1, dtype=torch.int64), bits[:, ::2].sum(dim=1, dtype=torch.int64)], dim=1)
    return sums.cpu().numpy()


# Pairs of rows compared at once when checksums agree (a leaked test set makes every test row one).
_COMPARED_AT_ONCE = 2048


def identical_across(train_x: torch.Tensor, test_x: torch.Tensor) -> int:
    """How many rows of test_x equal some row of train_x exactly (both (N, ...) on one device)."""
    train_keys, test_keys = (_checksum_keys(images) for images in (train_x, test_x))
    order = np.argsort(train_keys, kind="stable")
    sorted_keys = train_keys[order]
    first = np.searchsorted(sorted_keys, test_keys, side="left")
    last = np.searchsorted(sorted_keys, test_keys, side="right")
    matches = last - first  # training rows sharing each test row's checksums: almost always 0
    if not matches.any():
        return 0
    test_rows = np.repeat(np.arange(len(test_keys)), matches)
    offsets = np.arange(len(test_rows)) - np.repeat(np.cumsum(matches) - matches, matches)
    train_rows = order[np.repeat(first, matches) + offsets]
    device = train_x.device
    matched = torch.zeros(len(test_x), dtype=torch.bool, device=device)
    for start in range(0, len(test_rows), _COMPARED_AT_ONCE):
        t = torch.from_numpy(test_rows[start : start + _COMPARED_AT_ONCE]).to(device)
        r = torch.from_numpy(train_rows[start : start + _COMPARED_AT_ONCE]).to(device)
        equal = (test_x[t].reshape(len(t), -1) == train_x[r].reshape(len(r), -1)).all(dim=1)
        matched[t[equal]] = True
    return int(matched.sum())


def _checksum_keys(images: torch.Tensor) -> np.ndarray:
    """(N,) int64: each input's two checksums folded into one (wrapping), for sorting and searching."""
    sums = input_checksums(images)
    with np.errstate(over="ignore"):
        return sums[:, 0] * np.int64(1_000_003) + sums[:, 1]


# --- the model, the optimizer and the augmentation ----------------------------------------


def _active_dropout_modules(model: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def dropout_finding(config: RunConfig, model: torch.nn.Module, images: torch.Tensor) -> Finding:
    """Dropout on: two train-mode passes over `images` differ, two eval-mode passes agree; off: no active module.

    The passes run on a copy of the model under a forked random state, so
    the run's weights, buffers and random draws are as they were.
    images: (B, C, H, W), B up to PROBE_ROWS, on the model's device.
    """
    active = _active_dropout_modules(model)
    if config.dropout == 0:
        return Finding(
            {"active_dropout_modules": active},
            "no active dropout module (dropout 0)",
            active == 0,
            f"the model holds {active} active dropout module(s), expected none for dropout 0",
        )
    probe = copy.deepcopy(model)
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        probe.train()
        first, second = probe(images), probe(images)
        train_differ = not torch.allclose(first, second, rtol=0.0, atol=SAME_INPUT_TOLERANCE)
        probe.eval()
        eval_equal = torch.allclose(probe(images), probe(images), rtol=0.0, atol=SAME_INPUT_TOLERANCE)
    measured = {
        "train_mode_outputs_differ": train_differ,
        "eval_mode_outputs_equal": eval_equal,
        "active_dropout_modules": active,
    }
    expected = (
        f"dropout {config.dropout:g}: two train-mode passes over {len(images)} images differ, "
        "two eval-mode passes agree"
    )
    said = (
        f"two train-mode passes over the same {len(images)} images {'differ' if train_differ else 'agree'} and "
        f"two eval-mode passes {'agree' if eval_equal else 'differ'}, expected {expected}"
    )
    return Finding(measured, expected, train_differ and eval_equal, said)


def expected_weight_decay(config: RunConfig) -> float | None:
    """The coefficient the config gives the optimizer; None where it leaves an imported factory its own default.

    A built-in takes the config's (spec keywords fill the config); an
    imported factory its spec's keyword, else the config's when nonzero
    (harness.core.optim passes no weight_decay of 0).
    """
    if builtin_name(config.optimizer) is not None:
        return float(config.weight_decay)
    keywords = spec_kwargs(config.optimizer)
    if "weight_decay" in keywords:
        return float(keywords["weight_decay"])
    return float(config.weight_decay) if config.weight_decay else None


def param_group_decay_finding(config: RunConfig, optimizer: torch.optim.Optimizer) -> Finding:
    """The weight decay of each of the optimizer's param groups against the config's (eager loop)."""
    values = [group.get("weight_decay") for group in optimizer.param_groups]
    known = [float(value) for value in values if isinstance(value, (int, float)) and not isinstance(value, bool)]
    wanted = expected_weight_decay(config)
    measured = {"param_groups": values}
    if wanted is None:
        return Finding(
            measured,
            f"the factory's own default ({config.optimizer} is given no weight_decay for 0): not checked",
            True,
            "not checked",
        )
    if len(known) < len(values):
        if wanted == 0:
            expected = "0 (no weight decay; the optimizer keeps no weight_decay in its param groups)"
            return Finding(measured, expected, True, "not checked")
        expected = f"{wanted:g}, passed to the factory; its param groups keep no weight_decay, so not checked"
        return Finding(measured, expected, True, "not checked")
    holds = all(math.isclose(value, wanted, rel_tol=1e-9, abs_tol=0.0) for value in known)
    said = f"the optimizer's param groups carry weight decay {_listed(known)}, expected {wanted:g}"
    return Finding(measured, f"{wanted:g} in every param group", holds, said)


def decay_applied(update: Callable[[torch.Tensor], None]) -> float:
    """The weight decay an SGD-style update applies: one step at lr 1, zero gradient, no momentum, on a weight of 1.

    `update(param)` takes that step in place on a float64 (1, 1, 1)
    tensor of ones whose .grad is zero; the weight left is 1 - wd.
    """
    param = torch.ones(1, 1, 1, dtype=torch.float64)
    param.grad = torch.zeros_like(param)
    update(param)
    return 1.0 - float(param.detach().reshape(()))


def update_decay_finding(config: RunConfig, applied: float, loop: str) -> Finding:
    """The decay a loop's own SGD update applied on a probe step (graph and batched loops) against the config's."""
    wanted = float(config.weight_decay)
    holds = math.isclose(applied, wanted, rel_tol=1e-6, abs_tol=1e-12)
    said = f"the {loop} loop's update applies weight decay {applied:.6g}, expected {wanted:g}"
    return Finding(
        {f"{loop}_update": round(applied, 12)}, f"{wanted:g} applied by the {loop} loop's update", holds, said
    )


def augmentation_finding(
    config: RunConfig, augment, images: torch.Tensor, generator: torch.Generator | None
) -> Finding:
    """Random crops: two draws over the same rows differ, and differ from the uncropped images; none: no augment.

    augment: the callable the loop crops batches with (rows -> images), or
    None. images: the training inputs (N, C, H, W) it crops. The draws come
    from the run's generator, whose state is restored afterwards, so the
    run's own draws are as they were.
    """
    if config.augment == "none":
        return Finding(
            {"augmentation": None if augment is None else type(augment).__name__},
            "no augmentation (augment none)",
            augment is None,
            f"the loop augments its batches with {type(augment).__name__}, expected no augmentation",
        )
    expected = "random crops: two draws over the same rows differ, and differ from the uncropped images"
    if augment is None:
        return Finding({"augmentation": None}, expected, False, f"the loop has no augmentation, expected {expected}")
    rows = torch.arange(min(len(images), PROBE_ROWS), device=images.device)
    state = generator.get_state() if generator is not None else None
    try:
        with torch.no_grad():
            first, second = augment(rows), augment(rows)
    finally:
        if state is not None:
            generator.set_state(state)
    uncropped = images[rows].reshape(len(rows), -1)
    draws_differ = int((first.reshape(len(rows), -1) != second.reshape(len(rows), -1)).any(dim=1).sum())
    from_uncropped = int((first.reshape(len(rows), -1) != uncropped).any(dim=1).sum())
    measured = {"rows": len(rows), "draws_differ": draws_differ, "differ_from_uncropped": from_uncropped}
    said = (
        f"of {len(rows)} rows cropped twice, {draws_differ} differ between the draws and {from_uncropped} from the "
        f"uncropped images, expected {expected}"
    )
    return Finding(measured, expected, draws_differ > 0 and from_uncropped > 0, said)


def _listed(values: list[float]) -> str:
    distinct = sorted(set(values))
    return ", ".join(f"{value:g}" for value in distinct) if distinct else "none"
