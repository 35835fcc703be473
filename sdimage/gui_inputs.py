"""The browser editor's inputs (:mod:`sdimage.gui_app`) read as plain values: the sampler switch, an image or an
image-editor value as an RGB image and a mask, clicked points, and the points view.  One-line
:class:`SdImageError` messages; no Gradio import (the tests call these functions directly).

Points are (x, y) image pixels, written one pair per line as ``x,y -> x,y`` (handle, then target); a line with
only a handle (``x,y ->``) is a handle still waiting for its target.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import SdImageError

__all__ = ["SAMPLER_CHOICES", "samplers_of", "as_rgb", "as_mask", "fit_size", "editor_to_inputs", "parse_points",
           "format_points", "add_point", "undo_point", "points_for_image", "view_scale", "draw_points"]

SAMPLER_CHOICES = ("sde", "ode", "both")

def samplers_of(choice: str) -> list[str]:
    """``"sde"`` / ``"ode"`` / ``"both"`` (SDE first, then ODE with the same seed) → the samplers to run."""
    c = str(choice or "").strip().lower()
    if c not in SAMPLER_CHOICES:
        raise SdImageError(f"sampler must be one of {', '.join(SAMPLER_CHOICES)}, got {choice!r}")
    return ["sde", "ode"] if c == "both" else [c]


# ----------------------------------------------------------------------------------------------- images and masks
def _open_any(value, what: str):
    """PIL image, numpy array or file path → PIL image (no conversion)."""
    from PIL import Image, UnidentifiedImageError

    if value is None:
        return None
    if isinstance(value, dict):  # a gradio FileData-like dict {"path": ...}
        value = value.get("path") or value.get("name")
        if value is None:
            return None
    if isinstance(value, (str, Path)):
        p = Path(value)
        if not p.is_file():
            raise SdImageError(f"{what} file {str(p)!r} does not exist")
        from .gui_limits import check_upload_file

        check_upload_file(p, what)  # an image, and not too many pixels: from the header, before decoding
        try:
            with Image.open(p) as im:
                im.load()
                return im.copy()
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise SdImageError(f"cannot read the {what}: {err}") from None
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr)
    if hasattr(value, "convert"):
        return value
    raise SdImageError(f"the {what} must be an image, got {type(value).__name__}")


def as_rgb(image):
    """The input image as an RGB PIL image; no image is an error (the first thing a user can get wrong)."""
    im = _open_any(image, "image")
    if im is None:
        raise SdImageError("no image: upload an image first")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return im.convert("RGB")


def as_mask(mask, size: tuple[int, int]):
    """A mask image (white / >= 128 = editable; a transparent pixel is not editable) as a binary 'L' PIL image of
    ``size`` = (width, height); None stays None.  A size mismatch is an error (nothing is resized silently)."""
    from PIL import Image

    im = _open_any(mask, "mask")
    if im is None:
        return None
    if im.mode in ("RGBA", "LA"):
        rgba = np.asarray(im.convert("RGBA"))
        grey = np.asarray(Image.fromarray(rgba[..., :3]).convert("L"))
        arr = (grey >= 128) & (rgba[..., 3] >= 128)
    else:
        arr = np.asarray(im.convert("L")) >= 128
    if im.size != tuple(size):
        raise SdImageError(f"the mask is {im.size[0]}x{im.size[1]} but the image is {size[0]}x{size[1]}")
    return Image.fromarray((arr * 255).astype(np.uint8), mode="L")


def _mask_tensor(mask):
    """Binary 'L' PIL mask → float {0, 1} tensor [1, 1, H, W] (1 = edit / inpaint)."""
    import torch

    return torch.from_numpy((np.asarray(mask) >= 128).astype(np.float32))[None, None]


def fit_size(width: int, height: int, factor: int, max_side: int | None = None) -> tuple[int, int]:
    """(width, height) scaled down (never up) so the longer side is at most ``max_side``, then rounded down to
    multiples of the VAE ``factor``."""
    scale = 1.0
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
    w, h = int(width * scale), int(height * scale)
    w, h = w - w % factor, h - h % factor
    if w < factor or h < factor:
        raise SdImageError(f"the image is {width}x{height}: too small for the VAE factor {factor}")
    return w, h


def editor_to_inputs(value, factor: int, max_side: int | None = None):
    """An image-editor value (``{"background", "layers", "composite"}``, or a plain image) → (RGB image, 'L' mask
    or None): the background, resized by :func:`fit_size`; the mask is every pixel painted on any layer (alpha > 0),
    resized with nearest neighbour.  No layer or nothing painted → mask None."""
    from PIL import Image

    layers = []
    if isinstance(value, dict):
        background = value.get("background")
        if background is None:
            background = value.get("composite")
        layers = [x for x in (value.get("layers") or []) if x is not None]
    else:
        background = value
    image = as_rgb(background)
    size = fit_size(*image.size, factor, max_side)
    painted = None
    for layer in layers:
        im = _open_any(layer, "mask layer")
        if im.mode not in ("RGBA", "LA"):
            continue  # no alpha: not a painting layer
        alpha = np.asarray(im.convert("RGBA"))[..., 3] > 0
        if alpha.shape != (image.size[1], image.size[0]):
            alpha = np.asarray(Image.fromarray(alpha.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
        painted = alpha if painted is None else (painted | alpha)
    if size != image.size:
        image = image.resize(size, Image.LANCZOS)
    if painted is None or not painted.any():
        return image, None
    mask = Image.fromarray(painted.astype(np.uint8) * 255, mode="L")
    if mask.size != size:
        mask = mask.resize(size, Image.NEAREST)
    return image, mask


# ------------------------------------------------------------------------------------------------------ points
_INT = re.compile(r"-?\d+(?:\.\d+)?")


def parse_points(text: str | None) -> tuple[list[tuple[tuple[int, int], tuple[int, int]]], tuple[int, int] | None]:
    """``"x,y -> x,y"`` lines → (list of (handle, target) pairs, a trailing handle without target or None)."""
    from .settings import MAX_POINTS

    pairs: list = []
    pending = None
    lines = str(text or "").replace(";", "\n").splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_POINTS + 1:
        raise SdImageError(f"too many points lines: at most {MAX_POINTS} handle/target pairs")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        nums = [int(float(v)) for v in _INT.findall(line)]
        if pending is not None:
            raise SdImageError(f"unpaired points: the handle at ({pending[0]}, {pending[1]}) has no target "
                               "(click a target point, or undo)")
        if len(nums) == 4:
            pairs.append(((nums[0], nums[1]), (nums[2], nums[3])))
        elif len(nums) == 2:
            pending = (nums[0], nums[1])
        else:
            raise SdImageError(f"cannot read points line {n} {line.strip()!r}: write 'x,y -> x,y' (handle -> target)")
    return pairs, pending


def format_points(pairs, pending=None) -> str:
    lines = [f"{s[0]},{s[1]} -> {t[0]},{t[1]}" for s, t in pairs]
    if pending is not None:
        lines.append(f"{pending[0]},{pending[1]} ->")
    return "\n".join(lines)


def add_point(text: str | None, x: int, y: int) -> str:
    """Add a clicked point: a handle if none is waiting, else the waiting handle's target (clicks alternate)."""
    pairs, pending = parse_points(text)
    p = (int(x), int(y))
    if pending is None:
        return format_points(pairs, p)
    return format_points(pairs + [(pending, p)])


def undo_point(text: str | None) -> str:
    """Remove the last click (a waiting handle, else the last target, leaving its handle waiting)."""
    pairs, pending = parse_points(text)
    if pending is not None:
        return format_points(pairs)
    if pairs:
        return format_points(pairs[:-1], pairs[-1][0])
    return ""


def points_for_image(text: str | None, width: int, height: int) -> tuple[list, list]:
    """(sources, targets) ready for :func:`sdimage.drag.drag`, or a one-line error: no points, a handle without
    target, a point outside the image, a handle equal to its target."""
    from .drag_inputs import validate_points

    pairs, pending = parse_points(text)
    if pending is not None:
        raise SdImageError(f"unpaired points: the handle at ({pending[0]}, {pending[1]}) has no target "
                           "(click a target point, or undo)")
    if not pairs:
        raise SdImageError("no points: click a handle point on the image, then its target")
    return validate_points([s for s, _ in pairs], [t for _, t in pairs], width, height)


def view_scale(width: int, height: int, target: int = 512) -> int:
    """Integer zoom of the points view so a small image is shown at a clickable size (1 for >= ``target`` px)."""
    return max(1, target // max(width, height, 1))


def draw_points(image, text: str | None = None, mask=None, scale: int = 1):
    """The image (zoomed ``scale`` times, nearest neighbour) with the editable region tinted and each handle →
    target as an arrow (handles red, targets blue, a waiting handle hollow).  Display only: a click at view pixel
    (u, v) is image pixel (u // scale, v // scale)."""
    from PIL import Image, ImageDraw

    base = as_rgb(image).convert("RGBA")
    w, h = base.size
    if mask is not None:
        m = np.asarray(as_mask(mask, (w, h))) >= 128
        tint = np.zeros((h, w, 4), np.uint8)
        tint[m] = (60, 179, 113, 90)
        base = Image.alpha_composite(base, Image.fromarray(tint, "RGBA"))
    scale = max(1, int(scale))
    if scale > 1:
        base = base.resize((w * scale, h * scale), Image.NEAREST)
    try:
        pairs, pending = parse_points(text)
    except SdImageError:
        pairs, pending = [], None
    c = lambda p: (p[0] * scale + scale // 2, p[1] * scale + scale // 2)  # noqa: E731  pixel centre in the view
    pairs = [(c(a), c(b)) for a, b in pairs]
    pending = None if pending is None else c(pending)
    draw = ImageDraw.Draw(base)
    rad = max(3, round(min(w, h) * scale / 80))
    width = max(1, rad // 2)
    for s, t in pairs:
        draw.line([s, t], fill=(255, 255, 255, 255), width=width + 2)
        draw.line([s, t], fill=(0, 0, 0, 255), width=width)
        d = np.array(t, float) - np.array(s, float)
        n = float(np.hypot(*d))
        if n > 0:
            u = d / n
            v = np.array([-u[1], u[0]])
            tip = np.array(t, float) - u * rad
            head = 2.5 * rad
            pts = [tuple(tip), tuple(tip - u * head + v * head * 0.5), tuple(tip - u * head - v * head * 0.5)]
            draw.polygon(pts, fill=(0, 0, 0, 255))
        draw.ellipse([s[0] - rad, s[1] - rad, s[0] + rad, s[1] + rad], fill=(220, 30, 30, 255), outline="white")
        draw.ellipse([t[0] - rad, t[1] - rad, t[0] + rad, t[1] + rad], fill=(30, 80, 220, 255), outline="white")
    if pending is not None:
        s = pending
        draw.ellipse([s[0] - rad, s[1] - rad, s[0] + rad, s[1] + rad], outline=(220, 30, 30, 255), width=width + 1)
    return base.convert("RGB")
