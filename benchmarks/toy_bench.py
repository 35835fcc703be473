"""Toy benchmark: 2-D model training time & score error, `kl-curves --quick` wall time, full-run cost estimate.

Usage: .venv/bin/python benchmarks/toy_bench.py [--full] [--out FILE.json]
(--full also times the full kl-curves run; minutes.)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from theory.schedules import VPLinear
    from toy.evaluate import score_error
    from toy.problems import builtin_mixture
    from toy.train import TrainConfig, train_score_model

    res = {}
    mix, sch = builtin_mixture("2d"), VPLinear()
    for steps in (1200, 2000, 3000):
        cfg = TrainConfig(steps=steps, batch_size=256, n_data=20000)
        r = train_score_model(mix, sch, cfg)
        e = score_error(r.model, mix, sch, n=2000)
        res[f"train_{steps}"] = {"seconds": round(r.seconds, 2), "mean_rel_error": round(e["mean_rel_error"], 4)}
        print(f"train {steps} steps: {r.seconds:.1f} s, mean rel score error {e['mean_rel_error']:.3f}")
    cmds = [("kl_curves_quick", ["kl-curves", "--quick"])]
    if args.full:
        cmds.append(("kl_curves_full", ["kl-curves"]))
    for name, c in cmds:
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "toy", *c, "--out", d], cwd=ROOT, check=True, capture_output=True)
            dt = time.perf_counter() - t
            rep = json.loads((Path(d) / "report.json").read_text())
        res[name] = {"seconds": round(dt, 1), "timings": rep["timings"]}
        print(f"{name}: {dt:.1f} s wall")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
