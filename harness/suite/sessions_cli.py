"""List, show, compare and export claims sessions; the claims matrix of one or several.

    python -m harness sessions {list,show,compare,matrix,export,baseline} [--help]

Exit status: 0 done; 1 `compare` found a regression; 2 a session or
baseline that cannot be read, or a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.core.formatting import fmt_value
from harness.core.optim import spec_id
from harness.sessions.compare import compare, format_comparison, parse_fail_rule, parse_optimizer_pair
from harness.sessions.export import export_rows, write_csv
from harness.sessions.files import (
    SessionError,
    claim_order,
    load_session,
    make_baseline,
    numbered_sessions,
    resolve_reference,
    session_optimizers,
)
from harness.suite.matrix import sessions_matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness sessions", description=__doc__.split("\n\n")[0])
    results_help = "results folder holding sessions/ (default $HARNESS_RESULTS_DIR or .harness-results)"
    as_path = lambda text: Path(text).expanduser()  # noqa: E731 -- '~' as the home folder (a shell leaves it in '--x=~/y')
    parser.add_argument("--results-dir", type=as_path, default=None, help=results_help)
    # The same option after the subcommand too (`sessions list --results-dir X`), as every other command takes it;
    # SUPPRESS: where it is not given there, the one before the subcommand stands.
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--results-dir", type=as_path, default=argparse.SUPPRESS, help=results_help)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[where], help="numbered sessions: number, profile, optimizers, exit status")
    show = commands.add_parser("show", parents=[where], help="one session's figures")
    show.add_argument("ref", nargs="?", default="last")
    matrix = commands.add_parser(
        "matrix", parents=[where], help="the claims matrix (Markdown) of a session, or one of several sessions"
    )
    matrix.add_argument(
        "refs",
        nargs="*",
        default=["last"],
        metavar="REF",
        help="sessions ('last', numbers or files); several make one matrix, a column per optimizer "
        "of each (default: last)",
    )
    matrix.add_argument(
        "--reference", default=None, help="session or baseline supplying paper_sgd if the sessions lack it"
    )
    comp = commands.add_parser(
        "compare", parents=[where], help="figure deltas of a session against a baseline; exit 1 on a regression"
    )
    comp.add_argument("ref", help="the session: 'last', a number, or a file")
    comp.add_argument("baseline", help="the baseline: a number or a file")
    comp.add_argument("--fail", action="append", default=[], metavar="CLAIM:TOL", help="failure rule, repeatable")
    comp.add_argument("--all", action="store_true", help="list unchanged figures too")
    comp.add_argument(
        "--as-optimizer",
        action="append",
        default=[],
        metavar="SPEC_A=SPEC_B",
        help="compare the session's optimizer SPEC_A with the baseline's SPEC_B (specs or ids, e.g. "
        "'Lion(lr=0.0001)=Lion'): two specs of one optimizer; repeatable",
    )
    export = commands.add_parser(
        "export", parents=[where], help="every figure of the sessions as CSV, one row per figure"
    )
    export.add_argument("refs", nargs="+", metavar="REF", help="sessions: 'last', numbers or files")
    export.add_argument("--csv", default="-", metavar="FILE", help="where the CSV goes (default: standard output)")
    base = commands.add_parser("baseline", parents=[where], help="copy a real session into a baseline file")
    base.add_argument("ref", help="the session: 'last', a number, or a file")
    base.add_argument("out", type=Path)
    base.add_argument("--note", default=None, help="what the baseline covers, kept in the file")
    args = parser.parse_args(argv)
    root = args.results_dir
    try:
        if args.command == "list":
            return _list_sessions(root)
        if args.command == "show":
            session = load_session(args.ref, root)
            for spec, identity in (session.get("optimizer_identity") or {}).items():
                print(f"optimizer {spec}: version {identity.get('version') or 'none'}, code {identity.get('code')}")
            for entry in sorted(session["figures"], key=lambda e: (claim_order(e.get("claim", "")), e.get("test", ""))):
                verdict = "holds" if entry.get("holds") else "FAILS"
                print(
                    f"{entry.get('claim', '?'):<4} {verdict:<6} {entry.get('figure')}: {fmt_value(entry.get('measured'))}"
                    f"  [{entry.get('threshold')}]"
                )
            return 0
        if args.command == "matrix":
            reference = load_session(args.reference, root) if args.reference else None
            print(sessions_matrix(_load_sessions(args.refs, root), reference=reference))
            return 0
        if args.command == "export":
            rows = export_rows(_load_sessions(args.refs, root))
            try:
                write_csv(rows, args.csv)
            except OSError as error:
                raise SessionError(f"cannot write {args.csv}: {error.strerror or error}") from None
            if args.csv != "-":
                print(f"{len(rows)} figures of {len(args.refs)} session(s) written to {args.csv}")
            return 0
        if args.command == "compare":
            rules = [parse_fail_rule(text) for text in args.fail]
            pairs = dict(parse_optimizer_pair(text) for text in args.as_optimizer)
            result = compare(load_session(args.ref, root), load_session(args.baseline, root), rules, pairs)
            print("\n".join(format_comparison(result, all_rows=args.all)))
            return 1 if result.regressions else 0
        if args.command == "baseline":
            path = resolve_reference(args.ref, root)
            session = load_session(path)
            from harness.core.record import write_json_atomic

            source = str(path) if not path.is_absolute() else path.name  # no machine paths in a committed file
            write_json_atomic(args.out, make_baseline(session, source=source, note=args.note))
            print(f"baseline {args.out} from {path.name}: {len(session['figures'])} figures")
            return 0
    except SessionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 2


def _load_sessions(refs: list[str], root: Path | None) -> list[dict]:
    """The sessions `refs` name, each once, in the order given (SessionError for one that cannot be read)."""
    paths = list(dict.fromkeys(resolve_reference(ref, root).resolve() for ref in refs))
    return [load_session(path) for path in paths]


def _list_sessions(root: Path | None) -> int:
    """One line per numbered session; a file that cannot be read is skipped with a warning on stderr."""
    for number, path in numbered_sessions(root):
        try:
            session = load_session(path)
        except SessionError as error:
            print(f"warning: skipped {path.name}: {error}; remove it, or restore it from a copy", file=sys.stderr)
            continue
        optimizers = ", ".join(spec_id(s) for s in session_optimizers(session))
        print(
            f"{number:04d}  {session.get('profile')}  exit {session.get('exit_status')}  "
            f"{len(session.get('figures', []))} figures  [{optimizers}]  {path.name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
