"""Verification config: parsing/validation of the JSON format of `python -m theory verify` (issue 2, item 8)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .mixtures import GaussianMixture, mixture_from_dict
from .schedules import Schedule, schedule_from_dict

METHODS = ("auto", "gaussian", "grid", "reversal", "particles")
SAMPLERS = ("sde", "ode")
_KEYS = {"schedule", "data", "edited", "t0", "t_end", "sampler", "grid", "n_steps", "seed", "tol"}


@dataclass(frozen=True)
class VerifyConfig:
    """data = p_0, edited = q_t0 (a law at time t0), shared reverse dynamics from t0 down to t_end."""

    schedule: Schedule
    data: GaussianMixture
    edited: GaussianMixture
    t0: float
    t_end: float
    sampler: str = "sde"
    grid: tuple[int, ...] | None = None
    n_steps: int | None = None
    seed: int = 0
    tol: float | None = None

    @property
    def dim(self) -> int:
        return self.data.dim


def _time(d: Mapping[str, Any], key: str) -> float:
    if key not in d:
        raise ConfigError(f"config is missing {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ConfigError(f"{key} must be a finite number, got {v!r}")
    return float(v)


def check_tol(v: Any) -> float:
    """A tolerance must be a finite number > 0 (relative identity error)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or v <= 0:
        raise ConfigError(f"tol must be a finite number > 0, got {v!r}")
    return float(v)


def config_from_dict(d: Any) -> VerifyConfig:
    """Validate a config dictionary (see docs/theory.md) and build a VerifyConfig."""
    if not isinstance(d, Mapping):
        raise ConfigError("config must be a JSON object")
    extra = set(d) - _KEYS
    if extra:
        raise ConfigError(f"unknown config keys {sorted(extra)}")
    for key in ("schedule", "data", "edited"):
        if key not in d:
            raise ConfigError(f"config is missing {key!r}")
    schedule = schedule_from_dict(d["schedule"])
    data = mixture_from_dict(d["data"], "data")
    edited = mixture_from_dict(d["edited"], "edited")
    if data.dim != edited.dim:
        raise ConfigError(f"dimension mismatch: data is {data.dim}-D, edited is {edited.dim}-D")
    t0, t_end = _time(d, "t0"), _time(d, "t_end")
    if not (0.0 < t0 <= 1.0 and 0.0 < t_end <= 1.0):
        raise ConfigError(f"t0 and t_end must lie in (0, 1], got t0={t0}, t_end={t_end}")
    if t0 <= t_end:
        raise ConfigError(f"need t0 > t_end (forward time), got t0={t0}, t_end={t_end}")
    if schedule.kind == "rectified-flow" and t0 >= 1.0:
        raise ConfigError(f"rectified-flow needs t0 < 1: alpha(t) = 1 - t is 0 at t0={t0:g} "
                          "(pure noise; f = -1/(1-t) and g^2 = 2t/(1-t) are infinite there)")
    if t0 > schedule.t_max():
        raise ConfigError(f"t0={t0} is beyond where schedule {schedule.kind} is finite (use t0 < 1)")
    sampler = d.get("sampler", "sde")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; expected sde or ode")
    grid = d.get("grid")
    if grid is not None:
        g = [grid] if isinstance(grid, int) else grid
        if not isinstance(g, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 16 for v in g):
            raise ConfigError("grid must be an integer >= 16 or a list of them (cells per axis)")
        grid = tuple(g)
    n_steps = d.get("n_steps")
    if n_steps is not None and (isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2):
        raise ConfigError("n_steps must be an integer >= 2")
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("seed must be an integer")
    tol = check_tol(d["tol"]) if d.get("tol") is not None else None
    return VerifyConfig(schedule, data, edited, t0, t_end, sampler, grid, n_steps, seed, tol)


def load_config(path: str | Path) -> VerifyConfig:
    """Read and validate a JSON config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed JSON in {p}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {p}: {exc}") from None
    return config_from_dict(d)
