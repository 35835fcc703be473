"""Compiled (numba) time loops of the Fokker-Planck grid scheme (theory.fokker_planck, module docstring): the same
Strang step as the plain numpy path -- exact heat step in the DCT-II basis, RK4 departure points with cubic
interpolation of the drift table, conservative monotone cubic-Hermite remap of the cumulative mass -- run over a
whole block of steps in one call, with no Python between steps.  The plain path stays the reference: the two agree
to round-off (tests/theory/test_theory_compiled.py)."""
from __future__ import annotations

import numpy as np
from numba import njit

from .fp_fft import heat_pair


@njit(cache=True)
def _edge_slopes(delta, d):
    """d[0..n]: limited 4th-order PPM edge slopes of the cumulative mass (fokker_planck._edge_slopes)."""
    n = delta.shape[0]
    d[0] = delta[0]
    d[n] = delta[n - 1]
    for i in range(1, n):
        if i == 1:
            e = (2.0 * delta[0] + 5.0 * delta[1] - delta[2]) / 6.0
        elif i == n - 1:
            e = (2.0 * delta[n - 1] + 5.0 * delta[n - 2] - delta[n - 3]) / 6.0
        else:
            e = (7.0 * (delta[i - 1] + delta[i]) - delta[i - 2] - delta[i + 1]) / 12.0
        lim = 3.0 * min(delta[i - 1], delta[i])
        d[i] = min(max(e, 0.0), lim)


@njit(cache=True)
def _edge_data(delta, h, d, g, ok):
    """d, g, ok[0..n]: the edge slopes, second derivatives and quintic flags of the cumulative mass
    (fokker_planck._edge_data)."""
    _edge_slopes(delta, d)
    n = delta.shape[0]
    for i in range(n + 1):
        g[i] = 0.0
        ok[i] = False
    if n >= 7:
        for i in range(3, n - 2):
            am2, am1, a0, ap1 = delta[i - 2], delta[i - 1], delta[i], delta[i + 1]
            e = (7.0 * (am1 + a0) - am2 - ap1) / 12.0
            m6 = (37.0 * (am1 + a0) - 8.0 * (am2 + ap1) + (delta[i - 3] + delta[i + 2])) / 60.0
            if e >= 0.0 and e <= 3.0 * min(am1, a0) and m6 >= 0.0:
                ok[i] = True
                d[i] = m6
                g[i] = (am2 - 15.0 * am1 + 15.0 * a0 - ap1) / (12.0 * h)


@njit(cache=True)
def _remap_pair(a, b, dep, lo, h, C, D, G, OK, val):
    """In place: the lines a, b (cell averages) remapped to departure points dep of the n+1 edges
    (fokker_planck._remap_lines: quintic Hermite of the cumulative mass where both edges are ok, else the monotone
    cubic)."""
    n = a.shape[0]
    hi = lo + n * h
    hh = 0.5 * h * h
    for line in (a, b):
        C[0] = 0.0
        acc = 0.0
        for i in range(n):
            acc += line[i] * h
            C[i + 1] = acc
        _edge_data(line, h, D, G, OK)
        xmax = -np.inf
        for i in range(n + 1):
            x = min(max(dep[i], lo), hi)
            xmax = max(xmax, x)
            u = (xmax - lo) / h
            k = min(int(u), n - 1)
            s = u - k
            s2 = s * s
            s3 = s2 * s
            if OK[k] and OK[k + 1]:
                s4 = s3 * s
                s5 = s3 * s2
                val[i] = (C[k] + (10 * s3 - 15 * s4 + 6 * s5) * (C[k + 1] - C[k])
                          + h * (D[k] * (s - 6 * s3 + 8 * s4 - 3 * s5) + D[k + 1] * (-4 * s3 + 7 * s4 - 3 * s5))
                          + hh * (G[k] * (s2 - 3 * s3 + 3 * s4 - s5) + G[k + 1] * (s3 - 2 * s4 + s5)))
            else:
                val[i] = ((2 * s3 - 3 * s2 + 1) * C[k] + (s3 - 2 * s2 + s) * h * D[k]
                          + (3 * s2 - 2 * s3) * C[k + 1] + (s3 - s2) * h * D[k + 1])
        val[0] = 0.0
        val[n] = C[n]
        vmax = val[0]
        prev = 0.0
        for i in range(1, n + 1):
            vmax = max(vmax, val[i])
            line[i - 1] = (vmax - prev) / h
            prev = vmax


@njit(cache=True)
def _interp(X, vel, lo, h, n):
    """4-point Lagrange interpolation of the edge table vel at X (fokker_planck._departure.v)."""
    u = min(max((X - lo) * (1.0 / h), 0.0), float(n))
    k = min(max(int(u), 1), n - 2)
    w = u - k
    wm, wp, w2 = w - 1, w + 1, w - 2
    return ((wp * wm * w2 * vel[k] - wp * w * w2 * vel[k + 1]) * 0.5
            + (wp * w * wm * vel[k + 2] - w * wm * w2 * vel[k - 1]) * (1.0 / 6.0))


@njit(cache=True)
def _departure(lo, h, vb, vm, va, ds, dep):
    """RK4 departure points of the n+1 edges (fokker_planck._departure with vel=vb, vel_m=vm, vel_e=va)."""
    n = dep.shape[0] - 1
    for i in range(n + 1):
        X0 = lo + i * h if i < n else lo + n * h
        k1 = vb[i]
        k2 = _interp(X0 + 0.5 * ds * k1, vm, lo, h, n)
        k3 = _interp(X0 + 0.5 * ds * k2, vm, lo, h, n)
        k4 = _interp(X0 + ds * k3, va, lo, h, n)
        dep[i] = X0 + ds / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


@njit(cache=True)
def _clip_restore(R, mass):
    """R[j] <- max(R[j], 0) rescaled to mass[j] (flat densities)."""
    for j in range(R.shape[0]):
        tot = 0.0
        for i in range(R.shape[1]):
            if R[j, i] < 0.0:
                R[j, i] = 0.0
            tot += R[j, i]
        if tot > 0.0:
            sc = mass[j] / tot
            for i in range(R.shape[1]):
                R[j, i] *= sc


@njit(cache=True)
def _masses(R, mass):
    for j in range(R.shape[0]):
        acc = 0.0
        for i in range(R.shape[1]):
            acc += R[j, i]
        mass[j] = acc


@njit(cache=True)
def run_1d(R, D1, D2, ds, V, lam, spectral, lo, h, radices, tw_off, tw, root_off, roots, phase, out):
    """Steps j = 0..N-1 of the pair R [2, n] (modified in place); out[j] = the state after step j.
    V[2j] = drift at t_j, V[2j+1] at the step's midpoint, V[2j+2] at t_{j+1} (on the n+1 edges); spectral: lam is
    -(pi k / L)^2 (the heat factors are then products instead of n exponentials per half step)."""
    n = R.shape[1]
    c = np.empty(n, np.complex128)
    work = np.empty(n, np.complex128)
    fac = np.empty(n)
    dep = np.empty(n + 1)
    C = np.empty(n + 1)
    D = np.empty(n + 1)
    G = np.empty(n + 1)
    OK = np.empty(n + 1, np.bool_)
    val = np.empty(n + 1)
    mass = np.empty(2)
    for j in range(D1.shape[0]):
        for half in range(2):
            if half == 1:
                _departure(lo, h, V[2 * j + 2], V[2 * j + 1], V[2 * j], ds[j], dep)
                _remap_pair(R[0], R[1], dep, lo, h, C, D, G, OK, val)
            Dj = D1[j] if half == 0 else D2[j]
            if Dj > 0.0:
                _masses(R, mass)
                if spectral:   # lam_k = lam_1 k^2: exp(D lam_k) = r^(k^2) by products, r^(2k+1) carried along
                    r = np.exp(Dj * lam[1])
                    e, step, r2 = 1.0, r, r * r
                    for k in range(n):
                        fac[k] = e
                        e *= step
                        step *= r2
                else:
                    for k in range(n):
                        fac[k] = np.exp(Dj * lam[k])
                heat_pair(R[0], R[1], fac, c, work, radices, tw_off, tw, root_off, roots, phase)
                _clip_restore(R, mass)
        out[j, 0, :] = R[0]
        out[j, 1, :] = R[1]


@njit(cache=True)
def sweep_rows(R, V, lo, h, ds):
    """Remap every line R[0, i, :], R[1, i, :] (in place) along the last axis over ds, departure points of its n+1
    edges by RK4 in the frozen drift V[i] (fokker_planck._departure and _remap_lines, line by line)."""
    n = R.shape[2]
    dep = np.empty(n + 1)
    C = np.empty(n + 1)
    D = np.empty(n + 1)
    G = np.empty(n + 1)
    OK = np.empty(n + 1, np.bool_)
    val = np.empty(n + 1)
    for i in range(R.shape[1]):
        _departure(lo, h, V[i], V[i], V[i], ds, dep)
        _remap_pair(R[0, i], R[1, i], dep, lo, h, C, D, G, OK, val)


@njit(cache=True)
def sweep_cols(R, V, lo, h, ds):
    """sweep_rows along axis 1: the lines R[0, :, j], R[1, :, j] with the drift V[j] at their n+1 edges."""
    n = R.shape[1]
    dep = np.empty(n + 1)
    C = np.empty(n + 1)
    D = np.empty(n + 1)
    G = np.empty(n + 1)
    OK = np.empty(n + 1, np.bool_)
    val = np.empty(n + 1)
    a = np.empty(n)
    b = np.empty(n)
    for j in range(R.shape[2]):
        _departure(lo, h, V[j], V[j], V[j], ds, dep)
        for i in range(n):
            a[i] = R[0, i, j]
            b[i] = R[1, i, j]
        _remap_pair(a, b, dep, lo, h, C, D, G, OK, val)
        for i in range(n):
            R[0, i, j] = a[i]
            R[1, i, j] = b[i]


@njit(cache=True)
def mixture_many(x, alpha, s2, logw, means, lam, U, want_score, lp_out, score_out):
    """log p_t(x) [m, n] and (want_score) grad log p_t(x) [m, n, d] of the marginal p_t = sum_k w_k N(alpha m_k,
    alpha^2 C_k + s2 I), C_k = U_k diag(lam_k) U_k^T (theory.marginal_many, per point and time in one pass; per time
    the eigenbasis means U_k^T alpha m_k and 1 / variances once; with want_score, log p is not written)."""
    m, n, d, K = alpha.shape[0], x.shape[0], x.shape[1], logw.shape[0]
    lpk = np.empty(K)
    zv = np.empty((K, d))
    lognorm = np.empty(K)
    iv = np.empty((K, d))
    cm = np.empty((K, d))
    Ut = np.empty((K, d, d))          # Ut[k, e, j] = U[k, j, e]
    for k in range(K):
        for e in range(d):
            for j in range(d):
                Ut[k, e, j] = U[k, j, e]
    for it in range(m):
        a = alpha[it]
        for k in range(K):
            acc = 0.0
            for e in range(d):
                v = a * a * lam[k, e] + s2[it]
                iv[k, e] = 1.0 / v
                acc += np.log(v)
                c = 0.0
                for j in range(d):
                    c += Ut[k, e, j] * (a * means[k, j])
                cm[k, e] = c
            lognorm[k] = logw[k] - 0.5 * (d * np.log(2.0 * np.pi) + acc)
        for i in range(n):
            mx = -np.inf
            for k in range(K):
                q = 0.0
                for e in range(d):
                    z = -cm[k, e]
                    for j in range(d):
                        z += Ut[k, e, j] * x[i, j]
                    zz = z * iv[k, e]
                    zv[k, e] = zz
                    q += z * zz
                lpk[k] = lognorm[k] - 0.5 * q
                mx = max(mx, lpk[k])
            tot = 0.0
            for k in range(K):
                lpk[k] = np.exp(lpk[k] - mx)
                tot += lpk[k]
            if want_score:
                it_ = 1.0 / tot
                for j in range(d):
                    s = 0.0
                    for k in range(K):
                        g = 0.0
                        for e in range(d):
                            g += U[k, j, e] * zv[k, e]
                        s += lpk[k] * g
                    score_out[it, i, j] = -s * it_
            else:
                lp_out[it, i] = np.log(tot) + mx


@njit(cache=True)
def lagrange_product_weights(xn, pe, we, deg, W):
    """W[j] += int of the Lagrange basis polynomial of node j against the weights: on interval i (nodes i, i+1 of
    xn) the polynomial through the min(deg + 1, n + 1) nearest nodes, evaluated at the points pe[i] with weights
    we[i] (timegrid.FisherQuadrature)."""
    n = xn.shape[0] - 1
    m = min(deg + 1, n + 1)
    for i in range(n):
        j0 = min(max(i - (m - 2) // 2, 0), n + 1 - m)
        for a in range(m):
            xa = xn[j0 + a]
            acc = 0.0
            for q in range(pe.shape[1]):
                L = we[i, q]
                x = pe[i, q]
                for b in range(m):
                    if b != a:
                        xb = xn[j0 + b]
                        L *= (x - xb) / (xa - xb)
                acc += L
            W[j0 + a] += acc


# ---- fused diagnostics (fp_diagnostics.block_diagnostics with the exact log p, one state at a time) ----------------

@njit(cache=True)
def _point_values(avg, out):
    """out = max(avg - (1/24) second difference along both axes (edges reflected; an axis of length 1 skipped), 0)
    (fp_diagnostics.to_point_values_stack), for one density [nx, ny]."""
    nx, ny = avg.shape
    for i in range(nx):
        for j in range(ny):
            out[i, j] = avg[i, j]
    if nx > 1:
        for i in range(nx):
            for j in range(ny):
                if i == 0:
                    lap = avg[1, j] - avg[0, j]
                elif i == nx - 1:
                    lap = avg[nx - 2, j] - avg[nx - 1, j]
                else:
                    lap = avg[i - 1, j] - 2.0 * avg[i, j] + avg[i + 1, j]
                out[i, j] -= lap * (1.0 / 24.0)
    if ny > 1:
        for i in range(nx):
            for j in range(ny):
                if j == 0:
                    lap = avg[i, 1] - avg[i, 0]
                elif j == ny - 1:
                    lap = avg[i, ny - 2] - avg[i, ny - 1]
                else:
                    lap = avg[i, j - 1] - 2.0 * avg[i, j] + avg[i, j + 1]
                out[i, j] -= lap * (1.0 / 24.0)
    for i in range(nx):
        for j in range(ny):
            if out[i, j] < 0.0:
                out[i, j] = 0.0


@njit(cache=True)
def _grad_line(f, n, stride, off, h, g):
    """g[off + i stride] = d f / dx along one line of n values: 4th-order central inside, np.gradient's
    second-order stencils (edge_order=2) in the two cells at each end (fp_diagnostics._grad4_stack)."""
    for i in range(n):
        k = off + i * stride
        if n >= 5 and 2 <= i <= n - 3:
            g[k] = (f[k - 2 * stride] - 8.0 * f[k - stride] + 8.0 * f[k + stride] - f[k + 2 * stride]) / (12.0 * h)
        elif i == 0:
            g[k] = (-1.5 / h) * f[k] + (2.0 / h) * f[k + stride] + (-0.5 / h) * f[k + 2 * stride]
        elif i == n - 1:
            g[k] = (0.5 / h) * f[k - 2 * stride] + (-2.0 / h) * f[k - stride] + (1.5 / h) * f[k]
        else:
            g[k] = (f[k + stride] - f[k - stride]) / (2.0 * h)


@njit(cache=True)
def diag_state(qa, pa, lpe, hx, hy, q, p, lr, ok, g, sq, out):
    """(KL, F, mass of q, mass of p) of one state (cell averages qa, pa [nx, ny], exact log p lpe [nx, ny]) into
    out[0..3]: fp_diagnostics.block_diagnostics with log_p (an axis of length 1 has no gradient).  Scratch: q, p, lr
    [nx, ny]; ok (bool), g, sq: flat [nx * ny]."""
    nx, ny = qa.shape
    N = nx * ny
    dv = hx * hy
    _point_values(qa, q)
    _point_values(pa, p)
    qf = q.ravel()
    pf = p.ravel()
    lrf = lr.ravel()
    pmax = 0.0
    qmax = 0.0
    mq = 0.0
    mp = 0.0
    for i in range(nx):
        for j in range(ny):
            mq += qa[i, j]
            mp += pa[i, j]
    for k in range(N):
        pmax = max(pmax, pf[k])
        qmax = max(qmax, qf[k])
    lpf = lpe.ravel()
    kl = 0.0
    lpm = np.log(max(pmax, 1e-300))
    il10 = 1.0 / np.log(10.0)
    for k in range(N):
        lpk = np.log(max(pf[k], 1e-300))
        w = min(max(((lpk - lpm) * il10 + 10.0) / 4.0, 0.0), 1.0)   # log10(p / pmax) from log p
        lr_k = np.log(max(qf[k], 1e-300)) - lpf[k] - w * (lpk - lpf[k])
        if qf[k] > 1e-300:
            kl += qf[k] * lr_k
        ok[k] = qf[k] > 1e-14 * qmax
        lrf[k] = lr_k if ok[k] else 0.0
    fi = 0.0
    for k in range(N):
        sq[k] = 0.0
    if nx > 1:
        for j in range(ny):
            _grad_line(lrf, nx, ny, j, hx, g)
        for k in range(N):
            sq[k] += g[k] * g[k]
    if ny > 1:
        for i in range(nx):
            _grad_line(lrf, ny, 1, i * ny, hy, g)
        for k in range(N):
            sq[k] += g[k] * g[k]
    for i in range(nx):
        for j in range(ny):
            k = i * ny + j
            keep = ok[k]
            if nx > 1:
                for s in (1, 2):
                    if i >= s:
                        keep = keep and ok[k - s * ny]
                    if i < nx - s:
                        keep = keep and ok[k + s * ny]
            if ny > 1:
                for s in (1, 2):
                    if j >= s:
                        keep = keep and ok[k - s]
                    if j < ny - s:
                        keep = keep and ok[k + s]
            if keep:
                fi += qf[k] * sq[k]
    out[0] = kl * dv
    out[1] = fi * dv
    out[2] = mq * dv
    out[3] = mp * dv


@njit(cache=True)
def run_pair_1d(R, D1, D2, ds, V, vi, LP, li, lam, spectral, lo, h, radices, tw_off, tw, root_off, roots, phase,
                diag, dstride):
    """run_1d with the diagnostics fused (nothing stored): steps j = 0..N-1 of the pair R [2, n] (in place), drift
    rows V[vi[2j]] at t_j, V[vi[2j+1]] at the midpoint, V[vi[2j+2]] at t_{j+1}.  diag[i] = (KL, F, mass q, mass p)
    of the state at t_{i dstride}, i = 0..N / dstride, with the exact log p there in LP[li[i]] (cell centres)."""
    n = R.shape[1]
    c = np.empty(n, np.complex128)
    work = np.empty(n, np.complex128)
    fac = np.empty(n)
    dep = np.empty(n + 1)
    C = np.empty(n + 1)
    D = np.empty(n + 1)
    G = np.empty(n + 1)
    OK = np.empty(n + 1, np.bool_)
    val = np.empty(n + 1)
    mass = np.empty(2)
    q = np.empty((n, 1))
    p = np.empty((n, 1))
    lr = np.empty((n, 1))
    okd = np.empty(n, np.bool_)
    g = np.empty(n)
    sq = np.empty(n)
    Rv = R.reshape(2, n, 1)
    diag_state(Rv[0], Rv[1], LP[li[0]].reshape(n, 1), h, 1.0, q, p, lr, okd, g, sq, diag[0])
    for j in range(D1.shape[0]):
        for half in range(2):
            if half == 1:
                _departure(lo, h, V[vi[2 * j + 2]], V[vi[2 * j + 1]], V[vi[2 * j]], ds[j], dep)
                _remap_pair(R[0], R[1], dep, lo, h, C, D, G, OK, val)
            Dj = D1[j] if half == 0 else D2[j]
            if Dj > 0.0:
                _masses(R, mass)
                if spectral:
                    r = np.exp(Dj * lam[1])
                    e, step, r2 = 1.0, r, r * r
                    for k in range(n):
                        fac[k] = e
                        e *= step
                        step *= r2
                else:
                    for k in range(n):
                        fac[k] = np.exp(Dj * lam[k])
                heat_pair(R[0], R[1], fac, c, work, radices, tw_off, tw, root_off, roots, phase)
                _clip_restore(R, mass)
        if (j + 1) % dstride == 0:
            i = (j + 1) // dstride
            diag_state(Rv[0], Rv[1], LP[li[i]].reshape(n, 1), h, 1.0, q, p, lr, okd, g, sq, diag[i])


@njit(cache=True)
def _heat_factors_into(D, lam, spectral, fac):
    """fac[k] = exp(D lam[k]); spectral (lam_k = lam_1 k^2): by products, r^(k^2) with r^(2k+1) carried along."""
    n = fac.shape[0]
    if spectral:
        r = np.exp(D * lam[1]) if n > 1 else 1.0
        e, step, r2 = 1.0, r, r * r
        for k in range(n):
            fac[k] = e
            e *= step
            step *= r2
    else:
        for k in range(n):
            fac[k] = np.exp(D * lam[k])


@njit(cache=True)
def _to_averages_line(r, tmp):
    """r <- r + (1/24) second difference (edges reflected), in place (fokker_planck._to_averages_axis on a line)."""
    n = r.shape[0]
    for i in range(n):
        if i == 0:
            lap = r[1] - r[0]
        elif i == n - 1:
            lap = r[n - 2] - r[n - 1]
        else:
            lap = r[i - 1] - 2.0 * r[i] + r[i + 1]
        tmp[i] = r[i] + lap * (1.0 / 24.0)
    for i in range(n):
        r[i] = tmp[i]


@njit(cache=True)
def _points_coeffs(n, cp, mm):
    """Thomas-algorithm factors of the averaging map r + (1/24) second difference (edges reflected): tridiagonal,
    1/24 off the diagonal, 22/24 on it (23/24 in the end rows); diagonally dominant."""
    if n == 1:
        cp[0], mm[0] = 0.0, 1.0
        return
    o = 1.0 / 24.0
    b = 23.0 / 24.0
    mm[0] = 1.0 / b
    cp[0] = o * mm[0]
    for i in range(1, n):
        b = 23.0 / 24.0 if i == n - 1 else 22.0 / 24.0
        mm[i] = 1.0 / (b - o * cp[i - 1])
        cp[i] = o * mm[i]


@njit(cache=True)
def _to_points_line(r, cp, mm):
    """r <- the point values whose averaging map gives r (the tridiagonal solve; fokker_planck._to_points_axis's
    DCT-II solve on a line, the same exact inverse), in place."""
    n = r.shape[0]
    o = 1.0 / 24.0
    r[0] = r[0] * mm[0]
    for i in range(1, n):
        r[i] = (r[i] - o * r[i - 1]) * mm[i]
    for i in range(n - 2, -1, -1):
        r[i] -= cp[i] * r[i + 1]


@njit(cache=True)
def _clip_line(r):
    """r <- max(r, 0) times (sum before (>= 0) / sum after) (fokker_planck._clip_lines on one line)."""
    before = 0.0
    after = 0.0
    for i in range(r.shape[0]):
        before += r[i]
        if r[i] < 0.0:
            r[i] = 0.0
        after += r[i]
    if after > 0.0:
        sc = max(before, 0.0) / after
        for i in range(r.shape[0]):
            r[i] *= sc


@njit(cache=True)
def run_pair_2d(R, D1, D2, ds, VX, VY, LP, rows, lrows, lamx, lamy, avx, avy, lox, hx, loy, hy,
                rx, twox, twx, rox, rtx, phx, ry, twoy, twy, roy, rty, phy, diag, dstride):
    """Steps j = 0..B-1 of the 2-D pair R [2, nx, ny] (cell averages, in place), the step of
    fokker_planck._Stepper.step with every operation done line by line: per step, with E = exp(D lam) per axis and
    a = _avg_factors (the DCT-II eigenvalues of the averaging map r + r''/24),
      y-lines: E1y / ay (heat, then point values across the x sweep);
      x-lines: E1x, clip, x sweep over ds/2, point values (1 / ax: here the tridiagonal solve, _to_points_line), clip;
      y-lines: averages, y sweep over ds, point values, clip;
      x-lines: averages, x sweep over ds/2, E2x;
      y-lines: ay E2y;
    then negatives (far tails) clipped and each density's mass restored ("clip": _clip_line, each line's mass kept,
    before every sweep whose input could be negative).  In exact arithmetic this is the plain step's sequence
    (operations on different axes commute; the sweeps and clips see the same inputs).  Tables at the times of the
    run: step j from rows[j] to rows[j + 1]; drift VX[r] [ny, nx+1] (x component on the x-edges), VY[r] [nx, ny+1],
    frozen at the mean of its two ends.  diag[i] = (KL, F, mass q, mass p) after step i dstride (diag[0]: the initial
    state; diag_state) with the exact log p LP[lrows[i]] [nx * ny] at the centres."""
    nx, ny = R.shape[1], R.shape[2]
    mx = max(nx, ny)
    c = np.empty(mx, np.complex128)
    work = np.empty(mx, np.complex128)
    fA, fE = np.empty(ny), np.empty(ny)
    fB1, fD = np.empty(nx), np.empty(nx)
    cpx, mmx, cpy, mmy = np.empty(nx), np.empty(nx), np.empty(ny), np.empty(ny)
    _points_coeffs(nx, cpx, mmx)
    _points_coeffs(ny, cpy, mmy)
    ey = np.empty(ny)
    depx = np.empty((ny, nx + 1))
    depy = np.empty(ny + 1)
    C = np.empty(mx + 1)
    Dd = np.empty(mx + 1)
    G = np.empty(mx + 1)
    OK = np.empty(mx + 1, np.bool_)
    val = np.empty(mx + 1)
    a = np.empty(nx)
    b = np.empty(nx)
    tmp = np.empty(mx)
    q = np.empty((nx, ny))
    p = np.empty((nx, ny))
    lr = np.empty((nx, ny))
    okd = np.empty(nx * ny, np.bool_)
    g = np.empty(nx * ny)
    sq = np.empty(nx * ny)
    mass = np.empty(2)
    vxm = np.empty((ny, nx + 1))
    vym = np.empty(ny + 1)
    diag_state(R[0], R[1], LP[lrows[0]].reshape(nx, ny), hx, hy, q, p, lr, okd, g, sq, diag[0])
    cx, wx = c[:nx], work[:nx]
    cy, wy = c[:ny], work[:ny]
    Cx, Dx, Gx, OKx, valx = C[:nx + 1], Dd[:nx + 1], G[:nx + 1], OK[:nx + 1], val[:nx + 1]
    Cy, Dy, Gy, OKy, valy = C[:ny + 1], Dd[:ny + 1], G[:ny + 1], OK[:ny + 1], val[:ny + 1]
    tx, ty = tmp[:nx], tmp[:ny]
    for j in range(D1.shape[0]):
        _heat_factors_into(D1[j], lamy, True, ey)
        for k in range(ny):
            fA[k] = ey[k] / avy[k]
        _heat_factors_into(D2[j], lamy, True, ey)
        for k in range(ny):
            fE[k] = avy[k] * ey[k]
        _heat_factors_into(D1[j], lamx, True, fB1)
        _heat_factors_into(D2[j], lamx, True, fD)
        r0, r1 = rows[j], rows[j + 1]
        for iy in range(ny):
            for i in range(nx + 1):
                vxm[iy, i] = 0.5 * (VX[r0, iy, i] + VX[r1, iy, i])
            _departure(lox, hx, vxm[iy], vxm[iy], vxm[iy], 0.5 * ds[j], depx[iy])
        for ix in range(nx):
            heat_pair(R[0, ix], R[1, ix], fA, cy, wy, ry, twoy, twy, roy, rty, phy)
        for iy in range(ny):
            for ix in range(nx):
                a[ix] = R[0, ix, iy]
                b[ix] = R[1, ix, iy]
            if D1[j] > 0.0:
                heat_pair(a, b, fB1, cx, wx, rx, twox, twx, rox, rtx, phx)
            _clip_line(a)
            _clip_line(b)
            _remap_pair(a, b, depx[iy], lox, hx, Cx, Dx, Gx, OKx, valx)
            _to_points_line(a, cpx, mmx)
            _to_points_line(b, cpx, mmx)
            _clip_line(a)
            _clip_line(b)
            for ix in range(nx):
                R[0, ix, iy] = a[ix]
                R[1, ix, iy] = b[ix]
        for ix in range(nx):
            _to_averages_line(R[0, ix], ty)
            _to_averages_line(R[1, ix], ty)
            for i in range(ny + 1):
                vym[i] = 0.5 * (VY[r0, ix, i] + VY[r1, ix, i])
            _departure(loy, hy, vym, vym, vym, ds[j], depy)
            _remap_pair(R[0, ix], R[1, ix], depy, loy, hy, Cy, Dy, Gy, OKy, valy)
            _to_points_line(R[0, ix], cpy, mmy)
            _to_points_line(R[1, ix], cpy, mmy)
            _clip_line(R[0, ix])
            _clip_line(R[1, ix])
        for iy in range(ny):
            for ix in range(nx):
                a[ix] = R[0, ix, iy]
                b[ix] = R[1, ix, iy]
            _to_averages_line(a, tx)
            _to_averages_line(b, tx)
            _remap_pair(a, b, depx[iy], lox, hx, Cx, Dx, Gx, OKx, valx)
            if D2[j] > 0.0:
                heat_pair(a, b, fD, cx, wx, rx, twox, twx, rox, rtx, phx)
            for ix in range(nx):
                R[0, ix, iy] = a[ix]
                R[1, ix, iy] = b[ix]
        for ix in range(nx):
            heat_pair(R[0, ix], R[1, ix], fE, cy, wy, ry, twoy, twy, roy, rty, phy)
        Rf = R.reshape(2, nx * ny)
        _masses(Rf, mass)
        _clip_restore(Rf, mass)
        if (j + 1) % dstride == 0:
            i = (j + 1) // dstride
            diag_state(R[0], R[1], LP[lrows[i]].reshape(nx, ny), hx, hy, q, p, lr, okd, g, sq, diag[i])
