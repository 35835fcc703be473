"""Accuracy vs cost of the theory grid solver against py-pde, for the identity residual and the final KL, on the
fixed random mixture set (theory.cases) plus the issue's example; and the defaults of `verify` on the whole set.

Rerun (this project's 2-core CPU machine, shared with other jobs: times are minima of --repeat runs):
    .venv/bin/python benchmarks/theory_bench.py --out docs/figures/theory [--quick]
    .venv/bin/python benchmarks/theory_bench.py --out docs/figures/theory --random-set-only   # defaults only
Writes theory_bench.json, theory_bench.png and theory_bench.md (the README table: per py-pde configuration the
worst speed-up over the problems, named, and the median), and random_set.json without --quick.
--quick (30 s at a load of ~1.5 on the 2-core machine; 66-100 s before the second pass of issue 22): the example
and 2 of the 12 1-D cases (the weakest speed-ups of an earlier full run), py-pde's explicit and BDF solvers at 100
and 200 cells; 2-D case 1 against py-pde's explicit and BDF solvers at 60^2; the 1-D defaults on all 12 cases and
the 2-D defaults on case 8.
Full run (333 s at a load of 1.3-2.2): all 12 1-D cases, explicit also at 400 cells, BDF also at 400 and 800 and
py-pde's stock ScipySolver at 100-400; 2-D cases 1 and 9 against explicit and BDF at 60^2 and 100^2 (stock BDF in
2-D would build a dense finite-difference Jacobian of 3600^2 or more entries: not run); all 24 defaults.
Our solver runs on the default backend (the compiled loop, theory.fp_compiled; THEORY_BACKEND=numpy for the plain
one), after one warm-up call that compiles it (numba caches the machine code on disk; not counted, as py-pde's
warm-up is not).

Every problem is solved by both on the same box (theory.verify.auto_grid):
  ours, solver     evolve_pair with Richardson extrapolation (what py-pde also gives: a solution, no error bounds),
                   swept over cells x steps;
  ours, verify     the same plus the error estimates `verify` always reports (runs at n/4 steps and half the cells);
  py-pde           its finite differences for d_s q = div(b q) + 1/2 g^2 Laplace q in reverse time s = t0 - t,
                   b = f x - g^2 grad log p_t, with scipy's BDF on py-pde's operator (what pde.ScipySolver does,
                   rtol 1e-6, atol 1e-10; here in one solve_ivp call and given the Jacobian's sparsity pattern,
                   which makes it faster than ScipySolver) or py-pde's adaptive explicit solver (numpy backend); a
                   warm-up run first (compilation is not counted).  The full run adds "bdf-stock", pde.ScipySolver
                   as shipped (dense finite-difference Jacobian; final KL only).  For the KL(t_end) error it runs straight to t_end; for the identity residual it
                   also stops at 33 times uniform in the variable of theory.timegrid (what our solver uses with 32
                   steps), where F = sum q |grad(log q - log p_exact)|^2 dV is taken with the same fourth-order
                   formula as ours (exact p, as ours) and integrated with the same rule (theory.timegrid's product
                   integration: F interpolated in the time-grid variable, degree 5, exact against 1/2 g^2 dt).
Errors are relative to KL(t0): |KL(t_end) - reference| and |KL(t0) - KL(t_end) - int 1/2 g^2 F| (the identity
residual; KL(t0) - KL(t_end) = int 1/2 g^2 F exactly).  Reference: the time reversal q_tau = p_tau h_tau on a
dense trapezoid grid (1-D; Gauss-Hermite inner expectation) or Gauss-Hermite quadrature (2-D).
Equal accuracy: for each py-pde run, our cheapest sweep point whose error -- taken as the largest over every sweep
point with at least as many cells and steps, so a lucky cancellation at a coarse setting earns nothing -- is at
most py-pde's: for the final KL, and for the "verification error" max(|KL(t_end) error|, identity residual);
speed-up = py-pde CPU seconds / ours; per py-pde configuration the minimum over the cases is reported with the case
named, and the median.
"""
import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # both solvers single-threaded (set before numpy loads)
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theory.cases import random_configs  # noqa: E402
from theory.config import config_from_dict  # noqa: E402
from theory.divergences import fisher_grid_logratio, kl_grid  # noqa: E402
from theory.fokker_planck import default_backend, evolve_pair  # noqa: E402
from theory.marginal_many import attach_many  # noqa: E402
from theory.reversal import reversal_kl_trapezoid_1d, reversal_quadrature  # noqa: E402
from theory.timegrid import integrate_half_g2_fisher, psi_table, schedule_time_grid  # noqa: E402
from theory.verify import auto_grid, narrowest_variance, verify  # noqa: E402

MACHINE = ("this project's 2-core CPU machine, shared with other jobs (times: minimum of --repeat runs; speed-ups from "
           "CPU time, single-threaded)")
EX1 = {"schedule": {"kind": "vp-linear"}, "data": {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]],
       "covs": [[[0.1]], [[0.2]]]}, "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]},
       "t0": 0.6, "t_end": 0.002, "sampler": "sde"}
QUICK_1D = [7, 11]                # random 1-D cases in --quick: the weakest speed-ups of a full run
QUICK_2D = [8]                    # the 2-D case with the largest residual at the defaults
QUICK_2D_PYPDE = [1]              # the 2-D case with the weakest speed-ups of a full run
PYPDE_2D_CASES = [1, 9]           # full run: the two 2-D cases solved by py-pde (seconds to minutes per solve)
PYPDE_1D = [((100,), "explicit"), ((200,), "explicit"), ((100,), "bdf"), ((200,), "bdf")]
PYPDE_1D_FULL = [((400,), "explicit"), ((400,), "bdf"), ((800,), "bdf"), ((100,), "bdf-stock"),
                 ((200,), "bdf-stock"), ((400,), "bdf-stock")]
PYPDE_2D = [((60, 60), "explicit"), ((60, 60), "bdf")]
CELLS_2D = [30, 32, 40, 48, 60, 100, 150]    # our 2-D sweep (cells per axis; --quick without the last) x steps
STEPS_2D = [4, 8, 12, 16, 32, 64]
REPEAT_2D = 2                     # timing repeats in 2-D, ours and py-pde alike (1-D: --repeat)
PYPDE_2D_FULL = [((100, 100), "explicit"), ((100, 100), "bdf")]   # (stock BDF: a dense 3600^2+ Jacobian; not run)


def best_of(fn, repeat):
    """(minimum CPU seconds of this process, result, minimum wall seconds) over `repeat` calls.  The ratios use CPU
    time: both solvers run single-threaded (OMP_NUM_THREADS=1 is set), and on a machine shared with other jobs CPU
    time is the steadier measure; on a quiet machine the two agree."""
    best, wall, out = np.inf, np.inf, None
    for _ in range(max(1, repeat)):
        t, w = time.process_time(), time.perf_counter()
        out = fn()
        best, wall = min(best, time.process_time() - t), min(wall, time.perf_counter() - w)
    best_of.last_wall = wall
    return best, out


def reference(cfg_d, nodes_2d: int = 40):
    """(KL(t0), KL(t_end)) from the time reversal: 1-D dense trapezoid in x with a 64-node Gauss-Hermite inner
    expectation (theory.reversal.reversal_kl_trapezoid_1d, as the tests), 2-D Gauss-Hermite 40 x 40 nodes."""
    cfg = config_from_dict(cfg_d)
    sch, data = cfg.schedule, cfg.data
    if cfg.dim == 2:
        r = reversal_quadrature(sch, data, cfg.edited, cfg.t0, cfg.t_end, times=np.array([cfg.t0, cfg.t_end]),
                                n_outer=nodes_2d, n_inner=nodes_2d)
        return r.kl_start, r.kl_end
    return tuple(reversal_kl_trapezoid_1d(sch, data, cfg.edited, cfg.t0, (cfg.t0, cfg.t_end)))


def _problem(cfg_d, cells):
    cfg = config_from_dict(cfg_d)
    grid = auto_grid(cfg, tuple(cells))
    x = grid.points()
    return cfg, grid, np.exp(cfg.edited.log_prob(x)), np.exp(cfg.data.marginal(cfg.schedule, cfg.t0).log_prob(x))


def ours_solver(cfg_d, cells, steps, repeat):
    """evolve_pair as `verify` calls it, without the error-estimate runs."""
    cfg, grid, q0, p0 = _problem(cfg_d, cells)
    sch, data = cfg.schedule, cfg.data
    cache = {}

    def marg(t):
        if t not in cache:
            cache[t] = data.marginal(sch, t)
        return cache[t]

    def run():
        cache.clear()
        score, log_p = attach_many(lambda xx, t: marg(t).score(xx), lambda xx, t: marg(t).log_prob(xx), data, sch)
        return evolve_pair(q0, p0, grid, sch, score, cfg.t0, cfg.t_end, "sde", n_steps=steps, log_p=log_p,
                           stiff_var=narrowest_variance(data))
    if steps % 4:
        raise ValueError("sweep steps must be multiples of 4 (as verify rounds them)")
    s, r = best_of(run, repeat)
    return s, r.kl_start, r.kl_end, r.fisher_integral, best_of.last_wall


def pypde_solve(cfg_d, cells, method, frames: int | None, repeat: int = 1):
    """py-pde solves after an untimed warm-up; returns (CPU seconds (min of repeat), KL(t0), KL(t_end), Fisher
    integral or None, wall seconds (min))."""
    import pde
    from pde.trackers.interrupts import FixedInterrupts

    cfg, g, _, _ = _problem(cfg_d, cells)
    sch, data, t0, te = cfg.schedule, cfg.data, cfg.t0, cfg.t_end
    if g.dim == 1:
        grid = pde.CartesianGrid([[g.lo, g.hi]], [g.n])
    else:
        grid = pde.CartesianGrid([[g.lo[0], g.hi[0]], [g.lo[1], g.hi[1]]], list(g.shape))
    pts = grid.cell_coords.reshape(-1, g.dim)
    q0 = np.exp(cfg.edited.log_prob(pts)).reshape(grid.shape)
    dv = float(np.prod(g.spacing))
    stiff = narrowest_variance(data)
    psi = psi_table(sch, t0, te, stiff)

    class ReverseFP(pde.PDEBase):
        def evolution_rate(self, state, s=0):
            t = t0 - s
            b = float(sch.f(t)) * pts - float(sch.g2(t)) * data.marginal(sch, t).score(pts)
            flux = pde.VectorField(grid, np.moveaxis(b.reshape(grid.shape + (g.dim,)), -1, 0) * state.data)
            return flux.divergence({"value": 0}) + 0.5 * float(sch.g2(t)) * state.laplace({"value": 0})

    eq = ReverseFP()
    state0 = pde.ScalarField(grid, q0)
    ts = schedule_time_grid(sch, t0, te, frames - 1, stiff_var=stiff, psi=psi) if frames else None
    rec = {}

    def frame(state, s):
        t = t0 - s
        lp = data.marginal(sch, t).log_prob(pts).reshape(grid.shape)
        q = np.maximum(state.data, 0.0)
        rec[round(float(s), 12)] = fisher_grid_logratio(q, np.log(np.maximum(q, 1e-300)) - lp, list(g.spacing))

    shape = grid.shape
    if method == "bdf":
        from scipy import integrate, sparse

        rhs = eq.make_pde_rhs(state0, backend="numpy")
        n = int(np.prod(shape))
        idx = np.arange(n).reshape(shape)
        pat = sparse.lil_matrix((n, n), dtype=bool)
        for ax in range(g.dim):  # central differences couple each cell with its neighbours along every axis
            for sh in (-1, 0, 1):
                a = np.take(idx, np.arange(max(0, -sh), shape[ax] - max(0, sh)), axis=ax).ravel()
                b = np.take(idx, np.arange(max(0, sh), shape[ax] + min(0, sh)), axis=ax).ravel()
                pat[a, b] = True
        pat = pat.tocsc()

    def run(t_range):
        rec.clear()
        if method == "bdf":
            # py-pde's operator with scipy's BDF (what pde.ScipySolver does), in one solve_ivp call with t_eval for
            # the frames (ScipySolver restarts BDF at every tracker stop) and the Jacobian's sparsity pattern
            s_eval = [t_range] if not frames or t_range < t0 - te else list(t0 - ts)
            sol = integrate.solve_ivp(lambda s, y: np.ravel(rhs(y.reshape(shape), s)), (0.0, t_range),
                                      np.ravel(q0), method="BDF", rtol=1e-6, atol=1e-10, first_step=1e-4,
                                      t_eval=s_eval, jac_sparsity=pat)
            if not sol.success:
                raise RuntimeError(sol.message)
            if frames and t_range >= t0 - te:
                for j, s in enumerate(sol.t[:-1]):
                    frame(pde.ScalarField(grid, sol.y[:, j].reshape(shape)), s)
            return pde.ScalarField(grid, sol.y[:, -1].reshape(shape))
        if method == "bdf-stock":  # pde.ScipySolver as shipped: BDF with a dense finite-difference Jacobian
            solver = pde.ScipySolver(eq, method="BDF", rtol=1e-6, atol=1e-10)
            return pde.Controller(solver, t_range=(0, t_range), tracker=None).run(state0.copy(), dt=1e-4)
        tracker = None
        if frames:
            tracker = pde.trackers.CallbackTracker(frame, interrupts=FixedInterrupts(
                list(t0 - ts[1:-1])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return eq.solve(state0.copy(), t_range=t_range, dt=1e-5, solver="explicit", adaptive=True,
                            tracker=tracker, backend="numpy")

    run(min(1e-4, 0.01 * (t0 - te)))  # warm-up: operator compilation is not counted

    def full():
        out = run(t0 - te)
        fint = None
        if frames:
            if method != "bdf":
                frame(state0, 0.0)
            frame(out, t0 - te)
            s_rec = np.array(sorted(rec))
            F = np.array([rec[k] for k in s_rec])
            if len(s_rec) == frames:
                fint = integrate_half_g2_fisher(t0 - s_rec, F, sch, t0, te, stiff_var=stiff, psi=psi)
        return out, fint

    sec, (out, fint) = best_of(full, repeat)
    wall = best_of.last_wall
    pe = np.exp(data.marginal(sch, te).log_prob(pts)).reshape(grid.shape)
    p0 = np.exp(data.marginal(sch, t0).log_prob(pts)).reshape(grid.shape)
    return sec, kl_grid(q0, p0, dv), kl_grid(np.maximum(out.data, 0.0), pe, dv), fint, wall


def _errors(kl0, kl1, fint, ref):
    r0, r1 = ref
    e_kl = abs(kl1 - r1) / r0
    e_id = None if fint is None else abs(kl0 - kl1 - fint) / r0
    return e_kl, e_id


def _envelope(rows: list[dict], key: str) -> list[float]:
    """Per sweep point, the largest error over every point with at least as many cells and steps: a point counts as
    reaching an accuracy only if refining from it does not lose it again (no credit for a lucky cancellation at a
    coarse setting; the errors are not always monotone in the steps)."""
    return [max(r2[key] for r2 in rows if r2["cells"][0] >= r["cells"][0] and r2["steps"] >= r["steps"])
            for r in rows]


def speedups(rows: list[dict], pp: list[dict]) -> list[dict]:
    """For each py-pde run: our cheapest sweep point whose error envelope is at most py-pde's error."""
    env_kl, env_id = _envelope(rows, "kl_end_rel_err"), _envelope(rows, "verification_error")
    speed = []
    for p in pp:
        if "error" in p:
            continue
        entry = {"pypde": f"{p['solver']} {'x'.join(map(str, p['cells']))}"}
        for metric, env, perr, psec in (("kl", env_kl, p["kl_end_rel_err"], p["seconds_kl"]),
                                        ("identity", env_id, p["verification_error"], p["seconds_identity"])):
            if perr is None:
                continue
            ok = [r for r, e in zip(rows, env) if e <= perr]
            if ok:
                b = min(ok, key=lambda r: r["seconds"])
                entry[metric] = {"pypde_seconds": psec, "pypde_err": perr, "ours": b, "speedup": psec / b["seconds"]}
        speed.append(entry)
    return speed


def sweep_case(name, cfg_d, cells_list, steps_list, pypde_cfgs, repeat, log):
    ref = reference(cfg_d)
    dim = config_from_dict(cfg_d).dim
    ours_solver(cfg_d, (cells_list[0],) * dim, steps_list[0], 1)   # warm-up: loads the compiled kernels
    rows = []
    for c in cells_list:
        for s in steps_list:
            cells = (c,) if config_from_dict(cfg_d).dim == 1 else (c, c)
            sec, kl0, kl1, fint, wall = ours_solver(cfg_d, cells, s, repeat)
            e_kl, e_id = _errors(kl0, kl1, fint, ref)
            rows.append({"cells": list(cells), "steps": s, "seconds": sec, "wall_seconds": wall, "kl_end_rel_err": e_kl,
                         "identity_rel_residual": e_id, "verification_error": max(e_kl, e_id)})
    log(name, "ours", min(rows, key=lambda r: r["verification_error"]))
    pp = []
    for cells, method in pypde_cfgs:
        try:
            s_kl, kl0f, kl1, fint, w_kl = pypde_solve(cfg_d, cells, method, None, repeat)
            s_id, w_id, kl1f = None, None, kl1
            if method != "bdf-stock":  # (stock: final KL only; it restarts BDF at every frame)
                s_id, kl0f, kl1f, fint, w_id = pypde_solve(cfg_d, cells, method, 33, repeat)
            e_kl, _ = _errors(0.0, kl1, None, ref)
            e_kl_f, e_id = _errors(kl0f, kl1f, fint, ref)
            row = {"cells": list(cells), "solver": method, "seconds_kl": s_kl, "wall_seconds_kl": w_kl,
                   "kl_end_rel_err": e_kl, "seconds_identity": s_id, "wall_seconds_identity": w_id,
                   "identity_rel_residual": e_id,
                   "verification_error": None if e_id is None else max(e_kl_f, e_id)}
        except Exception as exc:  # a solver that fails is reported, not fatal
            row = {"cells": list(cells), "solver": method, "error": repr(exc)[:200]}
        pp.append(row)
        log(name, "py-pde", row)
    speed = speedups(rows, pp)
    return {"case": name, "reference_kl_start": ref[0], "reference_kl_end": ref[1], "ours": rows, "pypde": pp,
            "speedups": speed}


def defaults_on_set(dims, which, repeat, log) -> dict:
    """`verify` defaults on the fixed random set: relative residual, its reported bound, |KL(t_end) - reference|,
    and the wall time of the call (minimum of `repeat` in 1-D, one run in 2-D; the bars are about wall time) and
    its CPU time."""
    res = {"machine": MACHINE, "set": "theory.cases.random_configs(dim, n=12, seed=0)",
           "bars": "1-D: relative residual <= 1e-4 in < 0.5 s; 2-D: <= 1e-3 in < 20 s"}
    for dim in dims:
        rows = []
        for i, c in enumerate(random_configs(dim, 12, 0)):
            if which.get(dim) is not None and i not in which[dim]:
                continue
            best, r = best_of(lambda: verify(c, "grid"), repeat if dim == 1 else 1)
            wall = best_of.last_wall
            ref = reference(c, nodes_2d=20)
            rows.append({"case": i, "kind": c["schedule"]["kind"], "t0": c["t0"], "t_end": c["t_end"],
                         "components": len(c["data"]["weights"]), "kl_start": r["kl_start"],
                         "relative_residual": r["relative_residual"],
                         "relative_bound": r["errors"]["relative_residual"], "limited_by": r["errors"]["limited_by"],
                         "kl_end_rel_err": abs(r["kl_end"] - ref[1]) / ref[0],
                         "cells": r["grid_shape"], "steps": r["n_steps"], "cpu_seconds": best,
                         "seconds": wall})
            log(f"defaults {dim}d", rows[-1])
        res[f"{dim}d"] = {"cases": rows, "worst_residual": max(rows, key=lambda x: x["relative_residual"]),
                          "worst_kl_end": max(rows, key=lambda x: x["kl_end_rel_err"]),
                          "worst_seconds": max(rows, key=lambda x: x["seconds"]),
                          "max_residual_over_bound": max(x["relative_residual"] / x["relative_bound"] for x in rows)}
    return res


def summarize(cases: list[dict]) -> dict:
    """Per py-pde configuration: the smallest speed-up over the cases (named) and the median, for both metrics."""
    out = {}
    for metric in ("kl", "identity"):
        per = {}
        for c in cases:
            for sp in c["speedups"]:
                if metric in sp:
                    per.setdefault(sp["pypde"], []).append((sp[metric]["speedup"], c["case"], sp[metric]))
        out[metric] = {k: {"min_speedup": min(v)[0], "worst_case": min(v)[1],
                           "worst_detail": {"pypde_seconds": min(v)[2]["pypde_seconds"],
                                            "pypde_err": min(v)[2]["pypde_err"],
                                            "ours_seconds": min(v)[2]["ours"]["seconds"],
                                            "ours_cells": min(v)[2]["ours"]["cells"],
                                            "ours_steps": min(v)[2]["ours"]["steps"]},
                           "median_speedup": float(np.median([x[0] for x in v])), "cases": len(v)}
                       for k, v in per.items()}
    return out


def table(res: dict) -> str:
    """The README table: per py-pde configuration and metric, the worst speed-up over the problems (named, with
    py-pde's error and both times) and the median."""
    rows = ["| py-pde configuration | final KL: worst (problem: py-pde error, its s / ours s) | median "
            "| identity: worst (problem: py-pde error, its s / ours s) | median |", "|---|---|---|---|---|"]
    for dim in ("1d", "2d"):
        sp = res.get(f"speedups_{dim}") or {}
        names = list(dict.fromkeys(list(sp.get("kl", {})) + list(sp.get("identity", {}))))
        for name in names:
            cells = [f"{'2-D ' if dim == '2d' else ''}{name}"]
            for metric in ("kl", "identity"):
                e = sp.get(metric, {}).get(name)
                if e is None:
                    cells += ["–", "–"]
                    continue
                w = e["worst_detail"]
                mark = "**" if e["min_speedup"] < 20 else ""
                cells += [f"{mark}{e['min_speedup']:.3g}×{mark} ({e['worst_case']}: {w['pypde_err']:.2g}, "
                          f"{w['pypde_seconds']:.3g} / {w['ours_seconds']:.2g}; ours "
                          f"{'x'.join(map(str, w['ours_cells']))} cells / {w['ours_steps']} steps)",
                          f"{e['median_speedup']:.3g}×"]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _write(path: Path, res: dict) -> None:
    """JSON with floats to 4 significant digits and every flat object or list (a sweep row, a py-pde run) on one
    line, so the file stays small and readable."""
    def r4(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        if isinstance(v, dict):
            return {k: r4(x) for k, x in v.items()}
        if isinstance(v, list):
            return [r4(x) for x in v]
        return v

    def flat(v) -> bool:
        vals = v.values() if isinstance(v, dict) else v
        return all(not isinstance(x, (dict, list)) or (isinstance(x, list) and flat(x)) for x in vals)

    def dump(v, ind: int) -> str:
        if isinstance(v, (dict, list)) and (not v or flat(v)):
            return json.dumps(v)
        pad, inner = " " * ind, " " * (ind + 1)
        if isinstance(v, dict):
            return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {dump(x, ind + 1)}" for k, x in v.items()) \
                + "\n" + pad + "}"
        if isinstance(v, list):
            return "[\n" + ",\n".join(inner + dump(x, ind + 1) for x in v) + "\n" + pad + "]"
        return json.dumps(v)

    path.write_text(dump(r4(res), 0) + "\n")


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in res["cases_1d"] if c["pypde"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, lab in ((axes[0], "identity_rel_residual", "identity residual / KL(t0)"),
                         (axes[1], "kl_end_rel_err", "|KL(t_end) - reference| / KL(t0)")):
        for ci, c in enumerate(cases):
            col = f"C{ci % 10}"
            # our Pareto front (cheapest time for each accuracy)
            pts = sorted((r["seconds"], r[key]) for r in c["ours"])
            front, best = [], np.inf
            for s, e in pts:
                if e < best:
                    front.append((s, e))
                    best = e
            ax.loglog(*zip(*front), "o-", color=col, ms=3, label=f"ours, {c['case']}")
            for p in c["pypde"]:
                if "error" in p or p.get(key) is None:
                    continue
                sec = p["seconds_identity"] if key == "identity_rel_residual" else p["seconds_kl"]
                ax.loglog(sec, max(p[key], 1e-12), {"bdf": "s", "bdf-stock": "D"}.get(p["solver"], "^"), color=col,
                          mfc="none", ms=5)
        ax.set_xlabel("CPU seconds (single-threaded, minimum of repeats)")
        ax.set_ylabel(lab)
        ax.set_title("1-D random set: lines ours (cheapest per accuracy); py-pde: squares BDF (sparse Jacobian),\n"
                     "diamonds stock ScipySolver BDF, triangles explicit; one colour per case", fontsize=8)
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/figures/theory")
    ap.add_argument("--repeat", type=int, default=None, help="timing repeats (default 3; 2 with --quick)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--resummarize", action="store_true",
                    help="recompute the speed-ups of an existing OUT/theory_bench.json (no solving) and redraw")
    ap.add_argument("--random-set-only", action="store_true",
                    help="only the defaults of verify on the fixed random set (writes random_set.json)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.repeat is None:
        args.repeat = 2 if args.quick else 3

    def log(*a):
        print(f"[{time.perf_counter() - t_start:6.1f}s]", *a, flush=True)

    if args.resummarize:
        res = json.loads((out / "theory_bench.json").read_text())
        for c in res["cases_1d"] + res["cases_2d"]:
            c["speedups"] = speedups(c["ours"], c["pypde"])
        res["speedups_1d"] = summarize(res["cases_1d"])
        res["speedups_2d"] = summarize(res["cases_2d"]) if res["cases_2d"] else None
        _write(out / "theory_bench.json", res)
        (out / "theory_bench.md").write_text(table(res))
        plot(res, out / "theory_bench.png")
        return
    if args.random_set_only:
        res = defaults_on_set((1, 2), {}, args.repeat, log)
        _write(out / "random_set.json", res)
        return
    q = args.quick
    set1 = random_configs(1, 12, 0)
    ids = QUICK_1D if q else list(range(12))
    pypde_1d = PYPDE_1D + ([] if q else PYPDE_1D_FULL)
    cells_1d = [32, 50, 100, 200, 400] if q else [32, 50, 100, 200, 400, 800]
    steps_1d = [4, 8, 12, 16, 24, 32, 48, 64] if q else [4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192]
    cases_1d = [sweep_case("example", EX1, cells_1d, steps_1d, pypde_1d, args.repeat, log)]
    for i in ids:
        cases_1d.append(sweep_case(f"1d-{i} ({set1[i]['schedule']['kind']})", set1[i], cells_1d, steps_1d,
                                   pypde_1d, args.repeat, log))
    cases_2d = []
    set2 = random_configs(2, 12, 0)
    for i in QUICK_2D_PYPDE if q else PYPDE_2D_CASES:
        cases_2d.append(sweep_case(f"2d-{i} ({set2[i]['schedule']['kind']})", set2[i],
                                   CELLS_2D[:-1] if q else CELLS_2D, STEPS_2D,
                                   PYPDE_2D + ([] if q else PYPDE_2D_FULL), REPEAT_2D, log))
    res = {"machine": MACHINE, "quick": q, "backend": default_backend(), "cases_1d": cases_1d, "cases_2d": cases_2d,
           "speedups_1d": summarize(cases_1d), "speedups_2d": summarize(cases_2d) if cases_2d else None}
    res["defaults"] = defaults_on_set((1, 2), {1: None, 2: QUICK_2D} if q else {}, args.repeat, log)
    res["seconds_total"] = time.perf_counter() - t_start
    _write(out / "theory_bench.json", res)
    (out / "theory_bench.md").write_text(table(res))
    if not q:
        _write(out / "random_set.json", res["defaults"])
    plot(res, out / "theory_bench.png")
    print(table(res))
    for d in ("1d", "2d"):
        w = res["defaults"][d]
        print(d, "worst residual", w["worst_residual"]["case"], w["worst_residual"]["relative_residual"],
              "worst seconds", w["worst_seconds"]["case"], w["worst_seconds"]["seconds"])
    print(f"total {res['seconds_total']:.0f} s")


if __name__ == "__main__":
    main()
