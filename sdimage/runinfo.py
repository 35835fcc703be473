"""Run metadata: wall time, peak memory, package versions, and atomic PNG + JSON output."""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cliutil import atomic_path

__all__ = ["RunTimer", "versions", "peak_rss_bytes", "write_outputs", "write_meta_json"]


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("sde-beats-ode", "torch", "diffusers", "transformers", "accelerate", "peft", "numpy", "safetensors", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
    return out


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


@dataclass
class RunTimer:
    """Context manager: ``wall_s`` and ``peak_memory_bytes`` of the enclosed block.

    On CUDA the peak is ``torch.cuda.max_memory_allocated`` (reset on entry: exact for the block); on CPU it is the
    process's peak RSS (a lifetime high-water mark: it includes everything loaded before the block).
    """

    device: str | torch.device = "cpu"
    wall_s: float = 0.0
    peak_memory_bytes: int = 0
    memory_kind: str = ""
    _t0: float = field(default=0.0, repr=False)

    def _cuda(self) -> bool:
        return str(self.device).startswith("cuda") and torch.cuda.is_available()

    def __enter__(self) -> "RunTimer":
        if self._cuda():
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self._cuda():
            torch.cuda.synchronize(self.device)
            self.peak_memory_bytes = int(torch.cuda.max_memory_allocated(self.device))
            self.memory_kind = "cuda_max_memory_allocated"
        else:
            self.peak_memory_bytes = peak_rss_bytes()
            self.memory_kind = "process_peak_rss"
        self.wall_s = time.perf_counter() - self._t0

    def as_dict(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 4), "peak_memory_bytes": self.peak_memory_bytes,
                "peak_memory_kind": self.memory_kind}


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items() if not str(k).startswith("_")}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return _jsonable(v.item())
    if isinstance(v, (torch.dtype, torch.device)):
        return str(v)
    if hasattr(v, "item"):
        try:
            return _jsonable(v.item())
        except Exception:
            pass
    return repr(v)


def json_text(meta: dict) -> str:
    """Strict JSON of ``meta`` (:func:`_jsonable`; a non-finite float becomes ``null``, never a bare ``NaN``)."""
    return json.dumps(_jsonable(meta), indent=2, allow_nan=False) + "\n"


def write_meta_json(path: str | os.PathLike, meta: dict) -> Path:
    """``meta`` as strict JSON at ``path`` (:func:`json_text`: anything not JSON-able is converted, a non-finite
    float becomes ``null``), atomically (:func:`cliutil.atomic_path`).  Same argument order as
    :func:`cliutil.write_json_atomic`, which instead refuses what is not plain JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(meta), encoding="utf-8")
    return Path(path)


def write_outputs(image, out_path: str | os.PathLike, meta: dict) -> tuple[Path, Path]:
    """Write ``OUT.png`` and ``OUT.json`` (same stem) atomically: both are rendered to temp files first and renamed
    only when both are complete (PNG first), so a failure leaves neither (nor a temp file) behind.  A tensor result
    with a NaN / inf is refused (:class:`SdImageError`) instead of being written as a black picture."""
    from .errors import SdImageError
    from .latents import to_pil

    p = Path(out_path)
    if p.suffix.lower() != ".png":
        p = p.with_suffix(p.suffix + ".png") if p.suffix else p.with_suffix(".png")
    j = p.with_suffix(".json")
    if isinstance(image, torch.Tensor) and not bool(torch.isfinite(image).all()):
        raise SdImageError(f"the result is not finite (NaN or inf; float16 overflow?): nothing written to {p}; "
                           "try --dtype float32")
    pil = to_pil(image) if isinstance(image, torch.Tensor) else image
    meta = dict(meta)
    meta.setdefault("output", str(p))
    text = json_text(meta)
    with atomic_path(j) as tmp_json, atomic_path(p) as tmp_png:  # inner (PNG) renamed first
        pil.save(tmp_png, format="PNG")
        tmp_json.write_text(text, encoding="utf-8")
    return p, j
