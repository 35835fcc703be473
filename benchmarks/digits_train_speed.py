"""Steps/s of one UNet training step (batch B, fwd + bwd + AdamW) for a few `UNet2DModel` sizes on CPU.

Used to pick the learned digit model's size (issue 6): on the shared 2-core machine, one torch thread,
(32,64,64) 1.06 M params ≈ 0.46 s/step, (16,32,32) 0.27 M ≈ 0.17 s/step, (24,48,48) ≈ 0.31 s/step at batch 64;
two threads were ~30× slower under contention.  Run: `.venv/bin/python benchmarks/digits_train_speed.py --threads 1`.
"""
from __future__ import annotations

import argparse
import time

import torch

from toy.digits.learned import UNetConfig, make_unet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for ch in ((32, 64, 64), (24, 48, 48), (16, 32, 32), (16, 32)):
        u = make_unet(UNetConfig(ch))
        opt = torch.optim.AdamW(u.parameters(), 1e-3)
        x = torch.randn(args.batch, 1, 16, 16)
        t = torch.randint(0, 1000, (args.batch,))
        for i in range(args.steps + 2):
            if i == 2:
                t0 = time.time()
            loss = ((u(x, t).sample - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = (time.time() - t0) / args.steps
        print(f"{ch}: {sum(p.numel() for p in u.parameters()):,} params, {dt:.3f} s/step, {1 / dt:.1f} steps/s")


if __name__ == "__main__":
    main()
