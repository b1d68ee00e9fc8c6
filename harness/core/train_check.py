"""How each pass measures training accuracy: the whole set, or a sample that gates it exactly.

The run's verdict ("fitted": the whole training set at the target accuracy)
and its passes to fit must stay exact, but classifying all 50,000 training
images after every pass was 42% of Inception's time to fit random labels on
an H100 (56 of 134 s). A fixed
random sample of the training set settles most passes for a fraction of the
cost without giving up exactness, because errors only add up: the sample's
errors can never exceed the whole set's, so a pass whose sample already
holds more errors than the target allows cannot have fitted, and its sample
accuracy stands in for the curve. Only a pass whose sample is within the
target's allowance (in practice the last few) is checked on the whole set,
and that whole-set check alone can end the run. The first pass that fits is
therefore the same pass, with or without the sample, provided an image is
classified alike in the sample's batches and in the whole set's. On a GPU
that is not guaranteed: other batch shapes may take other kernels, and a
near tie between two classes can flip in the last bits. So the whole set is
checked whenever the sample holds at most GATE_SLACK errors more than the
target allows: a fit is then seen late only if more than GATE_SLACK sample
images flip the wrong way at once in the pass it happens; never early, since
only the whole-set reading can end a run.

What a sampled pass records is an estimate: its training accuracy is the
sample's (standard error at most 0.5 / sqrt(sample size): 0.7 points at
5,000 images); `curves["train_checked"]` says, pass by pass, how many images
the reading is over, and a random-label run's clean and corrupted curves are
read over the sample's members of each. Runs with partially corrupted labels
(0 < p < 1) always check the whole set, since their per-subset curves are
claim evidence at every pass (A1, A2). The sample is drawn from its own
generator, so it leaves the training trajectory untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Predict = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]

# Sample errors tolerated beyond the target's allowance before the whole set is
# skipped (see the module docstring): near ties that flip between batch shapes
# are single images, and a pass with up to two sample errors costs one
# whole-set check more, a handful of times per run.
GATE_SLACK = 2

# Offset of the sample's generator from the run's seed, so the sample is not
# the first rows of the run's own first permutation.
SAMPLE_SEED_OFFSET = 7919


@dataclass
class Reading:
    accuracy: float  # over the checked images: exact when the whole set was checked
    correct: torch.Tensor  # per checked image: classified correctly
    rows: torch.Tensor | None  # the checked rows of the training set; None: all of them

    @property
    def whole(self) -> bool:
        return self.rows is None

    @property
    def checked(self) -> int:
        return len(self.correct)


class TrainingSetCheck:
    """Training accuracy after a pass: `measure(model, whole=...)` -> Reading.

    fraction: the share of the training set in the sample (1.0: the whole set
    every pass). target_accuracy: the run's target, which sets how many errors
    the whole set may hold and still count as fitted.
    """

    def __init__(
        self,
        predict: Predict,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        fraction: float,
        target_accuracy: float,
        seed: int,
        whole_every_pass: bool = False,
    ):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"the training-set check fraction must lie in (0, 1], got {fraction}")
        self.predict, self.images, self.labels = predict, images, labels
        n = len(labels)
        size = math.ceil(fraction * n)
        # The whole set fits iff its errors <= allowed_errors. The small slack
        # errs towards checking the whole set, which costs time, never a pass.
        self.allowed_errors = math.floor((1.0 - target_accuracy) * n + 1e-6)
        self.sampled = size < n and not whole_every_pass
        if self.sampled:
            generator = torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET)
            rows = torch.randperm(n, generator=generator)[:size].to(labels.device)
            channels_last = images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last)
            layout = torch.channels_last if channels_last else torch.contiguous_format
            self.sample_rows = rows
            self.sample_images = images[rows].contiguous(memory_format=layout)
            self.sample_labels = labels[rows]

    def measure(self, model: torch.nn.Module, *, whole: bool = False) -> Reading:
        """One pass's reading; `whole` forces the whole set (a run's last pass, so its record is exact)."""
        if self.sampled and not whole:
            correct = self.predict(model, self.sample_images) == self.sample_labels
            errors = int((~correct).sum())  # one host synchronisation, as the whole-set check has
            if errors > self.allowed_errors + GATE_SLACK:  # the whole set holds at least these: not fitted
                return Reading(float(correct.double().mean()), correct, self.sample_rows)
        correct = self.predict(model, self.images) == self.labels
        return Reading(float(correct.double().mean()), correct, None)  # float64: 1.0 means every image
