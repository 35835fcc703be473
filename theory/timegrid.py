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


_N_FINE = 501  # per part; vs 2001 the Fisher integral moved by <= 2e-8 relative on 4 fine-grid cases (257: 1.4e-7)


def _fine_times(t0: float, t_end: float) -> np.ndarray:
    """Table times for the time-grid variable: geometric in t towards t_end, geometric in t0 - t towards t0."""
    fine = np.exp(np.linspace(np.log(t0), np.log(t_end), _N_FINE))
    return np.unique(np.concatenate([fine, t0 - (t0 - t_end) * np.geomspace(1e-9, 1.0, _N_FINE)]))[::-1]


def _stiffness(schedule, t: np.ndarray, stiff_var: float) -> np.ndarray:
    """g^2 / (alpha^2 c + sigma^2): the contraction rate of the reverse drift on a feature of variance c."""
    return np.asarray(schedule.g2(t)) / (np.asarray(schedule.alpha(t)) ** 2 * stiff_var
                                         + np.asarray(schedule.sigma(t)) ** 2)


class _HermitePsi:
    """psi as a function of x = -log t: cubic Hermite interpolation of the table with its exact slopes
    d psi / dx = t * stiffness(t) (4th order, no spline system to solve; a CubicSpline cost ~0.2 ms a run)."""

    def __init__(self, x: np.ndarray, psi: np.ndarray, slope: np.ndarray):
        self.x, self.psi, self.slope = x, psi, slope

    def __call__(self, xq) -> np.ndarray:
        xq = np.asarray(xq, dtype=np.float64)
        i = np.clip(np.searchsorted(self.x, xq) - 1, 0, self.x.size - 2)
        x0, h = self.x[i], self.x[i + 1] - self.x[i]
        s = (xq - x0) / h
        s2, s3 = s * s, s * s * s
        return ((2 * s3 - 3 * s2 + 1) * self.psi[i] + (s3 - 2 * s2 + s) * h * self.slope[i]
                + (3 * s2 - 2 * s3) * self.psi[i + 1] + (s3 - s2) * h * self.slope[i + 1])


def psi_table(schedule, t0: float, t_end: float, stiff_var: float):
    """psi(t) = int_t^t0 g^2 / (alpha^2 c + sigma^2) (cumulative Simpson on a fine grid; cubic Hermite in log t with
    the exact slopes) and psi(t_end)."""
    from scipy.integrate import cumulative_simpson

    fine = _fine_times(t0, t_end)
    k = _stiffness(schedule, fine, stiff_var)
    psi = cumulative_simpson(k, x=-fine, initial=0.0)
    x = -np.log(fine)
    keep = np.concatenate([[True], np.diff(x) > 0])
    return _HermitePsi(x[keep], psi[keep], (k * fine)[keep]), float(psi[-1])


def _phi_parts(schedule, t0: float, t_end: float, t: np.ndarray, log_share: float, stiff_var: float | None = None,
               stiff_share: float = 0.5, psi=None):
    """phi(t) in [0, 1] (0 at t0, 1 at t_end) and d phi / d(-t): a mix of log(t) (weight log_share), the noise
    variance v(t) = sigma_t0^2 - (alpha_t0/alpha_t)^2 sigma_t^2 added between t and t0 (dv/d(-t) = alpha_t0^2 g^2 /
    alpha_t^2) and, when stiff_var (the narrowest data variance c) is given, the contraction psi(t) = int_t^t0
    g^2 / (alpha^2 c + sigma^2) of the reverse drift on that feature (weight stiff_share; the variance part then
    gets 1 - log_share - stiff_share)."""
    t = np.asarray(t, dtype=np.float64)
    a0 = float(schedule.alpha(t0))
    L = np.log(t0 / t_end)
    v = lambda s: float(schedule.sigma(t0)) ** 2 - (a0 / np.asarray(schedule.alpha(s))) ** 2 \
        * np.asarray(schedule.sigma(s)) ** 2
    v_end = max(float(v(t_end)), 1e-300)
    w_v = 1.0 - log_share - (stiff_share if stiff_var is not None else 0.0)
    phi = log_share * np.log(t0 / t) / L + w_v * np.clip(v(t), 0.0, None) / v_end
    dphi = log_share / (t * L) + w_v * a0 ** 2 * np.asarray(schedule.g2(t)) \
        / np.asarray(schedule.alpha(t)) ** 2 / v_end
    if stiff_var is not None:
        spline, total = psi if psi is not None else psi_table(schedule, t0, t_end, float(stiff_var))
        phi = phi + stiff_share * spline(-np.log(t)) / total
        dphi = dphi + stiff_share * _stiffness(schedule, t, float(stiff_var)) / total
    return phi, dphi


def _default_log_share(stiff_var: float | None) -> float:
    return 0.5 if stiff_var is None else 0.2


def schedule_time_grid(schedule, t0: float, t_end: float, n_steps: int, log_share: float | None = None,
                       stiff_var: float | None = None, psi=None) -> np.ndarray:
    """n_steps+1 decreasing times t0 -> t_end, uniform in phi (see _phi_parts).  Without stiff_var: half the steps
    geometric in t (stiff drift near t_end), half uniform in the added noise variance (KL and Fisher fall fastest
    right after t0).  With stiff_var = c (the narrowest variance of the data): 20% log t, 30% noise variance, 50% the
    drift's contraction on a feature of variance c -- steps go where the reverse drift is stiff for *this* data,
    not near t_end where alpha^2 c dominates sigma^2 (this cut the time error of the Fisher integral 5-10x)."""
    if not t0 > t_end > 0:
        raise ValueError("need t0 > t_end > 0")
    if log_share is None:
        log_share = _default_log_share(stiff_var)
    fine = _fine_times(t0, t_end)
    phi, _ = _phi_parts(schedule, t0, t_end, fine, log_share, stiff_var, psi=psi)
    phi = np.maximum.accumulate(phi)
    u = np.linspace(0.0, phi[-1], n_steps + 1)
    t = np.exp(np.interp(u, phi, np.log(fine)))
    t[0], t[-1] = t0, t_end
    return t


def half_g2_phi_weights(times: np.ndarray, schedule, t0: float, t_end: float, log_share: float | None = None,
                        stiff_var: float | None = None, psi=None) -> tuple[np.ndarray, np.ndarray]:
    """(phi(t), 1/2 g^2(t) / (d phi / d(-t))) at decreasing times: int 1/2 g^2 F dtau = int F w dphi (the integrand
    of the old Simpson rule, simpson_phi)."""
    if log_share is None:
        log_share = _default_log_share(stiff_var)
    t = np.asarray(times, dtype=np.float64)
    phi, dphi = _phi_parts(schedule, t0, t_end, t, log_share, stiff_var, psi=psi)
    return phi, 0.5 * np.asarray(schedule.g2(t)) / dphi


def simpson_phi(phi: np.ndarray, y: np.ndarray) -> float:
    """Composite Simpson of y over phi (trapezoid below 3 points)."""
    from scipy.integrate import simpson

    if phi.size < 3:
        return float(np.trapezoid(y, phi))
    return float(simpson(y, x=phi))


_GL8_X, _GL8_W = np.polynomial.legendre.leggauss(8)
PRODUCT_DEGREE = 5


class FisherQuadrature:
    """int 1/2 g^2 F dtau from F at decreasing times, by product integration (issue 22): F, smooth in the time-grid
    variable phi, is interpolated in phi by the polynomial through the 6 nearest times (degree PRODUCT_DEGREE,
    fewer with fewer times) on each interval and integrated exactly against the weight 1/2 g^2 dt (8-point
    Gauss-Legendre in t on every interval).  Simpson's rule on y = 1/2 g^2 F / phi' (the old rule) needs y smooth
    in phi; y is not: phi' switches from the noise variance to the drift's stiffness late in the path, and with
    8-16 intervals that cost 1e-5 to 8e-4 of KL(t0) (here ~1e-6).  Built once for the times of a run; weights(k)
    gives the rule for the subsequence times[::k] (its intervals are unions of k of these)."""

    def __init__(self, times: np.ndarray, schedule, t0: float, t_end: float, log_share: float | None = None,
                 stiff_var: float | None = None, psi=None):
        if log_share is None:
            log_share = _default_log_share(stiff_var)
        t = np.asarray(times, dtype=np.float64)
        mid, half = 0.5 * (t[:-1] + t[1:]), 0.5 * np.abs(t[:-1] - t[1:])
        tn = mid[:, None] + half[:, None] * _GL8_X[None, :]
        allt = np.concatenate([t, tn.ravel()])
        phi, _ = _phi_parts(schedule, t0, t_end, allt, log_share, stiff_var, psi=psi)
        self.phi = phi[:t.size]
        self.phi_nodes = phi[t.size:].reshape(tn.shape)
        self.w_nodes = (half[:, None] * _GL8_W[None, :]) * (0.5 * np.asarray(schedule.g2(tn), dtype=np.float64))

    def weights(self, k: int = 1) -> np.ndarray:
        """W with int 1/2 g^2 F dtau ~= W @ F[::k]."""
        from .fp_compiled import lagrange_product_weights

        n = self.phi_nodes.shape[0] // k
        pn = np.ascontiguousarray(self.phi_nodes[:n * k].reshape(n, -1))
        wn = np.ascontiguousarray(self.w_nodes[:n * k].reshape(n, -1))
        W = np.zeros(n + 1)
        lagrange_product_weights(np.ascontiguousarray(self.phi[::k][:n + 1]), pn, wn, PRODUCT_DEGREE, W)
        return W

    def integral(self, fisher: np.ndarray, k: int = 1) -> float:
        return float(self.weights(k) @ np.asarray(fisher, dtype=np.float64))


def integrate_half_g2_fisher(times: np.ndarray, fisher: np.ndarray, schedule, t0: float, t_end: float,
                             log_share: float | None = None, stiff_var: float | None = None, psi=None,
                             rule: str = "product") -> float:
    """int 1/2 g^2 F dtau over the output times (any order): rule "product" (FisherQuadrature, default) or
    "simpson" (composite Simpson of 1/2 g^2 F / phi' in the variable phi of schedule_time_grid, the rule before
    issue 22).  psi: the cached psi_table(schedule, t0, t_end, stiff_var), to skip recomputing it."""
    if log_share is None:
        log_share = _default_log_share(stiff_var)
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(-t)
    t, F = t[order], np.asarray(fisher, dtype=np.float64)[order]
    if rule == "product" and t.size >= 2:
        return FisherQuadrature(t, schedule, t0, t_end, log_share, stiff_var, psi).integral(F)
    if rule not in ("product", "simpson"):
        raise ValueError(f"unknown rule {rule!r}")
    phi, w = half_g2_phi_weights(t, schedule, t0, t_end, log_share, stiff_var, psi)
    return simpson_phi(phi, w * F)
