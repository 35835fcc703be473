"""Result container shared by every method: KL(tau), Fisher F(tau) and the identity check along a path."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


def trapezoid_g2_fisher(times: np.ndarray, g2: np.ndarray, fisher: np.ndarray) -> float:
    """int_{t_end}^{t0} 1/2 g^2 F dtau = int 1/2 g^2 F tau dlog(tau), composite Simpson in log(tau) on the output grid."""
    from scipy.integrate import simpson

    t = np.asarray(times, dtype=np.float64)
    y = 0.5 * np.asarray(g2) * np.asarray(fisher) * t
    order = np.argsort(t)
    if t.size < 3:
        return float(np.trapezoid(y[order], np.log(t[order])))
    return float(simpson(y[order], x=np.log(t[order])))


@dataclass(frozen=True)
class KLPath:
    """KL(q_tau || p_tau) and F(tau) on times running from t0 down to t_end, plus the identity check (Thm 3.1 / 3.2)."""

    method: str
    sampler: str
    times: np.ndarray
    kl: np.ndarray
    fisher: Optional[np.ndarray]
    kl_start: float
    kl_end: float
    kl_drop: float
    fisher_integral: Optional[float]
    residual: Optional[float]
    mass_error: float = 0.0
    kl_band: Optional[np.ndarray] = None
    extra: dict = field(default_factory=dict)

    @property
    def relative_residual(self) -> Optional[float]:
        """residual / max(|kl_start|, 1e-300)."""
        if self.residual is None:
            return None
        return float(self.residual / max(abs(self.kl_start), 1e-300))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the CLI report)."""
        def conv(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return [None if not np.isfinite(x) else float(x) for x in v.ravel()] if v.ndim == 1 \
                    else [conv(r) for r in v]
            if isinstance(v, (np.floating, float)):
                return None if not np.isfinite(v) else float(v)
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            return v
        out = {
            "method": self.method, "sampler": self.sampler, "times": conv(self.times), "kl": conv(self.kl),
            "fisher": conv(self.fisher) if self.fisher is not None else None,
            "kl_start": conv(self.kl_start), "kl_end": conv(self.kl_end), "kl_drop": conv(self.kl_drop),
            "fisher_integral": conv(self.fisher_integral) if self.fisher_integral is not None else None,
            "residual": conv(self.residual) if self.residual is not None else None,
            "relative_residual": conv(self.relative_residual) if self.residual is not None else None,
            "mass_error": conv(self.mass_error),
        }
        if self.kl_band is not None:
            out["kl_band"] = conv(self.kl_band)
        out.update({k: conv(v) for k, v in self.extra.items()})
        return out


def make_path(method: str, sampler: str, times: np.ndarray, kl: np.ndarray, fisher: Optional[np.ndarray],
              g2: Optional[np.ndarray], mass_error: float = 0.0, fisher_integral: Optional[float] = None,
              **kw: Any) -> KLPath:
    """Build a KLPath; residual = |kl_drop - int 1/2 g^2 F| for sde, |kl_drop| for ode."""
    times = np.asarray(times, dtype=np.float64)
    kl = np.asarray(kl, dtype=np.float64)
    kl_start, kl_end = float(kl[0]), float(kl[-1])
    drop = kl_start - kl_end
    if fisher_integral is None and fisher is not None and g2 is not None:
        fisher_integral = trapezoid_g2_fisher(times, g2, fisher)
    if sampler == "ode":
        residual: Optional[float] = abs(drop)
    else:
        residual = None if fisher_integral is None else abs(drop - fisher_integral)
    return KLPath(method, sampler, times, kl, None if fisher is None else np.asarray(fisher, dtype=np.float64),
                  kl_start, kl_end, drop, fisher_integral, residual, mass_error, **kw)
