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
import math
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    "sample_key",
    "key_to_id",
    "run_settings",
    "check_resume",
    "MANIFEST",
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


# ------------------------------------------------------------------------------------------ result names

MANIFEST = "manifest.json"  # the run's settings, written once into the output folder
_RESERVED = ("metrics", "manifest")  # result keys that would clash with metrics.json / manifest.json


def _escape_segment(seg: str) -> str:
    seg = seg.replace("%", "%25")
    n = len(seg)
    return "".join("%5F" if ch == "_" and (i == 0 or i == n - 1 or seg[i - 1] == "_" or seg[i + 1] == "_") else ch
                   for i, ch in enumerate(seg))


def sample_key(sample_id: str) -> str:
    """File name (without suffix) of a sample's result: injective and readable.

    ``/`` becomes ``__`` ('animals/JH_2023' → 'animals__JH_2023'); so that ``__`` can only mean ``/``, a ``%``
    becomes ``%25`` and an underscore that touches another underscore or a segment's end becomes ``%5F``
    ('a__b' → 'a%5F%5Fb', '_x' → '%5Fx').  A key equal to ``metrics`` or ``manifest`` (any case) has its first letter
    escaped ('%6Detrics') so it cannot clash with the folder's own files.  :func:`key_to_id` inverts it.
    """
    key = "__".join(_escape_segment(seg) for seg in sample_id.split("/"))
    if key.casefold() in _RESERVED:
        key = f"%{ord(key[0]):02X}{key[1:]}"
    return key


def key_to_id(key: str) -> str:
    """The sample id of a result name made by :func:`sample_key`."""
    unq = lambda seg: re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), seg)  # noqa: E731
    return "/".join(unq(seg) for seg in key.split("__"))


# ------------------------------------------------------------------------------------------ settings and resume


def _model_id(model) -> str:
    m = str(model or "")
    return os.path.realpath(m) if m and os.path.exists(m) else m


def run_settings(sampler: str, config, model, dtype, negative_prompt: str = "") -> dict:
    """What decides a result: sampler, every :class:`DragConfig` field (not the LoRA cache folder), model (a local
    folder by its real path), dtype and negative prompt.  Recorded in ``manifest.json`` and in every result."""
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    cfg.pop("lora_cache_dir", None)
    return {"sampler": str(sampler), "config": json.loads(json.dumps(cfg)), "model": _model_id(model),
            "dtype": str(dtype).replace("torch.", ""), "negative_prompt": str(negative_prompt or "")}


def _settings_of_result(meta: dict) -> dict | None:
    """The settings of one result JSON (also of results written before manifests existed)."""
    if not isinstance(meta, dict) or "sampler" not in meta or not isinstance(meta.get("config"), dict):
        return None
    return run_settings(meta["sampler"], meta["config"], meta.get("model"), meta.get("dtype", ""),
                        meta.get("negative_prompt", ""))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _result_ok(out: Path, sid: str, settings: dict | None = None) -> bool:
    """A finished result: a readable PNG, its JSON naming this sample and (``settings``) made with these settings.
    A 0-byte or truncated PNG, or a PNG without its JSON, is not finished."""
    from PIL import Image

    k = sample_key(sid)
    png, js = out / f"{k}.png", out / f"{k}.json"
    if not (png.is_file() and js.is_file()) or png.stat().st_size == 0:
        return False
    meta = _read_json(js)
    if not isinstance(meta, dict) or meta.get("sample_id") != sid:
        return False
    if settings is not None and _settings_of_result(meta) != settings:
        return False
    try:
        with Image.open(png) as im:
            im.load()  # decodes every row: catches truncation, not only a bad header
    except Exception:  # noqa: BLE001 - any unreadable picture is an unfinished result
        return False
    return True


def _flat(settings: dict) -> dict:
    out = {k: v for k, v in settings.items() if k != "config"}
    out.update(settings.get("config", {}))
    return out


def _recorded_settings(out: Path, sample_ids) -> tuple[dict | None, str]:
    """(settings, where) already recorded in ``out``: its manifest, or (a folder from before manifests) the first
    result JSON of a sample."""
    man = _read_json(out / MANIFEST)
    if isinstance(man, dict) and isinstance(man.get("settings"), dict):
        return man["settings"], str(out / MANIFEST)
    for sid in sample_ids:
        js = out / f"{sample_key(sid)}.json"
        st = _settings_of_result(_read_json(js)) if js.is_file() else None
        if st is not None:
            return st, str(js)
    return None, ""


def check_resume(out: str | os.PathLike, settings: dict, sample_ids=(), overwrite: bool = False) -> None:
    """Refuse (:class:`SdImageError`) to resume into ``out`` when its results were made with other settings, naming
    each difference; ``overwrite`` lets the run go on (results with other settings are then redone, not trusted)."""
    out = Path(out)
    if overwrite or not out.is_dir():
        return
    recorded, where = _recorded_settings(out, sample_ids)
    if recorded is None or recorded == settings:
        return
    a, b = _flat(recorded), _flat(settings)
    diffs = [f"{k.replace('_', '-')} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
             if a.get(k) != b.get(k)]
    raise SdImageError(f"--out {str(out)!r} holds results made with other settings ({', '.join(diffs)}; see {where}): "
                       "use another --out, or pass --overwrite to redo them with these settings")


def _write_manifest(out: Path, settings: dict) -> None:
    from cliutil import write_json_atomic

    from ..runinfo import versions

    write_json_atomic(out / MANIFEST, {"format": "sdimage.dragbench/1", "settings": settings,
                                       "result_names": "sdimage.dragbench.sample_key (key_to_id inverts it)",
                                       "versions": versions()})


# ------------------------------------------------------------------------------------------ runner


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
    negative_prompt: str = "",
    model: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Drag every sample under ``root`` into ``out/<key>.png`` + ``.json`` (:func:`sample_key`); resumable.

    Samples and their sizes are validated up front.  The settings (:func:`run_settings`; ``model`` defaults to
    ``meta["model"]`` or the pipeline's name) are written to ``out/manifest.json`` once, by the main process; a
    folder holding results of other settings is refused (:func:`check_resume`) unless ``overwrite``.  A sample counts
    as finished only when its PNG is readable and its JSON names it and these settings.  With ``accelerate launch``
    each process takes its share via ``PartialState().split_between_processes``; every sample is dragged with
    ``config.seed`` (its own generator), so results do not depend on the number of processes.  Returns a summary.
    """
    from tqdm.auto import tqdm

    from ..backbones import backbone
    from ..drag import DragConfig, drag
    from ..latents import image_multiple
    from ..runinfo import write_outputs

    config = (config or DragConfig()).validate()
    found = find_samples(root)
    samples = {sid: read_sample(p, sid) for sid, p in found}  # validate everything before any work
    factor = image_multiple(pipe)
    for sid, s in samples.items():
        if s.size[0] % factor or s.size[1] % factor:
            raise SdImageError(f"sample {sid}: image is {s.size[0]}x{s.size[1]}, not divisible by the backbone's latent factor "
                               f"{factor} (DragBench images are used as they are; resize the benchmark)")
    if model is None:
        model = (meta or {}).get("model") or getattr(pipe, "name_or_path", "") or ""
    settings = run_settings(sampler, config, model, backbone(pipe).dtype, negative_prompt)
    outdir = Path(out)
    check_resume(outdir, settings, list(samples), overwrite)  # every process, before anything is written
    state = None
    if distributed:
        try:
            from accelerate import PartialState

            state = PartialState()
        except ImportError:  # pragma: no cover - accelerate is a dependency
            state = None
    multi = state is not None and state.num_processes > 1
    main = state is None or state.is_main_process
    if multi:
        state.wait_for_everyone()  # every process has checked the folder before the manifest changes
    if main:
        outdir.mkdir(parents=True, exist_ok=True)
        _write_manifest(outdir, settings)
    if multi:
        state.wait_for_everyone()  # every process lists the finished samples at the same moment
    todo = [sid for sid in samples if not _result_ok(outdir, sid, settings)]
    skipped = len(samples) - len(todo)
    mine = todo
    if multi:
        with state.split_between_processes(todo) as part:
            mine = list(part)
    it = tqdm(mine, desc=f"dragbench {sampler}", disable=not progress or not main)
    times = {}
    for sid in it:
        s = samples[sid]
        t = time.perf_counter()
        image, info = drag(pipe, s.image, s.sources, s.targets, s.prompt, mask=s.mask, sampler=sampler,
                           config=config, negative_prompt=negative_prompt)
        info = dict(info)
        info.update(sample_id=sid, source_format=s.format, **(meta or {}))
        info["model"] = model
        if multi:
            info.update(process_index=state.process_index, num_processes=state.num_processes)
        write_outputs(image, outdir / f"{sample_key(sid)}.png", info)
        times[sid] = time.perf_counter() - t
        if log:
            log(f"{sid}: {times[sid]:.1f} s")
    if multi:
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

    from ..metrics import image_fidelity, mean_distance_sample

    samples = [read_sample(p, sid) for sid, p in find_samples(root)]
    outdir = Path(out)
    per: dict[str, dict] = {}
    missing = []
    dists: list[float] = []
    fids: list[float] = []
    from PIL import Image

    for s in tqdm(samples, desc="evaluate", disable=not progress):
        res = outdir / f"{sample_key(s.id)}.png"
        if not _result_ok(outdir, s.id):  # a 0-byte / unreadable PNG or one without its JSON is missing
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
