"""Injectable noise sources: every random draw of a sampler goes through one of these.

A noise source is a callable ``source(i, like) -> Tensor`` giving the standard-normal draw for step ``i``
with the shape, dtype and device of ``like``.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch
from torch import Tensor

__all__ = ["NoiseSource", "GaussianNoise", "ReplayNoise", "RecordingNoise"]


class NoiseSource(Protocol):
    def __call__(self, i: int, like: Tensor) -> Tensor: ...


class GaussianNoise:
    """Fresh N(0, I) draws from an explicit ``torch.Generator`` (or a seed), reproducible on any device.

    Draws are made on the generator's device in float64 when ``like`` is float64, otherwise float32, then cast,
    so a CPU generator gives the same numbers whether the sampler runs on CPU or CUDA.
    """

    def __init__(self, generator: torch.Generator | int) -> None:
        if isinstance(generator, int):
            g = torch.Generator()
            g.manual_seed(generator)
            generator = g
        self.generator = generator

    def __call__(self, i: int, like: Tensor) -> Tensor:
        dt = torch.float64 if like.dtype == torch.float64 else torch.float32
        z = torch.randn(like.shape, generator=self.generator, dtype=dt, device=self.generator.device)
        return z.to(device=like.device, dtype=like.dtype)


class ReplayNoise:
    """Replays a recorded list of noises (Cycle-SDE, paper Eq. 8): step ``i`` gets ``noises[i]``."""

    def __init__(self, noises: Sequence[Tensor]) -> None:
        self.noises = list(noises)

    def __call__(self, i: int, like: Tensor) -> Tensor:
        if i >= len(self.noises):
            raise IndexError(f"replay has {len(self.noises)} recorded noises, step {i} asked")
        return self.noises[i].to(device=like.device, dtype=like.dtype)


class RecordingNoise:
    """Wraps a source and keeps every draw it hands out in ``self.noises``."""

    def __init__(self, source: NoiseSource) -> None:
        self.source = source
        self.noises: list[Tensor] = []

    def __call__(self, i: int, like: Tensor) -> Tensor:
        z = self.source(i, like)
        self.noises.append(z)
        return z
