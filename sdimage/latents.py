"""Images, masks and VAE latents.

Resize rule: an image whose width or height is not a multiple of the VAE factor (8 for Stable Diffusion) is
resized *down* to the nearest multiples (Lanczos) with a warning; ``strict=True`` (CLI ``--strict-size``) makes it
an error instead.  ``size`` (an int for a square, or (width, height)) resizes first (Lanczos), then the rule applies.

Mask rule: the mask is read as grayscale, scaled to [0, 1] and thresholded at 0.5 (pixel value >= 128 → 1).
White (1) = the region to edit / inpaint, black (0) = keep.  A mask with values other than 0 and 255 gets a
warning saying how many pixels were thresholded.  A mask whose size differs from the image is an error unless
``resize=True`` (CLI ``--resize-mask``), which resizes it to the image size with nearest-neighbour sampling first.
Pixel mask → latent grid (:func:`mask_to_latent`), one rule per use, documented here once:

- ``"nearest"``: nearest-neighbour downsampling, as diffusers' inpainting pipeline (inpainting; a DiffEdit mask
  given by the user under the official preset, as the diffusers DiffEdit pipeline the official ODE code ran).
- ``"bicubic"``: the official SDE-Drag rule: the mask (0/255) resized with PIL's bicubic filter to the latent size,
  editable where > 128 (``sdedrag_dragbench.py``; drag under the official preset).  The official code resizes the
  raw grey values; here the one pixel threshold above comes first, which is the same for binary masks.
- ``"area"``: area average over each latent cell, editable where more than half is (the clean preset, drag and
  DiffEdit).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .backbones import backbone
from .errors import SdImageError

__all__ = [
    "SdImageWarning", "load_image", "load_mask", "mask_to_latent", "MASK_RULES", "encode", "decode", "save_image", "to_pil",
    "vae_factor", "image_multiple",
]


class SdImageWarning(UserWarning):
    """A note for the user about something that was adjusted (resized image or mask, thresholded mask)."""


def vae_factor(pipe) -> int:
    """Pixels per latent cell (``pipe``: a pipeline or its adapter)."""
    return backbone(pipe).vae_factor


def image_multiple(pipe) -> int:
    """What image sides must be divisible by: the VAE factor, × the transformer's patch size or 2×2 packing
    (the family adapter's ``image_multiple``)."""
    return backbone(pipe).image_multiple


def _open(path, mode: str, what: str):
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise SdImageError(f"{what} file {str(p)!r} does not exist")
    if not p.is_file():
        raise SdImageError(f"{what} path {str(p)!r} is not a file")
    try:
        with Image.open(p) as im:
            im.load()
            if what == "mask" and im.mode in ("RGBA", "LA"):
                im = im.convert("RGB" if im.mode == "RGBA" else "L")
            return im.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise SdImageError(f"cannot read {what} {str(p)!r}: {err}") from None


def load_image(path, size: int | tuple[int, int] | None = None, multiple: int = 8, strict: bool = False) -> Tensor:
    """RGB image as a float32 tensor [1, 3, H, W] in [-1, 1] (resize rule in the module docstring)."""
    from PIL import Image

    im = _open(path, "RGB", "image")
    if size is not None:
        w, h = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if w < 1 or h < 1:
            raise SdImageError(f"image size must be positive, got {w}x{h}")
        im = im.resize((w, h), Image.LANCZOS)
    w, h = im.size
    if w % multiple or h % multiple:
        nw, nh = w - w % multiple, h - h % multiple
        if strict or nw == 0 or nh == 0:
            raise SdImageError(
                f"image {str(path)!r} is {w}x{h}, not divisible by the VAE factor {multiple}"
                + ("" if nw and nh else " and too small to resize") + (f"; drop --strict-size to resize it to {nw}x{nh}" if nw and nh else "")
            )
        warnings.warn(f"image {w}x{h} is not divisible by {multiple}; resized to {nw}x{nh}", SdImageWarning, stacklevel=2)
        im = im.resize((nw, nh), Image.LANCZOS)
    arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_mask(path, like_image: Tensor, resize: bool = False) -> Tensor:
    """Binary mask [1, 1, H, W] (float32 in {0, 1}, 1 = edit) matching ``like_image``'s size (rules in module docstring)."""
    from PIL import Image

    im = _open(path, "L", "mask")
    h, w = like_image.shape[-2:]
    if im.size != (w, h):
        if not resize:
            raise SdImageError(
                f"mask {str(path)!r} is {im.size[0]}x{im.size[1]} but the image is {w}x{h}; "
                "it is not resized unless you pass --resize-mask (nearest neighbour)"
            )
        warnings.warn(f"mask {im.size[0]}x{im.size[1]} resized to {w}x{h} (nearest neighbour)", SdImageWarning, stacklevel=2)
        im = im.resize((w, h), Image.NEAREST)
    arr = np.asarray(im, dtype=np.uint8)
    grey = int(np.count_nonzero((arr != 0) & (arr != 255)))
    if grey:
        warnings.warn(
            f"mask is not binary ({grey} of {arr.size} pixels neither 0 nor 255); thresholded at 0.5 (>= 128 = edit)",
            SdImageWarning, stacklevel=2,
        )
    m = (arr.astype(np.float32) / 255.0 >= 0.5).astype(np.float32)
    return torch.from_numpy(m)[None, None]


MASK_RULES = ("nearest", "bicubic", "area")


def mask_to_latent(mask: Tensor, latent_hw: tuple[int, int], rule: str = "nearest") -> Tensor:
    """A binary [1, 1, H, W] / [H, W] pixel mask (1 = edit) on the latent grid as a float {0, 1} [1, 1, h, w]
    tensor, by ``rule`` (module docstring)."""
    m = mask.float()
    while m.dim() < 4:
        m = m.unsqueeze(0)
    m = m[:, :1]
    h, w = (int(v) for v in latent_hw)
    if rule == "nearest":
        return F.interpolate(m, size=(h, w), mode="nearest")
    if rule == "area":
        return (F.interpolate(m, size=(h, w), mode="area") > 0.5).float()
    if rule == "bicubic":
        from PIL import Image

        grey = (m[0, 0].cpu().numpy() > 0.5).astype(np.uint8) * 255
        small = np.asarray(Image.fromarray(grey).resize((w, h), Image.BICUBIC))
        return torch.from_numpy((small > 128).astype(np.float32))[None, None]
    raise SdImageError(f"mask rule must be one of {MASK_RULES}, got {rule!r}")


@torch.no_grad()
def encode(pipe, image: Tensor, generator: torch.Generator | None = None, sample: bool = False) -> Tensor:
    """The sampler's latents of ``image`` (the family adapter's ``encode_image``: the VAE latent distribution's
    mean, or a sample when ``sample``, normalised as the family's pipelines do); ``pipe``: a pipeline or adapter."""
    return backbone(pipe).encode_image(image, generator=generator, sample=sample)


@torch.no_grad()
def decode(pipe, latents: Tensor) -> Tensor:
    """Decoded image [B, 3, H, W] in [-1, 1] (float32, on the VAE's device)."""
    return backbone(pipe).decode_latents(latents)


def to_pil(image: Tensor):
    """First image of a [B, 3, H, W] tensor in [-1, 1] as a PIL image."""
    from PIL import Image

    x = image.detach()[0] if image.ndim == 4 else image.detach()
    arr = ((x.float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def save_image(image, path) -> Path:
    """Write a tensor in [-1, 1] or a PIL image as PNG atomically (temp file with the umask's mode, then rename)."""
    from cliutil import atomic_path

    p = Path(path)
    pil = image if not isinstance(image, Tensor) else to_pil(image)
    with atomic_path(p) as tmp:
        pil.save(tmp, format="PNG")
    return p
