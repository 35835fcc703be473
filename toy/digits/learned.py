"""The learned digit model: a small diffusers ``UNet2DModel`` trained on samples of the exact mixture (CPU).

Training draws fresh x_0 ~ p_0 every step (the mixture is the data distribution), ε-prediction MSE on the
``ddpm_linear`` schedule, AdamW with warm-up and cosine decay over a wall-clock budget, EMA of the weights,
checkpoints, and a final score error against the exact model: E_t E_{x_t ~ p_t} ‖ε_θ − ε_exact‖² / d.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from cliutil import write_text_atomic

from ..io import save_torch
from ..models import seeded_init
from .data import SIDE
from .schedules import DiscreteSchedule, ddpm_linear

__all__ = ["UNetConfig", "TrainConfig", "make_unet", "learned_eps_model", "train_unet", "load_learned",
           "score_error", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "unet_digits16.pt"


@dataclass
class UNetConfig:
    block_out_channels: tuple = (32, 64, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def make_unet(cfg: UNetConfig = UNetConfig(), side: int = SIDE):
    """The UNet for ``side × side`` single-channel images (default: the digits' 16)."""
    from diffusers import UNet2DModel

    n = len(cfg.block_out_channels)
    down = ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D" if cfg.attention else "DownBlock2D"]
    up = ["AttnUpBlock2D" if cfg.attention else "UpBlock2D"] + ["UpBlock2D"] * (n - 1)
    return UNet2DModel(sample_size=side, in_channels=1, out_channels=1, block_out_channels=tuple(cfg.block_out_channels),
                       layers_per_block=cfg.layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
                       norm_num_groups=cfg.norm_num_groups, attention_head_dim=16)


def learned_eps_model(unet, schedule: DiscreteSchedule | None = None, side: int = SIDE):
    """``model(x, t) -> ε`` for the samplers; x [B, side²] or [B, 1, side, side] (default side 16), t an integer DDPM
    timestep label."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        shape, dt = x.shape, x.dtype
        xi = x.reshape(shape[0], 1, side, side).to(torch.float32)
        tt = torch.as_tensor(t).reshape(-1)[:1].to(torch.long).expand(shape[0])
        with torch.no_grad():
            out = unet(xi, tt).sample
        return out.reshape(shape).to(dt)

    return model


@dataclass
class TrainConfig:
    minutes: float = 12.0
    max_steps: int = 100_000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 200
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 500
    eval_samples: int = 2048

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def score_error(model, mixture, schedule: DiscreteSchedule, n: int = 2048, seed: int = 123,
                buckets: tuple[int, ...] = (0, 50, 100, 250, 500, 750, 999)) -> dict:
    """Mean ‖ε_model − ε_exact‖²/d over t ~ U{0..T−1}, x_t ~ p_t (and at a few fixed t), exact vs learned."""
    g = torch.Generator().manual_seed(seed)
    T = schedule.num_train_timesteps
    t = torch.randint(0, T, (n,), generator=g)
    tot, per = 0.0, {}
    for chunk in torch.split(torch.arange(n), 256):
        # group by timestep for the closed form (α, σ scalar per call)
        tc = t[chunk]
        x0 = mixture.sample(len(chunk), g)
        z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        ab = schedule.alphas_cumprod[tc][:, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * z
        for tv in tc.unique().tolist():
            sel = tc == tv
            a, s = schedule.alpha_sigma(tv)
            e_true = mixture.eps(xt[sel], a, s)
            e_mod = model(xt[sel].float(), torch.tensor(tv)).double()
            tot += float(((e_mod - e_true) ** 2).mean(-1).sum())
    for tv in buckets:
        x = mixture.sample(256, g, *schedule.alpha_sigma(tv))
        a, s = schedule.alpha_sigma(tv)
        per[str(tv)] = float(((model(x.float(), torch.tensor(tv)).double() - mixture.eps(x, a, s)) ** 2).mean())
    return {"mean_sq_eps_error": tot / n, "per_timestep": per, "n": n}


def train_unet(mixture, out_dir: str | os.PathLike, cfg: TrainConfig = TrainConfig(),
               ucfg: UNetConfig = UNetConfig(), schedule: DiscreteSchedule | None = None,
               final_path: str | os.PathLike | None = None, progress: bool = True, command: str | None = None,
               side: int = SIDE) -> dict:
    """Train for ``cfg.minutes`` of wall time (or ``max_steps``) on ``side × side`` images (default the digits' 16);
    returns a metadata dict (also written as JSON)."""
    schedule = schedule or ddpm_linear()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(cfg.seed)
    with seeded_init(cfg.seed):
        unet = make_unet(ucfg, side)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    mix32 = mixture.to(torch.float32)
    ac = schedule.alphas_cumprod.float()
    T = schedule.num_train_timesteps
    budget = cfg.minutes * 60.0
    t0 = time.time()
    step, losses = 0, []
    bar = tqdm(total=cfg.max_steps, desc="train UNet", disable=not progress, mininterval=5)
    while step < cfg.max_steps and time.time() - t0 < budget:
        frac = min((time.time() - t0) / budget, 1.0)
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * frac))
        for pg in opt.param_groups:
            pg["lr"] = lr
        x0 = mix32.sample(cfg.batch_size, g).reshape(-1, 1, side, side)
        t = torch.randint(0, T, (cfg.batch_size,), generator=g)
        z = torch.randn(x0.shape, generator=g)
        ab = ac[t][:, None, None, None]
        loss = torch.nn.functional.mse_loss(unet(ab.sqrt() * x0 + (1 - ab).sqrt() * z, t).sample, z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(cfg.ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4f}", lr=f"{lr:.1e}")
        if step % cfg.checkpoint_every == 0:
            save_torch({"ema": ema.state_dict(), "unet": unet.state_dict(), "step": step,
                          "unet_config": ucfg.to_dict()}, out / "checkpoint_last.pt")
    bar.close()
    train_time = time.time() - t0
    ema.eval()
    err = score_error(learned_eps_model(ema, side=side), mixture, schedule, n=cfg.eval_samples)
    meta = {"command": command, "steps": step, "train_seconds": train_time, "steps_per_second": step / max(train_time, 1e-9), "final_loss_avg100": sum(losses[-100:]) / max(len(losses[-100:]), 1),
            "score_error": err, "train_config": cfg.to_dict(), "unet_config": ucfg.to_dict(),
            "num_parameters": sum(p.numel() for p in ema.parameters()), "torch_threads": torch.get_num_threads(),
            "schedule": "ddpm_linear(1000, 1e-4, 0.02)"}
    state = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in ema.state_dict().items()}
    payload = {"ema_fp16": state, "unet_config": ucfg.to_dict(), "meta": meta}
    save_torch(payload, out / CHECKPOINT_NAME)
    if final_path is not None:
        save_torch(payload, Path(final_path))
    targets = [out / "train_meta.json"]
    if final_path is not None:   # metadata next to the final checkpoint too (toy/digits/data/unet_digits16.json)
        targets.append(Path(final_path).with_suffix(".json"))
    for dst in targets:
        write_text_atomic(dst, json.dumps(meta, indent=2))
    return meta


def load_learned(path: str | os.PathLike | None = None, side: int = SIDE):
    """(unet in eval mode, float32; metadata) from a checkpoint (default: the packaged digits one) of a UNet for
    ``side × side`` images (default the digits' 16)."""
    if path is None:
        path = Path(__file__).parent / "data" / CHECKPOINT_NAME
    if not Path(path).exists():
        raise FileNotFoundError(f"no learned digit checkpoint at {path}; run `python -m toy.digits train` first")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    ucfg = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["unet_config"].items()})
    unet = make_unet(ucfg, side)
    unet.load_state_dict({k: v.float() for k, v in payload["ema_fp16"].items()})
    unet.eval().requires_grad_(False)
    return unet, payload.get("meta", {})
