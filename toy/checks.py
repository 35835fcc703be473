"""Checks of the toy configs and flags, run by the CLIs before any work: every field's type, finiteness and range,
as one :class:`cliutil.BadInput` line naming the key (``t0s[0] must be in (0, 1], got 1.5``) and the bound.

:func:`validate_config` dispatches on the config class; the bounds keep every run to a size a laptop can hold
(e.g. ``ModelConfig.dim`` <= 64, ``n`` <= 10⁶ particles).
"""
from __future__ import annotations

import dataclasses
import math
from numbers import Real

from cliutil import MAX_SEED, BadInput, check_choice, check_int, check_number

__all__ = ["validate_config", "validate_train", "validate_model", "MAX_DIM", "MAX_PARTICLES", "MAX_STEPS",
           "MAX_TRAIN_STEPS"]

MAX_DIM = 64  # data dimension of the toy mixtures (the 'nd' mixture and the MLPs)
MAX_PARTICLES = 1_000_000
MAX_STEPS = 10_000  # sampler steps
MAX_TRAIN_STEPS = 10_000_000
MAX_SEEDS = 1000
MAX_GRID = 1024  # Fokker–Planck grid points per axis


def _ints(value, name: str, lo: int, hi: int, allow_none: bool = False, max_len: int = 100) -> None:
    _seq(value, name, allow_none, max_len)
    for i, v in enumerate(value or []):
        check_int(v, f"{name}[{i}]", lo, hi)


def _nums(value, name: str, lo=None, hi=None, lo_open: bool = False, allow_none: bool = False,
          max_len: int = 100) -> None:
    _seq(value, name, allow_none, max_len)
    for i, v in enumerate(value or []):
        check_number(v, f"{name}[{i}]", lo, hi, lo_open=lo_open)


def _seq(value, name: str, allow_none: bool, max_len: int) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (list, tuple)) or not value:
        raise BadInput(f"{name} must be a non-empty list, got {value!r}")
    if len(value) > max_len:
        raise BadInput(f"{name} has {len(value)} entries; at most {max_len}")


def _seed(value, name: str = "seed") -> None:
    check_int(value, name, 0, MAX_SEED)


def _schedule(d, name: str = "schedule") -> None:
    from theory.schedules import schedule_from_dict

    if isinstance(d, dict):
        for k, v in d.items():
            if k != "kind" and (isinstance(v, Real) or isinstance(v, str)) and not isinstance(v, bool):
                if isinstance(v, str):
                    continue  # names (beta_schedule) are the parser's to check
                if not math.isfinite(float(v)):
                    raise BadInput(f"{name}.{k} must be a finite number, got {v}")
    try:
        schedule_from_dict(d)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadInput(f"{name}: {exc}") from None


def _times(t0s: list, t_end, p: str) -> None:
    check_number(t_end, f"{p}t_end", 0.0, 1.0, lo_open=True, hi_open=True)
    if t_end >= min(t0s):
        raise BadInput(f"{p}t_end ({t_end}) must be below every start time t0 (smallest {min(t0s)})")


def validate_model(cfg, p: str = "model.") -> None:
    check_int(cfg.dim, f"{p}dim", 1, MAX_DIM)
    check_int(cfg.hidden, f"{p}hidden", 1, 4096)
    check_int(cfg.depth, f"{p}depth", 1, 32)
    check_int(cfg.emb_dim, f"{p}emb_dim", 2, 1024)
    check_choice(cfg.activation, f"{p}activation", ("silu", "relu", "tanh", "gelu"))
    check_int(cfg.table_points, f"{p}table_points", 2, 1_000_000)


def validate_train(cfg, p: str = "") -> None:
    """:class:`toy.train.TrainConfig` (``p``: the key prefix, e.g. ``train.`` inside another config)."""
    check_int(cfg.steps, f"{p}steps", 1, MAX_TRAIN_STEPS)
    check_int(cfg.batch_size, f"{p}batch_size", 1, 1_000_000)
    check_number(cfg.lr, f"{p}lr", 0.0, 10.0, lo_open=True)
    check_number(cfg.lr_final, f"{p}lr_final", 0.0, 10.0, lo_open=True)
    check_number(cfg.weight_decay, f"{p}weight_decay", 0.0, 10.0)
    check_int(cfg.n_data, f"{p}n_data", 1, 10_000_000)
    check_number(cfg.t_max, f"{p}t_max", 0.0, 1.0, lo_open=True)
    check_number(cfg.t_min, f"{p}t_min", 0.0, cfg.t_max, lo_open=True, hi_open=True)
    _seed(cfg.seed, f"{p}seed")
    check_choice(cfg.dtype, f"{p}dtype", ("float32", "float64"))
    check_number(cfg.max_seconds, f"{p}max_seconds", 0.0, lo_open=True)
    check_number(cfg.t_power, f"{p}t_power", 0.0, 100.0, lo_open=True)
    check_choice(cfg.loss_weight, f"{p}loss_weight", ("score", "eps"))
    model = cfg.model
    if isinstance(model, dict):
        raise BadInput(f"{p}model must be a ModelConfig")
    validate_model(model, f"{p}model.")


def _editing(cfg) -> None:
    _schedule(cfg.schedule)
    _nums(cfg.t0s, "t0s", 0.0, 1.0, lo_open=True)
    _ints(cfg.steps, "steps", 1, MAX_STEPS)
    _times(cfg.t0s, cfg.t_end, "")
    check_int(cfg.knn_k, "knn_k", 1, 100)
    check_int(cfg.n, "n", cfg.knn_k + 1, MAX_PARTICLES)
    check_int(cfg.seeds, "seeds", 1, MAX_SEEDS)
    check_number(cfg.drag_alpha, "drag_alpha")
    check_number(cfg.drag_beta, "drag_beta", 0.0, 1.0)
    check_int(cfg.drag_dim, "drag_dim", 1, MAX_DIM)
    _seed(cfg.seed)


def _kl_curves(cfg) -> None:
    check_choice(cfg.mixture, "mixture", ("1d", "2d"))  # the Fokker–Planck grid is 1-D / 2-D
    _schedule(cfg.schedule)
    check_number(cfg.t0, "t0", 0.0, 1.0, lo_open=True)
    _times([cfg.t0], cfg.t_end, "")
    _nums(cfg.edit_weights, "edit_weights", 0.0, allow_none=True)
    if cfg.edit_weights is not None and not sum(cfg.edit_weights) > 0:
        raise BadInput("edit_weights must have a positive sum")
    check_number(cfg.edit_shift, "edit_shift", -100.0, 100.0)
    check_int(cfg.grid_n, "grid_n", 8, MAX_GRID)
    check_number(cfg.grid_half_width, "grid_half_width", 0.0, 1000.0, lo_open=True)
    check_int(cfg.fp_steps, "fp_steps", 1, 100_000)
    _ints(cfg.particle_steps, "particle_steps", 1, MAX_STEPS)
    _ints(cfg.particle_steps_learned, "particle_steps_learned", 1, MAX_STEPS, allow_none=True)
    check_int(cfg.particle_k, "particle_k", 1, 100)
    check_int(cfg.particle_n, "particle_n", cfg.particle_k + 1, MAX_PARTICLES)
    check_int(cfg.particle_seeds, "particle_seeds", 1, MAX_SEEDS)
    if cfg.checkpoint is not None and not isinstance(cfg.checkpoint, str):
        raise BadInput(f"checkpoint must be a file name, got {cfg.checkpoint!r}")
    _seed(cfg.seed)
    validate_train(cfg.train, "train.")


def _study(cfg) -> None:
    check_number(cfg.t0, "t0", 0.0, 1.0, lo_open=True)
    _times([cfg.t0], cfg.t_end, "")
    _ints(cfg.steps, "steps", 1, MAX_STEPS)
    _nums(cfg.etas, "etas", 0.0, 1.0)
    check_int(cfg.knn_k, "knn_k", 1, 100)
    check_int(cfg.n, "n", cfg.knn_k + 1, MAX_PARTICLES)
    check_int(cfg.seeds, "seeds", 1, MAX_SEEDS)
    check_int(cfg.cycle_steps, "cycle_steps", 1, MAX_STEPS)
    check_number(cfg.cycle_shift, "cycle_shift", -100.0, 100.0)
    check_int(cfg.grid_n, "grid_n", 8, MAX_GRID)
    check_int(cfg.fp_steps, "fp_steps", 1, 100_000)
    _seed(cfg.seed)


def _score_error(cfg) -> None:
    check_choice(cfg.mixture, "mixture", ("1d", "2d", "nd"))
    _schedule(cfg.schedule)
    check_number(cfg.t0, "t0", 0.0, 1.0, lo_open=True)
    _times([cfg.t0], cfg.t_end, "")
    _nums(cfg.etas, "etas", 0.0, 1.0)
    _nums(cfg.perturbations, "perturbations", 0.0, 100.0)
    _ints(cfg.train_budgets, "train_budgets", 1, MAX_TRAIN_STEPS)
    check_int(cfg.steps, "steps", 2, MAX_STEPS)
    check_int(cfg.n, "n", 50, MAX_PARTICLES)
    check_int(cfg.seeds, "seeds", 2, MAX_SEEDS)
    _seed(cfg.seed)
    validate_train(cfg.train, "train.")


_BY_CLASS = {"EditingConfig": _editing, "KLCurvesConfig": _kl_curves, "StudyConfig": _study,
             "ScoreErrorConfig": _score_error, "TrainConfig": validate_train, "ModelConfig": validate_model}


def validate_config(cfg):
    """Check a toy experiment config (any of ``EditingConfig``, ``KLCurvesConfig``, ``StudyConfig``,
    ``ScoreErrorConfig``, ``TrainConfig``, ``ModelConfig``); returns it.  Raises :class:`cliutil.BadInput`."""
    name = type(cfg).__name__
    if not dataclasses.is_dataclass(cfg) or name not in _BY_CLASS:
        raise TypeError(f"no checks for {name}")
    _BY_CLASS[name](cfg)
    return cfg
