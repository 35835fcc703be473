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
    """Table times for the time-grid variable: geometric in t towards t_end, geometric in t0 - t towards t0
    (decreasing, duplicates dropped; the two increasing runs merged by a stable sort)."""
    g = np.exp(np.linspace(np.log(1e-9), 0.0, _N_FINE))
    u = np.concatenate([np.exp(np.linspace(np.log(t_end), np.log(t0), _N_FINE)), t0 - (t0 - t_end) * g[::-1]])
    u.sort(kind="stable")
    return u[np.concatenate(([True], u[1:] != u[:-1]))][::-1]


class _Values:
    """alpha, sigma, g2 of the schedule at the times t (each evaluated once)."""

    def __init__(self, schedule, t: np.ndarray):
        self.t = t
        self.alpha = np.asarray(schedule.alpha(t), dtype=np.float64)
        self.sigma = np.asarray(schedule.sigma(t), dtype=np.float64)
        self.g2 = np.asarray(schedule.g2(t), dtype=np.float64)

    def stiffness(self, stiff_var: float) -> np.ndarray:
        return self.g2 / (self.alpha ** 2 * stiff_var + self.sigma ** 2)


def _stiffness(schedule, t: np.ndarray, stiff_var: float) -> np.ndarray:
    """g^2 / (alpha^2 c + sigma^2): the contraction rate of the reverse drift on a feature of variance c."""
    return _Values(schedule, np.asarray(t, dtype=np.float64)).stiffness(stiff_var)


class _HermitePsi:
    """psi as a function of x = -log t: cubic Hermite interpolation of the table with its exact slopes
    d psi / dx = t * stiffness(t) (4th order, no spline system to solve; a CubicSpline cost ~0.2 ms a run).  Keeps
    its table (fine: times and schedule values, psi_fine: psi there) for schedule_time_grid."""

    def __init__(self, x: np.ndarray, psi: np.ndarray, slope: np.ndarray):
        self.x, self.psi, self.slope = x, psi, slope
        self.fine, self.psi_fine, self.key = None, None, None

    def __call__(self, xq) -> np.ndarray:
        xq = np.asarray(xq, dtype=np.float64)
        i = np.clip(np.searchsorted(self.x, xq) - 1, 0, self.x.size - 2)
        x0, h = self.x[i], self.x[i + 1] - self.x[i]
        s = (xq - x0) / h
        s2, s3 = s * s, s * s * s
        return ((2 * s3 - 3 * s2 + 1) * self.psi[i] + (s3 - 2 * s2 + s) * h * self.slope[i]
                + (3 * s2 - 2 * s3) * self.psi[i + 1] + (s3 - s2) * h * self.slope[i + 1])


def _cumulative_simpson(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """scipy.integrate.cumulative_simpson(y, x=x, initial=0) for increasing x (>= 3 points): the quadratic through
    each interval's neighbours (Cartwright's formula), the same arithmetic without the array-API dispatch."""
    dx = np.diff(x)

    def sub(yy, dd):
        x21, x32 = dd[:-1], dd[1:]
        x31 = x21 + x32
        x21_x31 = x21 / x31
        c = x21_x31 * (x21 / x32)
        return x21 / 6 * ((3 - x21_x31) * yy[:-2] + (3 + c + x21_x31) * yy[1:-1] - c * yy[2:])

    h1 = sub(y, dx)
    h2 = sub(y[::-1], dx[::-1])[::-1]
    parts = np.empty(dx.size)
    parts[:-1:2] = h1[::2]
    parts[1::2] = h2[::2]
    parts[-1] = h2[-1]
    out = np.empty(y.size)
    out[0] = 0.0
    np.cumsum(parts, out=out[1:])
    return out


def psi_table(schedule, t0: float, t_end: float, stiff_var: float):
    """psi(t) = int_t^t0 g^2 / (alpha^2 c + sigma^2) (cumulative Simpson on a fine grid; cubic Hermite in log t with
    the exact slopes) and psi(t_end)."""
    fine = _Values(schedule, _fine_times(t0, t_end))
    k = fine.stiffness(stiff_var)
    psi = _cumulative_simpson(k, -fine.t)
    x = -np.log(fine.t)
    keep = np.concatenate([[True], np.diff(x) > 0])
    spline = _HermitePsi(x[keep], psi[keep], (k * fine.t)[keep])
    spline.fine, spline.psi_fine, spline.key = fine, psi, (schedule, float(t0), float(t_end), float(stiff_var))
    return spline, float(psi[-1])


def _phi_parts(schedule, t0: float, t_end: float, t: np.ndarray, log_share: float, stiff_var: float | None = None,
               stiff_share: float = 0.5, psi=None, values: _Values | None = None, psi_t: np.ndarray | None = None):
    """phi(t) in [0, 1] (0 at t0, 1 at t_end) and d phi / d(-t): a mix of log(t) (weight log_share), the noise
    variance v(t) = sigma_t0^2 - (alpha_t0/alpha_t)^2 sigma_t^2 added between t and t0 (dv/d(-t) = alpha_t0^2 g^2 /
    alpha_t^2) and, when stiff_var (the narrowest data variance c) is given, the contraction psi(t) = int_t^t0
    g^2 / (alpha^2 c + sigma^2) of the reverse drift on that feature (weight stiff_share; the variance part then
    gets 1 - log_share - stiff_share).  values: the schedule at t (_Values), psi_t: psi at t, when known."""
    t = np.asarray(t, dtype=np.float64)
    ends = _Values(schedule, np.array([t0, t_end], dtype=np.float64))
    val = values if values is not None else _Values(schedule, t)
    a0, s0 = float(ends.alpha[0]), float(ends.sigma[0])
    L = np.log(t0 / t_end)
    v_end = max(s0 ** 2 - (a0 / float(ends.alpha[1])) ** 2 * float(ends.sigma[1]) ** 2, 1e-300)
    w_v = 1.0 - log_share - (stiff_share if stiff_var is not None else 0.0)
    phi = log_share * np.log(t0 / t) / L + w_v * np.clip(s0 ** 2 - (a0 / val.alpha) ** 2 * val.sigma ** 2, 0.0,
                                                         None) / v_end
    dphi = log_share / (t * L) + w_v * a0 ** 2 * val.g2 / val.alpha ** 2 / v_end
    if stiff_var is not None:
        spline, total = psi if psi is not None else psi_table(schedule, t0, t_end, float(stiff_var))
        phi = phi + stiff_share * (spline(-np.log(t)) if psi_t is None else psi_t) / total
        dphi = dphi + stiff_share * val.stiffness(float(stiff_var)) / total
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
    spline = psi[0] if psi is not None else None
    if stiff_var is not None and spline is not None and getattr(spline, "key", None) == (
            schedule, float(t0), float(t_end), float(stiff_var)):
        fine, psi_t = spline.fine, spline.psi_fine      # psi's own table: its times, schedule values and psi
    else:
        fine, psi_t = _Values(schedule, _fine_times(t0, t_end)), None
    phi, _ = _phi_parts(schedule, t0, t_end, fine.t, log_share, stiff_var, psi=psi, values=fine, psi_t=psi_t)
    phi = np.maximum.accumulate(phi)
    u = np.linspace(0.0, phi[-1], n_steps + 1)
    t = np.exp(np.interp(u, phi, np.log(fine.t)))
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
