"""The one result of every editing task on a pipeline, drag included (:class:`TaskResult`).

The latent-level result of a recipe is :class:`diffsamplers.EditResult`; this adds what a task on images has: the
decoded picture and the JSON metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["TaskResult"]


@dataclass
class TaskResult:
    """What a task returns (:mod:`sdimage.tasks` and :func:`sdimage.drag.drag`): the decoded image, its JSON
    metadata and the latents it decoded."""

    image: Tensor               # [1, 3, H, W] in [-1, 1]
    info: dict                  # JSON-able parameters and measurements
    latents: Tensor             # the final latents (sampler state dtype)
    mask: Tensor | None = None  # the latent mask used (inpaint: 1 = inpaint; DiffEdit: 1 = edit; drag: editable)
    frames: list[Any] = field(default_factory=list)  # drag: the decoded picture before and after every operation

    def pil(self):
        """The image as a PIL image."""
        from .latents import to_pil

        return to_pil(self.image)
