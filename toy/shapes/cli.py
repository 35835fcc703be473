"""``python -m toy shapes drag [--quick] --out DIR``: the shapes drag test bed (issue 13)."""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from cliutil import OneLineParser, check_writable_dir

from ..io import run_command

__all__ = ["add_parser", "build_parser", "main"]


def _drag(args) -> int:
    import torch

    from ..io import load_config_file, merge_config
    from .experiment import ShapesDragConfig, run_shapes_drag
    from .learned import default_cache_dir

    from ..cli import check_common_args

    check_common_args(args)                       # --threads, --seed, --out (a writable folder): one line each
    cache = default_cache_dir() if args.cache is None else args.cache
    check_writable_dir(cache, "--cache")
    torch.set_num_threads(int(args.threads))
    cfg = ShapesDragConfig.quick() if args.quick else ShapesDragConfig()
    if args.config is not None:
        cfg = dataclasses.replace(merge_config(cfg, load_config_file(args.config)))   # replace() re-validates
    if args.seed is not None:
        cfg.seed = int(args.seed)
    if args.models is not None:
        cfg = dataclasses.replace(cfg, models=tuple(m.strip() for m in args.models.split(",") if m.strip()))
    t0 = time.time()
    rep = run_shapes_drag(cfg, args.out, progress=(lambda s: print(f"  {s}", flush=True)) if args.verbose else None,
                          cache_dir=cache)
    for model, fams in rep["methods"].items():
        for fam, d in fams.items():
            print(f"shapes drag ({fam}, {model}): SDE position error {d['SDE']['position_error_px']['mean']:.2f} px, "
                  f"success {d['SDE']['success_rate']['mean']:.2f}; ODE {d['ODE']['position_error_px']['mean']:.2f} "
                  f"px, success {d['ODE']['success_rate']['mean']:.2f}")
    print(f"wrote {Path(args.out) / 'report.json'} in {time.time() - t0:.1f} s")
    return 0


def _add_commands(sub) -> None:
    p = sub.add_parser("drag", help="SDE-Drag vs ODE-Drag where the right answer is known (exact and learned score)")
    p.add_argument("--quick", action="store_true",
                   help="small sweeps and a tiny learned UNet (under two minutes on 2 cores, training included)")
    p.add_argument("--config", type=Path, help="JSON file overriding ShapesDragConfig fields")
    p.add_argument("--out", type=Path, required=True, help="output folder (report.json, report.md, PNG figures)")
    p.add_argument("--cache", type=Path, help="folder of the cached learned UNets (default $SDEODE_SHAPES_CACHE or "
                                              "results/cache/shapes); a missing model is trained and cached there")
    p.add_argument("--models", help="comma-separated subset of exact,learned (default both)")
    p.add_argument("--seed", type=int, help="override the config seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--verbose", action="store_true", help="one line per setting")
    p.set_defaults(func=_drag)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``shapes`` with its sub-commands on the ``python -m toy`` parser."""
    p = subparsers.add_parser("shapes", help="drag test bed with a known right answer (issue 13)")
    _add_commands(p.add_subparsers(dest="shapes_command", required=True))
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m toy.shapes", description="Shapes drag test bed.")
    _add_commands(parser.add_subparsers(dest="shapes_command", required=True, parser_class=OneLineParser))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))
