"""Built-in verification cases: `python -m theory demo --out DIR` writes report.json and KL-curve PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cliutil import atomic_path, check_writable_dir, write_json_atomic

from .config import config_from_dict
from .errors import ConfigError
from .verify import verify

EXAMPLE = {"schedule": {"kind": "vp-linear", "beta_min": 0.1, "beta_max": 20.0},
           "data": {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]], "covs": [[[0.1]], [[0.2]]]},
           "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]},
           "t0": 0.6, "t_end": 0.002, "sampler": "sde"}


def builtin_cases(quick: bool = False) -> list[tuple[str, dict[str, Any], str]]:
    """(name, config, method) triples: the issue's example (SDE and ODE), a Gaussian in 3-D, a 2-D mixture."""
    cases = []
    for sampler in ("sde", "ode"):
        cfg = dict(EXAMPLE, sampler=sampler)
        if quick:
            cfg.update(grid=400, n_steps=200)
        cases.append((f"mixture1d_{sampler}_grid", cfg, "grid"))
    cases.append(("mixture1d_sde_reversal", dict(EXAMPLE), "reversal"))
    g3 = {"schedule": {"kind": "vp-cosine", "s": 0.008},
          "data": {"weights": [1.0], "means": [[0.0, 0.5, -0.5]],
                   "covs": [[[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.4]]]},
          "edited": {"weights": [1.0], "means": [[1.0, -0.5, 0.0]], "covs": [[[0.6, 0, 0], [0, 0.4, 0], [0, 0, 0.5]]]},
          "t0": 0.5, "t_end": 0.005}
    for sampler in ("sde", "ode"):
        cases.append((f"gaussian3d_{sampler}", dict(g3, sampler=sampler), "gaussian"))
    m2 = {"schedule": {"kind": "ve", "sigma_min": 0.01, "sigma_max": 50.0},
          "data": {"weights": [0.5, 0.5], "means": [[-1.0, 0.0], [1.0, 0.5]],
                   "covs": [[[0.2, 0.05], [0.05, 0.2]], [[0.15, 0.0], [0.0, 0.25]]]},
          "edited": {"weights": [0.8, 0.2], "means": [[0.0, 1.0], [1.5, -1.0]],
                     "covs": [[[0.3, 0.0], [0.0, 0.3]], [[0.2, 0.0], [0.0, 0.2]]]},
          "t0": 0.35, "t_end": 0.01}
    for sampler in ("sde", "ode"):
        cfg = dict(m2, sampler=sampler)
        cfg.update(grid=[96, 96] if quick else [200, 200], n_steps=100 if quick else 250)
        cases.append((f"mixture2d_{sampler}_grid", cfg, "grid"))
    return cases


def check_outputs(out_dir: str, quick: bool = False) -> Path:
    """Before any work: the folder can be written (or created), no output name is taken by a folder, and every
    built-in config is valid (ConfigError, a cliutil.BadInput, otherwise)."""
    out = check_writable_dir(out_dir, "--out", error=ConfigError)
    names = ["report.json"] + [f"kl_{name}.png" for name, _, _ in builtin_cases(quick)]
    for n in names:
        if (out / n).is_dir():
            raise ConfigError(f"--out: {str(out / n)!r} is a folder, so {n} cannot be written there")
    for _, cfg, _ in builtin_cases(quick):
        config_from_dict(cfg)
    return out


def run_builtin(out_dir: str, quick: bool = False) -> dict[str, Any]:
    """Verify every built-in case, write out_dir/report.json and out_dir/kl_<case>.png; return a summary."""
    import matplotlib.pyplot as plt  # no backend switch here: pyplot falls back to Agg without a display

    out = check_outputs(out_dir, quick)
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, Any] = {}
    for name, cfg, method in builtin_cases(quick):
        rep = verify(cfg, method)
        rep["config"] = cfg
        reports[name] = rep
        fig, ax = plt.subplots(figsize=(5, 3.4))
        t = np.array(rep["times"])
        ax.plot(t, rep["kl"], label=f"KL(q_t||p_t) [{rep['method']}]")
        if rep["sampler"] == "sde" and rep.get("fisher") is not None:
            g = np.array(rep["fisher"], dtype=float)
            from .schedules import schedule_from_dict

            g2 = schedule_from_dict(cfg["schedule"]).g2(t)
            y = 0.5 * g2 * g * t
            order = np.argsort(t)
            from scipy.integrate import cumulative_trapezoid

            cum = cumulative_trapezoid(y[order], np.log(t[order]), initial=0.0)
            ax.plot(t[order], rep["kl_end"] + cum, "--", label="KL(t_end) + int 1/2 g^2 F")
        ax.set_xscale("log")
        ax.set_xlabel("t (reverse process runs right to left)")
        ax.set_ylabel("KL(q_t || p_t)  [nats]")
        ax.set_title(f"{name}: rel. residual {rep['relative_residual']:.1e}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / f"kl_{name}.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    write_json_atomic(out / "report.json", reports, indent=1)
    summary = {name: {k: r[k] for k in ("method", "sampler", "kl_start", "kl_end", "kl_drop", "fisher_integral",
                                        "relative_residual", "seconds")} for name, r in reports.items()}
    return {"out": str(out), "cases": summary}
