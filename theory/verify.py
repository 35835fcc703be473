"""theory.verify(config, method): run one verification method and return the JSON report (issue 2, item 8)."""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from .config import METHODS, VerifyConfig, config_from_dict
from .errors import ConfigError
from .fokker_planck import Grid1D, Grid2D, evolve_pair
from .gaussian import gaussian_path
from .particles import particles_ode, particles_sde
from .results import KLPath
from .reversal import reversal_monte_carlo, reversal_quadrature


def choose_method(cfg: VerifyConfig) -> str:
    """auto: gaussian for single Gaussians, grid for 1-D/2-D, reversal for SDE in >= 3-D, else particles."""
    if cfg.data.is_gaussian() and cfg.edited.is_gaussian():
        return "gaussian"
    if cfg.dim <= 2:
        return "grid"
    return "reversal" if cfg.sampler == "sde" else "particles"


def auto_grid(cfg: VerifyConfig, cells: tuple[int, ...] | None = None):
    """Grid covering p_t0, p_t_end and q_t0 components +- 8 std (plus margin)."""
    boxes = [cfg.data.marginal(cfg.schedule, cfg.t0).std_extent(8.0),
             cfg.data.marginal(cfg.schedule, cfg.t_end).std_extent(8.0), cfg.edited.std_extent(8.0)]
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    if cfg.dim == 1:
        n = (cells or (400,))[0]
        return Grid1D(float(lo[0]), float(hi[0]), int(n))
    c = cells or (150, 150)
    if len(c) == 1:
        c = (c[0], c[0])
    return Grid2D((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1])), (int(c[0]), int(c[1])))


def run_method(cfg: VerifyConfig, method: str = "auto") -> KLPath:
    """Dispatch to the Gaussian / grid / reversal / particle implementation."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "auto":
        method = choose_method(cfg)
    s, sch = cfg.sampler, cfg.schedule
    if method == "gaussian":
        if not (cfg.data.is_gaussian() and cfg.edited.is_gaussian()):
            raise ConfigError("method gaussian needs single-component data and edited distributions")
        return gaussian_path(sch, cfg.data.means[0], cfg.data.covs[0], cfg.edited.means[0], cfg.edited.covs[0],
                             cfg.t0, cfg.t_end, s, n_times=(cfg.n_steps or 200) + 1)
    if method == "grid":
        if cfg.dim > 2:
            raise ConfigError(f"method grid supports 1-D and 2-D only, this config is {cfg.dim}-D")
        grid = auto_grid(cfg, cfg.grid)
        if cfg.grid is not None and len(cfg.grid) not in (1, cfg.dim):
            raise ConfigError("grid must list one cell count per dimension")
        x = grid.points()
        q0 = np.exp(cfg.edited.log_prob(x))
        p0 = np.exp(cfg.data.marginal(sch, cfg.t0).log_prob(x))
        data = cfg.data

        def score(xx: np.ndarray, t: float) -> np.ndarray:
            return data.marginal(sch, t).score(xx)

        n_steps = cfg.n_steps or (100 if cfg.dim == 1 else 40)
        return evolve_pair(q0, p0, grid, sch, score, cfg.t0, cfg.t_end, s, n_steps=n_steps)
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
        return particles_ode(sch, cfg.data, cfg.edited, cfg.t0, cfg.t_end, seed=cfg.seed)
    return particles_sde(sch, cfg.data, cfg.edited, cfg.t0, cfg.t_end, seed=cfg.seed)


def verify(config: Mapping[str, Any] | VerifyConfig, method: str = "auto") -> dict[str, Any]:
    """Verify Thm 3.1 (sde) / Thm 3.2 (ode) for a config dict; returns the report dictionary."""
    cfg = config if isinstance(config, VerifyConfig) else config_from_dict(config)
    start = time.perf_counter()
    path = run_method(cfg, method)
    report = path.to_dict()
    report["seconds"] = time.perf_counter() - start
    report["dim"] = cfg.dim
    report["t0"], report["t_end"] = cfg.t0, cfg.t_end
    report["schedule"] = cfg.schedule.to_dict() if cfg.schedule.kind != "ddpm" else {"kind": "ddpm"}
    return report
