"""KL, Fisher divergence and mass of a block of solver states at once (the quadratures of theory.divergences applied
along a leading time axis: one set of array calls per block instead of one per time)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np


def to_point_values_stack(avg: np.ndarray, grid_ndim: int) -> np.ndarray:
    """Cell averages [..., *grid] -> point values (4th order: avg - (1/24) second difference per grid axis, edges
    reflected), clipped at 0 (fokker_planck.to_point_values on every leading index)."""
    out = avg.copy()
    for ax in range(avg.ndim - grid_ndim, avg.ndim):
        r = np.moveaxis(avg, ax, -1)
        o = np.moveaxis(out, ax, -1)
        lap = np.empty_like(r)
        lap[..., 1:-1] = r[..., :-2] - 2.0 * r[..., 1:-1] + r[..., 2:]
        lap[..., 0] = r[..., 1] - r[..., 0]
        lap[..., -1] = r[..., -2] - r[..., -1]
        o -= lap * (1.0 / 24.0)
    return np.maximum(out, 0.0)


def kl_stack(q: np.ndarray, p: np.ndarray, cell_volume: float, grid_ndim: int, floor: float = 1e-300) -> np.ndarray:
    """sum q log(q/p) dV per leading index (divergences.kl_grid)."""
    ok = q > floor
    qs = np.where(ok, q, 1.0)
    terms = np.where(ok, q * (np.log(qs) - np.log(np.maximum(p, floor))), 0.0)
    return terms.reshape(terms.shape[:terms.ndim - grid_ndim] + (-1,)).sum(axis=-1) * cell_volume


def kl_logratio_stack(q: np.ndarray, lr: np.ndarray, cell_volume: float, grid_ndim: int,
                      floor: float = 1e-300) -> np.ndarray:
    """sum q lr dV per leading index, lr = log q - log p (the log-ratio the Fisher side differences)."""
    terms = np.where(q > floor, q * lr, 0.0)
    return terms.reshape(terms.shape[:terms.ndim - grid_ndim] + (-1,)).sum(axis=-1) * cell_volume


def _grad4_stack(f: np.ndarray, h: float, axis: int) -> np.ndarray:
    """Fourth-order central difference along axis, np.gradient's second-order stencils in the 2 cells at each wall
    (divergences._grad4)."""
    f = np.moveaxis(f, axis, -1)
    g = np.gradient(f, h, axis=-1, edge_order=2)
    if f.shape[-1] >= 5:
        g[..., 2:-2] = (f[..., :-4] - 8.0 * f[..., 1:-3] + 8.0 * f[..., 3:-1] - f[..., 4:]) / (12.0 * h)
    return np.moveaxis(g, -1, axis)


def fisher_logratio_stack(q: np.ndarray, lr: np.ndarray, spacing: Sequence[float],
                          rel_floor: float = 1e-14) -> np.ndarray:
    """sum q |grad lr|^2 dV per leading index, 4th-order differences, cells whose 5-point stencil touches q below
    rel_floor * max q (per index) left out (divergences.fisher_grid_logratio)."""
    nd = len(spacing)
    lead = q.ndim - nd
    qmax = q.reshape(q.shape[:lead] + (-1,)).max(axis=-1).reshape(q.shape[:lead] + (1,) * nd)
    ok = q > rel_floor * qmax
    lr = np.where(ok, lr, 0.0)
    keep = ok.copy()
    sq = np.zeros_like(q)
    for a, h in enumerate(spacing):
        ax = lead + a
        g = _grad4_stack(lr, float(h), ax)
        sq += g * g
        o = np.moveaxis(ok, ax, -1)
        k = np.moveaxis(keep, ax, -1)
        for sh in (1, 2):
            k[..., sh:] &= o[..., :-sh]
            k[..., :-sh] &= o[..., sh:]
    out = np.where(keep, q * sq, 0.0)
    return out.reshape(out.shape[:lead] + (-1,)).sum(axis=-1) * float(np.prod(spacing))


def fisher_two_grid_stack(q: np.ndarray, p: np.ndarray, spacing: Sequence[float], floor: float = 1e-300) -> np.ndarray:
    """sum q |grad log(q/p)|^2 dV per leading index, second-order differences (divergences.fisher_grid)."""
    nd = len(spacing)
    lead = q.ndim - nd
    lr = np.log(np.maximum(q, floor)) - np.log(np.maximum(p, floor))
    sq = np.zeros_like(q)
    for a, h in enumerate(spacing):
        g = np.gradient(lr, float(h), axis=lead + a, edge_order=2)
        sq += g * g
    out = np.where(q > floor, q * sq, 0.0)
    return out.reshape(out.shape[:lead] + (-1,)).sum(axis=-1) * float(np.prod(spacing))


def log_p_many(log_p: Callable, pts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """log p_t at the points for every time, [m, n]: log_p.many(pts, times) when the callable has it."""
    many = getattr(log_p, "many", None)
    if many is not None:
        return np.asarray(many(pts, np.asarray(times, dtype=np.float64)), dtype=np.float64)
    return np.stack([np.asarray(log_p(pts, float(t)), dtype=np.float64) for t in times])


def block_diagnostics(states: np.ndarray, times: np.ndarray, grid, log_p: Optional[Callable],
                      masses0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(KL, F, mass error) for states [m, 2, *grid] (cell averages of q and p) at the m times.  With log_p (exact
    log p_t): F of log q - log p_exact minus p's own resolved grid error (fokker_planck._evolve_once); without:
    the second-order two-grid F."""
    nd = grid.dim
    pv = to_point_values_stack(states, nd)
    q, p = pv[:, 0], pv[:, 1]
    if log_p is None:
        kl = kl_stack(q, p, grid.cell_volume, nd)
        fi = fisher_two_grid_stack(q, p, grid.spacing)
    else:
        lp_exact = log_p_many(log_p, grid.points(), times).reshape((len(times),) + grid.shape)
        lp_grid = np.log(np.maximum(p, 1e-300))
        pmax = p.reshape(p.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * nd)
        w = np.minimum(np.maximum((np.log10(np.maximum(p, 1e-300) / np.maximum(pmax, 1e-300)) + 10.0) / 4.0, 0.0),
                       1.0)
        lr = np.log(np.maximum(q, 1e-300)) - lp_exact - w * (lp_grid - lp_exact)
        kl = kl_logratio_stack(q, lr, grid.cell_volume, nd)
        fi = fisher_logratio_stack(q, lr, grid.spacing)
    m = states.reshape(states.shape[0], 2, -1).sum(axis=-1) * grid.cell_volume
    mass = np.abs(m - masses0[None, :]).max(axis=1)
    return kl, fi, mass
