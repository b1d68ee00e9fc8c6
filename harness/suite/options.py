"""The claims suite's command-line options (`add_options`, called from the plugin's pytest_addoption).

Each option is read once, into the session object (harness.suite.session).
"""

from __future__ import annotations

import os

from harness.core.config import PRECISIONS, PROFILES
from harness.suite import tuning

ORDERS = ("history", "collected")


def add_options(parser) -> None:
    group = parser.getgroup("claims", "rethinking-generalization claims")
    group.addoption(
        "--profile",
        default=os.environ.get("HARNESS_PROFILE", "auto"),
        choices=["auto", *sorted(PROFILES)],
        help="scale tier of the claims: smoke (CPU, subsets), paper (GPU, full scale); "
        "auto (default) = paper where CUDA is available, else smoke",
    )
    group.addoption(
        "--data-dir",
        default=None,
        help="folder holding the datasets (torchvision layout or arrays files); default $HARNESS_DATA_DIR or ./data",
    )
    group.addoption("--results-dir", default=None, help="where run records go; default $HARNESS_RESULTS_DIR")
    group.addoption("--claims-fresh", action="store_true", help="retrain every run instead of reusing records")
    group.addoption(
        "--claims-export",
        default=None,
        metavar="FILE.csv",
        help="at the end of the session, write each claim figure of this session as one CSV row (session, date, "
        "profile, commit, optimizer, claim, test, figure, measured, threshold, holds, scope, outcome); the same "
        "as `python -m harness sessions export`",
    )
    group.addoption(
        "--claims-extended",
        action="store_true",
        help="also run each claim beyond the paper's scope (models or datasets the paper does not show it for); "
        "those figures are labelled 'beyond the paper' in the summary, the matrix and the report",
    )
    group.addoption("--allow-download", action="store_true", help="let torchvision download missing datasets")
    group.addoption(
        "--claims-partial",
        action="store_true",
        help="accept a session that could not measure what it selected (claims skipped for missing data; the "
        "GPU tier asked for without a CUDA device): without it such a session exits non-zero",
    )
    group.addoption("--device", default=None, help="training device; default the profile's (cpu or cuda)")
    group.addoption(
        "--optimizer",
        action="append",
        default=None,
        help="optimizer under test (repeatable): a built-in (paper_sgd, sgd, adam, adamw, rmsprop) or "
        "package.module:factory[(k=v,...)]; default $HARNESS_OPTIMIZERS (';'-separated) or paper_sgd",
    )
    group.addoption(
        "--tune-lr",
        action="store_true",
        help="choose the learning rate of each optimizer without a given one by a short grid on true labels "
        "at the smoke scale, once; recorded in RESULTS/tuning/<optimizer>.json and used for every claim run",
    )
    group.addoption(
        "--tune-lr-grid",
        default=None,
        metavar="LR,LR,...",
        help=f"learning rates tried by --tune-lr (default {','.join(f'{v:g}' for v in tuning.GRID)})",
    )
    group.addoption(
        "--claims-xfail",
        default=None,
        metavar="FILE",
        help="expected failures: lines 'optimizer_id: test-id-glob  # reason' (* for any optimizer); "
        "matching tests are marked xfail (non-strict); a line that matches no collected test warns",
    )
    group.addoption(
        "--claims-compare",
        nargs="?",
        const="last",
        default=None,
        metavar="REF",
        help="compare this session's claim figures with a numbered session (a number, or 'last', the "
        "default) or a baseline file; give it as --claims-compare=REF",
    )
    group.addoption(
        "--claims-compare-fail",
        action="append",
        default=[],
        metavar="CLAIM:TOL",
        help="fail the session when a figure of CLAIM moves past TOL against the compared session: "
        "C3:50%% (relative), C2:0.01 (absolute), *:TOL for every claim; repeatable. A verdict flip "
        "(holds -> FAILS) always fails a compared session",
    )
    group.addoption(
        "--convnet-precision",
        default=None,
        choices=PRECISIONS,
        help="train the convolutional models' runs in this precision instead of the profile's (a GPU "
        "setting, part of every run key): how bf16's effect on each verdict is checked",
    )
    group.addoption(
        "--runs-per-gpu",
        type=int,
        default=None,
        metavar="K",
        help="training runs in flight on each GPU: starts K xdist workers per visible GPU (CUDA and "
        "pytest-xdist; instead of -n). `python -m harness bench --in-flight 1 2 4 8` measures the best K",
    )
    group.addoption(
        "--claims-order",
        default="history",
        choices=ORDERS,
        help="history (default): the tests whose runs are not recorded go longest first, by the seconds those runs "
        "took in the newest session file of the profile (else a committed baseline), so the session's last test "
        "does not start alone at the end; collected: pytest's collection order",
    )
    group.addoption(
        "--claims-deadline",
        default=None,
        metavar="DURATION",
        help="start no training run after this time from the session's start (90s, 9m, 1h30m; 0 trains nothing): "
        "the tests of runs not started skip, the session exits 2 (interrupted), and the same command run again "
        "reuses the records and trains what is left",
    )
    group.addoption(
        "--claims-collect",
        action="store_true",
        help="train nothing: verdicts from recorded runs only; the tests of runs not recorded skip, and the "
        "summary lists those runs with the seconds they last took and on which machine (or 'never measured')",
    )
