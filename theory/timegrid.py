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
