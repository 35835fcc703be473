"""Command line: `python -m theory verify CONFIG.json [--method ...] [--tol TOL]` and `python -m theory demo --out DIR`.

Exit codes (the same in every command line of this project, see cliutil):
  0  ok (verify: the JSON report on stdout; demo: report.json and figures written, a summary on stdout);
  1  the run could not finish as asked: a --tol / "tol" that the refinement caps cannot reach (the report is still
     printed on stdout, and one `error:` line on stderr names what limited it), or an internal error (one
     `error: internal error: ...` line, never a traceback);
  2  bad input, before any work starts: a bad flag or config (malformed JSON, NaN / Infinity, strings where
     numbers belong, t0 / t_end out of range, rectified-flow with t0 = 1, --tol <= 0, a `grid` that the chosen
     method would not use, a 3-D grid, `grid` / `n_steps` beyond their bounds, ...) or an --out that cannot be
     written; one `error:` line on stderr and nothing written.
A grid run estimated to take over a minute is announced first with one `note:` line on stderr.
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

from cliutil import OneLineParser, check_number, run_cli

from .config import METHODS


def _tol(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    try:
        check_number(v, "tol", lo=0.0, lo_open=True)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}") from None
    return v


def _note(msg: str) -> None:
    sys.stderr.write(f"note: {msg}\n")
    sys.stderr.flush()


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m theory",
                           description="Verify the SDE-vs-ODE KL theorem (Nie et al., ICLR 2024) exactly.")
    sub = parser.add_subparsers(dest="cmd", parser_class=OneLineParser)
    pv = sub.add_parser("verify", help="verify the theorem for one JSON config; prints a JSON report")
    pv.add_argument("config")
    pv.add_argument("--method", default="auto", choices=METHODS)
    pv.add_argument("--tol", type=_tol, default=None,
                    help="refine the grid until the estimated relative identity error is below TOL "
                         "(overrides the config's \"tol\"); exit 1 with one line naming the limit if it cannot")
    pd = sub.add_parser("demo", help="verify the built-in cases; writes report.json and KL-curve figures")
    pd.add_argument("--out", default="results/theory")
    pd.add_argument("--quick", action="store_true", help="smaller grids (for tests)")
    return parser


def _run(args) -> int:
    if args.cmd == "verify":
        from .config import load_config
        from .verify import verify

        report = verify(load_config(args.config), args.method, args.tol, progress=_note)
        sys.stdout.write(json.dumps(report) + "\n")
        tol = report.get("tol")
        if tol is not None and not tol.get("reached", True):
            sys.stderr.write(f"error: {tol.get('message', 'tol not reached')}\n")
            return 1
        return 0
    from .report import check_outputs

    check_outputs(args.out, args.quick)  # before any work (and before matplotlib loads)
    import matplotlib

    matplotlib.use("Agg")  # the application, not the library, picks the plotting backend
    from .report import run_builtin

    summary = run_builtin(args.out, quick=args.quick)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 tol not reached or internal error, 2 bad input; argparse
    errors exit 2 through SystemExit).  See the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.error("missing command (verify or demo)")
    return run_cli(lambda: _run(args))
