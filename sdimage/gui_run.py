"""The browser editor's runs (:mod:`sdimage.gui_app`) as plain functions over the package's Python API.

Nothing here edits an image itself: drag calls :func:`sdimage.drag.drag` (LoRA through :mod:`sdimage.lora`, cached
exactly as the CLI caches it), the other tabs call :mod:`sdimage.tasks`.  Each run reads its settings from their
one declaration (:mod:`sdimage.settings`, :func:`sdimage.settings.from_form`), runs one or both samplers with the
same seed and writes the results, the trajectory GIF and one JSON.  ``should_stop()`` is asked before every model
evaluation: a stopped run keeps what it finished (the drag operations done) and says so.  No Gradio import.
"""
from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import SdImageError, Stopped
from .gui_inputs import (_mask_tensor, _open_any, as_mask, as_rgb, fit_size, format_points, points_for_image,  # noqa: F401
                         samplers_of)

__all__ = ["EditOutput", "Workspace", "run_drag", "run_inpaint", "run_translate", "run_diffedit", "metadata_text",
           "preset_note", "drag_preset_fields", "edit_preset_steps", "FAST_TRADE", "Progress"]

Progress = Callable[[str, int, int], None]  # (what, done, total)

# ----------------------------------------------------------------------------------------------------- outputs
@dataclass
class EditOutput:
    """What a handler returns: one image per sampler run, the JSON metadata (dict and file), every file to
    download (the JSON first), the trajectory GIF (drag) and notes (warnings) for the page."""

    images: dict[str, Any]
    metadata: dict
    json_path: str
    files: list[str]
    folder: str
    gif: str | None = None
    notes: list[str] = field(default_factory=list)
    extra_images: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False  # the user stopped the run: what it finished is kept


@dataclass
class Workspace:
    """What every handler needs besides its inputs: the pipeline (loaded once), the model name, a folder for the
    outputs, the LoRA cache folder (None = the CLI's default) and a lock so one edit runs at a time."""

    pipe: Any
    model: str = ""
    out_dir: str | None = None
    lora_cache: str | None = None
    max_side: int | None = 512
    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: Any = field(default_factory=lambda: itertools.count(1))  # numbers the run folders
    lock_runs: threading.Lock = field(default_factory=threading.Lock)
    stops: dict = field(default_factory=dict)  # the running job's stop flag per browser session (Stop button)

    def factor(self) -> int:
        """What image sides must be divisible by (the VAE factor, × the patch or 2×2 packing of a transformer)."""
        from .latents import image_multiple

        return image_multiple(self.pipe)

    def default_guidance(self) -> float:
        """The family's CFG default for inpaint / translate / DiffEdit (the CLI's; the adapter's
        ``default_guidance``)."""
        from .backbones import backbone

        return float(backbone(self.pipe).default_guidance)

    def new_run_dir(self, task: str) -> Path:
        if self.out_dir is None:
            self.out_dir = tempfile.mkdtemp(prefix="sdimage-gui-")
        with self.lock_runs:
            k = next(self.runs)
        d = Path(self.out_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{k:04d}-{task}"
        d.mkdir(parents=True, exist_ok=False)
        return d


def _image_tensor(image):
    from .metrics import to_tensor

    return to_tensor(image).float()


def _write_json(meta: dict, path: Path) -> Path:
    from .runinfo import write_meta_json

    return write_meta_json(path, meta)


def _warning_notes(caught) -> list[str]:
    """The package's own notes to the user (:class:`sdimage.latents.SdImageWarning`), once each."""
    from .latents import SdImageWarning

    out = []
    for w in caught:
        if not issubclass(w.category, SdImageWarning):
            continue
        msg = str(w.message).strip()
        if msg and msg not in out:
            out.append(msg)
    return out


def _check_task_image(image, mask, factor: int, max_side: int | None = None) -> tuple[Any, Any, list[str]]:
    """Tasks (not drag) resize an image down so its longer side is at most ``max_side`` (the server's --max-side,
    whichever way the image came: the page or the API) and its sides are multiples of the VAE factor, as the CLI
    does; a mask goes with it (nearest neighbour)."""
    from PIL import Image

    notes = []
    size = fit_size(*image.size, factor, max_side)
    if size != image.size:
        why = f"longer than --max-side {max_side}" if max_side and max(image.size) > max_side else \
            f"not divisible by {factor}"
        notes.append(f"image {image.size[0]}x{image.size[1]} is {why}; resized to {size[0]}x{size[1]}")
        image = image.resize(size, Image.LANCZOS)
        if mask is not None:
            mask = mask.resize(size, Image.NEAREST)
    return image, mask, notes


def _common_meta(ws: Workspace, task: str, samplers: list[str], image, **inputs) -> dict:
    from .runinfo import versions

    return {"task": task, "source": "python -m sdimage gui", "model": ws.model, "samplers": samplers,
            "image_size": list(image.size), "inputs": inputs, "runs": {}, "versions": versions()}


def _side_by_side_gif(gifs: dict[str, str], out: Path, duration_ms: int = 400) -> str:
    """One GIF with the trajectories next to each other (SDE left, ODE right), for the page."""
    from PIL import Image, ImageSequence

    seqs = []
    for k in ("sde", "ode"):
        if k in gifs:
            with Image.open(gifs[k]) as im:
                seqs.append([f.convert("RGB") for f in ImageSequence.Iterator(im)])
    n = max(len(s) for s in seqs)
    w, h = seqs[0][0].size
    gap = max(2, w // 32)
    frames = []
    for i in range(n):
        canvas = Image.new("RGB", (len(seqs) * w + (len(seqs) - 1) * gap, h), (255, 255, 255))
        for j, s in enumerate(seqs):
            canvas.paste(s[min(i, len(s) - 1)], (j * (w + gap), 0))
        frames.append(canvas)
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return str(out)


# -------------------------------------------------------------------------------------------------------- drag
def _fit_drag_inputs(image, mask, points: str, factor: int, max_side: int):
    """An image longer than ``max_side`` scaled down (:func:`fit_size`), its mask (nearest neighbour) and its points
    (floor(p · new / old), inside the image) with it; returns (image, mask, points, note)."""
    from PIL import Image

    w0, h0 = image.size
    pairs = [(s, t) for s, t in zip(*points_for_image(points, w0, h0))]
    mask = as_mask(mask, (w0, h0))
    w, h = fit_size(w0, h0, factor, max_side)
    sc = lambda p: (min(w - 1, p[0] * w // w0), min(h - 1, p[1] * h // h0))  # noqa: E731
    image = image.resize((w, h), Image.LANCZOS)
    if mask is not None:
        mask = mask.resize((w, h), Image.NEAREST)
    note = f"image {w0}x{h0} is longer than --max-side {max_side}: resized to {w}x{h}, the points with it"
    return image, mask, format_points([(sc(s), sc(t)) for s, t in pairs]), note


def run_drag(
    ws: Workspace,
    image,
    mask,
    points: str,
    prompt: str,
    sampler: str = "sde",
    *,
    steps: int | None = None,
    t0: float | None = None,
    guidance: float | None = None,
    guidance_min: float | None = None,
    step_size: float | None = None,
    r: int | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    use_lora: bool = True,
    lora_steps: int | None = None,
    lora_rank: int | None = None,
    lora_lr: float | None = None,
    lora_scale_min: float | None = None,
    seed: int | None = None,
    preset: str | None = None,
    negative_prompt: str = "",
    on_progress: Progress | None = None,
    on_intermediate: Callable[[str, int, int, Any], None] | None = None,
    solver: str | None = None,
    order: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EditOutput:
    """SDE-Drag and / or ODE-Drag (:func:`sdimage.drag.drag`) of ``image`` moving each handle to its target.

    ``mask``: white = editable (None = the whole image; a mask with no white pixel is an error).  ``points``:
    ``x,y -> x,y`` lines in image pixels.  Parameters left None take the :class:`sdimage.drag.DragConfig` defaults
    (the official DragBench script), or the ``preset``'s (fast: its steps, step size, LoRA steps and solver;
    ``solver`` / ``order`` None: the preset's).  ``use_lora=False`` or ``lora_steps=0``: no LoRA.  With ``sampler="both"``
    SDE runs first, then ODE with the same seed and the same (cached) LoRA.  ``on_progress(what, done, total)`` is
    called during LoRA training and after every drag operation, ``on_intermediate(sampler, i, m, image)`` with the
    image after each operation.  Writes ``<sampler>.png``, ``<sampler>/drag_*.png``, ``<sampler>/trajectory.gif``
    and ``drag.json`` to a new folder under ``ws.out_dir``.
    """
    from .drag import DragConfig, drag
    from .latents import save_image

    samplers = samplers_of(sampler)
    image = as_rgb(image)
    w, h = image.size
    factor = ws.factor()
    scaled_note = None
    if ws.max_side and max(w, h) > ws.max_side:  # an API upload (the page scales on upload): points go with it
        image, mask, points, scaled_note = _fit_drag_inputs(image, mask, points, factor, ws.max_side)
        w, h = image.size
    if w % factor or h % factor:
        raise SdImageError(f"the image is {w}x{h}, not divisible by {factor} (the model's latent factor): resize it to "
                           f"{w - w % factor}x{h - h % factor} first (the page does this on upload)")
    sources, targets = points_for_image(points, w, h)
    mask = as_mask(mask, (w, h))
    if mask is not None and not (np.asarray(mask) >= 128).any():
        raise SdImageError("the mask is empty: paint the region that may change (or clear the mask to make the "
                           "whole image editable)")
    if not isinstance(prompt, str):
        raise SdImageError("the prompt must be text")
    from .settings import from_form

    # what is not given takes the preset's default (fast: its steps, step size, LoRA steps and solver)
    config = from_form(DragConfig, dict(
        steps=steps, t0=t0, guidance_min=guidance_min, guidance_max=guidance, step_size=step_size, r=r, alpha=alpha,
        beta=beta, lora_steps=lora_steps if use_lora else 0, lora_rank=lora_rank, lora_lr=lora_lr,
        lora_scale_min=lora_scale_min, seed=seed, preset=preset, solver=solver, order=order),
        lora_cache_dir=ws.lora_cache)
    from .drag import check_drag_ops
    from .drag_inputs import points_to_latent
    from .latents import vae_factor

    f = vae_factor(ws.pipe)
    check_drag_ops(points_to_latent(sources, f), points_to_latent(targets, f), config)

    run_dir = ws.new_run_dir("drag")
    if mask is not None:
        save_image(mask.convert("RGB"), run_dir / "mask.png")
    meta = _common_meta(ws, "drag", samplers, image, prompt=prompt, negative_prompt=negative_prompt,
                        points=format_points(list(zip(sources, targets))),
                        sources=[list(p) for p in sources], targets=[list(p) for p in targets],
                        mask=None if mask is None else "mask.png",
                        editable_fraction=1.0 if mask is None else float((np.asarray(mask) >= 128).mean()),
                        config=config.to_dict())
    notes: list[str] = []
    if mask is None:
        notes.append("no mask painted: the whole image is editable")
    if scaled_note:
        notes.append(scaled_note)
    done_frames: dict[str, list] = {}
    gifs: dict[str, str] = {}

    def call(name: str):
        label = name.upper()
        done_frames[name] = []

        def lora_step(k: int, n: int) -> None:
            if on_progress is not None:
                on_progress(f"LoRA training ({label} run)", k, n)

        def op_done(i: int, m: int, frame) -> None:
            done_frames[name].append((i, m, frame))
            if on_progress is not None:
                on_progress(f"{label}-Drag operation", i + 1, m)
            if on_intermediate is not None:
                on_intermediate(name, i, m, frame)

        if on_progress is not None:
            on_progress(f"{label}-Drag: encoding" + (" and LoRA" if config.lora_steps else ""), 0, 1)
        return drag(ws.pipe, image, sources, targets, prompt, mask=mask, sampler=name, config=config,
                    save_intermediates=run_dir / name, negative_prompt=negative_prompt, on_op=op_done,
                    on_lora_step=lora_step, should_stop=should_stop)

    def on_result(name: str, res) -> list[str]:
        gifs[name] = str(run_dir / f"{name}_trajectory.gif")  # a copy with a telling name, for the download
        shutil.copyfile(res.info["intermediates"]["gif"], gifs[name])
        return []

    def on_stop(name: str, images: dict, files: list) -> str:
        return _keep_partial_drag(name, done_frames.get(name, []), run_dir, images, files)

    out = _run_task(ws, "drag", samplers, image, meta, call, None, notes, run_dir=run_dir, on_result=on_result,
                    on_stop=on_stop)
    gif = (gifs[next(iter(gifs))] if len(gifs) == 1 else
           _side_by_side_gif(gifs, run_dir / "trajectory_sde_ode.gif") if gifs else None)
    out.metadata["trajectory_gifs"] = {k: Path(v).name for k, v in gifs.items()}
    _write_json(out.metadata, Path(out.json_path))
    out.files += list(gifs.values()) + ([gif] if gif is not None and gif not in gifs.values() else [])
    out.gif = gif
    return out


def _keep_partial_drag(name: str, frames: list, run_dir: Path, images: dict, files: list) -> str:
    """A stopped drag keeps the operations it finished: ``<sampler>_op<i>.png`` each, the last one as the result;
    returns the note saying where it stopped."""
    from .latents import save_image

    label = name.upper()
    if not frames:
        return f"stopped: {label}-Drag was stopped before its first drag operation finished (nothing to keep)"
    for i, m, frame in frames:
        files.append(str(save_image(frame, run_dir / f"{name}_op{i + 1:03d}.png")))
    i, m, frame = frames[-1]
    images[name] = frame
    files.append(str(save_image(frame, run_dir / f"{name}.png")))
    return f"stopped: {label}-Drag was stopped after {i + 1} of {m} drag operations (kept: {name}_op*.png)"


# ------------------------------------------------------------------------------------------------------- tasks
def _run_task(ws: Workspace, task: str, samplers: list[str], image, meta: dict, call, on_progress, notes,
              run_dir: Path | None = None, on_result=None, on_stop=None) -> EditOutput:
    """The one runner of every tab: ``call(sampler)`` (a :class:`sdimage.results.TaskResult`) for each sampler,
    under the workspace lock, with the package's warnings as notes; a :class:`Stopped` run keeps what finished
    (``on_stop(sampler, images, files)`` may keep more and returns the note); ``on_result(sampler, result)`` adds
    files.  Writes ``<sampler>.png`` and ``<task>.json``."""
    from .latents import save_image

    run_dir = ws.new_run_dir(task) if run_dir is None else run_dir
    save_image(image, run_dir / "input.png")
    images: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    files: list[str] = []
    with ws.lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k, name in enumerate(samplers):
            if on_progress is not None:
                on_progress(f"{task}: {name.upper()}", k, len(samplers))
            try:
                res = call(name)
            except Stopped:
                if on_stop is not None:
                    note = on_stop(name, images, files)
                else:
                    done = ", ".join(k.upper() for k in images) or "nothing"
                    note = f"stopped during the {name.upper()} run (kept: {done})"
                notes = notes + [note]
                meta["stopped"] = note
                break
            res.info["model"] = ws.model
            images[name] = res.pil()
            files.append(str(save_image(images[name], run_dir / f"{name}.png")))
            meta["runs"][name] = res.info
            if on_result is not None:
                files += on_result(name, res)
            if task == "diffedit" and res.mask is not None:
                from PIL import Image

                m = res.mask[0, 0].float().cpu().numpy() > 0.5
                extra[name] = Image.fromarray(m.astype(np.uint8) * 255, "L").resize(image.size, Image.NEAREST)
                files.append(str(save_image(extra[name].convert("RGB"), run_dir / f"{name}_mask.png")))
        if on_progress is not None:
            on_progress(f"{task}: done", len(samplers), len(samplers))
    notes = notes + _warning_notes(caught)
    meta["outputs"] = {k: f"{k}.png" for k in images}
    meta["notes"] = notes
    js = _write_json(meta, run_dir / f"{task}.json")
    return EditOutput(images, meta, str(js), [str(js)] + files, str(run_dir), notes=notes, extra_images=extra,
                      stopped="stopped" in meta)


def run_inpaint(
    ws: Workspace, image, mask, prompt: str = "", sampler: str = "both", *, negative_prompt: str = "",
    steps: int = 50, guidance: float | None = None, solver: str = "ddim", order: int = 2, strength: float = 1.0,
    seed: int = 0, on_progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
) -> EditOutput:
    """Inpaint the white region of ``mask`` (:func:`sdimage.tasks.inpaint`) with SDE, ODE or both (same seed)."""
    from . import tasks

    from .settings import InpaintSettings, from_form

    samplers = samplers_of(sampler)
    image = as_rgb(image)
    mask = as_mask(mask, image.size)
    if mask is None or not (np.asarray(mask) >= 128).any():
        raise SdImageError("the mask is empty: paint the region to inpaint")
    st = from_form(InpaintSettings, dict(steps=steps, guidance=guidance, solver=solver, order=order,
                                         strength=strength, seed=seed))
    guidance = ws.default_guidance() if st.guidance is None else st.guidance
    steps, seed, solver, order, strength = st.steps, st.seed, st.solver, st.order, st.strength
    image, mask, notes = _check_task_image(image, mask, ws.factor(), ws.max_side)
    x, m = _image_tensor(image), _mask_tensor(mask)
    meta = _common_meta(ws, "inpaint", samplers, image, prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                        guidance=guidance, solver=solver, order=int(order), strength=strength, seed=seed,
                        mask_ratio=float(m.mean()))

    def call(name):
        return tasks.inpaint(ws.pipe, x, m, prompt, sampler=name, solver=solver, order=int(order), steps=steps,
                             guidance=float(guidance), negative_prompt=negative_prompt, seed=seed, strength=strength,
                             progress=True, should_stop=should_stop)

    return _run_task(ws, "inpaint", samplers, image, meta, call, on_progress, notes)


def run_translate(
    ws: Workspace, image, prompt: str, sampler: str = "both", *, t0: float = 0.5, negative_prompt: str = "",
    steps: int = 50, guidance: float | None = None, solver: str = "ddim", order: int = 2, seed: int = 0,
    on_progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
) -> EditOutput:
    """SDEdit translation towards ``prompt`` (:func:`sdimage.tasks.translate`) with SDE, ODE or both (same seed)."""
    from . import tasks

    from .settings import TranslateSettings, from_form

    samplers = samplers_of(sampler)
    image = as_rgb(image)
    if not str(prompt or "").strip():
        raise SdImageError("no prompt: describe the image you want")
    st = from_form(TranslateSettings, dict(steps=steps, guidance=guidance, solver=solver, order=order, t0=t0,
                                           seed=seed))
    guidance = ws.default_guidance() if st.guidance is None else st.guidance
    steps, seed, solver, order, t0 = st.steps, st.seed, st.solver, st.order, st.t0
    image, _, notes = _check_task_image(image, None, ws.factor(), ws.max_side)
    x = _image_tensor(image)
    meta = _common_meta(ws, "translate", samplers, image, prompt=prompt, negative_prompt=negative_prompt, t0=t0,
                        steps=steps, guidance=guidance, solver=solver, order=int(order), seed=seed)

    def call(name):
        return tasks.translate(ws.pipe, x, prompt, t0=t0, sampler=name, solver=solver, order=int(order), steps=steps,
                               guidance=float(guidance), negative_prompt=negative_prompt, seed=seed, progress=True,
                               should_stop=should_stop)

    return _run_task(ws, "translate", samplers, image, meta, call, on_progress, notes)


def run_diffedit(
    ws: Workspace, image, source_prompt: str, target_prompt: str, sampler: str = "both", *, mask=None,
    t0: float = 0.7, steps: int | None = None, guidance: float | None = None, seed: int = 0, mask_draws: int = 10,
    mask_t0: float = 0.5, preset: str = "official", on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EditOutput:
    """DiffEdit (:func:`sdimage.tasks.diffedit`) from ``source_prompt`` to ``target_prompt`` with SDE, ODE or both
    (same seed); ``mask`` (white = edit) replaces the automatic mask, None = automatic.  The preset sets the solver
    and, when ``steps`` is None, the steps (:data:`diffsamplers.presets.PRESET_DEFAULTS`: official 50 with DDIM)."""
    from . import tasks
    from .settings import DiffEditSettings, from_form

    samplers = samplers_of(sampler)
    image = as_rgb(image)
    if not str(source_prompt or "").strip() or not str(target_prompt or "").strip():
        raise SdImageError("DiffEdit needs a source prompt (what the image shows) and a target prompt (what it "
                           "should show)")
    st = from_form(DiffEditSettings, dict(steps=steps, guidance=guidance, seed=seed, t0=t0, mask_draws=mask_draws,
                                          mask_t0=mask_t0, preset=preset))
    if "sde" in samplers:
        st.validate(sampler="sde")
    guidance = ws.default_guidance() if st.guidance is None else st.guidance
    steps, seed, t0, mask_draws, mask_t0, preset = st.steps, st.seed, st.t0, st.mask_draws, st.mask_t0, st.preset
    mask = as_mask(mask, image.size)
    if mask is not None and not (np.asarray(mask) >= 128).any():  # as the CLI: a given mask must mark something
        raise SdImageError("the given mask is empty (no white pixel): nothing to edit (send no mask for DiffEdit's "
                           "automatic mask)")
    image, mask, notes = _check_task_image(image, mask, ws.factor(), ws.max_side)
    x = _image_tensor(image)
    m = None if mask is None else _mask_tensor(mask)
    meta = _common_meta(ws, "diffedit", samplers, image, source_prompt=source_prompt, target_prompt=target_prompt,
                        t0=t0, steps=steps, guidance=guidance, seed=seed,
                        mask="given" if m is not None else "automatic",
                        mask_draws=mask_draws, mask_t0=mask_t0, preset=preset, solver=st.solver, order=st.order)

    def call(name):
        return tasks.diffedit(ws.pipe, x, source_prompt, target_prompt, t0=t0, sampler=name, steps=steps,
                              guidance=float(guidance), seed=seed, mask=m, mask_draws=int(mask_draws),
                              mask_t0=mask_t0, preset=preset, solver=st.solver, order=st.order, progress=True,
                              should_stop=should_stop)

    return _run_task(ws, "diffedit", samplers, image, meta, call, on_progress, notes)


def metadata_text(meta: dict) -> str:
    """The JSON metadata as text (for a code box on the page): what ``<task>.json`` holds
    (:func:`sdimage.runinfo.json_text`)."""
    from .runinfo import json_text

    return json_text(meta)


# ------------------------------------------------------------------------------------------------------ presets
def preset_note(preset: str) -> str:
    """One paragraph for the page: what the chosen preset runs and, for ``fast``, what it trades (docs/fast.md)."""
    if preset == "official":
        return ("**official**: the paper's code — DDIM / Cycle-SDE, 200 steps (120 per pass at t0 = 0.6), one "
                "operation per 2 latent px, 100 LoRA steps: 240 model calls per operation.")
    if preset == "clean":
        return "**clean**: the official settings with a centred window and exact ramps and grid (docs/drag.md)."
    from diffsamplers.presets import describe_preset

    return f"**fast**: {describe_preset('fast')}. {FAST_TRADE}"


FAST_TRADE = ("It trades: 10-100x fewer model calls than official (one operation, no LoRA). On the shapes bed, where "
              "the right answer is known, SDE-Drag's position error got better and its success held, while ODE-Drag "
              "lost 2 of 16 successes on two-object scenes with a learned model (within noise; docs/fast.md). Without "
              "a LoRA a real photo's identity is kept less well: switch it on for that.")


def drag_preset_fields(preset: str):
    """(steps, step size, use LoRA, LoRA steps, note) the drag tab shows for ``preset`` (its defaults)."""
    from .drag import DragConfig

    from diffsamplers import PRESETS

    d = DragConfig(preset=preset if preset in PRESETS else "official")
    step = d.step_size if d.step_size != float("inf") else 1000.0  # one operation: larger than any drag
    return d.steps, step, d.lora_steps > 0, d.lora_steps or DragConfig().lora_steps, preset_note(preset)


def edit_preset_steps(preset: str) -> int:
    """The DiffEdit tab's steps for ``preset`` (its default)."""
    from diffsamplers.presets import preset_defaults

    from diffsamplers import PRESETS

    return preset_defaults(preset if preset in PRESETS else "official").edit_steps
