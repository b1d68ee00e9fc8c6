"""One settings object per run, its defaults in one place, and named profiles.

A `RunConfig` fully describes a training run; its hash names the run record,
so two runs with equal configs (and equal data) are the same run. Profiles are
named presets (`smoke` for a CPU, `paper` for a GPU) in the spirit of
hypothesis profiles: a profile overrides the defaults, explicit overrides win
over the profile, and the final config is saved with every result.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

AUGMENTATIONS = ("none", "crop")
LOOPS = ("auto", "eager", "graph", "batched")
VARIANTS = ("true", "partial", "random", "shuffled_pixels", "random_pixels", "gaussian")
PRECISIONS = ("fp32", "tf32", "bf16")

DEFAULT_MOMENTUM = 0.9  # the paper's SGD momentum; on any other optimizer the value that means "not set"
# The config fields a built-in optimizer takes, with the value that means "not set" (the spec may set them).
OPTIMIZER_SETTINGS = {"lr": None, "momentum": DEFAULT_MOMENTUM, "weight_decay": 0.0}

# The seeds a run takes: torch and numpy seed from a 64-bit integer, and a negative one draws no subset.
MAX_SEED = 2**63 - 1

# True while a stored record's config is read back (RunConfig.from_dict): records are history,
# read as written; only new configs are held to the checks that a setting applies.
_READING_RECORD = contextvars.ContextVar("reading_record", default=False)


def __getattr__(name: str):
    # Kept for their users, read from the registries at each access (so a model registered
    # later is in them) and lazily (importing this module does not import torch):
    # PAPER_LEARNING_RATES, model -> the paper's learning rate (harness.core.models.MODELS);
    # GRAPH_OPTIMIZERS, the optimizers the CUDA-graph loop implements (harness.core.optim).
    if name == "PAPER_LEARNING_RATES":
        from harness.core.models import MODELS

        return {model: entry.paper_lr for model, entry in MODELS.items()}
    if name == "GRAPH_OPTIMIZERS":
        from harness.core.optim import graph_optimizers

        return graph_optimizers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run.

    Units are given in the comments; `None` means "the paper's default for
    this model" where that is meaningful.

    A setting the run would not train with is refused with a ValueError that
    names the fix (a corruption level on true labels, dropout on Inception,
    TF32 on the CPU, momentum for Adam, ...): a record must never carry a
    setting it did not have. A built-in optimizer's spec keywords that name a
    config setting (``adam(lr=3e-4)``) fill that field, so the record says
    which rate ran. Exceptions, kept for the run keys of existing records:
    `train_check_fraction` below 1 stays as given on partially corrupted
    labels (0 < p < 1), whose runs check the whole set every pass anyway
    (harness.core.train_check); `test_every` above `max_passes` means "test at the
    last pass only"; `momentum` stays at its default 0.9 on optimizers
    without one.
    """

    data: str = "cifar10"  # data spec: "cifar10[:ROOT]", "mnist[:ROOT]" or "npz:PATH"
    n_train: int | None = None  # training images used (a seeded subset); None = all
    n_test: int | None = None  # test images used (a seeded subset); None = all
    variant: str = "true"  # one of VARIANTS (paper section 2.1)
    corruption: float = 0.0  # label corruption level p of variant "partial"; 0 for every other variant
    model: str = "mlp_1x512"
    init: str = "default"  # "default" (PyTorch's) or "he"
    optimizer: str = "paper_sgd"  # optimizer spec, resolved by harness.core.optim
    lr: float | None = None  # initial learning rate; None = the optimizer's default (the model's paper lr for SGD)
    momentum: float = DEFAULT_MOMENTUM  # paper_sgd's (or a spec's own, e.g. sgd(momentum=0.5)); others leave 0.9
    # L2 coefficient; the paper's runs with it on use 0.0005 (unconfirmed). An imported factory
    # is given it when nonzero (harness.core.optim).
    weight_decay: float = 0.0
    dropout: float = 0.0  # dropout after hidden layers (MLPs, AlexNet's FC layers; Inception has none)
    augment: str = "none"  # "none" or "crop": random 28x28 crop of the image padded by 2 px, per image, on the device
    lr_decay: float = 0.95  # multiplied into the lr once per `decay_every` examples
    decay_every: int = 50_000  # examples seen per decay step: one CIFAR-10 epoch
    batch_size: int = 128  # the paper does not state it; reproductions use 128
    max_passes: int = 100  # budget, in passes over the training set
    target_accuracy: float = 1.0  # "fitted" = whole training set at this accuracy
    test_every: int = 1  # passes between test-set evaluations (the last pass always)
    # Share of the training set classified after each pass: 1.0 is the whole set; below it, a
    # fixed sample whose errors gate the whole-set check, so "fitted" and passes to fit stay
    # exact while most passes cost the sample (harness.core.train_check says how and what it records).
    train_check_fraction: float = 1.0
    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    loop: str = "auto"  # "eager", "graph" (whole step as one CUDA graph), "auto" (graph where it applies), "batched" (set by harness.bench.batched)
    precision: str = "fp32"  # "fp32", "tf32" (TF32 matmuls and convolutions) or "bf16" (autocast); GPU only but fp32
    # Deterministic kernels (torch.use_deterministic_algorithms, cuDNN deterministic, no
    # benchmark): what it does and does not make reproducible on a GPU is in harness.core.train's
    # docstring. On the CPU runs are bitwise reproducible without it.
    deterministic: bool = False

    def __post_init__(self) -> None:
        self._check_values()
        if not _READING_RECORD.get():
            self._check_run_inputs()
            self._check_corruption_and_dropout()
            self._check_device_settings()
            self._check_optimizer_settings()
            self._fill_from_builtin_spec()

    def _check_values(self) -> None:
        """Each field on its own: a known name, a value in range."""
        from harness.core.models import INIT_NAMES, MODELS

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.init not in INIT_NAMES:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INIT_NAMES)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if not 0.0 <= self.corruption <= 1.0:
            raise ValueError(f"corruption level must lie in [0, 1], got {self.corruption}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.loop not in LOOPS:
            raise ValueError(f"unknown loop {self.loop!r}; choose one of {', '.join(LOOPS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        for name in ("batch_size", "max_passes", "decay_every", "test_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or unset for all), got {value}")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must lie in (0, 1], got {self.target_accuracy}")
        if not 0.0 < self.train_check_fraction <= 1.0:
            raise ValueError(f"train_check_fraction must lie in (0, 1], got {self.train_check_fraction}")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be True or False, got {self.deterministic!r}")

    def _check_run_inputs(self) -> None:
        """Values a run cannot start or train with; records made before these checks still read."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1] (0 to {MAX_SEED}), got {self.seed!r}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(
                f"lr_decay is the factor multiplied into the lr once per decay_every examples: it must lie in "
                f"(0, 1] (1 keeps the lr constant), got {self.lr_decay}"
            )
        if self.n_train is not None and self.n_train < 2:
            raise ValueError(
                f"n_train must be at least 2 (or unset for all), got {self.n_train}: one training image "
                "shows nothing about fitting labels"
            )

    def _check_corruption_and_dropout(self) -> None:
        """The data and model settings the chosen variant and model use."""
        if self.variant != "partial" and self.corruption != 0.0:
            raise ValueError(
                f"corruption {self.corruption:g} applies only to variant 'partial', not {self.variant!r}: use variant "
                "'partial' to redraw that share of the labels, or leave corruption at 0"
            )
        from harness.core.models import MODELS

        if self.dropout > 0 and not MODELS[self.model].takes_dropout:
            with_dropout = ", ".join(name for name, entry in MODELS.items() if entry.takes_dropout)
            raise ValueError(
                f"model {self.model} has no dropout layer (dropout applies to {with_dropout}); "
                f"leave dropout at 0 for {self.model}"
            )

    def _check_device_settings(self) -> None:
        """Precision and the graph loop exist on CUDA only."""
        from harness.core.optim import graph_optimizers

        on_cuda = self.device.startswith("cuda")
        if self.precision != "fp32" and not on_cuda:
            raise ValueError(
                f"precision {self.precision} is a GPU setting; use precision fp32 on the CPU, or a cuda device"
            )
        if self.loop == "graph" and not (on_cuda and self.optimizer in graph_optimizers()):
            raise ValueError(
                f"loop 'graph' needs a CUDA device and the {' or '.join(graph_optimizers())} optimizer "
                "(without keywords); "
                "use loop 'auto' (the graph where it applies) or 'eager'"
            )

    def _check_optimizer_settings(self) -> None:
        """Each optimizer setting in one place, and only for an optimizer that takes it.

        Raises OptimizerSpecError (a ValueError) for a malformed spec, and a
        built-in's keywords are checked against its torch class; an imported
        factory is not imported here (that is harness.core.optim.resolve's job).
        """
        from harness.core.optim import builtin_name, resolve, spec_kwargs

        keywords = spec_kwargs(self.optimizer)
        builtin = builtin_name(self.optimizer)
        if builtin:
            resolve(self.optimizer)
        for name, unset in OPTIMIZER_SETTINGS.items():
            value = getattr(self, name)
            if name in keywords and value != unset and value != keywords[name]:
                raise ValueError(
                    f"{name} is set twice: optimizer {self.optimizer!r} fixes {name}={keywords[name]!r} and the "
                    f"config sets {name} {value!r}; keep one (drop it from the spec, or leave {name} unset)"
                )
        if self.momentum != DEFAULT_MOMENTUM and builtin != "paper_sgd" and "momentum" not in keywords:
            raise ValueError(self._momentum_fix(builtin))

    def _momentum_fix(self, builtin: str | None) -> str:
        from harness.core.optim import builtin_takes

        problem = f"momentum applies only to paper_sgd; optimizer {self.optimizer!r} is not given the config's momentum"
        if builtin and not builtin_takes(builtin, "momentum"):
            return (
                f"{problem} and has none: leave momentum at {DEFAULT_MOMENTUM}, or use paper_sgd for SGD with momentum"
            )
        own = _with_keyword(self.optimizer, "momentum", self.momentum)
        return f"{problem}: leave momentum at {DEFAULT_MOMENTUM} and give the optimizer its own in the spec: {own}"

    def _fill_from_builtin_spec(self) -> None:
        """`adam(lr=3e-4)` sets lr to 3e-4: the record then names the rate, momentum, weight decay that ran."""
        from harness.core.optim import builtin_name, spec_kwargs

        if builtin_name(self.optimizer) is None:
            return  # an imported factory's keywords stay its own: the config's fields are what the harness passes
        for name, value in spec_kwargs(self.optimizer).items():
            if name in OPTIMIZER_SETTINGS:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"optimizer {self.optimizer!r}: {name} must be a number, got {value!r}")
                object.__setattr__(self, name, float(value))  # frozen: set once, while the config is made

    @property
    def learning_rate(self) -> float | None:
        """The initial learning rate actually used; None = the optimizer factory's own default.

        Unset, a built-in takes its registry entry's default
        (harness.core.optim.BUILTIN_OPTIMIZERS): the paper's SGD and plain SGD
        the model's paper rate (harness.core.models.MODELS), the others their
        usual 1e-3; an imported factory its own default.
        """
        from harness.core.models import MODELS
        from harness.core.optim import builtin_default_lr, builtin_name

        if self.lr is not None:
            return self.lr
        builtin = builtin_name(self.optimizer)
        if builtin is None:
            return None
        return builtin_default_lr(builtin, MODELS[self.model].paper_lr)

    @property
    def uses_graph(self) -> bool:
        """Whether the training step runs as a CUDA graph (see harness.core.graph_step).

        It applies to the built-in SGD optimizers on CUDA, random crops
        included; "auto" takes it there, "graph" insists on it (and is
        refused where it does not apply, when the config is made).
        """
        from harness.core.optim import graph_optimizers

        applies = self.device.startswith("cuda") and self.optimizer in graph_optimizers()
        return applies and self.loop in ("auto", "graph")

    @property
    def label_corruption(self) -> float:
        """Probability that a training label is redrawn uniformly.

        "random" is the p = 1 end of "partial", so both name one mechanism.
        """
        if self.variant == "random":
            return 1.0
        if self.variant == "partial":
            return self.corruption
        return 0.0

    def replace(self, **changes) -> RunConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """A stored record's config, read as written.

        Unknown fields are dropped and missing ones take their defaults. Only
        each field's own value is checked: a record made before a setting was
        refused where it does not apply (e.g. a corruption level on true
        labels) still reads, and `replace` on it checks the new config.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        token = _READING_RECORD.set(True)
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        finally:
            _READING_RECORD.reset(token)

    def key(self, data_fingerprint: str) -> str:
        """Stable hash of the run: every field that changes the outcome.

        The data spec is replaced by the data's fingerprint, so the same file
        under another path is the same run, and a changed file is a new one.
        The device index is dropped (cuda:0 and cuda:1 are the same run),
        its kind is kept (CPU and GPU arithmetic differ). `deterministic`
        enters the hash only when True, and `train_check_fraction` only below
        1.0 (a sampled check records estimates on some passes), so the keys of
        runs made before those fields existed stay what they were. A nonzero
        weight decay with an imported factory adds a mark: such runs were once
        trained without it, and their records stay under the old key.
        """
        from harness.core.optim import builtin_name

        values = self.to_dict()
        if not self.deterministic:
            del values["deterministic"]
        if self.train_check_fraction == 1.0:
            del values["train_check_fraction"]
        values["data"] = data_fingerprint
        values["device"] = self.device.split(":")[0]
        values["lr"] = self.learning_rate
        values["loop"] = "batched" if self.loop == "batched" else ("graph" if self.uses_graph else "eager")
        # true, partial and random labels are one mechanism at levels 0..1:
        # equal levels are the same run whatever they are called.
        if self.variant in ("true", "partial", "random"):
            values["variant"], values["corruption"] = "labels", self.label_corruption
        else:
            values["corruption"] = 0.0
        if self.weight_decay and builtin_name(self.optimizer) is None:
            values["weight_decay_reaches_factory"] = True
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _with_keyword(spec: str, name: str, value) -> str:
    """`spec` with one more keyword argument: sgd -> sgd(momentum=0.5), f(a=1) -> f(a=1, momentum=0.5)."""
    if spec.endswith(")") and "(" in spec:
        head, arguments = spec[:-1].split("(", 1)
        return f"{head}({arguments}, {name}={value!r})" if arguments.strip() else f"{head}({name}={value!r})"
    return f"{spec}({name}={value!r})"


@dataclass(frozen=True)
class Profile:
    """A named scale tier: the config defaults its claims start from."""

    name: str
    description: str
    cifar_models: tuple[str, ...]
    base: dict = field(default_factory=dict)
    # Per-model overrides that the tier needs, each with its reason in a comment.
    model_overrides: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)

    def config(self, model: str, **changes) -> RunConfig:
        values = dict(self.base)
        values.update(self.model_overrides.get(model, {}))
        values.update(changes)
        values["model"] = model
        return RunConfig(**values)


# The convnets' training-set check on the paper tier: a 10% sample (5,000
# images) gates the whole-set check (harness.core.train_check), so verdicts and
# passes to fit stay exact. Why: checking all 50,000 images after every pass
# was 42% of Inception's and 29% of AlexNet's time to fit random labels on an
# H100 (56 of 134 s, 12 of 40 s); a sampled pass costs a tenth of that, and
# the whole set is checked only once the sample holds at most two errors
# (train_check.GATE_SLACK), which a 5,000-image sample reaches with some tens
# of errors left in 50,000 (the last few passes). Mid-run readings are then estimates (standard error at most 0.7
# points). The MLPs keep the whole set: their check was 5-8% of the run.
CONVNET_CHECK = dict(train_check_fraction=0.1)

PROFILES = {
    "smoke": Profile(
        name="smoke",
        description="CPU tier: MLP 1x512 on 5,000-image subsets of real data",
        cifar_models=("mlp_1x512",),
        base=dict(
            n_train=5_000,
            max_passes=150,  # budget: 5x the ~30 passes CIFAR random labels need here; MNIST needs ~85
            device="cpu",
            # The test set costs twice the training set's check; every fifth
            # pass (and the last) keeps the curve readable at a third the cost.
            test_every=5,
            # On a 5,000-image subset the paper's x0.95 must be applied per
            # 50,000 examples seen, not per pass, or the lr dies before the
            # run fits (measured: per-pass decay never reaches 100%).
            decay_every=50_000,
        ),
        seeds=(0, 1),
    ),
    "paper": Profile(
        name="paper",
        description="GPU tier: full CIFAR-10, the five paper models, the paper's SGD",
        cifar_models=("inception", "inception_no_bn", "alexnet", "mlp_3x512", "mlp_1x512"),
        # TF32: bf16 autocast alone was measured slower than fp32 at batch 128
        # (cast overhead); the test set every 5 passes keeps evaluation cheap.
        base=dict(device="cuda", max_passes=150, precision="tf32", test_every=5),
        model_overrides={
            # With x0.95 per pass the lr decays before MLP 1x512 reaches exactly
            # zero error (the paper itself reports 99.34%); x0.99 per pass does
            # (measured: 124 passes). A documented second schedule, recorded
            # in every run's config.
            # fp32: under TF32 this MLP ended one image short of 100% after
            # 250 passes (measured on an H100), so TF32 changes its verdict.
            "mlp_1x512": dict(precision="fp32", lr_decay=0.99, max_passes=250),
            # PyTorch's default init never starts fitting random labels without
            # BatchNorm; He init at lr 0.1 diverges; lr 0.02 x0.98 nearly fits.
            "inception_no_bn": dict(init="he", lr=0.02, lr_decay=0.98, max_passes=200, **CONVNET_CHECK),
            "inception": CONVNET_CHECK,
            "alexnet": CONVNET_CHECK,
        },
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
