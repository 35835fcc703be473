"""Denoising score matching (ε-prediction) on samples of a ``theory`` mixture; checkpoints save/load.

Loss: E_{x0, t ~ U[t_min, t_max], z} ‖ε_θ(α_t x0 + σ_t z, t) − z‖² over a fixed data set of ``n_data`` samples
(Vincent 2011; Ho et al. 2020).  Every random draw comes from ``seed``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .io import save_torch
from .models import EpsMLP, ModelConfig, seeded_init

__all__ = ["TrainConfig", "TrainResult", "train_score_model", "save_checkpoint", "load_checkpoint"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class TrainConfig:
    """DSM training hyper-parameters."""

    steps: int = 3000
    batch_size: int = 512
    lr: float = 3e-3
    lr_final: float = 1e-4
    weight_decay: float = 0.0
    n_data: int = 50_000
    t_min: float = 1e-3
    t_max: float = 1.0
    seed: int = 0
    dtype: str = "float32"
    progress: bool = False
    max_seconds: float | None = None
    t_power: float = 2.0
    loss_weight: str = "score"
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: EpsMLP
    losses: list[float]
    seconds: float
    steps_done: int
    config: TrainConfig


def _as_array(schedule, t: np.ndarray, fn: str) -> np.ndarray:
    return np.asarray(getattr(schedule, fn)(t), dtype=np.float64) * np.ones_like(t)


def train_score_model(mixture, schedule, config: TrainConfig | None = None, data: np.ndarray | None = None) -> TrainResult:
    """Train an :class:`EpsMLP` by DSM on ``n_data`` samples of ``mixture`` (or on ``data`` if given)."""
    cfg = config or TrainConfig()
    dtype = _DTYPES[cfg.dtype]
    rng = np.random.default_rng(cfg.seed)
    torch_gen = torch.Generator().manual_seed(cfg.seed)
    x_data = np.asarray(mixture.sample(cfg.n_data, rng) if data is None else data, dtype=np.float64)
    if x_data.ndim == 1:
        x_data = x_data[:, None]
    mcfg = ModelConfig(**{**asdict(cfg.model), "dim": x_data.shape[1]})
    with seeded_init(cfg.seed):  # parameter initialisation
        model = EpsMLP(mcfg, schedule, mu=x_data.mean(0), var=x_data.var(0), dtype=dtype)
    xs = torch.as_tensor(x_data, dtype=dtype)
    tmax = min(cfg.t_max, float(schedule.t_max()) if hasattr(schedule, "t_max") else cfg.t_max)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gamma = (cfg.lr_final / cfg.lr) ** (1.0 / max(cfg.steps, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    losses: list[float] = []
    t_start = time.perf_counter()
    it = tqdm(range(cfg.steps), desc="DSM training", disable=not cfg.progress)
    done = 0
    model.train()
    for step in it:
        idx = torch.randint(0, xs.shape[0], (cfg.batch_size,), generator=torch_gen)
        x0 = xs[idx]
        u = torch.rand(cfg.batch_size, generator=torch_gen, dtype=torch.float64)
        t = cfg.t_min + (tmax - cfg.t_min) * u ** cfg.t_power
        a, s = model.alpha_sigma(t)
        z = torch.randn(x0.shape, generator=torch_gen, dtype=dtype)
        xt = a.to(dtype)[:, None] * x0 + s.to(dtype)[:, None] * z
        res = ((model(xt, t) - z) ** 2).sum(1)
        if cfg.loss_weight == "score":  # weight 1/c_out(t): between ε-loss and score-space loss
            var_t = a[:, None] ** 2 * model.var.double() + s[:, None] ** 2
            res = res * (var_t.mean(1).sqrt() / s).to(dtype)
        loss = res.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if cfg.progress and step % 100 == 0:
            it.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        if cfg.max_seconds is not None and time.perf_counter() - t_start > cfg.max_seconds:
            break
    model.eval()
    return TrainResult(model, losses, time.perf_counter() - t_start, done, cfg)


def save_checkpoint(path: str | os.PathLike, model: EpsMLP, meta: dict[str, Any] | None = None) -> Path:
    """Write {state_dict, model config, schedule, dtype, meta} atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "toy.EpsMLP/1",
        "model_config": model.config.to_dict(),
        "schedule": model.schedule_dict,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "state_dict": model.state_dict(),
        "meta": json.loads(json.dumps(meta or {}, default=str)),
    }
    return save_torch(payload, path)


def load_checkpoint(path: str | os.PathLike, schedule=None) -> tuple[EpsMLP, dict]:
    """Rebuild the model saved by :func:`save_checkpoint`; returns (model, meta).  A missing file raises
    ``FileNotFoundError``, anything that is not such a checkpoint one ``ValueError`` line (the CLIs: exit 2)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist" if not p.exists()
                                else f"checkpoint {str(path)!r} is not a file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - garbage, truncated or foreign files: one line, no traceback
        raise ValueError(f"{path}: not a toy checkpoint (`python -m toy train` writes model.pt): cannot load it "
                         f"({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != "toy.EpsMLP/1":
        raise ValueError(f"{path}: not a toy EpsMLP checkpoint (`python -m toy train` writes model.pt)")
    try:
        if schedule is None:
            from theory.schedules import schedule_from_dict

            schedule = schedule_from_dict(payload["schedule"])
        mcfg = ModelConfig(**payload["model_config"])
        model = EpsMLP(mcfg, schedule, dtype=_DTYPES[payload["dtype"]])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: damaged toy checkpoint ({type(exc).__name__}: {exc})") from None
    model.eval()
    return model, payload.get("meta", {})
