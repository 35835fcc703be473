"""The learned model of the shapes test bed: a small UNet per task family, trained on CPU on draws of the exact
mixture and cached on disk.

Training is :func:`toy.digits.learned.train_unet` with ``side = 32`` (the digits' UNet, loss, EMA and score-error
code; only the image side differs) on the drag schedule (Stable Diffusion's scaled-linear β, so the timestep labels
the drag passes are the ones it was trained on), for exactly ``steps`` optimiser steps with no wall-clock budget:
the digits' cosine learning rate runs over the wall-clock budget, so with none it stays at ``lr`` after the warm-up
and the trained weights do not depend on the machine's speed.  Every draw comes from the seeded generator of
``train_unet`` (``seed``) and the UNet's initialisation from ``seeded_init``, so a model is reproducible from its
configuration (on the same torch build and thread count).

Cache: ``<cache>/unet_<family>32_<key>.pt`` (+ ``.json`` metadata), key = SHA-256 of the family, its data
configuration, this training configuration and the schedule, so a changed setting never reuses a stale model.  A
cached model is loaded (well under a second); otherwise it is trained (``LearnedConfig.quick()``: ~15 s per family on
one core, the default ~2–3 min) and written atomically.  The score error reported with every result is
E_t E_{x_t ~ p_t} ‖ε_θ − ε_exact‖² / d (t uniform on the 1000 training steps; ``eval_samples`` draws, seed 123) and
the same at the drag's starting level t0 (:func:`score_error_at`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..digits.learned import TrainConfig, UNetConfig, learned_eps_model, load_learned, train_unet
from .tasks import make_schedule

__all__ = ["LearnedConfig", "default_cache_dir", "cache_key", "get_learned", "score_error_at", "VERSION"]

VERSION = 1          # bump when training code changes in a way the key does not see
NO_BUDGET = 1e15     # minutes: cos(π · elapsed / budget) rounds to exactly 1 for any real run


@dataclass
class LearnedConfig:
    """Training of the learned UNet (one per family)."""

    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 60
    ema_decay: float = 0.995
    channels: tuple = (16, 32, 32)
    seed: int = 0
    eval_samples: int = 512

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.steps < 1 or self.batch_size < 1 or self.warmup < 1 or self.eval_samples < 1:
            raise ValueError("learned: steps, batch_size, warmup and eval_samples must be >= 1")
        if not self.lr > 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("learned: need lr > 0 and 0 <= ema_decay < 1")
        if not self.channels or min(self.channels) < 1 or len(self.channels) > 4:
            raise ValueError(f"learned: channels must be 1-4 positive widths, got {self.channels}")
        groups = min(8, self.channels[0])
        if any(c % groups for c in self.channels) or self.channels[-1] % 16:
            raise ValueError(f"learned: channels {self.channels} must be multiples of min(8, first width) (group "
                             "norm) and the last a multiple of 16 (the mid block's attention heads)")

    @classmethod
    def quick(cls) -> "LearnedConfig":
        """A seconds-scale training for ``--quick`` (a poor score on purpose: its error is reported)."""
        return cls(steps=60, warmup=15, ema_decay=0.95, channels=(8, 16, 16), eval_samples=64)

    def train_config(self) -> TrainConfig:
        # minutes = NO_BUDGET: the step count ends training, and the wall-clock cosine factor is exactly 1.0
        return TrainConfig(minutes=NO_BUDGET, max_steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           warmup=self.warmup, ema_decay=self.ema_decay, seed=self.seed,
                           checkpoint_every=10 ** 9, eval_samples=self.eval_samples)

    def unet_config(self) -> UNetConfig:
        return UNetConfig(block_out_channels=self.channels, norm_num_groups=min(8, self.channels[0]))

    def to_dict(self) -> dict:
        return asdict(self)


def default_cache_dir() -> Path:
    """``$SDEODE_SHAPES_CACHE`` if set, else ``results/cache/shapes`` (relative to the working directory, as the
    main job's default results folder)."""
    env = os.environ.get("SDEODE_SHAPES_CACHE")
    return Path(env) if env else Path("results") / "cache" / "shapes"


def cache_key(family: str, data_config: dict, cfg: LearnedConfig, schedule: str) -> str:
    blob = json.dumps({"family": family, "data": data_config, "train": cfg.to_dict(), "schedule": schedule,
                       "version": VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@torch.no_grad()
def score_error_at(model, mixture, schedule, t: int, n: int = 256, seed: int = 321) -> float:
    """‖ε_model − ε_exact‖² / d averaged over n draws of p_t at the single timestep t."""
    a, s = schedule.alpha_sigma(t)
    x = mixture.sample(n, torch.Generator().manual_seed(seed), a, s).to(torch.float64)
    return float(((model(x.float(), torch.tensor(t)).double() - mixture.eps(x, a, s)) ** 2).mean())


def get_learned(family: str, data, cfg: LearnedConfig, schedule: str, cache_dir: str | os.PathLike,
                progress=None):
    """(ε-model ``model(x, t)``, metadata) of the learned UNet of ``family`` on ``data`` (a ShapeSet / PairSet):
    loaded from ``cache_dir`` or trained and cached there.  The metadata says which (``cached``), the training
    steps and seconds, and the score error."""
    side = data.side
    key = cache_key(family, data.config.to_dict(), cfg, schedule)
    cache = Path(cache_dir)
    path = cache / f"unet_{family}{side}_{key}.pt"
    t_start = time.time()
    if path.exists():
        unet, meta = load_learned(path, side)
        side_meta = path.with_suffix(".json")
        if side_meta.exists():
            meta = json.loads(side_meta.read_text())
        meta = {**meta, "cached": True, "load_seconds": round(time.time() - t_start, 3)}
    else:
        if progress:
            progress(f"training the {family} UNet ({cfg.steps} steps; cached in {cache})")
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=cache, prefix=f".train_{family}_"))
        try:
            meta = train_unet(data.mixture, work, cfg.train_config(), cfg.unet_config(), make_schedule(schedule),
                              final_path=work / path.name, progress=False,
                              command=f"toy.shapes.learned.get_learned({family!r}, ..., {cfg.to_dict()})", side=side)
            meta = {**meta, "schedule": schedule, "family": family, "key": key, "data": data.config.to_dict(),
                    "learned_config": cfg.to_dict()}
            tmp = work / "meta.json"
            tmp.write_text(json.dumps(meta, indent=1))
            os.replace(tmp, path.with_suffix(".json"))
            os.replace(work / path.name, path)                  # the checkpoint last: it marks the entry complete
        finally:
            shutil.rmtree(work, ignore_errors=True)
        unet, _ = load_learned(path, side)
        meta = {**meta, "cached": False, "seconds": round(time.time() - t_start, 2)}
    meta["checkpoint"] = str(path)
    return learned_eps_model(unet, side=side), meta
