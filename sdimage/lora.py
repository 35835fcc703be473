"""Per-image LoRA fine-tuning for SDE-Drag through PEFT (current diffusers APIs), cached on disk.

Training (as the official SDE-Drag script, on one image): rank-r LoRA (``lora_alpha = r``, so scale 1) on the
UNet attention projections ``to_q, to_k, to_v, to_out.0`` (Gaussian A, zero B); AdamW (lr 2e-4, weight decay
0.01, constant lr); each step draws t uniform in [0, T), a fresh VAE posterior sample of the image latent
(× scaling factor) and ε ~ N(0, I), and minimises the denoising
score-matching loss ‖ε_θ(x_t, t, prompt) − ε‖² (target v for v-prediction models).  On flow-matching families the
adapter goes on the transformer's attention projections and the loss is flow matching,
‖v_θ(x_σ, σ) − (ε − x_0)‖² with σ uniform on the 1000-level training grid.  The targets, the timesteps and the
VAE posterior's std are the family adapter's (:mod:`sdimage.backbones`: ``lora_modules``, ``lora_times``,
``lora_example``, ``latent_std``, ``fingerprint``).  All draws
come from a generator seeded with ``seed``, and the adapter's Gaussian initialisation (PEFT draws it from torch's global
generator) from the same seed inside ``fork_rng``, so an adapter depends on its seed only.

Cache: ``<cache_dir>/<key>/pytorch_lora_weights.safetensors`` (+ ``lora.json``), key = SHA-256 of the image
pixels, prompt, LoRA parameters and a fingerprint of the base UNet.  A cached adapter is loaded instead of
retrained.  Freshly trained weights are saved, then loaded back from disk, so the first and every later drag use
byte-identical adapters.  The cache folder is written atomically (temp folder, then rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .backbones import Backbone, Cond, backbone
from .errors import SdImageError

__all__ = [
    "ADAPTER_NAME",
    "TARGET_MODULES",
    "default_cache_dir",
    "unet_fingerprint",
    "lora_cache_key",
    "train_lora",
    "ensure_lora",
    "remove_lora",
]

ADAPTER_NAME = "sdedrag"
TARGET_MODULES = list(Backbone.lora_targets)  # the default projections (a family may declare others)
WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def default_cache_dir() -> Path:
    """$SDIMAGE_CACHE/drag_lora, else $XDG_CACHE_HOME/sdimage/drag_lora, else ~/.cache/sdimage/drag_lora."""
    if os.environ.get("SDIMAGE_CACHE"):
        return Path(os.environ["SDIMAGE_CACHE"]) / "drag_lora"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sdimage" / "drag_lora"


def unet_fingerprint(pipe) -> str:
    """Cheap identity of the base denoiser (the adapter's ``fingerprint``: its config plus the bytes of LoRA-free
    weights); ``pipe`` is a pipeline or an adapter."""
    return backbone(pipe).fingerprint()


def lora_cache_key(image: Tensor, prompt: str, params: dict[str, Any], pipe) -> str:
    h = hashlib.sha256()
    t = image.detach().float().cpu().contiguous()
    h.update(t.numpy().tobytes())
    h.update(str(tuple(t.shape)).encode())
    h.update(json.dumps({"prompt": prompt, **params, "unet": unet_fingerprint(pipe)}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def remove_lora(pipe, adapter_name: str = ADAPTER_NAME) -> None:
    """Delete the drag adapter from the denoiser if present (the pipeline is back to its base weights)."""
    unet = backbone(pipe).denoiser
    if adapter_name in getattr(unet, "peft_config", {}):
        unet.delete_adapters(adapter_name)


def train_lora(
    pipe,
    latent: Tensor,
    prompt_embeds,
    steps: int = 100,
    rank: int = 4,
    lr: float = 2e-4,
    seed: int = 1234,
    batch_size: int = 1,
    adapter_name: str = ADAPTER_NAME,
    progress: bool = False,
    latent_std: Tensor | None = None,
    on_step=None,
) -> list[float]:
    """Add a LoRA adapter to the denoiser (UNet or transformer) and train it on ``latent`` (the image's VAE
    latent).  Returns the losses.

    With ``latent_std`` (the VAE posterior's std × scaling factor) every step uses a fresh posterior sample
    ``latent + latent_std · n`` as the official script does; otherwise the fixed ``latent``.  ``on_step(k, steps)``
    is called after every step k = 1 … steps (progress for a front end).
    """
    from peft import LoraConfig

    from diffsamplers.progress import progress_steps

    from .model import _as_cond

    bb = backbone(pipe)
    unet = bb.denoiser
    remove_lora(pipe, adapter_name)
    unet.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # PEFT draws the Gaussian A from torch's global generator: seed it
        torch.manual_seed(seed)              # here and leave the caller's RNG state as it was
        unet.add_adapter(
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(bb.lora_modules())),
            adapter_name=adapter_name,
        )
    unet.set_adapter(adapter_name)
    params = [p for n, p in unet.named_parameters() if "lora_" in n and adapter_name in n]
    for p in params:  # LoRA weights train in float32 even on a float16 UNet
        p.data = p.data.float()
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr)
    dev, dt = unet.device, unet.dtype
    mean = latent.to(device=dev, dtype=torch.float32)
    std = None if latent_std is None else latent_std.to(device=dev, dtype=torch.float32)
    c0 = _as_cond(prompt_embeds).to(dev, dt)
    first = (lambda t: None if t is None else t[:1])
    emb = Cond(first(c0.embeds), first(c0.pooled), c0.text_ids, first(c0.mask)).expand(batch_size)
    g = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    was_training = unet.training
    unet.train()
    try:
        with torch.enable_grad():
            for _ in progress_steps(steps, progress, "LoRA"):  # a bar on a terminal, one closing line elsewhere
                t = bb.lora_times(batch_size, g)
                x0 = mean
                if std is not None:
                    x0 = mean + std * torch.randn(mean.shape, generator=g).to(dev)
                eps = torch.randn((batch_size, *mean.shape[1:]), generator=g).to(dev)
                xt, t, target = bb.lora_example(x0, eps, t)
                pred = bb.forward_batch(xt.to(dt), t, emb)
                loss = torch.nn.functional.mse_loss(pred.float(), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if on_step is not None:
                    on_step(len(losses), steps)
    finally:
        unet.train(was_training)
        unet.requires_grad_(False)
    if any(l != l for l in losses):
        raise SdImageError("LoRA training diverged (NaN loss); try --dtype float32 or fewer --lora-steps")
    return losses


def ensure_lora(
    pipe,
    latent: Tensor,
    image: Tensor,
    prompt: str,
    prompt_embeds: Tensor,
    steps: int = 100,
    rank: int = 4,
    lr: float = 2e-4,
    seed: int = 1234,
    batch_size: int = 1,
    cache_dir: str | os.PathLike | None = None,
    adapter_name: str = ADAPTER_NAME,
    progress: bool = False,
    on_step=None,
) -> dict[str, Any]:
    """Load the cached LoRA for (image, prompt, params, base UNet) into the denoiser (UNet or transformer), training it first if absent.

    Returns ``{"cached": bool, "path": str, "key": str, "train_s": float, "final_loss": float | None}``.
    ``on_step(k, steps)``: progress of the training (not called on a cache hit).
    """
    bb = backbone(pipe)
    params = {"steps": steps, "rank": rank, "lr": lr, "seed": seed, "batch_size": batch_size,
              "target_modules": bb.lora_modules()}
    unet = bb.denoiser
    remove_lora(bb, adapter_name)
    key = lora_cache_key(image, prompt, params, bb)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / key
    info: dict[str, Any] = {"key": key, "path": str(folder), "cached": True, "train_s": 0.0, "final_loss": None}
    if not (folder / WEIGHT_NAME).is_file():
        info["cached"] = False
        t = time.perf_counter()
        latent_std = None
        if image is not None and getattr(bb.pipe, "vae", None) is not None:
            latent_std = bb.latent_std(image)
        losses = train_lora(bb, latent, prompt_embeds, steps, rank, lr, seed, batch_size, adapter_name, progress,
                            latent_std, on_step=on_step)
        info["train_s"] = time.perf_counter() - t
        info["final_loss"] = losses[-1] if losses else None
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            from diffusers.utils import logging as dlogging

            level = dlogging.get_verbosity()
            dlogging.set_verbosity_error()  # silence a spurious "modules kept in float32: []" note from .to()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    unet.save_lora_adapter(str(tmp), adapter_name=adapter_name, upcast_before_saving=False)
            finally:
                dlogging.set_verbosity(level)
            (tmp / "lora.json").write_text(json.dumps({"prompt": prompt, **params, "losses": losses}, indent=2))
            try:
                os.replace(tmp, folder)
            except OSError:  # another process finished the same key first: keep theirs
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        remove_lora(bb, adapter_name)
    try:
        unet.load_lora_adapter(str(folder), prefix=None, adapter_name=adapter_name, weight_name=WEIGHT_NAME)
    except Exception as err:  # noqa: BLE001 - a corrupt cache entry
        raise SdImageError(f"cannot load cached LoRA {folder}: {err}; delete that folder to retrain") from None
    unet.set_adapter(adapter_name)
    return info
