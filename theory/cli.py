"""Command line: `python -m theory verify CONFIG.json [--method ...]` and `python -m theory demo --out DIR`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .config import METHODS
from .errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)


def _tol(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 bad input or tol not reached (the report is still printed),
    2 bad usage, 3 internal error)."""
    parser = _Parser(prog="python -m theory", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", parser_class=_Parser)
    pv = sub.add_parser("verify", help="verify the theorem for one JSON config; prints a JSON report")
    pv.add_argument("config")
    pv.add_argument("--method", default="auto", choices=METHODS)
    pv.add_argument("--tol", type=_tol, default=None,
                    help="refine the grid until the estimated relative identity error is below TOL "
                         "(overrides the config's \"tol\"); exit 1 with one line naming the limit if it cannot")
    pd = sub.add_parser("demo", help="verify the built-in cases; writes report.json and KL-curve figures")
    pd.add_argument("--out", default="results/theory")
    pd.add_argument("--quick", action="store_true", help="smaller grids (for tests)")
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.error("missing command (verify or demo)")
    try:
        if args.cmd == "verify":
            from .config import load_config
            from .verify import verify

            report = verify(load_config(args.config), args.method, args.tol)
            sys.stdout.write(json.dumps(report) + "\n")
            tol = report.get("tol")
            if tol is not None and not tol.get("reached", True):
                sys.stderr.write(f"error: {tol.get('message', 'tol not reached')}\n")
                return 1
        else:
            import matplotlib

            matplotlib.use("Agg")  # the application, not the library, picks the plotting backend
            from .report import run_builtin

            summary = run_builtin(args.out, quick=args.quick)
            sys.stdout.write(json.dumps(summary) + "\n")
    except ConfigError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 1
    except Exception as exc:  # never a traceback on the command line
        sys.stderr.write(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}\n")
        return 3
    return 0
