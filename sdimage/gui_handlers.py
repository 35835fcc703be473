"""The browser editor's handlers (:mod:`sdimage.gui`) as plain functions over the package's Python API.

Nothing here edits an image itself: drag calls :func:`sdimage.drag.drag` (LoRA through :mod:`sdimage.lora`, cached
exactly as the CLI caches it), the other tabs call :mod:`sdimage.tasks`.  This module only checks the inputs
(one-line :class:`SdImageError` messages the page shows), turns the editor's values into an image, a mask and
points, runs one or both samplers with the same seed and writes the results, the trajectory GIF and one JSON.
No Gradio import: the tests call these functions directly.

Points are (x, y) image pixels, written one pair per line as ``x,y -> x,y`` (handle, then target); a line with
only a handle (``x,y ->``) is a handle still waiting for its target.
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import SdImageError

__all__ = [
    "SAMPLER_CHOICES", "samplers_of", "as_rgb", "as_mask", "fit_size", "editor_to_inputs", "parse_points",
    "format_points", "add_point", "undo_point", "points_for_image", "view_scale", "draw_points", "EditOutput",
    "Workspace",
    "run_drag", "run_inpaint", "run_translate", "run_diffedit",
]

SAMPLER_CHOICES = ("sde", "ode", "both")
Progress = Callable[[str, int, int], None]  # (what, done, total)

_counter = itertools.count(1)
_counter_lock = threading.Lock()


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
    pairs: list = []
    pending = None
    for n, line in enumerate(str(text or "").replace(";", "\n").splitlines(), 1):
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
        with _counter_lock:
            k = next(_counter)
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
    save_image(image, run_dir / "input.png")
    if mask is not None:
        save_image(mask.convert("RGB"), run_dir / "mask.png")
    meta = _common_meta(ws, "drag", samplers, image, prompt=prompt, negative_prompt=negative_prompt,
                        points=format_points(list(zip(sources, targets))),
                        sources=[list(p) for p in sources], targets=[list(p) for p in targets],
                        mask=None if mask is None else "mask.png",
                        editable_fraction=1.0 if mask is None else float((np.asarray(mask) >= 128).mean()),
                        config=config.to_dict())
    images: dict[str, Any] = {}
    gifs: dict[str, str] = {}
    files: list[str] = []
    notes: list[str] = []
    if mask is None:
        notes.append("no mask painted: the whole image is editable")
    if scaled_note:
        notes.append(scaled_note)
    with ws.lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in samplers:
            label = name.upper()

            def lora_step(k: int, n: int, label=label) -> None:
                if on_progress is not None:
                    on_progress(f"LoRA training ({label} run)", k, n)

            def op_done(i: int, m: int, frame, name=name, label=label) -> None:
                if on_progress is not None:
                    on_progress(f"{label}-Drag operation", i + 1, m)
                if on_intermediate is not None:
                    on_intermediate(name, i, m, frame)

            if on_progress is not None:
                on_progress(f"{label}-Drag: encoding" + (" and LoRA" if config.lora_steps else ""), 0, 1)
            out, info = drag(ws.pipe, image, sources, targets, prompt, mask=mask, sampler=name, config=config,
                             save_intermediates=run_dir / name, negative_prompt=negative_prompt,
                             on_op=op_done, on_lora_step=lora_step)
            info["model"] = ws.model
            images[name] = out
            files.append(str(save_image(out, run_dir / f"{name}.png")))
            gifs[name] = str(run_dir / f"{name}_trajectory.gif")  # a copy with a telling name, for the download
            shutil.copyfile(info["intermediates"]["gif"], gifs[name])
            meta["runs"][name] = info
    notes += _warning_notes(caught)
    gif = gifs[samplers[0]] if len(samplers) == 1 else _side_by_side_gif(gifs, run_dir / "trajectory_sde_ode.gif")
    meta["outputs"] = {k: f"{k}.png" for k in images}
    meta["trajectory_gifs"] = {k: Path(v).name for k, v in gifs.items()}
    meta["notes"] = notes
    js = _write_json(meta, run_dir / "drag.json")
    files = [str(js)] + files + list(gifs.values()) + ([gif] if gif not in gifs.values() else [])
    return EditOutput(images, meta, str(js), files, str(run_dir), gif=gif, notes=notes)


# ------------------------------------------------------------------------------------------------------- tasks
def _run_task(ws: Workspace, task: str, samplers: list[str], image, meta: dict, call, on_progress, notes) -> EditOutput:
    from .latents import save_image, to_pil

    run_dir = ws.new_run_dir(task)
    save_image(image, run_dir / "input.png")
    images: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    files: list[str] = []
    with ws.lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k, name in enumerate(samplers):
            if on_progress is not None:
                on_progress(f"{task}: {name.upper()}", k, len(samplers))
            res = call(name)
            res.info["model"] = ws.model
            images[name] = to_pil(res.image)
            files.append(str(save_image(images[name], run_dir / f"{name}.png")))
            meta["runs"][name] = res.info
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
    return EditOutput(images, meta, str(js), [str(js)] + files, str(run_dir), notes=notes, extra_images=extra)


def run_inpaint(
    ws: Workspace, image, mask, prompt: str = "", sampler: str = "both", *, negative_prompt: str = "",
    steps: int = 50, guidance: float | None = None, solver: str = "ddim", order: int = 2, strength: float = 1.0,
    seed: int = 0, on_progress: Progress | None = None,
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
                             progress=True)

    return _run_task(ws, "inpaint", samplers, image, meta, call, on_progress, notes)


def run_translate(
    ws: Workspace, image, prompt: str, sampler: str = "both", *, t0: float = 0.5, negative_prompt: str = "",
    steps: int = 50, guidance: float | None = None, solver: str = "ddim", order: int = 2, seed: int = 0,
    on_progress: Progress | None = None,
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
                               guidance=float(guidance), negative_prompt=negative_prompt, seed=seed, progress=True)

    return _run_task(ws, "translate", samplers, image, meta, call, on_progress, notes)


def run_diffedit(
    ws: Workspace, image, source_prompt: str, target_prompt: str, sampler: str = "both", *, mask=None,
    t0: float = 0.7, steps: int | None = None, guidance: float | None = None, seed: int = 0, mask_draws: int = 10,
    mask_t0: float = 0.5, preset: str = "official", on_progress: Progress | None = None,
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
                              mask_t0=mask_t0, preset=preset, solver=st.solver, order=st.order, progress=True)

    return _run_task(ws, "diffedit", samplers, image, meta, call, on_progress, notes)


def metadata_text(meta: dict) -> str:
    """The JSON metadata as text (for a code box on the page)."""
    from .runinfo import _jsonable

    return json.dumps(_jsonable(meta), indent=2)


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
