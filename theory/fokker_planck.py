"""Fokker-Planck grid solver (1-D and 2-D) for densities moved by reverse-time diffusion dynamics.

Dynamics (forward-time convention, integrated from t0 DOWN to t_end < t0):
    dx = drift(x, t) dt + sqrt(g2(t)) dw_bar
e.g. reverse SDE: drift = f x - g^2 s(x, t), g2 = g^2;  probability-flow ODE: drift = f x - 1/2 g^2 s, g2 = 0.
In reverse time s = t0 - t the density solves  d_s q = div(drift q) + 1/2 g2 Laplacian(q)  (well posed).

Scheme (per step t_n -> t_{n+1}, Strang splitting, second order in h and dt):
  1. diffusion over [t_n, t_mid]: exact exponential of the cell-centred 3-point Neumann Laplacian (DCT-II);
  2. advection with the drift frozen at t_mid: conservative semi-Lagrangian remap -- departure points of cell
     edges by RK4 along the characteristics, new cell mass = difference of a monotone (Fritsch-Butland PCHIP)
     interpolant of the cumulative mass (2-D: dimensional splitting x(h/2) y(h) x(h/2));
  3. diffusion over [t_mid, t_{n+1}].
Mass is conserved to round-off, densities stay >= 0, and there is no CFL restriction (stiff drift near t -> 0
is fine); a geometric time grid (dense near t_end) is the default.

Public API
----------
Grid1D(lo, hi, n), Grid2D(lo=(x0, y0), hi=(x1, y1), n=(nx, ny))
solve(density0, grid, drift, diffusion_g2, t0, t_end, n_steps=400, time_kind="log", save_every=1)
    drift(x: ndarray [n, d], t: float) -> ndarray [n, d]; diffusion_g2(t: float) -> float (or None for an ODE).
    Returns (times [m], densities [m, *grid.shape]); solve_1d / solve_2d are dimension-checked aliases.
reverse_drift(schedule, score, sampler) -> (drift, diffusion_g2)
    score(x: [n, d], t: float) -> [n, d] (exact or learned); sampler "sde" or "ode".
evolve_pair(q0, p0, grid, schedule, score, t0, t_end, sampler="sde", n_steps=400, ...) -> KLPath
    evolves q and p from their t0 densities under the same dynamics and returns times, kl, fisher, kl_start,
    kl_end, kl_drop, fisher_integral (trapezoid of 1/2 g^2 F on the output grid), residual, mass_error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.fft import dct, idct

from .divergences import fisher_grid, kl_grid
from .results import KLPath, make_path
from .schedules import Schedule
from .timegrid import time_grid

Drift = Callable[[np.ndarray, float], np.ndarray]
Score = Callable[[np.ndarray, float], np.ndarray]

_GL_X = np.array([-0.906179845938664, -0.538469310105683, 0.0, 0.538469310105683, 0.906179845938664])
_GL_W = np.array([0.236926885056189, 0.478628670499366, 0.568888888888889, 0.478628670499366, 0.236926885056189])


@dataclass(frozen=True)
class Grid1D:
    """n uniform cells on [lo, hi]; values live at cell centres."""

    lo: float
    hi: float
    n: int

    @property
    def dim(self) -> int:
        return 1

    @property
    def shape(self) -> tuple[int]:
        return (self.n,)

    @property
    def h(self) -> float:
        return (self.hi - self.lo) / self.n

    @property
    def spacing(self) -> tuple[float]:
        return (self.h,)

    @property
    def cell_volume(self) -> float:
        return self.h

    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.n + 1)

    def centers(self) -> np.ndarray:
        return self.lo + (np.arange(self.n) + 0.5) * self.h

    def points(self) -> np.ndarray:
        """Cell centres as [n, 1]."""
        return self.centers()[:, None]


@dataclass(frozen=True)
class Grid2D:
    """nx x ny uniform cells on [lo[0], hi[0]] x [lo[1], hi[1]]; arrays are indexed [ix, iy]."""

    lo: tuple[float, float]
    hi: tuple[float, float]
    n: tuple[int, int]

    @property
    def dim(self) -> int:
        return 2

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.n[0]), int(self.n[1]))

    @property
    def spacing(self) -> tuple[float, float]:
        return ((self.hi[0] - self.lo[0]) / self.n[0], (self.hi[1] - self.lo[1]) / self.n[1])

    @property
    def cell_volume(self) -> float:
        return self.spacing[0] * self.spacing[1]

    def axis_edges(self, a: int) -> np.ndarray:
        return np.linspace(self.lo[a], self.hi[a], self.n[a] + 1)

    def axis_centers(self, a: int) -> np.ndarray:
        return self.lo[a] + (np.arange(self.n[a]) + 0.5) * self.spacing[a]

    def points(self) -> np.ndarray:
        """Cell centres as [nx*ny, 2] in C order (ix major)."""
        X, Y = np.meshgrid(self.axis_centers(0), self.axis_centers(1), indexing="ij")
        return np.stack([X.ravel(), Y.ravel()], axis=1)


def _remap_lines(rho: np.ndarray, dep: np.ndarray, lo: float, h: float) -> np.ndarray:
    """Conservative remap along the last axis: new mass in [e_i, e_i+1] = C(dep_i+1) - C(dep_i), C = PCHIP cumulative mass."""
    n = rho.shape[-1]
    C = np.concatenate([np.zeros(rho.shape[:-1] + (1,)), np.cumsum(rho * h, axis=-1)], axis=-1)
    delta = np.diff(C, axis=-1) / h
    d = np.empty_like(C)
    d1, d2 = delta[..., :-1], delta[..., 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        hm = np.where((d1 > 0) & (d2 > 0), 2.0 * d1 * d2 / (d1 + d2), 0.0)
    d[..., 1:-1] = hm
    d[..., 0] = delta[..., 0]
    d[..., -1] = delta[..., -1]
    hi = lo + n * h
    X = np.clip(dep, lo, hi)
    X = np.maximum.accumulate(X, axis=-1)
    u = (X - lo) / h
    k = np.clip(np.floor(u).astype(np.intp), 0, n - 1)
    s = u - k
    c0 = np.take_along_axis(C, k, axis=-1)
    c1 = np.take_along_axis(C, k + 1, axis=-1)
    m0 = np.take_along_axis(d, k, axis=-1) * h
    m1 = np.take_along_axis(d, k + 1, axis=-1) * h
    s2, s3 = s * s, s * s * s
    val = (2 * s3 - 3 * s2 + 1) * c0 + (s3 - 2 * s2 + s) * m0 + (-2 * s3 + 3 * s2) * c1 + (s3 - s2) * m1
    val[..., 0] = 0.0
    val[..., -1] = C[..., -1]
    val = np.maximum.accumulate(val, axis=-1)
    return np.diff(val, axis=-1) / h


def _departure(edges: np.ndarray, vel: np.ndarray, ds: float) -> np.ndarray:
    """RK4 for dX/dsigma = drift(X) over duration ds, drift tabulated at edges (linear interpolation per line)."""
    lo, h = edges[0], edges[1] - edges[0]
    n = edges.size - 1

    def v(X: np.ndarray) -> np.ndarray:
        u = np.clip((X - lo) / h, 0.0, n)
        k = np.clip(np.floor(u).astype(np.intp), 0, n - 1)
        w = u - k
        return (1 - w) * np.take_along_axis(vel, k, -1) + w * np.take_along_axis(vel, k + 1, -1)

    X0 = np.broadcast_to(edges, vel.shape)
    k1 = vel
    k2 = v(X0 + 0.5 * ds * k1)
    k3 = v(X0 + 0.5 * ds * k2)
    k4 = v(X0 + ds * k3)
    return X0 + ds / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def _heat_factors(n: int, h: float) -> np.ndarray:
    """Eigenvalues of the cell-centred Neumann 3-point Laplacian: -(2/h)^2 sin^2(pi k / 2n)."""
    return -(2.0 / h) ** 2 * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2


def _diffuse(rho: np.ndarray, lams: Sequence[np.ndarray], D: float) -> np.ndarray:
    """exp(D * Laplacian) rho with Neumann boundaries, via DCT-II along every axis."""
    if D <= 0:
        return rho
    out = rho
    for ax in range(rho.ndim):
        out = dct(out, type=2, axis=ax, norm="ortho")
    fac = np.exp(D * lams[0])
    if rho.ndim == 2:
        fac = fac[:, None] * np.exp(D * lams[1])[None, :]
    out = out * fac
    for ax in range(rho.ndim):
        out = idct(out, type=2, axis=ax, norm="ortho")
    return np.maximum(out, 0.0)


def _g2_integral(g2: Optional[Callable[[float], float]], ta: float, tb: float) -> float:
    """int 1/2 g2 over [tb, ta] (absolute), 5-point Gauss-Legendre."""
    if g2 is None:
        return 0.0
    mid, half = 0.5 * (ta + tb), 0.5 * abs(ta - tb)
    vals = np.array([float(g2(mid + half * x)) for x in _GL_X])
    return 0.5 * half * float(_GL_W @ vals)


class _Stepper:
    """One Strang step of the scheme in the module docstring, for a Grid1D or Grid2D."""

    def __init__(self, grid, drift: Drift, g2: Optional[Callable[[float], float]]):
        self.grid, self.drift, self.g2 = grid, drift, g2
        if grid.dim == 1:
            self.lams = [_heat_factors(grid.n, grid.h)]
            self.e = [grid.edges()]
            self.pts = [grid.edges()[:, None]]
        else:
            self.lams = [_heat_factors(grid.shape[a], grid.spacing[a]) for a in range(2)]
            self.e = [grid.axis_edges(0), grid.axis_edges(1)]
            ex, cy = np.meshgrid(grid.axis_edges(0), grid.axis_centers(1), indexing="ij")
            cx, ey = np.meshgrid(grid.axis_centers(0), grid.axis_edges(1), indexing="ij")
            self.pts = [np.stack([ex.ravel(), cy.ravel()], 1), np.stack([cx.ravel(), ey.ravel()], 1)]

    def step(self, rhos: list[np.ndarray], ta: float, tb: float) -> list[np.ndarray]:
        tm = 0.5 * (ta + tb)
        ds = ta - tb
        D1, D2 = _g2_integral(self.g2, ta, tm), _g2_integral(self.g2, tm, tb)
        rhos = [_diffuse(r, self.lams, D1) for r in rhos]
        grid = self.grid
        if grid.dim == 1:
            vel = np.asarray(self.drift(self.pts[0], tm), dtype=np.float64)[:, 0]
            dep = _departure(self.e[0], vel, ds)
            rhos = [_remap_lines(r, dep, grid.lo, grid.h) for r in rhos]
        else:
            nx, ny = grid.shape
            vx = np.asarray(self.drift(self.pts[0], tm), dtype=np.float64)[:, 0].reshape(nx + 1, ny).T
            vy = np.asarray(self.drift(self.pts[1], tm), dtype=np.float64)[:, 1].reshape(nx, ny + 1)
            depx = _departure(self.e[0], np.ascontiguousarray(vx), 0.5 * ds)
            depy = _departure(self.e[1], vy, ds)
            hx, hy = grid.spacing
            out = []
            for r in rhos:
                r = _remap_lines(r.T, depx, grid.lo[0], hx).T
                r = _remap_lines(r, depy, grid.lo[1], hy)
                r = _remap_lines(r.T, depx, grid.lo[0], hx).T
                out.append(r)
            rhos = out
        return [_diffuse(r, self.lams, D2) for r in rhos]


def _solve_many(densities0: list[np.ndarray], grid, drift: Drift, diffusion_g2, t0: float, t_end: float,
                n_steps: int, time_kind: str, save_every: int, callback=None):
    if grid.dim not in (1, 2):
        raise ValueError("the grid solver supports 1-D and 2-D only")
    ts = time_grid(t0, t_end, n_steps, time_kind)
    rhos = [np.array(r, dtype=np.float64).reshape(grid.shape) for r in densities0]
    if any(np.any(r < 0) or not np.all(np.isfinite(r)) for r in rhos):
        raise ValueError("initial densities must be finite and non-negative")
    stepper = _Stepper(grid, drift, diffusion_g2)
    saved_t, saved = [ts[0]], [[r.copy() for r in rhos]]
    if callback is not None:
        callback(ts[0], rhos)
    for n in range(n_steps):
        rhos = stepper.step(rhos, ts[n], ts[n + 1])
        if (n + 1) % save_every == 0 or n + 1 == n_steps:
            saved_t.append(ts[n + 1])
            if callback is not None:
                callback(ts[n + 1], rhos)
            else:
                saved.append([r.copy() for r in rhos])
    return np.array(saved_t), saved


def solve(density0: np.ndarray, grid, drift: Drift, diffusion_g2: Optional[Callable[[float], float]],
          t0: float, t_end: float, n_steps: int = 400, time_kind: str = "log",
          save_every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Evolve density0 (values at cell centres, time t0) down to t_end; returns (times, densities)."""
    t, saved = _solve_many([density0], grid, drift, diffusion_g2, t0, t_end, n_steps, time_kind, save_every)
    return t, np.stack([s[0] for s in saved])


def solve_1d(density0: np.ndarray, grid: Grid1D, drift: Drift, diffusion_g2, t0: float, t_end: float,
             **kw) -> tuple[np.ndarray, np.ndarray]:
    """solve() on a Grid1D."""
    if grid.dim != 1:
        raise ValueError("solve_1d needs a Grid1D")
    return solve(density0, grid, drift, diffusion_g2, t0, t_end, **kw)


def solve_2d(density0: np.ndarray, grid: Grid2D, drift: Drift, diffusion_g2, t0: float, t_end: float,
             **kw) -> tuple[np.ndarray, np.ndarray]:
    """solve() on a Grid2D."""
    if grid.dim != 2:
        raise ValueError("solve_2d needs a Grid2D")
    return solve(density0, grid, drift, diffusion_g2, t0, t_end, **kw)


def reverse_drift(schedule: Schedule, score: Score, sampler: str) -> tuple[Drift, Optional[Callable[[float], float]]]:
    """SDE: (f x - g^2 s, g^2); ODE: (f x - 1/2 g^2 s, None) -- reference.md, reverse SDE / probability-flow ODE."""
    if sampler not in ("sde", "ode"):
        raise ValueError(f"unknown sampler {sampler!r}")
    lam = 1.0 if sampler == "sde" else 0.5

    def drift(x: np.ndarray, t: float) -> np.ndarray:
        return float(schedule.f(t)) * x - lam * float(schedule.g2(t)) * np.asarray(score(x, t))

    g2 = (lambda t: float(schedule.g2(t))) if sampler == "sde" else None
    return drift, g2


def evolve_pair(q0: np.ndarray, p0: np.ndarray, grid, schedule: Schedule, score: Score, t0: float, t_end: float,
                sampler: str = "sde", n_steps: int = 400, time_kind: str = "log", save_every: int = 1) -> KLPath:
    """Evolve q and p from their t0 densities under the same dynamics; KL(tau), F(tau) and the identity residual."""
    drift, g2 = reverse_drift(schedule, score, sampler)
    q0 = np.asarray(q0, dtype=np.float64).reshape(grid.shape)
    p0 = np.asarray(p0, dtype=np.float64).reshape(grid.shape)
    m_q0, m_p0 = q0.sum() * grid.cell_volume, p0.sum() * grid.cell_volume
    rec: dict[str, list] = {"t": [], "kl": [], "fi": [], "mass": []}

    def cb(t: float, rhos: list[np.ndarray]) -> None:
        q, p = rhos
        rec["t"].append(t)
        rec["kl"].append(kl_grid(q, p, grid.cell_volume))
        rec["fi"].append(fisher_grid(q, p, grid.spacing))
        mq, mp = q.sum() * grid.cell_volume, p.sum() * grid.cell_volume
        rec["mass"].append(max(abs(mq - m_q0), abs(mp - m_p0)))

    _solve_many([q0, p0], grid, drift, g2, t0, t_end, n_steps, time_kind, save_every, callback=cb)
    times = np.array(rec["t"])
    return make_path("grid", sampler, times, np.array(rec["kl"]), np.array(rec["fi"]), schedule.g2(times),
                     mass_error=float(max(rec["mass"])), extra={"grid_shape": list(grid.shape),
                                                                "n_steps": n_steps})
