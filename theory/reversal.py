"""Exact SDE marginals by time reversal: with the exact score of p, q_tau = p_tau h_tau,
h_tau(x) = E[q_t0(Y)/p_t0(Y)], Y ~ N(a x, v I), a = alpha_t0/alpha_tau, v = sigma_t0^2 - a^2 sigma_tau^2.

KL(q_tau||p_tau) = E_{p_tau}[h log h] and F(tau) = E_{p_tau}[||grad h||^2 / h] with grad h = a E[grad r(Y)],
grad r = r (s_q - s_p). Low dimension (d <= 2): tensor Gauss-Hermite quadrature for both expectations.
Any dimension: x ~ q_tau exactly (Y ~ q_t0, then x | Y from p's Gaussian-mixture posterior of x_tau given
x_t0), KL = E_q[log h], F = E_q ||grad log h||^2 with h, grad h from inner Monte Carlo (95% bands).
The inner estimate (ratio_terms, also used by the SDE particles) goes through that same posterior:
q_tau(x) = int q_t0(y) sum_c pi_c(y) N(x; G_c y + b_c, Sigma_c) dy, the Gaussian parts in closed form and only the
responsibility pi_c(y) <= 1 of p_t0 left to Monte Carlo (bounded weights; exact for one-component data).  The
older inner estimators over the forward kernel (importance weights 1/p_t0, heavy-tailed when q_t0 is wider than
p_t0) remain as inner="kernel".
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import logsumexp

from .mixtures import GaussianMixture
from .results import KLPath, make_path
from .schedules import Schedule
from .timegrid import integrate_half_g2_fisher, schedule_time_grid


def _gh_nodes(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite nodes z [n^d, d] and log-weights for E over N(0, I_d)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    z = np.array(list(itertools.product(x, repeat=d)))
    lw = np.log(np.array([np.prod(c) for c in itertools.product(w, repeat=d)]))
    return z, lw


def _log_h_and_grad(x: np.ndarray, q0: GaussianMixture, p0: GaussianMixture, a: float, v: float,
                    z: np.ndarray, lw: np.ndarray, chunk: int = 4096,
                    debias: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """log h(x) and grad log h(x) via E_z with Y = a x + sqrt(v) z and weights exp(lw) (quadrature or MC).

    debias (Monte Carlo only): add the delta-method correction (sum w_m^2 - 1/M)/2 of the Jensen bias of log."""
    n, d = x.shape
    logh = np.empty(n)
    glog = np.empty((n, d))
    sv = math.sqrt(max(v, 0.0))
    for i in range(0, n, chunk):
        xs = x[i:i + chunk]
        Y = (a * xs[:, None, :] + sv * z[None, :, :]).reshape(-1, d)
        lr = (q0.log_prob(Y) - p0.log_prob(Y)).reshape(xs.shape[0], -1) + lw
        ds = (q0.score(Y) - p0.score(Y)).reshape(xs.shape[0], -1, d)
        lh = logsumexp(lr, axis=1)
        wts = np.exp(lr - lh[:, None])
        if debias:
            lh = lh + 0.5 * (np.sum(wts * wts, axis=1) - 1.0 / wts.shape[1])
        logh[i:i + chunk] = lh
        glog[i:i + chunk] = a * np.einsum("nm,nmd->nd", wts, ds)
    return logh, glog


def _log_h_and_grad_is(x: np.ndarray, q0: GaussianMixture, p0: GaussianMixture, a: float, v: float,
                       z: np.ndarray, chunk: int = 256, debias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """log h(x), grad log h(x) by importance sampling from pi_x(y) ~ K(y|x) q_t0(y), K = N(a x, v I).

    K q_t0 = sum_k w_k Z_k(x) N(y; m_k(x), S_k) with Z_k = N(a x; mu_k, C_k + v I), S_k = (C_k^-1 + I/v)^-1,
    m_k = S_k (C_k^-1 mu_k + a x / v), so h = sum_k w_k Z_k E_{N(m_k, S_k)}[1/p_t0(Y)] and
    grad log h = a E[(s_q - s_p)(Y) / p_t0(Y)] / E[1/p_t0(Y)] under the same draws (stratified over k).  z holds
    the standard-normal inner draws, [n, M, d] (independent per x, so their errors average out over x) or [M, d]
    (shared).  Only the mild ratio 1/p_t0 is left to Monte Carlo."""
    n, d = x.shape
    K, M = q0.n_components, z.shape[-2]
    eye = np.eye(d)
    logh = np.empty(n)
    glog = np.empty((n, d))
    comps = []
    for k in range(K):
        Ck, mk = q0.covs[k], q0.means[k]
        Pk = q0._prec[k]
        S = np.linalg.inv(Pk + eye / v)
        S = 0.5 * (S + S.T)
        L = np.linalg.cholesky(S)
        Ak = Ck + v * eye
        Lz = np.linalg.cholesky(Ak)
        comps.append((S, L, S @ (Pk @ mk), Lz, mk, math.log(q0.weights[k])))
    for i in range(0, n, chunk):
        xs = x[i:i + chunk]
        m = xs.shape[0]
        lw_all, ds_all = [], []
        for S, L, b, Lz, mk, lwk in comps:
            r = np.linalg.solve(Lz, (a * xs - mk).T).T
            logZ = lwk - 0.5 * np.sum(r * r, 1) - np.log(np.diag(Lz)).sum() - 0.5 * d * math.log(2 * math.pi)
            mean = b + (a / v) * xs @ S.T
            zz = z[None, :, :] if z.ndim == 2 else z[i:i + chunk]
            Y = (mean[:, None, :] + zz @ L.T).reshape(-1, d)
            lp = p0.log_prob(Y).reshape(m, M)
            lw_all.append(logZ[:, None] - lp - math.log(M))
            ds_all.append((q0.score(Y) - p0.score(Y)).reshape(m, M, d))
        lw = np.concatenate(lw_all, axis=1)
        ds = np.concatenate(ds_all, axis=1)
        lh = logsumexp(lw, axis=1)
        wts = np.exp(lw - lh[:, None])
        if debias:
            lh = lh + 0.5 * (np.sum(wts * wts, axis=1) - 1.0 / M) * (1.0 if K == 1 else 1.0)
        logh[i:i + chunk] = lh
        glog[i:i + chunk] = a * np.einsum("nm,nmd->nd", wts, ds)
    return logh, glog


def _kernel(schedule: Schedule, t0: float, tau: float) -> tuple[float, float]:
    a = float(schedule.alpha(t0)) / float(schedule.alpha(tau))
    v = float(schedule.sigma(t0)) ** 2 - a * a * float(schedule.sigma(tau)) ** 2
    return a, max(v, 0.0)


def ratio_terms(x: np.ndarray, schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float,
                 tau: float, n_inner: int, rng: np.random.Generator,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per particle x_i: (log h(x_i), an estimate of ||grad log h(x_i)||^2, an estimate of grad log h(x_i)), with
    h = q_tau / p_tau, so grad log h = grad log q_tau - grad log p_tau (the posterior estimator of the module docstring).

    q_tau(x) = sum_{k,c} w_k Z_kc(x) E[pi_c(Y)],  Y ~ N(m_kc(x), S_kc)  (k: components of q_t0, c: of p),
    grad q_tau(x) = sum_{k,c} w_k Z_kc(x) (E[pi_c(Y)] grad log Z_kc(x) + J_kc^T E[grad pi_c(Y)]),
    where N(x; G_c y + b_c, Sigma_c) is p's Gaussian posterior of x_tau given x_t0 = y and component c,
    N(y; mu_k, C_k) N(x; G_c y + b_c, Sigma_c) = Z_kc(x) N(y; m_kc(x), S_kc) (closed form, m_kc(x) = J_kc x + const),
    and pi_c(y) <= 1 is p_t0's responsibility of component c.  n_inner draws per (k, c), in four quarters of
    antithetic pairs; log h and the ratio grad q / q are jackknifed over the quarters (O(1/n_inner) bias removed),
    and the squared norm is the product of the two independent half estimates g_A . g_B (no positive noise bias)."""
    n, d = x.shape
    pt = data.marginal(schedule, tau)
    p0 = data.marginal(schedule, t0)
    a, v = _kernel(schedule, t0, tau)
    lpt, spt = pt.log_prob_and_score(x)
    if v <= 1e-14:
        y = a * x
        g = a * (edited.score(y) - p0.score(y))
        return edited.log_prob(y) - p0.log_prob(y), np.sum(g * g, axis=1), g
    eye = np.eye(d)
    strata = []
    for c in range(data.n_components):
        Ct, mt = pt.covs[c], pt.means[c]
        G = a * Ct @ np.linalg.inv(a * a * Ct + v * eye)          # x_tau | x_t0 = y: mean G y + b, cov Sig
        b = mt - a * G @ mt
        Sig = Ct - a * G @ Ct
        Sig = 0.5 * (Sig + Sig.T)
        Sinv = np.linalg.inv(Sig)
        for k in range(edited.n_components):
            Ck, mk, Pk = edited.covs[k], edited.means[k], edited._prec[k]
            A = Sig + G @ Ck @ G.T
            A = 0.5 * (A + A.T)
            LA = np.linalg.cholesky(A)
            S = np.linalg.inv(Pk + G.T @ Sinv @ G)
            S = 0.5 * (S + S.T)
            J = S @ G.T @ Sinv
            strata.append((c, G @ mk + b, LA, np.linalg.inv(A),
                           math.log(edited.weights[k]) - np.log(np.diag(LA)).sum() - 0.5 * d * math.log(2 * math.pi),
                           S @ (Pk @ mk) - J @ b, J, np.linalg.cholesky(S)))
    m8 = max(1, n_inner // 8)
    logh, fis, grad = np.empty(n), np.empty(n), np.empty((n, d))
    for i in range(0, n, chunk):
        xs = x[i:i + chunk]
        m = xs.shape[0]
        logZ, Aq, Gq = [], [], []
        for c, muZ, LA, Ainv, lnorm, m0, J, LS in strata:
            r = np.linalg.solve(LA, (xs - muZ).T).T
            logZ.append(lnorm - 0.5 * np.sum(r * r, axis=1))
            z = rng.standard_normal((m, 4, m8, d))
            z = np.concatenate([z, -z], axis=2)                          # [m, quarter, 2 m8, d]: antithetic pairs
            Y = (m0 + xs @ J.T)[:, None, None, :] + z @ LS.T
            lp, pd = p0._parts(Y.reshape(-1, d))
            rr = np.exp(lp - logsumexp(lp, axis=1)[:, None])              # responsibilities of p_t0
            s = -np.einsum("nk,nki->ni", rr, pd)
            pic = rr[:, c]
            gpi = pic[:, None] * (-pd[:, c, :] - s)                     # grad pi_c = pi_c (s_c - s)
            Ek = pic.reshape(m, 4, 2 * m8).mean(axis=2)                  # [m, 4]
            Eg = gpi.reshape(m, 4, 2 * m8, d).mean(axis=2) @ J          # J^T E[grad pi_c], [m, 4, d]
            zeta = -(xs - muZ) @ Ainv                                    # grad log Z_kc (Ainv symmetric)
            Aq.append(Ek)
            Gq.append(Ek[:, :, None] * zeta[:, None, :] + Eg)
        logZ = np.stack(logZ, axis=1)                                     # [m, strata]
        shift = logZ.max(axis=1)
        wz = np.exp(logZ - shift[:, None])
        Q = np.einsum("ms,smq->mq", wz, np.stack(Aq))                     # [m, 4]  (q_tau / e^shift per quarter)
        GQ = np.einsum("ms,smqd->mqd", wz, np.stack(Gq))                  # [m, 4, d]
        Q = np.maximum(Q, 1e-300)
        l_all = np.log(Q.mean(axis=1))
        l_12, l_34 = np.log(0.5 * (Q[:, 0] + Q[:, 1])), np.log(0.5 * (Q[:, 2] + Q[:, 3]))
        logh[i:i + chunk] = shift + 2.0 * l_all - 0.5 * (l_12 + l_34) - lpt[i:i + chunk]

        def jk(q1: int, q2: int) -> np.ndarray:
            both = (GQ[:, q1] + GQ[:, q2]) / (Q[:, q1] + Q[:, q2])[:, None]
            return 2.0 * both - 0.5 * (GQ[:, q1] / Q[:, q1, None] + GQ[:, q2] / Q[:, q2, None]) - spt[i:i + chunk]

        gA, gB = jk(0, 1), jk(2, 3)
        fis[i:i + chunk] = np.sum(gA * gB, axis=1)
        grad[i:i + chunk] = 0.5 * (gA + gB)
    return logh, fis, grad


def reversal_quadrature(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float,
                        t_end: float, times: np.ndarray | None = None, n_times: int = 41, n_outer: int = 48,
                        n_inner: int = 48) -> KLPath:
    """KL and Fisher along the reverse SDE by tensor Gauss-Hermite quadrature (d <= 2 recommended)."""
    d = data.dim
    if times is None:
        times = schedule_time_grid(schedule, t0, t_end, n_times - 1)
    p0 = data.marginal(schedule, t0)
    zi, lwi = _gh_nodes(n_inner, d)
    zo, lwo = _gh_nodes(n_outer, d)
    kl, fi = np.empty(len(times)), np.empty(len(times))
    for j, tau in enumerate(times):
        a, v = _kernel(schedule, t0, tau)
        pt = data.marginal(schedule, tau)
        xs, lws = [], []
        for k in range(pt.n_components):
            L = np.linalg.cholesky(pt.covs[k])
            xs.append(pt.means[k] + zo @ L.T)
            lws.append(lwo + pt._logw[k])
        x, lwx = np.concatenate(xs), np.concatenate(lws)
        if v <= 1e-14:
            logh = edited.log_prob(a * x) - p0.log_prob(a * x)
            glog = a * (edited.score(a * x) - p0.score(a * x))
        else:
            logh, glog = _log_h_and_grad(x, edited, p0, a, v, zi, lwi)
        wh = np.exp(lwx + logh)
        kl[j] = float(np.sum(wh * logh))
        fi[j] = float(np.sum(wh * np.sum(glog * glog, axis=1)))
    times = np.asarray(times, dtype=np.float64)
    return make_path("reversal", "sde", times, kl, fi, schedule.g2(times),
                     fisher_integral=integrate_half_g2_fisher(times, fi, schedule, t0, t_end),
                     extra={"quadrature": [n_outer, n_inner]})


def reversal_kl_trapezoid_1d(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float,
                             times, n_x: int = 8001, n_inner: int = 64, half_width: float = 12.0) -> list[float]:
    """1-D KL(q_τ‖p_τ) = ∫ p_τ h log h dx (time reversal, q_τ = p_τ h) at each τ in ``times``, by a dense
    trapezoid in x over ±``half_width`` standard deviations of p_τ and q_t0 (and at least [−12, 12]) with an
    ``n_inner``-node Gauss-Hermite inner expectation: a reference for 1-D problems (spectrally accurate for these
    smooth, fast-decaying integrands; Gauss-Hermite outer nodes placed on p miss q's mass in p's tails)."""
    if data.dim != 1:
        raise ValueError("reversal_kl_trapezoid_1d is for 1-D problems")
    p0 = data.marginal(schedule, t0)
    zi, lwi = _gh_nodes(n_inner, 1)
    out = []
    for tau in times:
        pt = data.marginal(schedule, tau)
        lo = min(pt.std_extent(half_width)[0][0], edited.std_extent(half_width)[0][0], -12.0)
        hi = max(pt.std_extent(half_width)[1][0], edited.std_extent(half_width)[1][0], 12.0)
        x = np.linspace(lo, hi, n_x)[:, None]
        a, v = _kernel(schedule, t0, tau)
        if v <= 1e-14:
            logh = edited.log_prob(a * x) - p0.log_prob(a * x)
        else:
            logh, _ = _log_h_and_grad(x, edited, p0, a, v, zi, lwi)
        out.append(float(np.trapezoid(np.exp(pt.log_prob(x) + logh) * logh, x[:, 0])))
    return out


def sample_q_tau(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float, tau: float,
                 n: int, rng: np.random.Generator) -> np.ndarray:
    """Exact draws of q_tau: Y ~ q_t0, then x ~ p(x_tau | x_t0 = Y), a Gaussian mixture posterior."""
    a, v = _kernel(schedule, t0, tau)
    pt = data.marginal(schedule, tau)
    p0 = data.marginal(schedule, t0)
    Y = edited.sample(n, rng)
    resp = p0.component_posteriors(Y)
    u = rng.random(n)[:, None]
    k = np.minimum((np.cumsum(resp, axis=1) < u).sum(axis=1), pt.n_components - 1)
    d = data.dim
    x = np.empty((n, d))
    for c in range(pt.n_components):
        idx = np.nonzero(k == c)[0]
        if idx.size == 0:
            continue
        S = pt.covs[c]
        G = a * S @ np.linalg.inv(p0.covs[c])  # S a (a^2 S + v I)^{-1}
        mean = pt.means[c] + (Y[idx] - p0.means[c]) @ G.T
        cov = S - a * G @ S
        ev, U = np.linalg.eigh(0.5 * (cov + cov.T))
        L = U * np.sqrt(np.clip(ev, 0.0, None))
        x[idx] = mean + rng.standard_normal((idx.size, d)) @ L.T
    return x


def reversal_monte_carlo(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float,
                         t_end: float, times: np.ndarray | None = None, n_times: int = 11, n_outer: int = 2000,
                         n_inner: int | None = None, seed: int = 0, importance: bool = True,
                         inner: str = "posterior") -> KLPath:
    """KL = E_q[log h], F = E_q||grad log h||^2 with exact x ~ q_tau and inner Monte Carlo for h (any dimension).

    inner="posterior" (default): ratio_terms -- q_tau through p's Gaussian posterior of x_tau given x_t0, only the
    bounded responsibility pi_c(y) left to Monte Carlo (n_inner draws per component pair, default 16), jackknifed;
    exact for one-component data.  inner="kernel": the older estimators over the forward kernel, kept for
    comparison: importance=True samples K(y|x) q_t0(y) (_log_h_and_grad_is; weights 1/p_t0 are heavy-tailed when
    q_t0 is wider than p_t0: a few percent low in 4-8-D), False plain Monte Carlo (noisy as tau -> 0); n_inner
    default 1000."""
    if inner not in ("posterior", "kernel"):
        raise ValueError(f"inner must be 'posterior' or 'kernel', got {inner!r}")
    if n_inner is None:
        n_inner = 16 if inner == "posterior" else 1000
    rng = np.random.default_rng(seed)
    d = data.dim
    if times is None:
        times = schedule_time_grid(schedule, t0, t_end, n_times - 1)
    p0 = data.marginal(schedule, t0)
    kl, fi, band, fband = (np.empty(len(times)) for _ in range(4))
    for j, tau in enumerate(times):
        a, v = _kernel(schedule, t0, tau)
        x = sample_q_tau(schedule, data, edited, t0, tau, n_outer, rng)
        zi = rng.standard_normal((n_inner // 2, d))
        zi = np.concatenate([zi, -zi])
        lwi = np.full(zi.shape[0], -math.log(zi.shape[0]))
        if inner == "posterior":
            logh, g2n, _ = ratio_terms(x, schedule, data, edited, t0, float(tau), n_inner, rng)
        elif v <= 1e-14:
            logh = edited.log_prob(a * x) - p0.log_prob(a * x)
            glog = a * (edited.score(a * x) - p0.score(a * x))
        elif importance:
            zx = rng.standard_normal((n_outer, n_inner // 2, d))
            zx = np.concatenate([zx, -zx], axis=1)
            logh, glog = _log_h_and_grad_is(x, edited, p0, a, v, zx,
                                            chunk=max(1, 200000 // (zi.shape[0] * edited.n_components)))
        else:
            logh, glog = _log_h_and_grad(x, edited, p0, a, v, zi, lwi, chunk=max(1, 400000 // zi.shape[0]),
                                           debias=True)
        if inner != "posterior":
            g2n = np.sum(glog * glog, axis=1)
        kl[j], band[j] = logh.mean(), 1.96 * logh.std(ddof=1) / math.sqrt(n_outer)
        fi[j], fband[j] = g2n.mean(), 1.96 * g2n.std(ddof=1) / math.sqrt(n_outer)
    times = np.asarray(times, dtype=np.float64)
    return make_path("reversal", "sde", times, kl, fi, schedule.g2(times), kl_band=band,
                     fisher_integral=integrate_half_g2_fisher(times, fi, schedule, t0, t_end),
                     extra={"fisher_band": fband, "n_outer": n_outer, "n_inner": n_inner, "seed": seed,
                            "inner": inner if inner == "posterior" else
                            ("kernel-importance" if importance else "kernel-plain")})
