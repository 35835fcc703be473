"""Evaluating a DragBench run: Image Fidelity (1 - LPIPS) and Mean Distance over the results in an output folder."""
from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from .formats import _atomic_bytes, find_samples, read_sample
from .runner import _result_ok, sample_key

__all__ = ["evaluate_dragbench"]


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
    from diffsamplers.progress import Progress, progress_steps

    from ..metrics import image_fidelity, mean_distance_sample

    samples = [read_sample(p, sid) for sid, p in find_samples(root)]
    outdir = Path(out)
    per: dict[str, dict] = {}
    missing = []
    dists: list[float] = []
    fids: list[float] = []
    from PIL import Image

    # a bar on a terminal; in a log one closing line (diffsamplers.progress)
    with (Progress(len(samples), "evaluate", unit="sample", leave=True) if progress else nullcontext()) as bar:
        for i in progress_steps(len(samples), bar, "evaluate"):
            s = samples[i]
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
