"""Backbone adapters: one module per model family, each registering one adapter class (:class:`Backbone`) that
declares everything about its family; the samplers and edit recipes (:mod:`diffsamplers`) are shared.

An adapter provides

- its declarations: diffusers pipeline and model classes (how a folder or a loaded pipeline is recognised),
  subfolders and load arguments, the tiny offline builder behind ``make-tiny-model --arch``, default guidance,
  LoRA targets, the cost model of the run-time estimate;
- ``encode_prompt``: the text conditioning (:class:`Cond`: token embeddings, pooled embeddings, text ids, mask);
- ``encode_image`` / ``decode_latents``: the VAE with the family's latent normalisation;
- ``forward``: one call of the denoiser on an unpacked latent batch [B, C, h, w] at a label t, returning its raw
  output; packing, position ids, time ids and guidance embeddings happen here, so copy-and-paste and masks act on
  the plain h × w latent grid; ``combine``: the family's classifier-free guidance of two raw outputs;
- ``output``: raw output → ε (VP models) or a :class:`diffsamplers.Prediction` (rectified flows);
- ``grid``: the sampling :class:`diffsamplers.Grid` from the pipeline's scheduler config;
- ``lora_times`` / ``lora_example`` / ``fingerprint``: the drag LoRA's training target and cache identity.

Adding a family is adding one module here (see ``docs/backbones.md``): :func:`~._registry.load_families` imports
every module whose name does not start with ``_``, and every list of families in :mod:`sdimage` (CLI choices, GUI,
loading, tests) is read from the registry.
"""
from __future__ import annotations

from ._base import Backbone, Cond, execution_device, unet_flops
from ._registry import (adapter_class, arch_of_folder, archs, backbone, detect_arch, families, load_families,
                        register, supported)

load_families()

ARCHS: tuple[str, ...] = archs()
SUPPORTED: str = supported()

from .flux import FluxBackbone  # noqa: E402  (names kept for existing callers)
from .sd import SDBackbone  # noqa: E402
from .sd3 import SD3Backbone  # noqa: E402
from .sdxl import SDXLBackbone  # noqa: E402

__all__ = ["ARCHS", "SUPPORTED", "Cond", "Backbone", "SDBackbone", "SDXLBackbone", "SD3Backbone", "FluxBackbone",
           "backbone", "detect_arch", "arch_of_folder", "execution_device", "register", "families", "archs",
           "adapter_class", "supported", "unet_flops"]
