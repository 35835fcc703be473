"""The resumable DragBench runner: result names (:func:`sample_key`), the run's settings and ``manifest.json``, the
checks before resuming into an output folder, and :func:`run_dragbench` (one process or split with accelerate)."""
from __future__ import annotations

import json
import os
import re
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from ..errors import SdImageError
from .formats import find_samples, read_sample

__all__ = [
    "sample_key",
    "key_to_id",
    "run_settings",
    "check_resume",
    "MANIFEST",
    "run_dragbench",
]

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
    from diffsamplers.progress import Progress

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
    times = {}
    # a bar on a terminal; in a log one plain line per sample and a closing line (diffsamplers.progress)
    shown = progress and main
    with (Progress(len(mine), f"dragbench {sampler}", unit="sample", leave=True) if shown else nullcontext()) as bar:
        for k, sid in enumerate(mine, 1):
            s = samples[sid]
            t = time.perf_counter()
            res = drag(pipe, s.image, s.sources, s.targets, s.prompt, mask=s.mask, sampler=sampler, config=config,
                       negative_prompt=negative_prompt)
            image, info = res.image, dict(res.info)
            info.update(sample_id=sid, source_format=s.format, **(meta or {}))
            info["model"] = model
            if multi:
                info.update(process_index=state.process_index, num_processes=state.num_processes)
            write_outputs(image, outdir / f"{sample_key(sid)}.png", info)
            times[sid] = time.perf_counter() - t
            if bar is not None:
                bar.update()
                bar.line(f"dragbench {sampler}: sample {k}/{len(mine)} done ({sid}, {times[sid]:.1f} s)")
            if log:
                log(f"{sid}: {times[sid]:.1f} s")
    if multi:
        state.wait_for_everyone()
    return {"samples": len(samples), "skipped": skipped, "ran": len(mine), "ran_ids": list(mine), "seconds": times,
            "process_index": 0 if state is None else state.process_index,
            "num_processes": 1 if state is None else state.num_processes}
