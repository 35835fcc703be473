"""Atomic output helpers and run metadata (JSON reports, PNG figures)."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cliutil import BadInput, atomic_path, quiet_third_party_logs, run_cli, write_json_atomic

__all__ = ["to_jsonable", "write_json", "save_torch", "save_figure", "run_meta", "load_config_file", "merge_config",
           "run_command"]


def to_jsonable(v: Any) -> Any:
    """numpy / dataclass / path values to plain JSON (non-finite floats become null)."""
    if is_dataclass(v) and not isinstance(v, type):
        return to_jsonable(asdict(v))
    if hasattr(v, "to_dict") and not isinstance(v, dict):
        return to_jsonable(v.to_dict())
    if isinstance(v, dict):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return to_jsonable(v.tolist())
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, Path):
        return str(v)
    return v


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON atomically (:func:`cliutil.write_json_atomic`: temp file, the umask's mode, rename); non-finite
    floats become ``null`` (:func:`to_jsonable`)."""
    return write_json_atomic(path, to_jsonable(obj), indent=1)


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (:func:`cliutil.atomic_path`: temp file, the umask's mode, rename)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def run_command(args) -> int:
    """Run a parsed CLI command ``args.func(args)`` (:func:`cliutil.run_cli`): bad input (:class:`cliutil.BadInput`,
    or a ``ValueError`` / ``FileNotFoundError`` / ``KeyError`` from the library's own checks) becomes one ``error:``
    line and exit code 2; any other failure one line and exit code 1."""
    with quiet_third_party_logs():
        return run_cli(lambda: args.func(args), bad_input=(BadInput, ValueError, FileNotFoundError, KeyError))


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically as PNG; a pyplot-managed figure is closed afterwards (a plain
    :class:`matplotlib.figure.Figure` needs no closing and no backend)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        if getattr(fig.canvas, "manager", None) is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return path


def run_meta(seconds: float | None = None, **extra) -> dict:
    """Versions, platform and wall time for a report."""
    import torch

    meta = {"python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__,
            "platform": platform.platform(), "torch_threads": torch.get_num_threads()}
    if seconds is not None:
        meta["wall_seconds"] = round(seconds, 3)
    meta.update(extra)
    return to_jsonable(meta)


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a JSON config file (an object)."""
    try:
        with open(path) as fh:
            d = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read config {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"config {path} must be a JSON object")
    return d


def merge_config(cfg, overrides: dict):
    """Return a copy of dataclass ``cfg`` with keys from ``overrides`` (nested dataclasses merged recursively)."""
    import copy
    import dataclasses

    out = copy.deepcopy(cfg)
    fields = {f.name for f in dataclasses.fields(out)}
    for k, v in overrides.items():
        if k not in fields:
            raise ValueError(f"unknown config key {k!r} for {type(cfg).__name__} (known: {sorted(fields)})")
        cur = getattr(out, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise ValueError(f"config key {k!r} must be an object (fields of {type(cur).__name__}), got {v!r}")
            setattr(out, k, merge_config(cur, v))
        else:
            setattr(out, k, v)
    return out
