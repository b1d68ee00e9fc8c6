"""Tuning cost of a diverging-default optimizer: the trials, passes and wall seconds of one `tune(...)`, as JSON.

Usage (from the repository root, HARNESS_DATA_DIR naming the folder with the data):

    python docs/results/tuning-bracket-cpu-2026-12-05/measure.py after --passes 20 > after.json
    python docs/results/tuning-bracket-cpu-2026-12-05/measure.py before --tuning OLD_TUNING.py --passes 20

`before` loads the tuning module from the file OLD_TUNING.py (an earlier version of
harness/suite/tuning.py, e.g. from `git show COMMIT:harness/suite/tuning.py`); `after` uses the
current one. Both tune `diverging_default:momentum_sgd` (default lr 1.0, which diverges) at the
tuning scale (the smoke tier's MLP 1x512 on 5,000 images of the CIFAR-10 data found, true labels)
on the CPU, into a fresh temporary results folder, so every trial trains. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = "diverging_default:momentum_sgd"


def load_tuning(path: str | None):
    """The tuning module: the current one, or the one in the file `path`."""
    if path is None:
        from harness.suite import tuning

        return tuning
    loaded = importlib.util.spec_from_file_location("old_tuning", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("before", "after"))
    parser.add_argument("--tuning", help="the earlier tuning.py (required for 'before')")
    parser.add_argument("--passes", type=int, default=20, help="passes per trial at most (default 20)")
    args = parser.parse_args()
    if (args.mode == "before") != (args.tuning is not None):
        parser.error("--tuning OLD_TUNING.py is required for 'before' and refused for 'after'")
    sys.path.insert(0, str(HERE))  # the factory's module
    from harness.core.data import default_data_dir, find_data_spec

    tuning = load_tuning(args.tuning)
    data, why = find_data_spec("cifar10")
    if data is None:
        sys.exit(f"no data: {why}")
    base = tuning.base_config(data, device="cpu")
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started, cpu_started = time.perf_counter(), time.process_time()
        record = tuning.tune(
            SPEC, base, passes=args.passes, root=Path(root), progress=lambda line: print(line, file=sys.stderr)
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    trials = sorted(record["trials"], key=lambda t: t.get("order", 0))  # the old record keeps lr order only
    print(
        json.dumps(
            {
                "mode": args.mode,
                "optimizer": SPEC,
                "data": data.replace(str(default_data_dir()), "$HARNESS_DATA_DIR"),  # no machine's path
                "passes_per_trial": args.passes,
                "values_tried": record["values_tried"],
                "chosen_lr": record["lr"],
                "trials": [
                    {
                        key: t.get(key)
                        for key in ("order", "lr", "outcome", "passes", "passes_to_fit", "final_loss", "train_seconds")
                    }
                    for t in trials
                ],
                "skipped": record.get("skipped", []),
                "total_passes": sum(t["passes"] or 0 for t in trials),
                "wall_seconds": round(seconds, 1),
                "cpu_seconds": round(cpu_seconds, 1),  # this process's CPU time, all threads: less load-dependent
                "warnings": [str(w.message) for w in caught],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
