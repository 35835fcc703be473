"""Drag metrics: Image Fidelity (1 − LPIPS) and Mean Distance (DIFT-style feature matching), pluggable.

- ``lpips(x, y) -> float`` takes two ``(1, 3, 224, 224)`` tensors in [−1, 1].  :class:`AlexLPIPS` is LPIPS v0.1
  with AlexNet (Zhang et al. 2018) implemented here (no ``lpips``/``torchvision`` needed) and loaded from local
  weights: torchvision's ``alexnet-owt-7be5be79.pth`` and the ``lpips`` package's ``weights/v0.1/alex.pth``.
- ``features(image, prompt) -> (1, C, h, w)`` takes a ``(1, 3, H, W)`` tensor in [−1, 1].  :class:`DiftFeatures`
  is DIFT (Tang et al. 2023) on any diffusers SD UNet: the latent noised to t = 261 with 8 noises, the prompt-
  conditioned UNet's up-block 1 output averaged over the ensemble (the drag papers use SD-2.1).

Rules (as DragDiffusion's evaluation): both images resized bilinearly to 224×224 for LPIPS; for Mean Distance the
dragged image is resized to the original's size, features are upsampled bilinearly to the image size, each handle
is matched to the argmax of cosine similarity in the dragged image, and the Euclidean pixel distance to its
target is reported per point (pooled over all points of all samples by the runner).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .errors import SdImageError

__all__ = [
    "to_tensor",
    "AlexLPIPS",
    "find_lpips_weights",
    "load_lpips",
    "image_fidelity",
    "DiftFeatures",
    "match_points",
    "mean_distance_sample",
]

LpipsFn = Callable[[Tensor, Tensor], float]
FeatureFn = Callable[[Tensor, str], Tensor]


def to_tensor(image) -> Tensor:
    """PIL image / uint8 array (H, W, 3) → float32 ``(1, 3, H, W)`` in [−1, 1]; tensors are passed through."""
    if isinstance(image, Tensor):
        return image if image.dim() == 4 else image.unsqueeze(0)
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


# ------------------------------------------------------------------------------------------ LPIPS


class _AlexFeatures(nn.Module):
    """AlexNet ``features`` with torchvision's layer indices (so its state dict loads), tapped after each ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        self.taps = (1, 4, 7, 9, 11)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
            if i == self.taps[-1]:
                break
        return outs


class AlexLPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet, linear-calibrated): inputs in [−1, 1], output the perceptual distance (≥ 0)."""

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.net = _AlexFeatures()
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    @classmethod
    def from_weights(cls, alexnet_path: str | os.PathLike, lin_path: str | os.PathLike) -> "AlexLPIPS":
        m = cls()
        alex = torch.load(alexnet_path, map_location="cpu", weights_only=True)
        feats = {k[len("features."):]: v for k, v in alex.items() if k.startswith("features.")}
        m.net.features.load_state_dict(feats)
        lin = torch.load(lin_path, map_location="cpu", weights_only=True)
        for k, conv in enumerate(m.lins):
            conv.weight.data.copy_(lin[f"lin{k}.model.1.weight"])
        return m.eval().requires_grad_(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = self.net((x - self.shift) / self.scale)
        fy = self.net((y - self.shift) / self.scale)
        total = 0.0
        for a, b, lin in zip(fx, fy, self.lins):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((a - b) ** 2).mean(dim=(2, 3), keepdim=True)
        return total.flatten()


def find_lpips_weights(directory: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """Locate (alexnet, lpips-lin) weights: ``directory`` or $SDIMAGE_LPIPS_DIR, then torch hub's checkpoint folder
    and an installed ``lpips`` package.  Returns None when either file is missing (nothing is downloaded)."""
    alex_names = ("alexnet-owt-7be5be79.pth", "alexnet.pth")
    lin_names = ("alex.pth",)
    dirs: list[Path] = []
    for d in (directory, os.environ.get("SDIMAGE_LPIPS_DIR")):
        if d:
            dirs.append(Path(d))
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    try:  # pragma: no cover - lpips is optional
        import importlib.util

        spec = importlib.util.find_spec("lpips")
        if spec and spec.origin:
            dirs.append(Path(spec.origin).parent / "weights" / "v0.1")
    except (ImportError, ValueError):
        pass
    alex = next((d / n for d in dirs for n in alex_names if (d / n).is_file()), None)
    lin = next((d / n for d in dirs for n in lin_names if (d / n).is_file()), None)
    return (alex, lin) if alex and lin else None


def load_lpips(directory: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LpipsFn:
    """AlexNet-LPIPS from local weights as ``fn(x, y) -> float``; :class:`SdImageError` if the weights are absent."""
    found = find_lpips_weights(directory)
    if found is None:
        raise SdImageError(
            "LPIPS weights not found: put alexnet-owt-7be5be79.pth (torchvision) and alex.pth (lpips v0.1) in "
            "--lpips-weights DIR or $SDIMAGE_LPIPS_DIR"
        )
    net = AlexLPIPS.from_weights(*found).to(device)

    @torch.no_grad()
    def fn(x: Tensor, y: Tensor) -> float:
        return float(net(x.to(device, torch.float32), y.to(device, torch.float32)).mean())

    return fn


def image_fidelity(original, edited, lpips: LpipsFn, size: int = 224) -> float:
    """1 − LPIPS(original, edited), both resized bilinearly to ``size``×``size`` (in [−1, 1] for LPIPS ∈ [0, 2])."""
    a = F.interpolate(to_tensor(original).float(), size=(size, size), mode="bilinear", align_corners=False)
    b = F.interpolate(to_tensor(edited).float(), size=(size, size), mode="bilinear", align_corners=False)
    return 1.0 - float(lpips(a, b))


# ------------------------------------------------------------------------------------------ Mean Distance


class DiftFeatures:
    """DIFT features from a diffusers SD pipeline: t = 261, up-block 1, ensemble of 8, prompt-conditioned.

    Build it from local SD-2.1 weights, e.g. ``DiftFeatures(load_pipeline("/models/sd-2-1", "cuda", "float16"))``.
    """

    def __init__(self, pipe, t: int = 261, up_ft_index: int = 1, ensemble: int = 8, seed: int = 0) -> None:
        if up_ft_index >= len(pipe.unet.up_blocks):
            raise SdImageError(f"up_ft_index {up_ft_index} but the UNet has {len(pipe.unet.up_blocks)} up blocks")
        self.pipe, self.t, self.up_ft_index, self.ensemble, self.seed = pipe, t, up_ft_index, ensemble, seed

    @torch.no_grad()
    def __call__(self, image: Tensor, prompt: str) -> Tensor:
        from .model import encode_prompt

        pipe = self.pipe
        unet, vae = pipe.unet, pipe.vae
        dev, dt = unet.device, unet.dtype
        x = to_tensor(image).to(device=vae.device, dtype=vae.dtype)
        lat = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
        lat = lat.to(device=dev, dtype=dt)
        abar = pipe.scheduler.alphas_cumprod[self.t].to(torch.float64)
        g = torch.Generator().manual_seed(self.seed)
        eps = torch.randn((self.ensemble, *lat.shape[1:]), generator=g).to(device=dev, dtype=dt)
        xt = float(abar.sqrt()) * lat + float((1 - abar).sqrt()) * eps
        cond = encode_prompt(pipe, prompt)[0].embeds
        cond = cond.to(device=dev, dtype=dt)[:1].expand(self.ensemble, -1, -1)
        grab: dict[str, Tensor] = {}
        hook = unet.up_blocks[self.up_ft_index].register_forward_hook(lambda m, i, o: grab.__setitem__("f", o))
        try:
            unet(xt, torch.full((self.ensemble,), self.t, device=dev), encoder_hidden_states=cond)
        finally:
            hook.remove()
        return grab["f"].float().mean(0, keepdim=True)


def match_points(f_src: Tensor, f_dst: Tensor, points: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each (x, y) in ``points`` the (x, y) in ``f_dst`` (1, C, H, W) of highest cosine similarity to ``f_src``'s vector."""
    _, c, h, w = f_dst.shape
    dst = F.normalize(f_dst[0].reshape(c, -1), dim=0)
    out = []
    for x, y in points:
        v = F.normalize(f_src[0, :, int(y), int(x)], dim=0)
        k = int(torch.argmax(v @ dst))
        out.append((k % w, k // w))
    return out


def mean_distance_sample(original, edited, sources, targets, prompt: str, features: FeatureFn) -> list[float]:
    """Per-handle pixel distances between the matched handle in ``edited`` and its target."""
    a = to_tensor(original).float()
    b = to_tensor(edited).float()
    h, w = a.shape[-2:]
    if b.shape[-2:] != (h, w):
        b = F.interpolate(b, size=(h, w), mode="bilinear", align_corners=False)
    fa = F.interpolate(features(a, prompt).float().cpu(), size=(h, w), mode="bilinear", align_corners=False)
    fb = F.interpolate(features(b, prompt).float().cpu(), size=(h, w), mode="bilinear", align_corners=False)
    found = match_points(fa, fb, sources)
    return [float(np.hypot(p[0] - t[0], p[1] - t[1])) for p, t in zip(found, targets)]
