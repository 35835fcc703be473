"""Time one exact ε evaluation of the digit mixture (500 components, rank 6, d = 256) on CPU.

Usage: .venv/bin/python benchmarks/digits_eps_speed.py [--threads 1]
"""
import argparse
import json
import time

import torch

from toy.digits import build_mixture, load_digits

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
mix = build_mixture(load_digits())
res = {}
for dt in (torch.float64, torch.float32):
    m = mix.to(dt)
    for b in (1, 64, 512):
        x = torch.randn(b, 256, dtype=dt)
        m.eps(x, 0.6, 0.8)
        t = time.perf_counter()
        for _ in range(10):
            m.eps(x, 0.6, 0.8)
        res[f"{str(dt).split('.')[-1]}_B{b}_ms"] = round(1000 * (time.perf_counter() - t) / 10, 2)
print(json.dumps({"components": mix.num_components, "threads": a.threads, **res}, indent=1))
