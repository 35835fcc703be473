"""Fokker-Planck grid solver (1-D and 2-D) for densities moved by reverse-time diffusion dynamics.

Dynamics (forward-time convention, integrated from t0 DOWN to t_end < t0):
    dx = drift(x, t) dt + sqrt(g2(t)) dw_bar
e.g. reverse SDE: drift = f x - g^2 s(x, t), g2 = g^2;  probability-flow ODE: drift = f x - 1/2 g^2 s, g2 = 0.
In reverse time s = t0 - t the density solves  d_s q = div(drift q) + 1/2 g2 Laplacian(q)  (well posed).

Scheme (per step t_n -> t_{n+1}, Strang splitting):
  1. diffusion over [t_n, t_mid]: exact exponential of the cell-centred 3-point Neumann Laplacian (DCT-II);
  2. advection: conservative semi-Lagrangian remap -- departure points of cell edges by RK4 along the
     characteristics (1-D: drift at t_n, t_mid, t_{n+1}; 2-D: frozen at t_mid; cubic interpolation of the drift
     table), new cell mass = difference of a monotone cubic Hermite interpolant of the cumulative mass with
     4th-order (PPM) slopes limited to the Fritsch-Carlson region (2-D: dimensional splitting x(h/2) y(h) x(h/2),
     each sweep on point values across it -- _across -- so that it is 4th order when the drift varies across);
  3. diffusion over [t_mid, t_{n+1}].
Backends (issue 22): the compiled loop (theory.fp_compiled; 1-D: a whole block of steps per call, 2-D: compiled
sweeps) or the plain numpy loop of the same scheme (THEORY_BACKEND=numpy); they agree to round-off.
The state is cell averages (input point values are converted to 4th order, and back for the KL/Fisher
quadrature).  evolve_pair uses a schedule-aware time grid (theory.timegrid.schedule_time_grid: half geometric in
t, half uniform in the added noise variance, where KL and Fisher change fastest), Simpson for the Fisher
integral in that variable, and (SDE) Richardson extrapolation of KL and F from n and n/2 steps.
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

import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.fft import dct, dctn, idct, idctn

from .fp_diagnostics import block_diagnostics, log_p_many
from .results import KLPath, make_path
from .schedules import Schedule
from .timegrid import FisherQuadrature, integrate_half_g2_fisher, psi_table, schedule_time_grid, time_grid

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


def _edge_slopes(delta: np.ndarray) -> np.ndarray:
    """Slopes of the cumulative mass at the n+1 cell edges from the n cell averages delta (last axis).

    Interior: the 4th-order PPM edge value (-d[i-2] + 7 d[i-1] + 7 d[i] - d[i+1]) / 12 (3rd order next to the
    walls), limited to [0, 3 min(d[i-1], d[i])] -- the Fritsch-Carlson region in which the cubic Hermite interpolant
    of the cumulative mass is monotone, i.e. the reconstructed density stays >= 0."""
    d = np.empty(delta.shape[:-1] + (delta.shape[-1] + 1,))
    d1, d2 = delta[..., :-1], delta[..., 1:]
    e = 0.5 * (d1 + d2)
    e[..., 1:-1] = (7.0 * (delta[..., 1:-2] + delta[..., 2:-1]) - delta[..., :-3] - delta[..., 3:]) / 12.0
    e[..., 0] = (2.0 * delta[..., 0] + 5.0 * delta[..., 1] - delta[..., 2]) / 6.0
    e[..., -1] = (2.0 * delta[..., -1] + 5.0 * delta[..., -2] - delta[..., -3]) / 6.0
    d[..., 1:-1] = np.minimum(np.maximum(e, 0.0), 3.0 * np.minimum(d1, d2))  # (np.clip's wrapper is slow)
    d[..., 0] = delta[..., 0]
    d[..., -1] = delta[..., -1]
    return d


def _edge_data(delta: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slopes m, second derivatives g, ok) of the cumulative mass at the n+1 edges from the cell averages delta
    (last axis).  Where the 4th-order PPM edge value is inside the limiter's region (no limiting: the density is
    resolved there) and at least 3 cells from a wall (ok), m is the 6th-order edge value (37 (d[i-1] + d[i])
    - 8 (d[i-2] + d[i+1]) + d[i-3] + d[i+2]) / 60 and g the 4th-order edge derivative (d[i-2] - 15 d[i-1]
    + 15 d[i] - d[i+1]) / (12 h), for the quintic Hermite of _remap_lines; elsewhere m = _edge_slopes, g = 0."""
    m = _edge_slopes(delta)
    n = delta.shape[-1]
    g = np.zeros_like(m)
    ok = np.zeros(m.shape, dtype=bool)
    if n >= 7:
        a = delta
        am2, am1, a0, ap1 = a[..., 1:n - 4], a[..., 2:n - 3], a[..., 3:n - 2], a[..., 4:n - 1]   # edges 3 .. n-3
        e = (7.0 * (am1 + a0) - am2 - ap1) / 12.0
        m6 = (37.0 * (am1 + a0) - 8.0 * (am2 + ap1) + (a[..., 0:n - 5] + a[..., 5:n])) / 60.0
        okk = (e >= 0.0) & (e <= 3.0 * np.minimum(am1, a0)) & (m6 >= 0.0)
        ok[..., 3:n - 2] = okk
        m[..., 3:n - 2] = np.where(okk, m6, m[..., 3:n - 2])
        g[..., 3:n - 2] = np.where(okk, (am2 - 15.0 * am1 + 15.0 * a0 - ap1) / (12.0 * h), 0.0)
    return m, g, ok


def _remap_lines(rho: np.ndarray, dep: np.ndarray, lo: float, h: float) -> np.ndarray:
    """Conservative remap along the last axis: new mass in [e_i, e_i+1] = C(dep_i+1) - C(dep_i), C the interpolant
    of the cumulative mass: on an interval whose two edges are ok (_edge_data: resolved density) the quintic
    Hermite with 6th-order slopes and 4th-order second derivatives (density error O(h^5); the cubic's O(h^3)
    pointwise error, summed over many steps, limited narrow cases at ~1e-5 of KL(t0)), elsewhere the monotone cubic
    Hermite with the limited 4th-order slopes; the values are then made non-decreasing (new masses >= 0).  dep
    may have fewer leading axes than rho (then it is shared: e.g. one set of departure points for a stack of
    densities)."""
    n = rho.shape[-1]
    C = np.zeros(rho.shape[:-1] + (n + 1,))
    np.cumsum(rho * h, axis=-1, out=C[..., 1:])
    d, g, ok = _edge_data(rho, h)
    X = np.maximum.accumulate(np.minimum(np.maximum(dep, lo), lo + n * h), axis=-1)
    u = (X - lo) / h
    k = np.minimum(u.astype(np.intp), n - 1)          # u >= 0: truncation is floor
    s = u - k
    if dep.ndim == 1:                                  # shared departure points: plain fancy indexing
        take = lambda a, kk: a[..., kk]                # noqa: E731
    else:                                              # per-line departure points: flat indices (take_along_axis
        lines = int(np.prod(dep.shape[:-1]))           # builds index grids and costs ~3x more)
        stack = int(np.prod(rho.shape[:rho.ndim - dep.ndim]))
        flat = (np.arange(lines)[:, None] * (n + 1)).ravel()
        take = lambda a, kk: a.reshape(stack, -1)[:, (flat[:, None] + kk.reshape(lines, n + 1)).ravel()] \
            .reshape(C.shape)                          # noqa: E731
    c0, c1, m0, m1, g0, g1 = take(C, k), take(C, k + 1), take(d, k), take(d, k + 1), take(g, k), take(g, k + 1)
    quint = take(ok, k) & take(ok, k + 1)
    s2 = s * s
    s3 = s2 * s
    val = (2 * s3 - 3 * s2 + 1) * c0 + (s3 - 2 * s2 + s) * h * m0 + (3 * s2 - 2 * s3) * c1 + (s3 - s2) * h * m1
    if quint.any():
        s4, s5 = s3 * s, s3 * s2
        vq = (c0 + (10 * s3 - 15 * s4 + 6 * s5) * (c1 - c0) + h * (m0 * (s - 6 * s3 + 8 * s4 - 3 * s5)
              + m1 * (-4 * s3 + 7 * s4 - 3 * s5)) + 0.5 * h * h * (g0 * (s2 - 3 * s3 + 3 * s4 - s5)
                                                                    + g1 * (s3 - 2 * s4 + s5)))
        val = np.where(quint, vq, val)
    val[..., 0] = 0.0
    val[..., -1] = C[..., -1]
    val = np.maximum.accumulate(val, axis=-1)
    return np.diff(val, axis=-1) / h


def _departure(edges: np.ndarray, vel: np.ndarray, ds: float, vel_m: Optional[np.ndarray] = None,
               vel_e: Optional[np.ndarray] = None) -> np.ndarray:
    """RK4 for dX/dsigma = drift(X, sigma) over duration ds from the edges, drift tabulated at the edges at the
    start (vel), middle (vel_m, default vel) and end (vel_e, default vel_m) of the step; cubic interpolation."""
    lo, h = edges[0], edges[1] - edges[0]
    n = edges.size - 1

    def v(X: np.ndarray, vel: np.ndarray) -> np.ndarray:
        # 4-point (cubic Lagrange) interpolation of the tabulated drift, O(h^4)
        u = np.minimum(np.maximum((X - lo) * (1.0 / h), 0.0), n)
        k = np.minimum(np.maximum(u.astype(np.intp), 1), n - 2)  # u >= 0: truncation is floor
        w = u - k
        if vel.ndim == 1:
            f0, f1, f2, f3 = vel[k - 1], vel[k], vel[k + 1], vel[k + 2]
        else:  # flat indices per line (cheaper than take_along_axis)
            flat = k + (np.arange(int(np.prod(vel.shape[:-1]))) * vel.shape[-1]).reshape(vel.shape[:-1] + (1,))
            vf = vel.ravel()
            f0, f1, f2, f3 = vf[flat - 1], vf[flat], vf[flat + 1], vf[flat + 2]
        wm, wp, w2 = w - 1, w + 1, w - 2
        return (wp * wm * w2 * f1 - wp * w * w2 * f2) * 0.5 + (wp * w * wm * f3 - w * wm * w2 * f0) * (1.0 / 6.0)

    X0 = np.broadcast_to(edges, vel.shape)
    vm = vel if vel_m is None else vel_m
    ve = vm if vel_e is None else vel_e
    k1 = vel
    k2 = v(X0 + 0.5 * ds * k1, vm)
    k3 = v(X0 + 0.5 * ds * k2, vm)
    k4 = v(X0 + ds * k3, ve)
    return X0 + ds / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def _smooth(rho: np.ndarray, c: float) -> np.ndarray:
    """rho + c * (second difference along every axis), edge values reflected: c = +1/24 maps point values to cell
    averages, c = -1/24 cell averages to point values (both to O(h^4))."""
    if rho.ndim == 1:
        lap = np.empty_like(rho)
        lap[1:-1] = rho[:-2] - 2.0 * rho[1:-1] + rho[2:]
        lap[0] = rho[1] - rho[0]
        lap[-1] = rho[-2] - rho[-1]
        return rho + c * lap
    out = rho.copy()
    for ax in range(rho.ndim):
        r = np.moveaxis(rho, ax, -1)
        o = np.moveaxis(out, ax, -1)
        lap = np.empty_like(r)
        lap[..., 1:-1] = r[..., :-2] - 2.0 * r[..., 1:-1] + r[..., 2:]
        lap[..., 0] = r[..., 1] - r[..., 0]
        lap[..., -1] = r[..., -2] - r[..., -1]
        o += c * lap
    return out


def _avg_factors(n: int) -> np.ndarray:
    """DCT-II eigenvalues 1 - sin^2(pi k / 2n) / 6 of r -> r + (1/24) (second difference, edges reflected): the
    4th-order map from point values to cell averages along an axis, diagonal in the DCT-II basis."""
    return 1.0 - np.sin(np.pi * np.arange(n) / (2 * n)) ** 2 / 6.0


def _to_points_axis(R: np.ndarray, axis: int) -> np.ndarray:
    """Cell averages -> point values along one axis: the exact inverse of _to_averages_axis (a DCT-II solve, so a
    round trip is the identity and repeated sweeps add no error).  Not clipped: tiny negatives in the far tails go
    into the sweep (whose new masses are >= 0 and conserve each line's mass); the step clips once, at its end."""
    return idct(dct(R, type=2, axis=axis, norm="ortho")
                / _avg_factors(R.shape[axis]).reshape((-1,) + (1,) * (R.ndim - 1 - axis)),
                type=2, axis=axis, norm="ortho")


def _to_averages_axis(R: np.ndarray, axis: int) -> np.ndarray:
    """Point values -> cell averages along one axis, r + (1/24) (second difference, edges reflected): positive for
    r >= 0 and mass-preserving."""
    r = np.moveaxis(R, axis, -1)
    lap = np.empty_like(r)
    lap[..., 1:-1] = r[..., :-2] - 2.0 * r[..., 1:-1] + r[..., 2:]
    lap[..., 0] = r[..., 1] - r[..., 0]
    lap[..., -1] = r[..., -2] - r[..., -1]
    return np.moveaxis(r + lap * (1.0 / 24.0), -1, axis)


def _clip_restore(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """max(out, 0) rescaled so that each density of the stack has the mass of ref."""
    axes = tuple(range(1, ref.ndim))
    mass = ref.sum(axis=axes)
    np.maximum(out, 0.0, out=out)
    total = out.sum(axis=axes)
    scale = np.where(total > 0, mass / np.where(total > 0, total, 1.0), 1.0)
    return out * scale.reshape((-1,) + (1,) * len(axes))


def _clip_lines(R: np.ndarray, axis: int) -> np.ndarray:
    """Every line of R along axis: negatives clipped, the line's sum restored (a line summing to < 0, round-off in
    the far tails, to 0)."""
    before = np.maximum(R.sum(axis=axis, keepdims=True), 0.0)
    out = np.maximum(R, 0.0)
    after = out.sum(axis=axis, keepdims=True)
    return out * np.where(after > 0, before / np.where(after > 0, after, 1.0), 1.0)


def to_cell_averages(values: np.ndarray) -> np.ndarray:
    """Point values at cell centres -> cell averages (4th order), clipped at 0."""
    return np.maximum(_smooth(np.asarray(values, dtype=np.float64), 1.0 / 24.0), 0.0)


def to_point_values(avg: np.ndarray) -> np.ndarray:
    """Cell averages -> point values at cell centres (4th order), clipped at 0."""
    return np.maximum(_smooth(np.asarray(avg, dtype=np.float64), -1.0 / 24.0), 0.0)


def _heat_factors(n: int, h: float, spectral: bool = True) -> np.ndarray:
    """Eigenvalues -(pi k / (n h))^2 of the Neumann Laplacian on the cos(pi k x / L) modes: the DCT-II of the
    cell averages holds exactly the cell averages of those modes, so exp(D lam) is the exact heat semigroup on
    cell averages (spectral in h; the 3-point -(2/h)^2 sin^2(pi k / 2n) is second order and limits the final KL
    at 1e-4 on narrow mixtures).  ``spectral=False`` keeps the 3-point operator: the second-order Fisher that is
    differenced from both grid densities (no exact log p, e.g. a learned score) is consistent with it, and on
    coarse grids that consistency matters more than the heat step's order."""
    if not spectral:
        return -(2.0 / h) ** 2 * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2
    return -(np.pi * np.arange(n) / (n * h)) ** 2


_DCT_MATRIX_MAX = 256   # measured: 15 us vs 47 us at 100 cells, equal near 250, 2.4 ms vs 38 us at 800
_DCT_CACHE: dict = {}


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows: modes), cached per size."""
    M = _DCT_CACHE.get(n)
    if M is None:
        M = dct(np.eye(n), type=2, axis=0, norm="ortho")
        if len(_DCT_CACHE) > 8:
            _DCT_CACHE.clear()
        _DCT_CACHE[n] = M
    return M


def _diffuse(rho: np.ndarray, lams: Sequence[np.ndarray], D: float, clip: bool = True) -> np.ndarray:
    """exp(D * Laplacian) on a stack of densities rho [m, *grid] with Neumann boundaries, via DCT-II along every
    grid axis (all m at once); clip: negatives clipped and masses restored (below)."""
    if D <= 0:
        return rho
    axes = tuple(range(1, rho.ndim))
    fac = np.exp(D * lams[0])
    if len(axes) == 1 and rho.shape[-1] <= _DCT_MATRIX_MAX:
        M = _dct_matrix(rho.shape[-1])                    # small 1-D grids: two matrix products beat the FFT's
        out = ((rho @ M.T) * fac) @ M                     # set-up cost (same transform to round-off)
    elif len(axes) == 1:
        out = idct(dct(rho, type=2, axis=1, norm="ortho") * fac, type=2, axis=1, norm="ortho")
    else:
        fac = fac[:, None] * np.exp(D * lams[1])[None, :]
        out = idctn(dctn(rho, type=2, axes=axes, norm="ortho") * fac, type=2, axes=axes, norm="ortho")
    if not clip:
        return out
    # the spectral heat kernel is not positivity preserving to round-off: clip the tiny undershoots in the far
    # tails and restore each density's mass exactly (the k = 0 mode is untouched by the heat step)
    mass = rho.sum(axis=axes)
    np.maximum(out, 0.0, out=out)
    total = out.sum(axis=axes)
    scale = np.where(total > 0, mass / np.where(total > 0, total, 1.0), 1.0)
    return out * scale.reshape((-1,) + (1,) * len(axes))


def _g2_integral(g2: Optional[Callable[[float], float]], ta: float, tb: float) -> float:
    """int 1/2 g2 over [tb, ta] (absolute), 5-point Gauss-Legendre."""
    if g2 is None:
        return 0.0
    mid, half = 0.5 * (ta + tb), 0.5 * abs(ta - tb)
    nodes = mid + half * _GL_X
    vec = getattr(g2, "vectorized", None)      # reverse_drift's g2 takes all five nodes at once
    vals = np.asarray(vec(nodes), dtype=np.float64) if vec is not None else np.array([float(g2(t)) for t in nodes])
    return 0.5 * half * float(_GL_W @ vals)


class _Stepper:
    """One Strang step of the scheme in the module docstring, for a Grid1D or Grid2D."""

    def __init__(self, grid, drift: Drift, g2: Optional[Callable[[float], float]], spectral: bool = True,
                 compiled: bool = False):
        self.grid, self.drift, self.g2, self.compiled = grid, drift, g2, compiled
        self._cache: dict = {}
        if grid.dim == 1:
            self.lams = [_heat_factors(grid.n, grid.h, spectral)]
            self.e = [grid.edges()]
            self.pts = [grid.edges()[:, None]]
        else:
            self.lams = [_heat_factors(grid.shape[a], grid.spacing[a], spectral) for a in range(2)]
            self.e = [grid.axis_edges(0), grid.axis_edges(1)]
            ex, cy = np.meshgrid(grid.axis_edges(0), grid.axis_centers(1), indexing="ij")
            cx, ey = np.meshgrid(grid.axis_centers(0), grid.axis_edges(1), indexing="ij")
            self.pts = [np.stack([ex.ravel(), cy.ravel()], 1), np.stack([cx.ravel(), ey.ravel()], 1)]

    def _vel(self, a: int, t: float) -> np.ndarray:
        key = (a, t)
        if key not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            v = np.asarray(self.drift(self.pts[a], t), dtype=np.float64)[:, a]
            if self.grid.dim == 2:
                nx, ny = self.grid.shape
                v = np.ascontiguousarray(v.reshape(nx + 1, ny).T) if a == 0 else v.reshape(nx, ny + 1)
            self._cache[key] = v
        return self._cache[key]

    def step(self, R: np.ndarray, ta: float, tb: float, D: Optional[tuple[float, float]] = None,
             V2: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        """One Strang step of the stack R [m, *grid] of densities from ta to tb (D: the two half steps' int 1/2 g2;
        V2: the 2-D drift tables for the step, [ny, nx+1] and [nx, ny+1]: the mean of the drift at ta and tb; both
        computed here when not given)."""
        tm = 0.5 * (ta + tb)
        ds = ta - tb
        D1, D2 = (_g2_integral(self.g2, ta, tm), _g2_integral(self.g2, tm, tb)) if D is None else D
        grid = self.grid
        if grid.dim == 1:
            R = _diffuse(R, self.lams, D1)
            vb, vm, va = (self._vel(0, t) for t in (tb, tm, ta))
            dep = _departure(self.e[0], vb, ds, vm, va)
            R = _remap_lines(R, dep, grid.lo, grid.h)
            return _diffuse(R, self.lams, D2)
        else:
            if V2 is None:   # the drift frozen at the mean of its values at the step's ends (second order)
                vx = 0.5 * (self._vel(0, ta) + self._vel(0, tb))
                vy = 0.5 * (self._vel(1, ta) + self._vel(1, tb))
            else:
                vx, vy = V2
            hx, hy = grid.spacing
            if self.compiled:
                from .fp_compiled import sweep_cols, sweep_rows

                vx, vy = np.ascontiguousarray(vx), np.ascontiguousarray(vy)

                def sx(r: np.ndarray) -> np.ndarray:
                    r = np.ascontiguousarray(r)
                    sweep_cols(r, vx, float(grid.lo[0]), hx, 0.5 * ds)
                    return r

                def sy(r: np.ndarray) -> np.ndarray:
                    r = np.ascontiguousarray(r)
                    sweep_rows(r, vy, float(grid.lo[1]), hy, ds)
                    return r
            else:
                depx = _departure(self.e[0], np.ascontiguousarray(vx), 0.5 * ds)
                depy = _departure(self.e[1], vy, ds)

                def sx(r: np.ndarray) -> np.ndarray:
                    return np.swapaxes(_remap_lines(np.swapaxes(r, 1, 2), depx, grid.lo[0], hx), 1, 2)

                def sy(r: np.ndarray) -> np.ndarray:
                    return _remap_lines(r, depy, grid.lo[1], hy)
            # x(ds/2) y(ds) x(ds/2), each sweep on point values across it (the averages turned into point values along
            # the other axis, the exact inverse of the 4th-order averaging map, and back afterwards: remapping averages
            # across with the drift at the line's centre is second order when the drift varies across).  Negatives
            # (far tails) are clipped line by line, each line's mass kept, where a sweep's input could have them (a
            # sweep of negative values can add mass); the heat steps are not clipped inside the step, the state once
            # at its end.  fp_compiled.run_pair_2d does the same operations line by line, in this order up to
            # operations on different axes, which commute.
            R = _diffuse(R, self.lams, D1, clip=False)
            R = _clip_lines(_to_points_axis(R, 2), 1)
            R = sx(R)
            R = _to_averages_axis(_clip_lines(_to_points_axis(R, 1), 1), 2)
            R = sy(R)
            R = _to_averages_axis(_clip_lines(_to_points_axis(R, 2), 2), 1)
            R = _to_averages_axis(sx(R), 2)
            R = _diffuse(R, self.lams, D2, clip=False)
            return _clip_restore(R, R)


BACKENDS = ("auto", "numba", "numpy")
_BLOCK_BYTES = 16 * 2 ** 20     # states (and 1-D drift tables) held at once per block of steps


def default_backend() -> str:
    """THEORY_BACKEND (auto | numba | numpy; default auto: the compiled loop where it applies)."""
    b = os.environ.get("THEORY_BACKEND", "auto").strip().lower() or "auto"
    if b not in BACKENDS:
        raise ValueError(f"THEORY_BACKEND must be one of {', '.join(BACKENDS)}, got {b!r}")
    return b


def compiled_plan(grid, m: int, backend: Optional[str] = None):
    """The FFT plans of the compiled loop (one per axis), or None where the plain numpy loop runs: backend "numpy",
    numba not importable, a stack other than a pair, or a cell count with a prime factor above 31.  backend "numba"
    raises instead of falling back."""
    backend = backend or default_backend()
    if backend == "numpy":
        return None
    why = None
    if m != 2:
        why = "the compiled loop runs pairs of densities"
    else:
        try:
            from .fp_fft import plan
        except ImportError as exc:  # pragma: no cover - numba is a dependency
            why = f"numba is not available ({exc})"
        else:
            pls = [plan(int(n)) for n in grid.shape]
            if all(p is not None for p in pls):
                return pls
            why = f"{'x'.join(map(str, grid.shape))} cells: a prime factor above 31"
    if backend == "numba":
        raise ValueError(f"backend numba: {why}")
    return None


def _g2_integrals(g2, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int 1/2 g2 over the first and second half of every step (5-point Gauss-Legendre, as _g2_integral)."""
    n = ts.size - 1
    if g2 is None:
        return np.zeros(n), np.zeros(n)
    tm = 0.5 * (ts[:-1] + ts[1:])
    both = _g2_half_integrals(g2, np.concatenate([ts[:-1], tm]), np.concatenate([tm, ts[1:]]))
    return both[:n], both[n:]


def _g2_half_integrals(g2, ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """int 1/2 g2 over [tb, ta] (absolute) for every pair, 5-point Gauss-Legendre, all nodes in one call."""
    mid, half = 0.5 * (ta + tb), 0.5 * np.abs(ta - tb)
    nodes = mid[:, None] + half[:, None] * _GL_X[None, :]
    vec = getattr(g2, "vectorized", None)
    vals = np.asarray(vec(nodes), dtype=np.float64) if vec is not None \
        else np.array([[float(g2(t)) for t in row] for row in nodes])
    return 0.5 * half * (vals @ _GL_W)


def _drift_table(drift: Drift, pts: np.ndarray, times: np.ndarray, axis: int) -> np.ndarray:
    """drift(pts, t)[:, axis] for every time, [m, n]: drift.many(pts, times) in one call when it exists."""
    many = getattr(drift, "many", None)
    if many is not None:
        return np.ascontiguousarray(np.asarray(many(pts, times), dtype=np.float64)[:, :, axis])
    return np.stack([np.asarray(drift(pts, float(t)), dtype=np.float64)[:, axis] for t in times])


def _plain_blocks(rhos: np.ndarray, grid, drift: Drift, g2, ts: np.ndarray, spectral: bool, size: int,
                  compiled: bool = False):
    """_blocks by _Stepper.step, one Python call per step (compiled: the 2-D sweeps of theory.fp_compiled)."""
    stepper = _Stepper(grid, drift, g2, spectral, compiled)
    n_steps = ts.size - 1
    D1, D2 = _g2_integrals(g2, ts) if compiled else (None, None)
    many = compiled and grid.dim == 2 and getattr(drift, "many", None) is not None
    if many:   # the drift tables of a block (at its step ends) in one batched call each
        nx, ny = grid.shape
        size = max(1, min(size, _BLOCK_BYTES // (16 * (nx + 1) * (ny + 1))))
    for j0 in range(0, n_steps, size):
        out = np.empty((min(size, n_steps - j0),) + rhos.shape)
        if many:
            tt = ts[j0:j0 + out.shape[0] + 1]
            VX = _drift_table(drift, stepper.pts[0], tt, 0).reshape(-1, nx + 1, ny).transpose(0, 2, 1)
            VY = _drift_table(drift, stepper.pts[1], tt, 1).reshape(-1, nx, ny + 1)
            VX, VY = 0.5 * (VX[:-1] + VX[1:]), 0.5 * (VY[:-1] + VY[1:])
        for k in range(out.shape[0]):
            j = j0 + k
            rhos = stepper.step(rhos, ts[j], ts[j + 1], None if D1 is None else (float(D1[j]), float(D2[j])),
                                (VX[k], VY[k]) if many else None)
            out[k] = rhos
        yield j0, out


def _blocks(rhos: np.ndarray, grid, drift: Drift, g2, ts: np.ndarray, spectral: bool, backend: Optional[str]):
    """Yield (j0, states): the states [k, m, *grid] after steps j0 .. j0+k-1 of the stack rhos, block by block
    (the compiled loop runs a whole block in one call; the plain loop steps in Python)."""
    n_steps = ts.size - 1
    per_step = rhos.nbytes + (3 * (grid.n + 1) * 8 if grid.dim == 1 else 0)   # states (+ 1-D drift rows)
    size = max(1, min(n_steps, _BLOCK_BYTES // max(per_step, 1)))
    pl = compiled_plan(grid, rhos.shape[0], backend)
    if pl is None:
        yield from _plain_blocks(rhos, grid, drift, g2, ts, spectral, size)
        return
    D1, D2 = _g2_integrals(g2, ts)
    R = np.ascontiguousarray(rhos, dtype=np.float64).copy()
    if grid.dim == 2:  # per step: scipy's DCTs (batched over lines) and the compiled sweeps
        yield from _plain_blocks(R, grid, drift, g2, ts, spectral, size, compiled=True)
        return
    from .fp_compiled import run_1d

    lam = _heat_factors(grid.n, grid.h, spectral)
    pts = grid.edges()[:, None]
    for j0 in range(0, n_steps, size):
        j1 = min(n_steps, j0 + size)
        tt = np.empty(2 * (j1 - j0) + 1)
        tt[0::2] = ts[j0:j1 + 1]
        tt[1::2] = 0.5 * (ts[j0:j1] + ts[j0 + 1:j1 + 1])
        V = _drift_table(drift, pts, tt, 0)
        out = np.empty((j1 - j0,) + R.shape)
        run_1d(R, D1[j0:j1], D2[j0:j1], ts[j0:j1] - ts[j0 + 1:j1 + 1], V, lam, spectral, float(grid.lo), float(grid.h),
               *pl[0], out)
        yield j0, out


def _solve_many(densities0: list[np.ndarray], grid, drift: Drift, diffusion_g2, t0: float, t_end: float,
                n_steps: int, time_kind: str, save_every: int, callback=None, spectral: bool = True,
                backend: Optional[str] = None, block_callback=None):
    """Step the stack from t0 to t_end; save (or pass to callback(t, rhos)) every save_every-th state, or pass
    every block of states to block_callback(i0, times [k], states [k, m, *grid]) (time indices i0 .. i0+k-1)."""
    if grid.dim not in (1, 2):
        raise ValueError("the grid solver supports 1-D and 2-D only")
    ts = np.asarray(time_kind, dtype=np.float64) if not isinstance(time_kind, str) \
        else time_grid(t0, t_end, n_steps, time_kind)
    n_steps = ts.size - 1
    rhos = np.stack([np.array(r, dtype=np.float64).reshape(grid.shape) for r in densities0])
    if np.any(rhos < 0) or not np.all(np.isfinite(rhos)):
        raise ValueError("initial densities must be finite and non-negative")
    saved_t, saved = [ts[0]], [[r.copy() for r in rhos]]
    if callback is not None and block_callback is None:
        callback(ts[0], rhos)
    for j0, states in _blocks(rhos, grid, drift, diffusion_g2, ts, spectral, backend):
        if block_callback is not None:   # the first block starts with the initial state
            i0 = j0 + 1 if j0 else 0
            block_callback(i0, ts[i0:j0 + 1 + states.shape[0]], np.concatenate([rhos[None], states]) if j0 == 0
                           else states)
            continue
        for k in range(states.shape[0]):
            n = j0 + k
            if (n + 1) % save_every == 0 or n + 1 == n_steps:
                saved_t.append(ts[n + 1])
                if callback is not None:
                    callback(ts[n + 1], states[k])
                else:
                    saved.append([r.copy() for r in states[k]])
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

    score_many = getattr(score, "many", None)
    if score_many is not None:
        def many(x: np.ndarray, times: np.ndarray) -> np.ndarray:
            t = np.asarray(times, dtype=np.float64)
            f, g2t = np.asarray(schedule.f(t))[:, None, None], np.asarray(schedule.g2(t))[:, None, None]
            return f * x[None] - lam * g2t * np.asarray(score_many(x, t))

        drift.many = many

    g2 = None
    if sampler == "sde":
        def g2(t: float) -> float:
            return float(schedule.g2(t))

        g2.vectorized = schedule.g2
    return drift, g2


def _evolve_once(q0, p0, grid, drift, g2, ts, save_every, log_p=None, backend=None):
    """(times, KL, F, mass error) of the pair moved from ts[0] through ts, diagnostics block by block
    (theory.fp_diagnostics.block_diagnostics: with log_p, F of log q - log p_exact less p's resolved grid error)."""
    masses0 = np.array([q0.sum(), p0.sum()]) * grid.cell_volume
    rec: dict[str, list] = {"t": [], "kl": [], "fi": [], "mass": []}

    def blk(i0: int, times: np.ndarray, states: np.ndarray) -> None:
        if save_every != 1:
            idx = [k for k in range(len(times)) if (i0 + k) % save_every == 0 or i0 + k == ts.size - 1]
            times, states = times[idx], states[idx]
        kl, fi, mass = block_diagnostics(states, times, grid, log_p, masses0)
        for k, v in (("t", times), ("kl", kl), ("fi", fi), ("mass", mass)):
            rec[k].extend(np.asarray(v).tolist())

    # the spectral heat step with the exact-p Fisher; the 3-point one with the two-grid Fisher it is consistent with
    _solve_many([q0, p0], grid, drift, g2, ts[0], ts[-1], ts.size - 1, ts, save_every, spectral=log_p is not None,
                backend=backend, block_callback=blk)
    return np.array(rec["t"]), np.array(rec["kl"]), np.array(rec["fi"]), float(max(rec["mass"]))


def _evolve_runs(q0, p0, grid, drift, g2, ts, ks, log_p=None, backend=None, thin1: bool = False) -> dict:
    """{k: (times, KL, F, mass error)} of the pair moved through ts[::k] for every k in ks (_evolve_once of each);
    thin1: the run k = 1 reports every 2nd time only (ts[::2]: all that Richardson extrapolation uses).
    With the exact log p, batched tables and the compiled loop, the diagnostics are fused into the compiled loop
    (nothing stored, and skipped where thin1 drops them).  1-D: one set of tables for all runs (drift on the edges
    at every time of ts and at every run's step midpoints, log p at the cell centres at the reported times) and
    each run one compiled call (fp_compiled.run_pair_1d).  2-D: _runs_2d."""
    fused = (grid.dim in (1, 2) and log_p is not None and getattr(log_p, "many", None) is not None
             and getattr(drift, "many", None) is not None)
    pl = compiled_plan(grid, 2, backend) if fused else None
    if pl is None:
        out = {k: _evolve_once(q0, p0, grid, drift, g2, ts[::k], 1, log_p, backend) for k in ks}
        if thin1 and 1 in out:
            t, kl, fi, mass = out[1]
            out[1] = (t[::2], kl[::2], fi[::2], mass)
        return out
    base = min(ks)                     # tables on ts[::base] (the error estimate's coarse-space run: every 2nd)
    ts, rel = ts[::base], [k // base for k in ks]
    dstride = [2 if thin1 and k == 1 else 1 for k in ks]
    L = min(r * d for r, d in zip(rel, dstride))       # log p is needed at ts[::L] only
    if grid.dim == 2:
        return _runs_2d(q0, p0, grid, drift, g2, ts, ks, rel, dstride, L, log_p, pl)
    from .fp_compiled import run_pair_1d

    n = ts.size - 1
    subs = [ts[::k] for k in rel]
    mids = [0.5 * (s[:-1] + s[1:]) for s in subs]
    V = _drift_table(drift, grid.edges()[:, None], np.concatenate([ts] + mids), 0)
    LP = np.ascontiguousarray(log_p_many(log_p, grid.points(), ts[::L]))
    ta = np.concatenate([np.concatenate([s[:-1], m]) for s, m in zip(subs, mids)])
    tb = np.concatenate([np.concatenate([m, s[1:]]) for s, m in zip(subs, mids)])
    Dall = _g2_half_integrals(g2, ta, tb) if g2 is not None else np.zeros(ta.size)
    lam = _heat_factors(grid.n, grid.h, True)
    masses0 = np.array([q0.sum(), p0.sum()]) * grid.cell_volume
    out, voff, doff = {}, n + 1, 0
    for k0, k, d, s in zip(ks, rel, dstride, subs):
        m = s.size - 1
        rows = np.arange(0, m * k + 1, k)
        vi = np.empty(2 * m + 1, np.int64)
        vi[0::2] = rows
        vi[1::2] = voff + np.arange(m)
        R = np.array([q0, p0], dtype=np.float64)
        diag = np.empty((m // d + 1, 4))
        run_pair_1d(R, Dall[doff:doff + m], Dall[doff + m:doff + 2 * m], s[:-1] - s[1:], V, vi, LP, rows[::d] // L,
                    lam, True, float(grid.lo), float(grid.h), *pl[0], diag, d)
        voff += m
        doff += 2 * m
        out[k0] = (s[::d], diag[:, 0], diag[:, 1], float(np.abs(diag[:, 2:] - masses0[None, :]).max()))
    return out


def _runs_2d(q0, p0, grid, drift, g2, ts, ks, rel, dstride, L, log_p, plans) -> dict:
    """_evolve_runs in 2-D by fp_compiled.run_pair_2d: run ks[i] through ts[::rel[i]] (ts: the base times), its
    diagnostics every dstride[i]-th step.  Tables: the drift on the x- and y-edges at the step ends and log p at the
    centres at ts[::L]; one set shared by all runs when it fits in 4 x _BLOCK_BYTES, else per run and block of
    steps."""
    from .fp_compiled import run_pair_2d

    nx, ny = grid.shape
    hx, hy = grid.spacing
    N = nx * ny
    lamx, lamy = _heat_factors(nx, hx, True), _heat_factors(ny, hy, True)
    avx, avy = _avg_factors(nx), _avg_factors(ny)
    ex, cy = np.meshgrid(grid.axis_edges(0), grid.axis_centers(1), indexing="ij")
    cx, ey = np.meshgrid(grid.axis_centers(0), grid.axis_edges(1), indexing="ij")
    ptx, pty, ptc = np.stack([ex.ravel(), cy.ravel()], 1), np.stack([cx.ravel(), ey.ravel()], 1), grid.points()
    masses0 = np.array([q0.sum(), p0.sum()]) * grid.cell_volume
    per_time = 8 * ((nx + 1) * ny + nx * (ny + 1) + N)

    def tables(tt: np.ndarray, lstride: int):
        VX = np.ascontiguousarray(_drift_table(drift, ptx, tt, 0).reshape(-1, nx + 1, ny).transpose(0, 2, 1))
        VY = np.ascontiguousarray(_drift_table(drift, pty, tt, 1).reshape(-1, nx, ny + 1))
        return VX, VY, np.ascontiguousarray(log_p_many(log_p, ptc, tt[::lstride]))

    def run(R, tt, rows, VX, VY, LP, lrows, diag, d):
        m = rows.size - 1
        tm = 0.5 * (tt[:-1] + tt[1:])
        D = _g2_half_integrals(g2, np.concatenate([tt[:-1], tm]), np.concatenate([tm, tt[1:]])) if g2 is not None \
            else np.zeros(2 * m)
        run_pair_2d(R, D[:m], D[m:], tt[:-1] - tt[1:], VX, VY, LP, rows, lrows, lamx, lamy, avx, avy,
                    float(grid.lo[0]), hx, float(grid.lo[1]), hy, *plans[0], *plans[1], diag, d)

    shared = ts.size * per_time <= 4 * _BLOCK_BYTES
    if shared:
        VX, VY, LP = tables(ts, L)
    out = {}
    for k0, k, d in zip(ks, rel, dstride):
        s = ts[::k]
        n = s.size - 1
        R = np.array([q0, p0], dtype=np.float64)
        diag = np.empty((n // d + 1, 4))
        if shared:
            rows = np.arange(0, n * k + 1, k)
            run(R, s, rows, VX, VY, LP, rows[::d] // L, diag, d)
        else:
            size = max(d, (_BLOCK_BYTES // per_time - 1) // d * d)
            for j0 in range(0, n, size):
                j1 = min(n, j0 + size)
                bd = np.empty(((j1 - j0) // d + 1, 4))
                run(R, s[j0:j1 + 1], np.arange(j1 - j0 + 1), *tables(s[j0:j1 + 1], d), np.arange(bd.shape[0]), bd, d)
                diag[j0 // d:j0 // d + bd.shape[0]] = bd
        out[k0] = (s[::d], diag[:, 0], diag[:, 1], float(np.abs(diag[:, 2:] - masses0[None, :]).max()))
    return out


def _coarsen(grid, rho: np.ndarray):
    """The grid with half the cells per axis and the exact cell averages of rho on it (cell counts must be even)."""
    if grid.dim == 1:
        return Grid1D(grid.lo, grid.hi, grid.n // 2), 0.5 * (rho[0::2] + rho[1::2])
    nx, ny = grid.shape
    r = 0.25 * (rho[0::2, 0::2] + rho[1::2, 0::2] + rho[0::2, 1::2] + rho[1::2, 1::2])
    return Grid2D(grid.lo, grid.hi, (nx // 2, ny // 2)), r


def evolve_pair(q0: np.ndarray, p0: np.ndarray, grid, schedule: Schedule, score: Score, t0: float, t_end: float,
                sampler: str = "sde", n_steps: int = 400, time_kind: str = "auto", save_every: int = 1,
                richardson: Optional[bool] = None,
                log_p: Optional[Callable[[np.ndarray, float], np.ndarray]] = None,
                stiff_var: Optional[float] = None, error_estimate: bool = False,
                backend: Optional[str] = None) -> KLPath:
    """Evolve q and p from their t0 densities (values at the cell centres) under the same dynamics.

    Returns KL(tau), F(tau) and the identity residual at the output times.  time_kind "auto" (default) is
    schedule_time_grid (with stiff_var, the narrowest data variance, steps follow the drift's stiffness);
    "log"/"linear"/"both" or an explicit decreasing array of times also work.  richardson (default: on for the SDE
    when n_steps is even and save_every == 1): also run n_steps/2 steps and extrapolate KL and F at the common
    times, (4 fine - coarse) / 3, which removes the O(dt^2) Strang-splitting error (cost x1.5).

    log_p(x [n, d], t) -> [n]: the exact log-density of p_t (known when the score is exact).  Then
    F = sum q |grad(log q - log p)|^2 with fourth-order differences of log q - log p (only q comes from the grid);
    without it F is differenced from both grid densities at second order (learned scores).

    error_estimate (needs even cell counts, n_steps divisible by 4 with Richardson): extra["errors"] holds error
    estimates (meant as bounds) for kl_start, kl_end, fisher_integral and the residual: a time part
    |X(n) - X(n/2)| / 3 (with Richardson: X = the extrapolated value, X(n/2) extrapolated from n/2 and n/4 steps;
    exact for second order, generous for higher) plus a space part |X(N) - X(N/2)| (cells halved per axis, both on
    the n/2-step grid; covers any order >= 1); "limited_by" names the larger part of the residual's bound.  Cost: + a run at n/4 steps and one at half the cells and n/2 steps.

    backend: "auto" (default, or THEORY_BACKEND), "numba" (the compiled loop of theory.fp_compiled; an error
    where it does not apply) or "numpy" (the plain loop); both give the same results to round-off.  score.many(x,
    times) -> [m, n, d] and log_p.many(x, times) -> [m, n], when present, evaluate all times in one call."""
    drift, g2 = reverse_drift(schedule, score, sampler)
    q0 = to_cell_averages(np.asarray(q0, dtype=np.float64).reshape(grid.shape))
    p0 = to_cell_averages(np.asarray(p0, dtype=np.float64).reshape(grid.shape))
    psi = psi_table(schedule, t0, t_end, float(stiff_var)) if stiff_var is not None else None
    if isinstance(time_kind, str):
        ts = schedule_time_grid(schedule, t0, t_end, n_steps, stiff_var=stiff_var, psi=psi) if time_kind == "auto" \
            else time_grid(t0, t_end, n_steps, time_kind)
    else:
        ts = np.asarray(time_kind, dtype=np.float64)
    n_steps = ts.size - 1
    if richardson is None:
        richardson = sampler == "sde" and n_steps % 2 == 0 and save_every == 1 and n_steps >= 4
    if (richardson or error_estimate) and (n_steps % 2 or save_every != 1):
        raise ValueError("richardson and error_estimate need an even n_steps and save_every == 1")
    if richardson and error_estimate and n_steps % 4:
        raise ValueError("error_estimate with richardson needs n_steps divisible by 4")
    if error_estimate and any(c % 2 for c in grid.shape):
        raise ValueError("error_estimate needs an even number of cells per axis")
    ks = [1] + ([2] if richardson or error_estimate else []) + ([4] if richardson and error_estimate else [])
    runs = _evolve_runs(q0, p0, grid, drift, g2, ts, ks, log_p, backend, thin1=richardson) if save_every == 1 \
        else {1: _evolve_once(q0, p0, grid, drift, g2, ts, save_every, log_p, backend)}
    times, kl, fi, mass = runs[1]      # with Richardson: at ts[::2] only (all that the extrapolation uses)
    extra = {"grid_shape": list(grid.shape), "n_steps": n_steps, "richardson": bool(richardson)}

    if sampler == "sde":   # the product rule's tables once for all times; runs use every 1st, 2nd, 4th
        quad = FisherQuadrature(ts, schedule, t0, t_end, stiff_var=stiff_var, psi=psi)

    def fisher_int(tt: np.ndarray, ff: np.ndarray):
        """int 1/2 g^2 F at the times tt (timegrid.FisherQuadrature; from the table when tt = ts[::k])."""
        if sampler != "sde":
            return None
        k = (ts.size - 1) // max(tt.size - 1, 1)
        if k >= 1 and np.array_equal(ts[::k], tt):
            return quad.integral(ff, k)
        return integrate_half_g2_fisher(tt, ff, schedule, t0, t_end, stiff_var=stiff_var, psi=psi)

    fine = (kl[0], kl[-1], fisher_int(times, fi)) if not richardson else None
    if richardson or error_estimate:
        tc, klc, fic, mc = runs[2]
        mass = max(mass, mc)
        coarse_t = (klc[0], klc[-1], fisher_int(tc, fic))
    if richardson:
        kl, fi = (4.0 * kl - klc) / 3.0, (4.0 * fi - fic) / 3.0
    fint = fisher_int(times, fi)
    if error_estimate:
        names = ("kl_start", "kl_end", "fisher_integral")
        if richardson:  # error of the extrapolated values: compare with the extrapolation from n/2 and n/4 steps
            t4, kl4, fi4, m4 = runs[4]
            mass = max(mass, m4)
            kl2, fi2 = (4.0 * klc[::2] - kl4) / 3.0, (4.0 * fic[::2] - fi4) / 3.0
            now, before = (kl[0], kl[-1], fint), (kl2[0], kl2[-1], fisher_int(t4, fi2))
        else:
            now, before = fine, coarse_t
        gc, qc = _coarsen(grid, q0)
        _, pc = _coarsen(grid, p0)
        _, kls, fis, _ = _evolve_runs(qc, pc, gc, drift, g2, ts, [2], log_p, backend)[2]
        coarse_s = (kls[0], kls[-1], fisher_int(tc, fis))
        err_t = {k: abs(a - b) / 3.0 for k, a, b in zip(names, now, before) if a is not None}
        # space: the whole difference (covers any order >= 1; on a 2-D case /3 fell short: the spatial error of the
        # Fisher integral converged at less than second order between 100^2 and 300^2)
        err_s = {k: abs(a - b) for k, a, b in zip(names, coarse_t, coarse_s) if a is not None}
        err_t["kl_start"] = 0.0  # the start densities are the same for every step count
        errors = {k: err_t[k] + err_s[k] for k in err_t}
        res_t, res_s = sum(err_t.values()), sum(err_s.values())
        errors["residual"] = res_t + res_s
        errors["relative_residual"] = errors["residual"] / max(abs(float(kl[0])), 1e-300)
        errors["time_part"], errors["space_part"] = res_t, res_s
        errors["limited_by"] = "time steps" if res_t >= res_s else "cells"
        extra["errors"] = errors
    return make_path("grid", sampler, times, kl, fi, schedule.g2(times), fisher_integral=fint,
                     mass_error=mass, extra=extra)
