"""Time grids running from t0 down to t_end (dense near t_end where the reverse dynamics are stiff)."""
from __future__ import annotations

import numpy as np


def time_grid(t0: float, t_end: float, n_steps: int, kind: str = "log") -> np.ndarray:
    """n_steps+1 decreasing times t0 -> t_end: geometric ("log"), uniform ("linear") or refined at both ends ("both")."""
    if not t0 > t_end > 0:
        raise ValueError("need t0 > t_end > 0")
    if kind == "log":
        t = np.exp(np.linspace(np.log(t0), np.log(t_end), n_steps + 1))
        t[0], t[-1] = t0, t_end
        return t
    if kind == "linear":
        return np.linspace(t0, t_end, n_steps + 1)
    if kind == "both":
        # geometric in t near t_end and geometric in (t0 - t) near t0 (where F(t) falls off fast)
        a = np.exp(np.linspace(np.log(t0), np.log(t_end), n_steps // 2 + 1))
        b = t0 - (t0 - t_end) * np.geomspace(1e-6, 1.0, n_steps - n_steps // 2)
        t = np.unique(np.clip(np.concatenate([a, b, [t0, t_end]]), t_end, t0))[::-1]
        return t
    raise ValueError(f"unknown time grid kind {kind!r}")


def _phi_parts(schedule, t0: float, t_end: float, t: np.ndarray, log_share: float):
    """phi(t) in [0, 1] (0 at t0, 1 at t_end) and d phi / d(-t): a log_share mix of log(t) and the noise variance
    v(t) = sigma_t0^2 - (alpha_t0/alpha_t)^2 sigma_t^2 added between t and t0 (dv/d(-t) = alpha_t0^2 g^2 / alpha_t^2)."""
    t = np.asarray(t, dtype=np.float64)
    a0 = float(schedule.alpha(t0))
    L = np.log(t0 / t_end)
    v = lambda s: float(schedule.sigma(t0)) ** 2 - (a0 / np.asarray(schedule.alpha(s))) ** 2 \
        * np.asarray(schedule.sigma(s)) ** 2
    v_end = max(float(v(t_end)), 1e-300)
    phi = log_share * np.log(t0 / t) / L + (1.0 - log_share) * np.clip(v(t), 0.0, None) / v_end
    dphi = log_share / (t * L) + (1.0 - log_share) * a0 ** 2 * np.asarray(schedule.g2(t)) \
        / np.asarray(schedule.alpha(t)) ** 2 / v_end
    return phi, dphi


def schedule_time_grid(schedule, t0: float, t_end: float, n_steps: int, log_share: float = 0.5) -> np.ndarray:
    """n_steps+1 decreasing times t0 -> t_end, uniform in phi (see _phi_parts): half the steps geometric in t
    (stiff drift near t_end), half uniform in the added noise variance (KL and Fisher fall fastest right after t0)."""
    if not t0 > t_end > 0:
        raise ValueError("need t0 > t_end > 0")
    fine = np.exp(np.linspace(np.log(t0), np.log(t_end), 20001))
    fine = np.unique(np.concatenate([fine, t0 - (t0 - t_end) * np.geomspace(1e-9, 1.0, 20001)]))[::-1]
    phi, _ = _phi_parts(schedule, t0, t_end, fine, log_share)
    phi = np.maximum.accumulate(phi)
    u = np.linspace(0.0, phi[-1], n_steps + 1)
    t = np.exp(np.interp(u, phi, np.log(fine)))
    t[0], t[-1] = t0, t_end
    return t


def integrate_half_g2_fisher(times: np.ndarray, fisher: np.ndarray, schedule, t0: float, t_end: float,
                             log_share: float = 0.5) -> float:
    """int 1/2 g^2 F dtau over the output times, composite Simpson in the variable phi of schedule_time_grid
    (exact change of variables for any time grid; most accurate when the times are uniform in phi)."""
    from scipy.integrate import simpson

    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(-t)
    t, F = t[order], np.asarray(fisher, dtype=np.float64)[order]
    phi, dphi = _phi_parts(schedule, t0, t_end, t, log_share)
    y = 0.5 * np.asarray(schedule.g2(t)) * F / dphi
    if t.size < 3:
        return float(np.trapezoid(y, phi))
    return float(simpson(y, x=phi))
