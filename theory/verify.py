"""theory.verify(config, method): run one verification method and return the JSON report (issue 2, item 8)."""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from .config import METHODS, VerifyConfig, check_tol, config_from_dict
from .errors import ConfigError
from .fokker_planck import Grid1D, Grid2D, evolve_pair
from .gaussian import gaussian_path
from .marginal_many import attach_many
from .particles import particles_ode, particles_sde
from .results import KLPath
from .reversal import reversal_monte_carlo, reversal_quadrature


GRID_DEFAULTS = {1: (400, 128), 2: (200, 64)}   # cells per axis, time steps of the grid method
TOL_CAPS = {1: (12800, 4096), 2: (600, 512)}     # refinement limits of tol
# bounds on n_steps per method (bad input beyond them: exit 2 naming the bound), and on one grid run's work
STEP_CAPS = {"gaussian": 100_000, "grid": 16_384, "reversal": 2_000, "reversal-mc": 500, "particles": 20_000}
GRID_WORK_MAX = 2.0e8   # cells (all axes) x time steps of one grid run: 600 x 600 cells with 512 steps is 1.8e8
LONG_RUN_S = 60.0       # a grid run estimated longer than this is announced through `progress`


def grid_seconds_estimate(cells_total: int, n_steps: int) -> float:
    """Rough wall time of one grid run with its error estimates (steps n + n/2 + n/4, and n/2 at half the cells),
    measured on the project's 2-core machine with the compiled loop (issue 22): ~20 us per step plus ~0.5 us per
    cell and step (1-D defaults ~0.06 s, 2-D defaults ~3 s)."""
    return 2.25 * n_steps * (2e-5 + 5e-7 * cells_total)


def _grid_size(cfg: VerifyConfig, cells: tuple[int, ...] | None, n_steps: int) -> tuple[int, int]:
    c = cells or (GRID_DEFAULTS[cfg.dim][0],)
    c = tuple(c) * cfg.dim if len(c) == 1 else tuple(c)
    return int(np.prod(c)), int(n_steps)


def check_run(cfg: VerifyConfig, method: str, requested: str = "auto") -> None:
    """Refuse (ConfigError: exit 2) what the chosen method would ignore or what is beyond its bounds."""
    if cfg.grid is not None and method != "grid":
        why = " (auto's choice for single-Gaussian data and edited)" if requested == "auto" and method == "gaussian" \
            else " (auto's choice in 3-D and above)" if requested == "auto" else ""
        raise ConfigError(f"grid (cells per axis) is only used by the grid method, but this run uses method "
                          f"{method}{why}; drop grid or pass --method grid")
    if cfg.n_steps is None:
        if method == "grid":
            method_n = GRID_DEFAULTS[cfg.dim][1] if cfg.dim in GRID_DEFAULTS else 0
        else:
            return
    else:
        method_n = cfg.n_steps
    key = "reversal-mc" if method == "reversal" and cfg.dim > 2 else method
    cap = STEP_CAPS.get(key)
    if cap is not None and method_n > cap:
        what = {"gaussian": "output times", "grid": "time steps", "reversal": "quadrature times",
                "reversal-mc": "Monte Carlo times", "particles": "time steps"}[key]
        raise ConfigError(f"n_steps = {method_n} is beyond the bound for method {method}"
                          f"{' in 3-D and above' if key == 'reversal-mc' else ''}: at most {cap} {what}")
    if method == "grid" and cfg.dim <= 2:
        cells, steps = _grid_size(cfg, cfg.grid, method_n)
        if cells * steps > GRID_WORK_MAX:
            raise ConfigError(f"grid run too large: {cells} cells x {steps} steps = {cells * steps:.3g} cell-steps; "
                              f"the bound is {GRID_WORK_MAX:.3g} (e.g. 600x600 cells with 512 steps, or 25600 "
                              f"cells with 7800 steps in 1-D)")


def choose_method(cfg: VerifyConfig) -> str:
    """auto: gaussian for single Gaussians, grid for 1-D/2-D, reversal for SDE in >= 3-D, else particles."""
    if cfg.data.is_gaussian() and cfg.edited.is_gaussian():
        return "gaussian"
    if cfg.dim <= 2:
        return "grid"
    return "reversal" if cfg.sampler == "sde" else "particles"


def narrowest_variance(data) -> float:
    """Smallest eigenvalue over the data's component covariances (sets where the reverse drift is stiff)."""
    return float(min(np.linalg.eigvalsh(c).min() for c in data.covs))


def auto_grid(cfg: VerifyConfig, cells: tuple[int, ...] | None = None):
    """Grid covering p_t0, p_t_end and q_t0 components +- 8 std (plus margin)."""
    boxes = [cfg.data.marginal(cfg.schedule, cfg.t0).std_extent(8.0),
             cfg.data.marginal(cfg.schedule, cfg.t_end).std_extent(8.0), cfg.edited.std_extent(8.0)]
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    if cfg.dim == 1:
        n = (cells or (GRID_DEFAULTS[1][0],))[0]
        return Grid1D(float(lo[0]), float(hi[0]), int(n) + int(n) % 2)
    c = cells or (GRID_DEFAULTS[2][0],) * 2
    if len(c) == 1:
        c = (c[0], c[0])
    return Grid2D((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1])),
                  (int(c[0]) + int(c[0]) % 2, int(c[1]) + int(c[1]) % 2))


def _run_grid(cfg: VerifyConfig, cells: tuple[int, ...] | None, n_steps: int, progress=None) -> KLPath:
    if progress is not None:
        total, steps = _grid_size(cfg, cells, n_steps)
        est = grid_seconds_estimate(total, steps)
        if est > LONG_RUN_S:
            progress(f"grid run with {total} cells and {steps} steps, estimated {est:.0f} s")
    if cfg.dim > 2:
        raise ConfigError(f"method grid supports 1-D and 2-D only, this config is {cfg.dim}-D")
    if cells is not None and len(cells) not in (1, cfg.dim):
        raise ConfigError("grid must list one cell count per dimension")
    sch, data = cfg.schedule, cfg.data
    grid = auto_grid(cfg, cells)
    x = grid.points()
    q0 = np.exp(cfg.edited.log_prob(x))
    p0 = np.exp(data.marginal(sch, cfg.t0).log_prob(x))
    cache: dict = {}

    def marginal(t: float):
        if t not in cache:
            if len(cache) > 4096:
                cache.clear()
            cache[t] = data.marginal(sch, t)
        return cache[t]

    def score(xx: np.ndarray, t: float) -> np.ndarray:
        return marginal(t).score(xx)

    def log_p(xx: np.ndarray, t: float) -> np.ndarray:
        return marginal(t).log_prob(xx)

    attach_many(score, log_p, data, sch)   # all times of a block in one call
    n_steps += -n_steps % 4 if cfg.sampler == "sde" else n_steps % 2
    return evolve_pair(q0, p0, grid, sch, score, cfg.t0, cfg.t_end, cfg.sampler, n_steps=n_steps, log_p=log_p,
                       stiff_var=narrowest_variance(data), error_estimate=True)


def _grid_to_tol(cfg: VerifyConfig, tol: float, progress=None) -> KLPath:
    """Refine the grid method until max(relative residual, its estimated bound) < tol: double the steps when the
    time part of the bound dominates, else the cells (x2 in 1-D, x1.5 per axis in 2-D), up to TOL_CAPS."""
    c0, n0 = GRID_DEFAULTS[cfg.dim] if cfg.dim in GRID_DEFAULTS else (0, 0)
    cells = int(cfg.grid[0]) if cfg.grid else c0
    steps = int(cfg.n_steps or n0)
    cap_c, cap_n = TOL_CAPS.get(cfg.dim, (0, 0))
    history = []
    while True:
        path = _run_grid(cfg, (cells,) if cfg.grid is None or len(cfg.grid) == 1 else
                         tuple(int(round(cells * g / cfg.grid[0])) for g in cfg.grid), steps, progress)
        err = path.extra["errors"]
        achieved = max(err["relative_residual"], path.relative_residual or 0.0)
        history.append({"cells": list(path.extra["grid_shape"]), "n_steps": path.extra["n_steps"],
                        "relative_residual": path.relative_residual, "estimated_relative_error": achieved})
        if achieved < tol:
            path.extra["tol"] = {"target": tol, "reached": True, "history": history}
            return path
        time_bound = err["limited_by"] == "time steps"
        grow_c = cells * 2 if cfg.dim == 1 else int(np.ceil(cells * 1.5))
        if time_bound and steps * 2 <= cap_n:
            steps *= 2
        elif not time_bound and grow_c <= cap_c:
            cells = grow_c
        elif steps * 2 <= cap_n:  # the dominant part is capped: refine the other one while it helps
            steps *= 2
        elif grow_c <= cap_c:
            cells = grow_c
        else:
            part = "time steps" if time_bound else "cells"
            msg = (f"tol {tol:g} not reached: estimated relative identity error {achieved:.2e} at "
                   f"{'x'.join(map(str, path.extra['grid_shape']))} cells / {path.extra['n_steps']} steps; "
                   f"limited by {part}, and the refinement caps ({cap_c} cells per axis, {cap_n} steps in "
                   f"{cfg.dim}-D) are reached")
            path.extra["tol"] = {"target": tol, "reached": False, "history": history, "message": msg}
            return path


def run_method(cfg: VerifyConfig, method: str = "auto", tol: float | None = None, progress=None) -> KLPath:
    """Dispatch to the Gaussian / grid / reversal / particle implementation (tol: grid refinement, see
    _grid_to_tol; the Gaussian method is exact to ~1e-11 and ignores it; reversal and particles refuse it).
    check_run refuses a grid the method would not use and n_steps / grid sizes beyond the bounds; progress(msg),
    if given, hears about grid runs estimated to take longer than LONG_RUN_S."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    requested = method
    if method == "auto":
        method = choose_method(cfg)
    check_run(cfg, method, requested)
    s, sch = cfg.sampler, cfg.schedule
    if tol is not None and method in ("reversal", "particles"):
        raise ConfigError(f"tol is supported by the grid and gaussian methods, not by {method}")
    if method == "gaussian":
        if not (cfg.data.is_gaussian() and cfg.edited.is_gaussian()):
            raise ConfigError("method gaussian needs single-component data and edited distributions")
        return gaussian_path(sch, cfg.data.means[0], cfg.data.covs[0], cfg.edited.means[0], cfg.edited.covs[0],
                             cfg.t0, cfg.t_end, s, n_times=(cfg.n_steps or 200) + 1)
    if method == "grid":
        if cfg.dim > 2:
            raise ConfigError(f"method grid supports 1-D and 2-D only, this config is {cfg.dim}-D")
        if tol is not None:
            return _grid_to_tol(cfg, tol, progress)
        return _run_grid(cfg, cfg.grid, cfg.n_steps or GRID_DEFAULTS[cfg.dim][1], progress)
    if method == "reversal":
        if s != "sde":
            raise ConfigError("method reversal applies to the SDE sampler only")
        if cfg.dim <= 2:
            return reversal_quadrature(sch, cfg.data, cfg.edited, cfg.t0, cfg.t_end,
                                       n_times=(cfg.n_steps or (160 if cfg.dim == 1 else 100)) + 1,
                                       n_outer=48 if cfg.dim == 1 else 16, n_inner=48 if cfg.dim == 1 else 16)
        return reversal_monte_carlo(sch, cfg.data, cfg.edited, cfg.t0, cfg.t_end,
                                    n_times=(cfg.n_steps or 10) + 1, seed=cfg.seed)
    if s == "ode":
        n = cfg.n_steps or 100
        return particles_ode(sch, cfg.data, cfg.edited, cfg.t0, cfg.t_end, n_steps=n, save_every=max(1, n // 5),
                             seed=cfg.seed)
    n = cfg.n_steps or 400
    return particles_sde(sch, cfg.data, cfg.edited, cfg.t0, cfg.t_end, n_steps=n, save_every=max(1, n // 20),
                         seed=cfg.seed)


def verify(config: Mapping[str, Any] | VerifyConfig, method: str = "auto", tol: float | None = None,
           progress=None) -> dict[str, Any]:
    """Verify Thm 3.1 (sde) / Thm 3.2 (ode) for a config dict; returns the report dictionary.

    tol (or the config's "tol"; the argument wins): refine until the estimated relative identity error is below
    it; the report's "tol" entry says whether it was reached and, if not, what limited it.  progress(msg): called
    with a one-line note before a grid run estimated to take over a minute (the CLI prints it on stderr)."""
    cfg = config if isinstance(config, VerifyConfig) else config_from_dict(config)
    tol = cfg.tol if tol is None else check_tol(tol)
    start = time.perf_counter()
    path = run_method(cfg, method, tol, progress)
    if tol is not None and "tol" not in path.extra:  # gaussian: moment ODEs at rtol 1e-11
        path.extra["tol"] = {"target": tol, "reached": bool((path.relative_residual or 0.0) < tol)}
    report = path.to_dict()
    report["seconds"] = time.perf_counter() - start
    report["dim"] = cfg.dim
    report["t0"], report["t_end"] = cfg.t0, cfg.t_end
    report["schedule"] = cfg.schedule.to_dict() if cfg.schedule.kind != "ddpm" else {"kind": "ddpm"}
    return report
