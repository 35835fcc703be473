"""Command line: ``python -m toy <command> ...``.

Commands are registered in ``COMMANDS`` (name -> ``add_parser(subparsers)``); each ``add_parser`` sets
``func=handler(args) -> int``.  ``python -m toy digits ...`` is provided by ``toy.digits.cli`` and
``python -m toy shapes ...`` by ``toy.shapes.cli`` when installed.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable

from cliutil import MAX_SEED, BadInput, OneLineParser, check_int, check_writable_dir

from .io import run_command

__all__ = ["main", "build_parser", "COMMANDS", "OPTIONAL_COMMAND_MODULES", "check_common_args"]

MAX_THREADS = 1024


def check_common_args(args) -> None:
    """--threads, --seed and --out (a writable folder or creatable) checked before any work; one line each."""
    check_int(getattr(args, "threads", 1), "--threads", 1, MAX_THREADS)
    check_int(getattr(args, "seed", None), "--seed", 0, MAX_SEED)
    if getattr(args, "out", None) is not None:
        check_writable_dir(args.out, "--out")


def _threads(args) -> None:
    import torch

    torch.set_num_threads(max(1, int(args.threads)))


def _common(p: argparse.ArgumentParser, quick: bool = True) -> None:
    if quick:
        p.add_argument("--quick", action="store_true", help="small, fast settings (seconds to a minute)")
        p.add_argument("--config", type=Path, help="JSON file overriding config fields")
    p.add_argument("--out", type=Path, required=True, help="output folder (report.json + PNG figures)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, help="override the config seed")


def _config(base, args):
    """``base`` with --config and --seed applied, every field checked (:func:`toy.checks.validate_config`), and the
    common flags checked: all before any work."""
    from .checks import validate_config
    from .io import load_config_file, merge_config

    check_common_args(args)
    cfg = base
    if getattr(args, "config", None) is not None:
        cfg = merge_config(cfg, load_config_file(args.config))
    if getattr(args, "seed", None) is not None:
        cfg.seed = args.seed
    return validate_config(cfg)


def _check_checkpoint(path) -> None:
    """A toy checkpoint (``toy train``'s model.pt) that loads; checked before any work."""
    from .train import load_checkpoint

    try:
        load_checkpoint(path)
    except ValueError as exc:
        raise BadInput(f"--checkpoint {exc}") from None  # FileNotFoundError: one line as it is


def _summary_line(report: dict) -> str:
    s = report.get("summary", {})
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items())


def _run_lab(args, name: str, config_cls, run) -> int:
    """The body shared by the lab commands: the (quick or full) config with its JSON overrides, checked; threads;
    ``run(cfg, out)``; one summary line."""
    cfg = _config(config_cls.quick() if args.quick else config_cls(), args)
    _threads(args)
    rep = run(cfg, args.out)
    print(f"{name}: wrote {args.out / 'report.json'}; {_summary_line(rep)}")
    return 0


def _kl_curves(args) -> int:
    from .klcurves import KLCurvesConfig, run_kl_curves

    cfg = _config(KLCurvesConfig.quick() if args.quick else KLCurvesConfig(), args)
    if args.checkpoint:
        cfg.checkpoint = str(args.checkpoint)
    if cfg.checkpoint:
        _check_checkpoint(cfg.checkpoint)
    _threads(args)
    rep = run_kl_curves(cfg, args.out, progress=args.progress)
    print(f"kl-curves: wrote {args.out / 'report.json'}; {_summary_line(rep)}")
    return 0


def add_kl_curves(sub) -> None:
    p = sub.add_parser("kl-curves", help="KL(t) and Fisher integrand, SDE vs ODE, exact and learned score")
    _common(p)
    p.add_argument("--checkpoint", type=Path, help="use a trained model (from `toy train`) instead of training")
    p.add_argument("--progress", action="store_true", help="show a training progress bar")
    p.set_defaults(func=_kl_curves)


def _train(args) -> int:
    import numpy as np

    from theory.schedules import schedule_from_dict

    from .evaluate import score_error
    from .io import write_json
    from .plots import fig_score_error
    from .io import save_figure
    from .problems import builtin_mixture
    from .train import TrainConfig, save_checkpoint, train_score_model

    from .checks import MAX_DIM, MAX_TRAIN_STEPS

    check_int(args.steps, "--steps", 1, MAX_TRAIN_STEPS)
    check_int(args.dim, "--dim", 1, MAX_DIM)
    cfg = TrainConfig(steps=args.steps, dtype=args.dtype, progress=not args.no_progress)
    cfg = _config(cfg, args)
    _threads(args)
    schedule = schedule_from_dict({"kind": "vp-linear", "beta_min": 0.1, "beta_max": 20.0})
    mix = builtin_mixture(args.mixture, dim=args.dim)
    res = train_score_model(mix, schedule, cfg)
    err = score_error(res.model, mix, schedule)
    args.out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out / "model.pt", res.model, {"mixture": args.mixture, "train": cfg.to_dict()})
    save_figure(fig_score_error(err), args.out / "score_error.png")
    write_json(args.out / "report.json", {"experiment": "train", "seconds": res.seconds, "steps": res.steps_done,
                                          "final_loss": float(np.mean(res.losses[-100:])), "score_error": err,
                                          "config": cfg.to_dict()})
    print(f"train: {res.steps_done} steps in {res.seconds:.1f} s, mean relative score error "
          f"{err['mean_rel_error']:.3f}; wrote {args.out / 'model.pt'}")
    return 0


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train an ε-MLP on a built-in mixture, save model.pt + score-error plot")
    p.add_argument("--config", type=Path, help="JSON file overriding TrainConfig fields")
    p.add_argument("--mixture", default="2d", choices=["1d", "2d", "nd"])
    p.add_argument("--dim", type=int, default=8, help="dimension of the 'nd' mixture (1 to 64)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--no-progress", action="store_true")
    _common(p, quick=False)
    p.set_defaults(func=_train)


def _editing(args) -> int:
    from .editing import EditingConfig, run_editing

    return _run_lab(args, "editing", EditingConfig, run_editing)


def add_editing(sub) -> None:
    p = sub.add_parser("editing", help="toy inpainting / SDEdit / dragging (diffsamplers.recipes): SDE vs ODE sweeps")
    _common(p)
    p.set_defaults(func=_editing)


def _study(args) -> int:
    from .study import StudyConfig, run_study

    return _run_lab(args, "study", StudyConfig, run_study)


def add_study(sub) -> None:
    p = sub.add_parser("study", help="schedule / eta / steps study, Cycle-SDE contraction, log-Sobolev rate")
    _common(p)
    p.set_defaults(func=_study)


def _all(args) -> int:
    from . import run_all

    check_common_args(args)
    _threads(args)
    rep = run_all(args.out, quick=args.quick)
    print(f"all: wrote {sorted(rep)} under {args.out}")
    return 0


def _score_error(args) -> int:
    from .scoreerror import ScoreErrorConfig, run_score_error

    return _run_lab(args, "score-error", ScoreErrorConfig, run_score_error)


def add_score_error(sub) -> None:
    p = sub.add_parser("score-error", help="KL(output || data) over eta x score error (exact, perturbed, MLPs): "
                                           "where the SDE stops winning; heat map + curves")
    _common(p)
    p.set_defaults(func=_score_error)


def _fast_study(args) -> int:
    import dataclasses

    from .faststudy import FastStudyConfig, run_fast_study
    from .io import load_config_file, merge_config
    from .shapes.learned import default_cache_dir

    check_common_args(args)
    cache = default_cache_dir() if args.cache is None else args.cache
    check_writable_dir(cache, "--cache")
    cfg = FastStudyConfig.quick() if args.quick else FastStudyConfig()
    try:
        if args.config is not None:
            cfg = dataclasses.replace(merge_config(cfg, load_config_file(args.config)))  # replace() re-validates
        if args.seed is not None:
            cfg = dataclasses.replace(cfg, seeds=(int(args.seed), int(args.seed) + 1))
    except (TypeError, ValueError) as err:
        raise BadInput(f"--config: {err}") from None
    _threads(args)
    rep = run_fast_study(cfg, args.out, cache_dir=cache,
                         progress=(lambda s: print(f"  {s}", flush=True)) if args.verbose else None)
    d = rep["decision"]
    print(f"fast-study: wrote {args.out / 'report.json'}; chosen {d['chosen'] or 'none (no candidate meets the rule)'}")
    return 0


def add_fast_study(sub) -> None:
    p = sub.add_parser("fast-study", help="pick the fast preset: SDE-/ODE-Drag candidates at matched budgets vs the "
                                          "official defaults on the shapes bed and the digits (paired intervals)")
    _common(p)
    p.add_argument("--cache", type=Path, help="folder of the cached learned UNets (default $SDEODE_SHAPES_CACHE or "
                                              "results/cache/shapes)")
    p.add_argument("--verbose", action="store_true", help="one line per run")
    p.set_defaults(func=_fast_study)


def add_all(sub) -> None:
    p = sub.add_parser("all", help="every experiment (kl-curves, editing, study) into OUT/<name>/")
    p.add_argument("--quick", action="store_true")
    _common(p, quick=False)
    p.set_defaults(func=_all)


COMMANDS: dict[str, Callable] = {
    "kl-curves": add_kl_curves,
    "train": add_train,
    "editing": add_editing,
    "study": add_study,
    "score-error": add_score_error,
    "fast-study": add_fast_study,
    "all": add_all,
}
# optional sub-packages providing ``add_parser(subparsers)`` (registered when importable)
OPTIONAL_COMMAND_MODULES: tuple[str, ...] = ("toy.digits.cli", "toy.shapes.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m toy", description="Toy laboratory: SDE beats ODE on mixtures.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add in COMMANDS.values():
        add(sub)
    for mod_name in OPTIONAL_COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name in (mod_name, mod_name.rpartition(".")[0]):
                continue  # the optional sub-package is not installed
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Bad input: one ``error:`` line on stderr, exit 2, nothing written (docs/CONTRIBUTING.md, "Exit codes")."""
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
