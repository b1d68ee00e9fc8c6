"""C9 asked of each optimizer under test: reaches pinv(X) y, converges elsewhere, or undecided.

The claim's per-optimizer test steps an optimizer through the training
loop's step contract (`harness.core.train.closure_step`, train()/eval()
modes, the spec resolved as the loop resolves it). Planted here: SGD that
adds a small fixed vector after its first step (off the row space: it
converges elsewhere), SGD that stops stepping (undecided, never holds), and
LBFGS (a closure optimizer, which calls the closure several times a step).
Through `train_optimizer_spec`, as the loop runs them: a SAM-like optimizer
(needs the closure, calls it twice a step), a schedule-free-like one (steps
only after train(), shows other weights after eval()), torch's own LBFGS, a
factory that asks for the model, and the Muon/AdamW hybrid (`by_shape`).
"""

import shutil
from pathlib import Path

import pytest
import torch

from harness.suite.matrix import claims_matrix, verdict
from harness.theory import min_norm

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).stem  # this module, importable by its name: the planted optimizers' specs name it


def small_problem(seed=0, n=8, d=24):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = torch.randn(n, generator=generator, dtype=torch.float64)
    return x, y


class KickedSGD(torch.optim.SGD):
    """Plain SGD that adds `size` times a fixed unit vector (seed `seed`) to the weights after its first step.

    A generic vector has most of its norm outside an n-dimensional row space
    of R^d (n < d), and nothing brings that part back: the limit is pinv(X) y
    plus it, elsewhere. `kick`, when given, is the vector itself.
    """

    def __init__(self, params, lr: float = 1e-3, size: float = 0.01, seed: int = 3, kick: torch.Tensor | None = None):
        super().__init__(params, lr=lr)
        self.kick, self.size, self.seed, self.kicked = kick, size, seed, False

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        if not self.kicked:
            weights = self.param_groups[0]["params"][0]
            kick = self.kick
            if kick is None:
                kick = torch.randn(
                    weights.shape, generator=torch.Generator().manual_seed(self.seed), dtype=weights.dtype
                )
                kick = self.size * kick / kick.norm()
            weights.add_(kick)
            self.kicked = True
        return loss


class StoppingSGD(torch.optim.SGD):
    """Plain SGD that stops moving after `steps` steps (a learning rate decayed to zero, say)."""

    def __init__(self, params, lr: float = 1e-3, steps: int = 5):
        super().__init__(params, lr=lr)
        self.left = steps

    @torch.no_grad()
    def step(self, closure=None):
        if self.left <= 0:
            return closure() if closure is not None else None
        self.left -= 1
        return super().step(closure)


class CountingLBFGS(torch.optim.LBFGS):
    """LBFGS (unit steps, no line search, no early stop) that counts how often its closure is called.

    No line search: the closure's loss value resolves about 1e-16 absolute
    (harness.theory.min_norm._SquaredResidual), too coarse for a line search
    near an interpolant; its gradient is exact.
    """

    def __init__(self, params, lr: float = 1.0):
        super().__init__(params, lr=1.0, tolerance_grad=0.0, tolerance_change=0.0)
        self.closure_calls = 0

    def step(self, closure):
        def counted():
            self.closure_calls += 1
            return closure()

        return super().step(counted)


class SamLike(torch.optim.Optimizer):
    """Sharpness-aware: needs the closure, evaluates it at w and at w + rho g, steps with the second gradient."""

    def __init__(self, params, lr: float = 1e-3, rho: float = 1e-3):
        super().__init__(params, dict(lr=lr, rho=rho))
        self.closure_calls = 0

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("SamLike requires closure")

        def counted():
            self.closure_calls += 1
            with torch.enable_grad():
                return closure()

        loss = counted()
        group = self.param_groups[0]
        (weights,) = group["params"]
        start = weights.clone()
        weights.add_(weights.grad, alpha=group["rho"])
        counted()
        weights.copy_(start).add_(weights.grad, alpha=-group["lr"])
        return loss


class ScheduleFreeLike(torch.optim.Optimizer):
    """Steps only in train mode; eval() shows the average y of the training iterates z (y <- y + (z - y) / 2
    at each step), train() brings z back. Both stay in the span of the gradients: the limit is pinv(X) y."""

    def __init__(self, params, lr: float = 1e-3):
        super().__init__(params, dict(lr=lr))
        self.training = False  # starts in eval mode, as schedule-free optimizers do
        self.log = []

    @torch.no_grad()
    def train(self):
        (weights,) = self.param_groups[0]["params"]
        if not self.training and "z" in self.state[weights]:
            weights.copy_(self.state[weights]["z"])
        self.training = True
        self.log.append("train")

    @torch.no_grad()
    def eval(self):
        (weights,) = self.param_groups[0]["params"]
        if self.training and "y" in self.state[weights]:
            self.state[weights]["z"] = weights.clone()
            weights.copy_(self.state[weights]["y"])
        self.training = False
        self.log.append("eval")

    @torch.no_grad()
    def step(self, closure=None):
        if not self.training:
            raise RuntimeError("ScheduleFreeLike is not in train mode: call optimizer.train() first")
        with torch.enable_grad():
            loss = closure() if closure is not None else None
        (weights,) = self.param_groups[0]["params"]
        weights.add_(weights.grad, alpha=-self.param_groups[0]["lr"])
        state = self.state[weights]
        state["y"] = state.get("y", torch.zeros_like(weights)) * 0.5 + weights * 0.5
        return loss


BUILT = []  # the optimizers the factories below built, and what they were handed


def sam_like(params, lr=1e-3):
    BUILT.append(SamLike(params, lr))
    return BUILT[-1]


def schedule_free_like(params, lr=1e-3):
    BUILT.append(ScheduleFreeLike(params, lr))
    return BUILT[-1]


def sgd_of_model(model, lr=1e-3):
    """Asks for the model: C9's is the least-squares module, whose one parameter is the weights."""
    BUILT.append(model)
    return torch.optim.SGD(model.parameters(), lr=lr)


def test_an_optimizer_kicked_off_the_row_space_converges_elsewhere():
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, "paper_sgd")
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES
    basis = min_norm.row_space_basis(x)
    direction = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    direction -= basis @ (basis.T @ direction)
    kick = 0.01 * float(run.min_norm.norm()) * direction / direction.norm()  # 1% of ||pinv(X) y||, orthogonal
    lr = min_norm.default_learning_rate(x, x.shape[0])
    kicked = min_norm.train_least_squares(
        x, y, optimizer_factory=lambda params: KickedSGD(params, lr, kick=kick), closure=True
    )
    assert kicked.converged and min_norm.optimizer_outcome(kicked) == min_norm.ELSEWHERE
    assert kicked.distance_to_min_norm == pytest.approx(float(kick.norm()), rel=1e-6)
    assert kicked.final_row_space_leak == pytest.approx(float(kick.norm()), rel=1e-6)


def test_adam_through_the_loops_step_converges_elsewhere():
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, "adam", max_steps=50_000)
    assert run.converged and min_norm.optimizer_outcome(run) == min_norm.ELSEWHERE
    assert run.final_row_space_leak >= min_norm.MIN_RELATIVE_DEPARTURE * float(run.min_norm.norm())


def test_an_optimizer_that_stops_before_converging_is_undecided_not_at_the_limit():
    x, y = small_problem()
    lr = min_norm.default_learning_rate(x, x.shape[0])
    run = min_norm.train_least_squares(
        x, y, optimizer_factory=lambda params: StoppingSGD(params, lr), closure=True, max_steps=200
    )
    assert not run.converged and run.steps == 200
    assert min_norm.optimizer_outcome(run) == min_norm.NOT_DECIDED
    assert run.max_row_space_leak <= run.leak_budget  # it stayed in the row space: unfinished, not elsewhere


def test_a_closure_optimizer_runs_and_reaches_the_minimum_norm_solution():
    x, y = small_problem()
    optimizers = []

    def build(params):
        optimizers.append(CountingLBFGS(params))
        return optimizers[0]

    run = min_norm.train_least_squares(x, y, optimizer_factory=build, closure=True, max_steps=50)
    assert run.converged and optimizers[0].closure_calls > run.steps  # several closure calls per step
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES  # its steps combine gradients: the row space


def test_the_spec_is_resolved_as_the_loop_resolves_it():
    x, y = small_problem()
    assert min_norm.spec_learning_rate("paper_sgd", x, 8) == pytest.approx(0.1 * min_norm.default_learning_rate(x, 8))
    assert min_norm.spec_learning_rate("sgd(momentum=0.5)", x, 8) == pytest.approx(
        0.5 * min_norm.default_learning_rate(x, 8)
    )
    assert min_norm.spec_learning_rate("adam", x, 8) == min_norm.default_learning_rate(x, 8)
    run = min_norm.train_optimizer_spec(x, y, f"{THIS}:CountingLBFGS", max_steps=50)
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES


def test_an_undecided_skip_reads_undecided_in_the_matrix():
    cell = {
        "figures": [{"holds": False, "test": "t"}],
        "outcomes": {"t": "skipped"},
        "skips": {"t": "Skipped: undecided: residual 1e-3 after 50000 steps"},
    }
    assert verdict(cell) == "undecided"
    cell["skips"] = {"t": "Skipped: no data"}
    assert verdict(cell) == "**FAILS**"  # any other skip keeps its reading


# --- the claim's test in a session: one column per optimizer -------------------------------------------

KICKED = f"{THIS}:KickedSGD"
STOPPING = f"{THIS}:StoppingSGD"
SMALL_BUDGET = """

@pytest.fixture(autouse=True)
def small_step_budget(request):
    # the stopping optimizer would otherwise run the claim's whole budget
    request.module.OPTIMIZER_STEP_BUDGET = 2_000
"""


def test_the_c9_row_has_a_column_per_optimizer(pytester, tmp_path, monkeypatch):
    """paper_sgd holds; the kicked SGD FAILS, labelled as the paper's SGD claim asked of it; the stopped one is undecided."""
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    conftest = pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + "\nimport pytest\n" + SMALL_BUDGET)
    shutil.copy(ROOT / "claims" / "test_c09_min_norm.py", pytester.path / "test_planted_c09_min_norm.py")
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("HARNESS_OPTIMIZERS", raising=False)
    result = pytester.runpytest_inprocess(
        "-p",
        "no:xdist",
        "--profile=smoke",
        "-k",
        "each_optimizer",
        "--optimizer=paper_sgd",
        f"--optimizer={KICKED}",
        f"--optimizer={STOPPING}",
    )
    outcomes = {
        report.nodeid.split("[")[-1].rstrip("]"): report.outcome
        for report in result.reprec.getreports("pytest_runtest_logreport")
        if report.when == "call"
    }
    assert outcomes == {"paper_sgd": "passed", "KickedSGD": "failed", "StoppingSGD": "skipped"}, outcomes
    text = result.stdout.str()
    (row,) = [line for line in text.splitlines() if line.startswith("| C9 |")][:1]
    paper, kicked, stopped = row.split(" | ")[1:4]
    assert paper.startswith("holds · 2/2 figures hold")
    assert kicked.startswith("the paper's SGD claim asked of KickedSGD: **FAILS** · 1/2 figures hold")
    assert stopped.startswith("the paper's SGD claim asked of StoppingSGD: undecided")
    assert "relative residual" in stopped and "after 2000 steps" in stopped
    assert "converges elsewhere; row-space leak" in text


def test_a_session_without_the_optimizer_names_the_claims_that_do_not_read_it():
    session = {
        "profile": "smoke",
        "optimizers": ["paper_sgd", "adam"],
        "figures": [
            {"claim": "C9", "figure": "f", "measured": 0.2, "holds": False, "optimizer": "adam", "test": "t[adam]"},
            {"claim": "C9", "figure": "f", "measured": 1e-10, "holds": True, "optimizer": "paper_sgd", "test": "t[p]"},
            {"claim": "C9", "figure": "g", "measured": 1e-12, "holds": True, "optimizer": None, "test": "u"},
            {"claim": "C12", "figure": "R", "measured": 1.0, "holds": True, "optimizer": None, "test": "v"},
        ],
        "tests": {},
    }
    text = claims_matrix(session)
    assert "reads the optimizer under test: C9" in text
    assert "run without it (listed once, below): C12 (trains one network with its own full-batch Adam" in text
    assert "C9: a test per optimizer in the table, and fixed checks that run without it, below" in text
    assert "| C9 | holds · 1/1 figures hold · 1e-10 | the paper's SGD claim asked of adam: **FAILS**" in text


# --- C9 through the loop's contract: any optimizer the loop accepts ---------------------------------------


def test_a_sam_like_optimizer_runs_c9_through_its_closure():
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, f"{THIS}:sam_like", max_steps=5_000)
    assert BUILT[-1].closure_calls == 2 * run.steps  # two evaluations a step, every step
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES


def test_a_schedule_free_like_optimizer_steps_in_train_mode_and_is_read_in_eval_mode():
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, f"{THIS}:schedule_free_like", max_steps=5_000)
    optimizer = BUILT[-1]
    assert optimizer.log == ["train", "eval"] * run.steps
    (weights,) = optimizer.param_groups[0]["params"]
    assert torch.equal(run.weights, optimizer.state[weights]["y"])  # the run read the evaluation weights
    assert not torch.equal(run.weights, optimizer.state[weights]["z"])
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES


def test_torchs_own_lbfgs_runs_c9_from_its_spec():
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, "torch.optim:LBFGS(lr=1.0, tolerance_grad=0.0, tolerance_change=0.0)")
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES


def test_a_factory_that_asks_for_the_model_gets_the_least_squares_model():
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, f"{THIS}:sgd_of_model")
    model = BUILT[-1]
    assert isinstance(model, torch.nn.Module) and [name for name, _ in model.named_parameters()] == ["weights"]
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES


def test_the_muon_adamw_hybrid_runs_c9():
    """C9's one parameter is a vector: the hybrid gives it to its `rest` part (here plain SGD: it reaches)."""
    x, y = small_problem()
    run = min_norm.train_optimizer_spec(x, y, 'harness.core.hybrid:by_shape(matrices="torch.optim:Muon", rest="sgd")')
    assert min_norm.optimizer_outcome(run) == min_norm.REACHES
