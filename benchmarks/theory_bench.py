"""Accuracy vs cost of the theory grid solver (1-D mixture of the issue's example); writes JSON + PNG to --out.

Rerun: .venv/bin/python benchmarks/theory_bench.py --out results/theory_bench
py-pde comparison: NOT YET IMPLEMENTED (see docs/theory.md).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from theory.verify import verify

EX = {"schedule": {"kind": "vp-linear"}, "data": {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]],
      "covs": [[[0.1]], [[0.2]]]}, "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]},
      "t0": 0.6, "t_end": 0.002, "sampler": "sde"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/theory_bench")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    ref = verify(EX, "reversal")
    rows = []
    for n, steps in [(200, 100), (400, 200), (800, 400), (1600, 800)]:
        t = time.perf_counter()
        r = verify(dict(EX, grid=n, n_steps=steps), "grid")
        rows.append({"cells": n, "steps": steps, "seconds": time.perf_counter() - t,
                     "relative_residual": r["relative_residual"],
                     "kl_end_rel_err": abs(r["kl_end"] - ref["kl_end"]) / ref["kl_start"]})
    (out / "theory_bench.json").write_text(json.dumps({"reference": "reversal", "grid_1d": rows}, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    s = [r["seconds"] for r in rows]
    ax.loglog(s, [r["relative_residual"] for r in rows], "o-", label="identity residual / KL(t0)")
    ax.loglog(s, [max(r["kl_end_rel_err"], 1e-12) for r in rows], "s-", label="|KL(t_end) - exact| / KL(t0)")
    ax.set_xlabel("seconds"); ax.legend(fontsize=7); fig.tight_layout()
    fig.savefig(out / "theory_bench_1d.png", dpi=110)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
