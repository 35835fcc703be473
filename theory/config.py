"""Verification config: parsing/validation of the JSON format of `python -m theory verify` (issue 2, item 8)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cliutil import MAX_SEED, check_int

from .errors import ConfigError
from .mixtures import GaussianMixture, mixture_from_dict
from .schedules import Schedule, schedule_from_dict

METHODS = ("auto", "gaussian", "grid", "reversal", "particles")
SAMPLERS = ("sde", "ode")
GRID_MIN = 16
GRID_MAX = {1: 25_600, 2: 1_200}   # cells per axis of the grid method (memory and time stay sane)
MAX_CONFIG_BYTES = 64 * 2 ** 20
N_STEPS_MAX = 100_000             # any method; each method has its own, smaller bound (theory.verify.STEP_CAPS)
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
    dim = data.dim
    grid = d.get("grid")
    if grid is not None:
        if dim > 2:
            raise ConfigError(f"grid (cells per axis) is for the grid method, which is 1-D/2-D only; this config is "
                              f"{dim}-D (use the gaussian, reversal or particles method and drop grid)")
        g = [grid] if isinstance(grid, int) and not isinstance(grid, bool) else grid
        counts = "one integer" if dim == 1 else "one or two integers"
        if not isinstance(g, list) or not g:
            raise ConfigError(f"grid must be an integer or a list of {counts} (cells per axis), got {grid!r}")
        if len(g) not in (1, dim):
            raise ConfigError(f"grid must be an integer or a list of {counts} for this {dim}-D config "
                              f"(cells per axis), got {len(g)} numbers")
        for v in g:
            check_int(v, "grid (cells per axis)", GRID_MIN, GRID_MAX[dim], error=ConfigError)
        grid = tuple(int(v) for v in g)
    n_steps = d.get("n_steps")
    check_int(n_steps, "n_steps", 2, N_STEPS_MAX, error=ConfigError)
    seed = d.get("seed", 0)
    check_int(seed, "seed", 0, MAX_SEED, error=ConfigError)
    tol = check_tol(d["tol"]) if d.get("tol") is not None else None
    return VerifyConfig(schedule, data, edited, t0, t_end, sampler, grid, n_steps, seed, tol)


def load_config(path: str | Path) -> VerifyConfig:
    """Read and validate a JSON config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}" if not p.exists() else f"config {p} is not a file")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {p} is larger than {MAX_CONFIG_BYTES // 2**20} MiB (the bound)")

    def no_constant(name: str):  # json accepts NaN / Infinity tokens by default; they are not JSON numbers
        raise ConfigError(f"config {p} contains {name}, which is not a JSON number (use finite numbers)")

    try:
        d = json.loads(p.read_text(encoding="utf-8"), parse_constant=no_constant)
    except RecursionError:
        raise ConfigError(f"config {p} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed JSON in {p}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {p}: {exc}") from None
    return config_from_dict(d)
