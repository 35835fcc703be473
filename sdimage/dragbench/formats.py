"""DragBench data in both public layouts: reading, validating, finding and writing samples.

Layouts (a *sample* is one folder; a benchmark root holds sample folders at any depth):

- ``sde-drag`` (SDE-Drag's DragBench): ``origin_image.png``, ``mask.png`` (white = editable, > 128 after
  conversion to grey), ``prompt.json`` = ``{"prompt": str, "source": [[x, y], ...], "target": [[x, y], ...]}``.
- ``dragdiffusion`` (DragDiffusion's DragBench, ``<category>/<sample>/``): ``original_image.png``,
  ``user_drag.png`` (a picture of the drag, ignored on reading), ``meta_data.pkl`` =
  ``{"prompt": str, "points": [handle, target, handle, target, ...], "mask": uint8 H×W in {0, 1}}``.

Points are ``(x, y)`` image pixels.  ``meta_data.pkl`` is read with a restricted unpickler (builtins and numpy
arrays only), so a hostile pickle cannot run code.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cliutil import write_bytes_atomic

from ..errors import SdImageError

__all__ = [
    "FORMATS",
    "DragSample",
    "detect_format",
    "read_sample",
    "write_sample",
    "find_samples",
    "read_dragbench",
    "validate_sample",
]

FORMATS = ("sde-drag", "dragdiffusion")


@dataclass
class DragSample:
    """One DragBench sample: an RGB image, optional editable mask (bool H×W, True = editable), prompt and points."""

    image: Any  # PIL.Image.Image (RGB)
    prompt: str
    sources: list[tuple[int, int]]
    targets: list[tuple[int, int]]
    mask: np.ndarray | None = None
    id: str = ""
    format: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size  # (width, height)


def detect_format(folder: str | os.PathLike) -> str | None:
    """'sde-drag', 'dragdiffusion' or None for a folder."""
    d = Path(folder)
    if (d / "prompt.json").is_file() and (d / "origin_image.png").is_file():
        return "sde-drag"
    if (d / "meta_data.pkl").is_file() and (d / "original_image.png").is_file():
        return "dragdiffusion"
    return None


class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
        ("builtins", "int"), ("builtins", "float"), ("builtins", "str"), ("builtins", "bytes"),
        ("collections", "OrderedDict"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _load_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise SdImageError(f"{path}: cannot read image ({e.__class__.__name__})") from None


def _points(value, what: str, where: Path) -> list[tuple[int, int]]:
    """[[x, y], ...] of finite numbers → integer pixel points (truncation, as the official loader).  A coordinate
    must be a number (an int, a float or a numpy number): a string such as ``"5"`` or a bool is refused."""
    from numbers import Real

    bad = SdImageError(f"{where}: '{what}' must be a list of [x, y] pairs of finite numbers")
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise bad
    pts = []
    for p in value:
        if isinstance(p, (str, bytes, dict)) or not hasattr(p, "__len__") or len(p) != 2:
            raise bad
        for v in (p[0], p[1]):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.number)):
                raise SdImageError(f"{where}: '{what}' has a coordinate that is not a number: {v!r} (write pixel "
                                   "coordinates as integers, e.g. [120, 45])")
        try:
            x, y = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError):
            raise bad from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise SdImageError(f"{where}: '{what}' has a non-finite coordinate ({p[0]}, {p[1]})")
        pts.append((int(x), int(y)))
    return pts


def _pickled_mask(value, where: Path) -> np.ndarray:
    """The ``mask`` of ``meta_data.pkl``: an H×W (or H×W×C) array of numbers, {0, 1} or {0, 255}, as a bool H×W."""
    try:
        mask = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        mask = None
    if mask is None or mask.dtype.kind not in "biuf" or mask.ndim not in (2, 3) or mask.size == 0:
        what = f"{type(value).__name__}" if mask is None else f"{mask.dtype} array of shape {mask.shape}"
        raise SdImageError(f"{where}: 'mask' must be an H×W array of numbers, got a {what}")
    if mask.ndim == 3:
        mask = mask[..., 0]
    return mask > (127 if mask.max(initial=0) > 1 else 0)


def validate_sample(s: DragSample, where: str | os.PathLike = "") -> DragSample:
    """Check counts, points inside the image, source != target, mask size.  Raises :class:`SdImageError`."""
    w, h = s.size
    tag = f"{where}: " if where else ""
    if not isinstance(s.prompt, str):
        raise SdImageError(f"{tag}prompt must be a string")
    if not s.sources or len(s.sources) != len(s.targets):
        raise SdImageError(f"{tag}need matching handle/target points, got {len(s.sources)} and {len(s.targets)}")
    from ..settings import MAX_POINTS

    if len(s.sources) > MAX_POINTS:
        raise SdImageError(f"{tag}{len(s.sources)} handle/target pairs: at most {MAX_POINTS}")
    for p in list(s.sources) + list(s.targets):
        if not (0 <= p[0] < w and 0 <= p[1] < h):
            raise SdImageError(f"{tag}point ({p[0]}, {p[1]}) is outside the {w}x{h} image")
    for a, b in zip(s.sources, s.targets):
        if tuple(a) == tuple(b):
            raise SdImageError(f"{tag}handle and target are the same point ({a[0]}, {a[1]})")
    if s.mask is not None and s.mask.shape != (h, w):
        raise SdImageError(f"{tag}mask is {s.mask.shape[1]}x{s.mask.shape[0]}, image is {w}x{h}")
    return s


def read_sample(folder: str | os.PathLike, sample_id: str | None = None) -> DragSample:
    """Read one sample folder of either layout (validated)."""
    d = Path(folder)
    fmt = detect_format(d)
    sid = sample_id if sample_id is not None else d.name
    if fmt == "sde-drag":
        try:
            meta = json.loads((d / "prompt.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SdImageError(f"{d / 'prompt.json'}: not valid JSON ({e.__class__.__name__})") from None
        if not isinstance(meta, dict) or not all(k in meta for k in ("prompt", "source", "target")):
            raise SdImageError(f"{d / 'prompt.json'}: needs keys 'prompt', 'source', 'target'")
        image = _load_image(d / "origin_image.png")
        mask = None
        if (d / "mask.png").is_file():
            mask = np.asarray(_load_image(d / "mask.png").convert("L")) > 128
        s = DragSample(image, meta["prompt"], _points(meta["source"], "source", d), _points(meta["target"], "target", d),
                       mask, sid, fmt)
    elif fmt == "dragdiffusion":
        try:
            with open(d / "meta_data.pkl", "rb") as f:
                meta = _SafeUnpickler(f).load()
        except Exception as e:  # noqa: BLE001 - any unpickling problem is a malformed sample
            raise SdImageError(f"{d / 'meta_data.pkl'}: unreadable ({e.__class__.__name__}: {e})") from None
        if not isinstance(meta, dict) or "prompt" not in meta or "points" not in meta:
            raise SdImageError(f"{d / 'meta_data.pkl'}: needs keys 'prompt' and 'points'")
        pts = _points(meta["points"], "points", d)
        if len(pts) % 2:
            raise SdImageError(f"{d / 'meta_data.pkl'}: 'points' must alternate handle, target (odd count {len(pts)})")
        image = _load_image(d / "original_image.png")
        mask = None
        if meta.get("mask") is not None:
            mask = _pickled_mask(meta["mask"], d / "meta_data.pkl")
        s = DragSample(image, str(meta["prompt"]), pts[0::2], pts[1::2], mask, sid, fmt)
    else:
        raise SdImageError(f"{d}: not a DragBench sample (needs origin_image.png + prompt.json, "
                           "or original_image.png + meta_data.pkl)")
    return validate_sample(s, d)


def _atomic_bytes(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)  # cliutil: temp file beside it, the umask's mode, rename


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _drag_picture(s: DragSample):
    """``user_drag.png``-style picture: image with mask dimmed outside, red handles, blue targets, arrows."""
    from PIL import Image, ImageDraw

    im = s.image.convert("RGB").copy()
    if s.mask is not None:
        dim = Image.new("RGB", im.size, (0, 0, 0))
        keep = Image.fromarray((np.where(s.mask, 255, 160)).astype(np.uint8), "L")
        im = Image.composite(im, dim, keep)
    dr = ImageDraw.Draw(im)
    rad = max(2, min(im.size) // 100)
    for a, b in zip(s.sources, s.targets):
        dr.line([tuple(a), tuple(b)], fill=(255, 255, 255), width=max(1, rad // 2))
        dr.ellipse([a[0] - rad, a[1] - rad, a[0] + rad, a[1] + rad], fill=(255, 0, 0))
        dr.ellipse([b[0] - rad, b[1] - rad, b[0] + rad, b[1] + rad], fill=(0, 0, 255))
    return im


def write_sample(sample: DragSample, folder: str | os.PathLike, fmt: str = "sde-drag") -> Path:
    """Write one sample folder in ``fmt`` (files written atomically).  Returns the folder."""
    from PIL import Image

    if fmt not in FORMATS:
        raise SdImageError(f"unknown DragBench format {fmt!r}; choose one of {FORMATS}")
    validate_sample(sample)
    d = Path(folder)
    w, h = sample.size
    mask = sample.mask if sample.mask is not None else np.ones((h, w), dtype=bool)
    pts_s = [[int(x), int(y)] for x, y in sample.sources]
    pts_t = [[int(x), int(y)] for x, y in sample.targets]
    if fmt == "sde-drag":
        _atomic_bytes(d / "origin_image.png", _png_bytes(sample.image.convert("RGB")))
        _atomic_bytes(d / "mask.png", _png_bytes(Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")))
        meta = {"prompt": sample.prompt, "source": pts_s, "target": pts_t}
        _atomic_bytes(d / "prompt.json", json.dumps(meta, indent=2).encode())
    else:
        _atomic_bytes(d / "original_image.png", _png_bytes(sample.image.convert("RGB")))
        _atomic_bytes(d / "user_drag.png", _png_bytes(_drag_picture(sample)))
        points = []
        for a, b in zip(pts_s, pts_t):
            points += [a, b]
        meta = {"prompt": sample.prompt, "points": points, "mask": mask.astype(np.uint8)}
        _atomic_bytes(d / "meta_data.pkl", pickle.dumps(meta, protocol=4))
    return d


def find_samples(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(sample id = path relative to ``root`` with '/', folder) of every sample folder under ``root``, sorted."""
    r = Path(root)
    if not r.is_dir():
        raise SdImageError(f"{root}: DragBench root is not a folder")
    found = []
    for dirpath, dirnames, _ in os.walk(r):
        dirnames.sort()
        p = Path(dirpath)
        if detect_format(p):
            found.append((p.relative_to(r).as_posix() if p != r else p.name, p))
            dirnames[:] = []
    if not found:
        raise SdImageError(f"{root}: no DragBench samples found (see docs/drag.md for the two layouts)")
    return sorted(found)


def read_dragbench(root: str | os.PathLike) -> list[DragSample]:
    """Read and validate every sample under ``root``."""
    return [read_sample(p, sid) for sid, p in find_samples(root)]
