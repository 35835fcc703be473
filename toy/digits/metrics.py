"""Quality measures for the digit experiments.

- exact log-likelihood under p_0 (and under an exact conditional mixture for inpainting);
- class / component posterior distributions of the outputs against the true ones (total variation);
- Gaussian W2 (Fréchet) between sample sets in pixel space;
- a Fréchet distance in the 64-d penultimate features of a small digit CNN trained by the project ("FD", our FID
  stand-in; weights in ``toy/digits/data/classifier16.pt``, built by :func:`train_classifier`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..io import save_torch
from ..models import seeded_init
from .data import SIDE

__all__ = ["DigitCNN", "train_classifier", "load_classifier", "frechet", "gaussian_w2", "tv", "mean_ci",
           "jackknife_ci", "CLASSIFIER_NAME"]

CLASSIFIER_NAME = "classifier16.pt"


class DigitCNN(nn.Module):
    """conv16 → pool → conv32 → pool → fc64 (features) → fc10."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (SIDE // 4) ** 2, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.reshape(-1, 1, SIDE, SIDE).float())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def train_classifier(images: Tensor, labels: Tensor, epochs: int = 30, seed: int = 0,
                     path: str | os.PathLike | None = None, extra: tuple[Tensor, Tensor] | None = None) -> tuple[DigitCNN, dict]:
    """Train on the given digits (plus optional extra samples) with small random shifts; save atomically to ``path``."""
    g = torch.Generator().manual_seed(seed)
    x = images.float().reshape(-1, 1, SIDE, SIDE)
    y = labels.long()
    if extra is not None:
        x = torch.cat([x, extra[0].float().reshape(-1, 1, SIDE, SIDE)])
        y = torch.cat([y, extra[1].long()])
    with seeded_init(seed):
        net = DigitCNN()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for idx in torch.split(perm, 128):
            xb = x[idx]
            sh = torch.randint(-1, 2, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=sh, dims=(2, 3))
            loss = nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    meta = {"epochs": epochs, "seed": seed, "n_train": len(x)}
    if path is not None:
        save_torch({"state_dict": net.state_dict(), "meta": meta}, path)
    return net, meta


def load_classifier(path: str | os.PathLike | None = None) -> DigitCNN:
    path = Path(path) if path is not None else Path(__file__).parent / "data" / CLASSIFIER_NAME
    if not path.exists():
        raise FileNotFoundError(f"no digit classifier at {path}; run `python -m toy.digits train-classifier`")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    net = DigitCNN()
    net.load_state_dict(payload["state_dict"])
    net.eval().requires_grad_(False)
    return net


def _stats(f: Tensor) -> tuple[Tensor, Tensor]:
    m = f.mean(0)
    c = f - m
    return m, (c.T @ c) / max(len(f) - 1, 1)


def gaussian_w2(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """Squared 2-Wasserstein distance between Gaussian fits of two sample sets (the Fréchet distance).

    Computed with torch (float64), which honours ``torch.set_num_threads``: numpy's multi-threaded BLAS was up to
    ~100× slower on a shared 2-core machine for these small matrices."""
    a = torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(len(a), -1)
    b = torch.as_tensor(np.asarray(b, dtype=np.float64)).reshape(len(b), -1)
    m1, c1 = _stats(a)
    m2, c2 = _stats(b)
    w, v = torch.linalg.eigh(c1)
    r1 = (v * w.clamp_min(0).sqrt()) @ v.T                              # C1^{1/2}
    ev = torch.linalg.eigvalsh(r1 @ c2 @ r1)                            # tr (C1^{1/2} C2 C1^{1/2})^{1/2}
    return float(((m1 - m2) ** 2).sum() + c1.trace() + c2.trace() - 2 * ev.clamp_min(0).sqrt().sum())


@torch.no_grad()
def frechet(net: DigitCNN, x: Tensor, ref: Tensor) -> float:
    """Fréchet distance between classifier features of ``x`` and of ``ref``."""
    return gaussian_w2(net.features(x).double().numpy(), net.features(ref).double().numpy())


def tv(p: Tensor, q: Tensor) -> float:
    """Total variation ½ Σ |p − q|."""
    return float(0.5 * (p - q).abs().sum())


def mean_ci(values) -> dict:
    """Mean and normal-approximation 95% half-width over independent units."""
    v = np.asarray(values, dtype=np.float64).ravel()
    half = 1.96 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "ci95": float(half), "n": int(len(v))}


def jackknife_ci(stat, n_units: int, blocks: int = 10) -> dict:
    """Delete-one-block jackknife over units (no duplicated rows, unlike a bootstrap, which biases Fréchet
    distances): ``stat(idx)`` on all unit indices and with each of ``blocks`` contiguous blocks left out;
    95% interval value ± 1.96 s.e."""
    full = float(stat(np.arange(n_units)))
    nb = max(2, min(blocks, n_units))
    parts = np.array_split(np.arange(n_units), nb)
    vals = np.array([stat(np.setdiff1d(np.arange(n_units), p)) for p in parts], dtype=np.float64)
    se = math.sqrt((nb - 1) / nb * ((vals - vals.mean()) ** 2).sum())
    return {"value": full, "lo95": full - 1.96 * se, "hi95": full + 1.96 * se, "se": se, "n_units": n_units,
            "blocks": nb, "method": "delete-one-block jackknife"}
