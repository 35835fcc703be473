"""Compiled (numba) mixed-radix FFT and the exact Neumann heat step on cell averages built on it.

The heat step is exp(D * Laplacian) in the DCT-II basis (theory.fokker_planck._heat_factors): y = DCT-II^{-1}(DCT-II(x)
* exp(D lam)).  DCT-II by Makhoul's reordering (J. Makhoul, IEEE TASSP 28, 1980): v = (x0, x2, x4, ..., x5, x3, x1),
X_k = Re(exp(-i pi k / 2n) FFT(v)_k); its inverse: u = IFFT(exp(i pi k / 2n) (Y_k - i Y_{n-k})) with Y_n = 0, then
x_{2k} = u_k, x_{2k+1} = u_{n-1-k}.  Two real lines go through one complex FFT each way.  FFT: Stockham
autosort, radices = the prime factors of n (O(n sum of factors)); plan() refuses sizes with a prime factor > 31.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

MAX_RADIX = 31
_C1, _C2 = math.cos(2 * math.pi / 5), math.cos(4 * math.pi / 5)
_S1, _S2 = math.sin(2 * math.pi / 5), math.sin(4 * math.pi / 5)
_S3 = math.sqrt(3.0) / 2.0


def factors(n: int) -> list[int]:
    """Prime factors of n (4 merged from pairs of 2), or [] if one is above MAX_RADIX."""
    out, m = [], n
    for p in (4, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31):
        while m % p == 0:
            out.append(p)
            m //= p
    return out if m == 1 else []


@lru_cache(maxsize=32)
def plan(n: int) -> tuple[np.ndarray, ...] | None:
    """Stockham tables for an n-point FFT: (radices, per-stage twiddle offsets, twiddles, root offsets, roots,
    the DCT phases exp(-i pi k / 2n)); None if n has a prime factor above MAX_RADIX."""
    fs = factors(n)
    if not fs and n > 1:
        return None
    tw, tw_off, roots, root_off, ns = [], [], [], [], 1
    for r in fs:
        tw_off.append(sum(len(a) for a in tw))
        k = np.arange(ns)[:, None] * np.arange(r)[None, :]
        tw.append(np.exp(-2j * np.pi * k / (ns * r)).ravel())       # [k, r]: exp(-2 pi i k r / (Ns R))
        root_off.append(sum(len(a) for a in roots))
        q = np.arange(r)[:, None] * np.arange(r)[None, :]
        roots.append(np.exp(-2j * np.pi * q / r).ravel())           # [q, r]
        ns *= r
    cat = lambda a: np.concatenate(a) if a else np.zeros(1, np.complex128)  # noqa: E731
    phase = np.exp(-1j * np.pi * np.arange(n) / (2 * n))
    return (np.array(fs or [1], np.int64), np.array(tw_off or [0], np.int64), cat(tw),
            np.array(root_off or [0], np.int64), cat(roots), phase)


@njit(cache=True, fastmath=False)
def fft_inplace(a, work, radices, tw_off, tw, root_off, roots):
    """Forward DFT of a (complex, length n) in place, X_k = sum_j a_j exp(-2 pi i jk / n)."""
    n = a.shape[0]
    if n == 1:
        return
    src, dst = a, work
    ns = 1
    v = np.empty(MAX_RADIX, np.complex128)
    for s in range(radices.shape[0]):
        r = radices[s]
        m = n // r
        to, ro = tw_off[s], root_off[s]
        for j in range(m):
            k = j % ns
            base = (j // ns) * ns * r + k
            if r == 4:   # exp(-2 pi i / 4) = -i: no multiplications inside the butterfly
                a0 = src[j]
                a1 = src[j + m] * tw[to + k * 4 + 1]
                a2 = src[j + 2 * m] * tw[to + k * 4 + 2]
                a3 = src[j + 3 * m] * tw[to + k * 4 + 3]
                s02, d02, s13 = a0 + a2, a0 - a2, a1 + a3
                d13 = complex(a1.imag - a3.imag, a3.real - a1.real)     # -i (a1 - a3)
                dst[base] = s02 + s13
                dst[base + ns] = d02 + d13
                dst[base + 2 * ns] = s02 - s13
                dst[base + 3 * ns] = d02 - d13
                continue
            if r == 5:   # y1,4 = b1 -/+ i d1, y2,3 = b2 -/+ i d2 (cosines and sines of 2 pi / 5, 4 pi / 5)
                a0 = src[j]
                a1 = src[j + m] * tw[to + k * 5 + 1]
                a2 = src[j + 2 * m] * tw[to + k * 5 + 2]
                a3 = src[j + 3 * m] * tw[to + k * 5 + 3]
                a4 = src[j + 4 * m] * tw[to + k * 5 + 4]
                t1, t2, t3, t4 = a1 + a4, a2 + a3, a1 - a4, a2 - a3
                b1 = a0 + _C1 * t1 + _C2 * t2
                b2 = a0 + _C2 * t1 + _C1 * t2
                d1 = _S1 * t3 + _S2 * t4
                d2 = _S2 * t3 - _S1 * t4
                md1 = complex(d1.imag, -d1.real)                        # -i d1
                md2 = complex(d2.imag, -d2.real)
                dst[base] = a0 + t1 + t2
                dst[base + ns] = b1 + md1
                dst[base + 2 * ns] = b2 + md2
                dst[base + 3 * ns] = b2 - md2
                dst[base + 4 * ns] = b1 - md1
                continue
            if r == 3:   # y1,2 = a0 - (a1 + a2) / 2 -/+ i (sqrt 3 / 2) (a1 - a2)
                a0 = src[j]
                a1 = src[j + m] * tw[to + k * 3 + 1]
                a2 = src[j + 2 * m] * tw[to + k * 3 + 2]
                t1 = a1 + a2
                t2 = a0 - 0.5 * t1
                d = (a1 - a2) * _S3
                t3 = complex(d.imag, -d.real)                           # -i (sqrt 3 / 2) (a1 - a2)
                dst[base] = a0 + t1
                dst[base + ns] = t2 + t3
                dst[base + 2 * ns] = t2 - t3
                continue
            if r == 2:
                a0 = src[j]
                a1 = src[j + m] * tw[to + k * 2 + 1]
                dst[base] = a0 + a1
                dst[base + ns] = a0 - a1
                continue
            for p in range(r):
                v[p] = src[j + p * m] * tw[to + k * r + p]
            for q in range(r):
                acc = v[0]
                for p in range(1, r):
                    acc += v[p] * roots[ro + q * r + p]
                dst[base + q * ns] = acc
        ns *= r
        src, dst = dst, src
    if radices.shape[0] % 2 == 1:
        a[:] = work[:]


@njit(cache=True)
def heat_pair(x, y, fac, c, work, radices, tw_off, tw, root_off, roots, phase):
    """In place: x, y (two real lines of n cell averages) <- DCT-II^{-1}(DCT-II(.) * fac), via one complex FFT of
    the reordered pair each way (c, work: complex scratch of length n)."""
    n = x.shape[0]
    for k in range((n + 1) // 2):
        c[k] = complex(x[2 * k], y[2 * k])
    for k in range(n // 2):
        c[n - 1 - k] = complex(x[2 * k + 1], y[2 * k + 1])
    fft_inplace(c, work, radices, tw_off, tw, root_off, roots)
    # split the two real transforms: V_x[k] = (Z_k + conj Z_{n-k}) / 2, V_y[k] = (Z_k - conj Z_{n-k}) / 2i
    for k in range(n):
        z, zc = c[k], c[(n - k) % n].conjugate()
        ph = phase[k]
        work[k] = complex(((z + zc) * 0.5 * ph).real * fac[k], ((z - zc) * (-0.5j) * ph).real * fac[k])
    # inverse: U_k = conj(phase_k) (Y_k - i Y_{n-k}); both lines are real, so one complex IFFT carries both
    for k in range(n):
        yx, yy = work[k].real, work[k].imag
        if k > 0:
            zx, zy = work[n - k].real, work[n - k].imag
        else:
            zx, zy = 0.0, 0.0
        ph = phase[k].conjugate()
        ux = ph * complex(yx, -zx)
        uy = ph * complex(yy, -zy)
        c[k] = (ux + 1j * uy).conjugate()          # IFFT(u) = conj(FFT(conj(u))) / n
    fft_inplace(c, work, radices, tw_off, tw, root_off, roots)
    inv = 1.0 / n
    for k in range((n + 1) // 2):
        z = c[k].conjugate() * inv
        x[2 * k], y[2 * k] = z.real, z.imag
    for k in range(n // 2):
        z = c[n - 1 - k].conjugate() * inv
        x[2 * k + 1], y[2 * k + 1] = z.real, z.imag


def heat_factor_check(n: int) -> float:
    """Largest difference between heat_pair and scipy's orthonormal DCT route on random lines (a self-test)."""
    from scipy.fft import dct, idct

    rng = np.random.default_rng(n)
    x, y = rng.random(n), rng.random(n)
    fac = np.exp(-rng.random(n))
    ref = [idct(dct(v, type=2, norm="ortho") * fac, type=2, norm="ortho") for v in (x, y)]
    pl = plan(n)
    xx, yy = x.copy(), y.copy()
    heat_pair(xx, yy, fac, np.empty(n, np.complex128), np.empty(n, np.complex128), *pl)
    return float(max(np.abs(xx - ref[0]).max(), np.abs(yy - ref[1]).max()) / max(1.0, math.fabs(ref[0].max())))
