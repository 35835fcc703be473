"""DragBench data in both public layouts, and the resumable benchmark runner.

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
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import SdImageError

__all__ = [
    "FORMATS",
    "DragSample",
    "detect_format",
    "read_sample",
    "write_sample",
    "find_samples",
    "read_dragbench",
    "validate_sample",
    "sample_key",
    "run_dragbench",
    "evaluate_dragbench",
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
    try:
        pts = [(int(float(p[0])), int(float(p[1]))) for p in value]  # truncation, as the official loader
        if any(len(p) != 2 for p in value):
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise SdImageError(f"{where}: '{what}' must be a list of [x, y] pairs") from None
    return pts


def validate_sample(s: DragSample, where: str | os.PathLike = "") -> DragSample:
    """Check counts, points inside the image, source != target, mask size.  Raises :class:`SdImageError`."""
    w, h = s.size
    tag = f"{where}: " if where else ""
    if not isinstance(s.prompt, str):
        raise SdImageError(f"{tag}prompt must be a string")
    if not s.sources or len(s.sources) != len(s.targets):
        raise SdImageError(f"{tag}need matching handle/target points, got {len(s.sources)} and {len(s.targets)}")
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
            mask = np.asarray(meta["mask"])
            if mask.ndim == 3:
                mask = mask[..., 0]
            mask = mask > (127 if mask.max(initial=0) > 1 else 0)
        s = DragSample(image, str(meta["prompt"]), pts[0::2], pts[1::2], mask, sid, fmt)
    else:
        raise SdImageError(f"{d}: not a DragBench sample (needs origin_image.png + prompt.json, "
                           "or original_image.png + meta_data.pkl)")
    return validate_sample(s, d)


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def sample_key(sample_id: str) -> str:
    """File-system-safe output name of a sample id ('animals/JH_2023…' → 'animals__JH_2023…')."""
    return sample_id.replace("/", "__")


# ------------------------------------------------------------------------------------------ runner


def _done(out: Path, sid: str) -> bool:
    k = sample_key(sid)
    return (out / f"{k}.png").is_file() and (out / f"{k}.json").is_file()


def run_dragbench(
    pipe,
    root: str | os.PathLike,
    out: str | os.PathLike,
    sampler: str = "sde",
    config=None,
    progress: bool = True,
    meta: dict | None = None,
    distributed: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Drag every sample under ``root`` into ``out/<key>.png`` + ``.json`` (resumable: finished samples skipped).

    Samples are validated up front.  With ``accelerate launch`` each process takes its share via
    ``PartialState().split_between_processes``; every sample is dragged with ``config.seed`` (its own generator),
    so results do not depend on the number of processes.  Returns a summary dict.
    """
    from tqdm.auto import tqdm

    from .drag import DragConfig, drag
    from .runinfo import write_outputs

    config = config or DragConfig()
    found = find_samples(root)
    samples = {sid: read_sample(p, sid) for sid, p in found}  # validate everything before any work
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    state = None
    if distributed:
        try:
            from accelerate import PartialState

            state = PartialState()
            if state.num_processes > 1:
                state.wait_for_everyone()  # every process lists the finished samples at the same moment
        except ImportError:  # pragma: no cover - accelerate is a dependency
            state = None
    todo = [sid for sid in samples if not _done(outdir, sid)]
    skipped = len(samples) - len(todo)
    mine = todo
    if state is not None and state.num_processes > 1:
        with state.split_between_processes(todo) as part:
            mine = list(part)
    main = state is None or state.is_main_process
    it = tqdm(mine, desc=f"dragbench {sampler}", disable=not progress or not main)
    times = {}
    for sid in it:
        s = samples[sid]
        t = time.perf_counter()
        image, info = drag(pipe, s.image, s.sources, s.targets, s.prompt, mask=s.mask, sampler=sampler,
                           config=config)
        info = dict(info)
        info.update(sample_id=sid, source_format=s.format, **(meta or {}))
        if state is not None and state.num_processes > 1:
            info.update(process_index=state.process_index, num_processes=state.num_processes)
        write_outputs(image, outdir / f"{sample_key(sid)}.png", info)
        times[sid] = time.perf_counter() - t
        if log:
            log(f"{sid}: {times[sid]:.1f} s")
    if state is not None and state.num_processes > 1:
        state.wait_for_everyone()
    return {"samples": len(samples), "skipped": skipped, "ran": len(mine), "ran_ids": list(mine), "seconds": times,
            "process_index": 0 if state is None else state.process_index,
            "num_processes": 1 if state is None else state.num_processes}


def evaluate_dragbench(
    root: str | os.PathLike,
    out: str | os.PathLike,
    lpips=None,
    features=None,
    progress: bool = True,
) -> dict:
    """Image Fidelity (1 − LPIPS) and Mean Distance over the dragged results in ``out``; writes ``out/metrics.json``.

    ``lpips(img_a, img_b) -> float`` and ``features(image, prompt) -> (C, H, W)`` are the pluggable metrics of
    :mod:`sdimage.metrics`; either may be None to skip that metric.  Samples without a result are reported missing.
    """
    from tqdm.auto import tqdm

    from .metrics import image_fidelity, mean_distance_sample

    samples = [read_sample(p, sid) for sid, p in find_samples(root)]
    outdir = Path(out)
    per: dict[str, dict] = {}
    missing = []
    dists: list[float] = []
    fids: list[float] = []
    from PIL import Image

    for s in tqdm(samples, desc="evaluate", disable=not progress):
        k = sample_key(s.id)
        res = outdir / f"{k}.png"
        if not res.is_file():
            missing.append(s.id)
            continue
        t = time.perf_counter()
        with Image.open(res) as im:
            edited = im.convert("RGB")
        row: dict[str, Any] = {}
        if lpips is not None:
            row["image_fidelity"] = image_fidelity(s.image, edited, lpips)
            fids.append(row["image_fidelity"])
        if features is not None:
            d = mean_distance_sample(s.image, edited, s.sources, s.targets, s.prompt, features)
            row["distances"] = d
            row["mean_distance"] = float(np.mean(d))
            dists.extend(d)
        row["eval_seconds"] = time.perf_counter() - t
        per[s.id] = row
    summary = {
        "samples": len(samples),
        "evaluated": len(per),
        "missing": missing,
        "image_fidelity": float(np.mean(fids)) if fids else None,
        "mean_distance": float(np.mean(dists)) if dists else None,
        "mean_distance_rule": "pooled over all handle points of all evaluated samples (pixels)",
        "per_sample": per,
    }
    _atomic_bytes(outdir / "metrics.json", json.dumps(summary, indent=2).encode())
    return summary
