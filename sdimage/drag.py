"""SDE-Drag and its ODE baseline (Nie et al., ICLR 2024, Sec. 5 / App. C) on a Stable Diffusion pipeline.

This module loads, encodes, trains the LoRA, builds the ε-model, the grid and the schedules, and calls the one drag
loop, :func:`diffsamplers.recipes.drag` (m operations, each encode → copy-and-paste at t0 → decode with the mask
reset).  ``DragConfig.preset`` chooses the rules, line by line (details in :mod:`diffsamplers.presets`):

=====================  =========================================  ==============================================
                       ``"official"`` (default; ML-GSAI/SDE-Drag   ``"clean"``
                       ``sdedrag_dragbench.py``)
=====================  =========================================  ==============================================
paste window           [p − r, p + r): (2r)², not centred          [p − r, p + r]: (2r + 1)², centred
point path             float32 truncation (official)              exact integers
CFG / LoRA-scale ramp  j/(K−1), j = K − k (one ramp step above    exactly ``guidance`` / ``lora_scale_min`` at t0,
                       the end values at both ends)                ``guidance_min`` / 1 at the last step
time grid              DPM-Solver++ timesteps of the pipeline's   the last int(t0·S) DDIM steps, ending at the
                       scheduler config; τ → τ − T/S steps from    scheduler's final ᾱ
                       timestep S−K−1 (``official_grids``)
mask → latent          bicubic resize, > 128                      area average > 0.5
=====================  =========================================  ==============================================

``"fast"`` keeps every rule of ``"clean"`` and changes only defaults (:data:`diffsamplers.presets.PRESET_DEFAULTS`;
a field or flag the user gives wins), chosen by the study in docs/fast.md:

=====================  =========================================  ==============================================
default                ``"official"`` / ``"clean"``               ``"fast"``
=====================  =========================================  ==============================================
solver                 DDIM: Cycle-SDE with η = 1 (SDE), DDIM     the preset's ``solver`` (the study chose DDIM;
                       inversion + DDIM (ODE)                     ``--solver dpmpp``: SDE-DPM-Solver++ 2M with
                                                                  exact record and replay, 2M inversion + 2M)
steps                  200 (K = 120 per pass at t0 = 0.6)         the preset's ``drag_steps``
step_size              2 latent px per operation                  the preset's ``drag_step_size`` (inf: the
                                                                  whole drag as one paste, as RegionDrag)
lora_steps             100                                        the preset's ``lora_steps``
CFG                    both branches on every step (official      the unconditional branch is skipped on the
                       ramp never reaches 1)                      last step, where the clean ramp is exactly 1
=====================  =========================================  ==============================================
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from diffsamplers import EditResult, GaussianNoise, Grid, cosine_ramp, linear_ramp, num_drag_ops, recipes
from diffsamplers.presets import method_label

from .drag_inputs import DRAG_MASK_RULE, Point, as_image_tensor, as_mask, points_to_latent, validate_points
from .errors import SdImageError
from .results import TaskResult
from .settings import CONFIG_FLAGS, MAX_DRAG_OPS, DragConfig

__all__ = ["DragConfig", "CONFIG_FLAGS", "official_nfe", "check_drag_ops", "drag_latents", "drag", "drag_grids", "drag_schedules"]


def official_nfe(config: DragConfig, m: int = 1, sampler: str = "sde") -> dict[str, int]:
    """UNet work of the official SDE-Drag code for m drag operations (derived from its code, not run).

    K = int(t0 · steps).  SDE: the forward chain is pure noise (no UNet); each of the K backward steps makes one
    UNet call on a batch of 4 rows ([uncond, cond] × [current, recorded]) because its CFG ramp stays > 1 at every
    step: per operation K calls = 2K CFG ε-evaluations = 4K rows.  ODE (the paper's ODE-Drag; the repository's
    ``forward_ode`` helper): K DDIM-inversion steps + K DDIM steps, one CFG-batched call (2 rows) each: 2K calls =
    2K ε-evaluations = 4K rows.  Plus ``lora_steps`` training steps (batch 1, forward + backward) per image.
    """
    k = int(config.t0 * config.steps)
    calls = k if sampler == "sde" else 2 * k
    return {"unet_calls": m * calls, "eps_evals": 2 * m * k, "unet_rows": 4 * m * k, "lora_train_steps": config.lora_steps}


def _official_defaults_nfe(config: DragConfig, sources, targets, sampler: str, nfe: int) -> dict[str, Any]:
    """ε-evaluations the official defaults (200 steps, step 2, 100 LoRA steps) spend on the same drag, and the
    ratio to this run's: what a preset saves."""
    ref = DragConfig(t0=config.t0)
    m = num_drag_ops(sources, targets, float(ref.step_size), "official")  # type: ignore[arg-type]
    off = official_nfe(ref, m, sampler)
    return {"num_drag_ops": m, "eps_evals": off["eps_evals"], "lora_train_steps": off["lora_train_steps"],
            "ratio": off["eps_evals"] / max(nfe, 1)}


def _check_sampler(sampler: str) -> None:
    """The recipes' one check of the ODE/SDE switch (:func:`diffsamplers.check_sampler`), as one line."""
    from diffsamplers import check_sampler

    try:
        check_sampler(sampler)
    except ValueError as err:
        raise SdImageError(str(err)) from None


def check_drag_ops(sources, targets, config: DragConfig) -> int:
    """The number of drag operations of latent-pixel ``sources`` → ``targets`` at ``config.step_size``, refused
    above :data:`sdimage.settings.MAX_DRAG_OPS` (a tiny step size would be unbounded work)."""
    m = num_drag_ops(sources, targets, float(config.step_size), config.preset)
    if m > MAX_DRAG_OPS:
        raise SdImageError(f"the drag needs {m} operations at step size {config.step_size:g} latent px: more than "
                           f"{MAX_DRAG_OPS}; use a larger step size")
    return m


def drag_grids(pipe, config: DragConfig, latent_hw: tuple[int, int] | None = None) -> tuple[Grid, Grid | None]:
    """(backward grid, forward grid or None) of the preset: the official grids over the DPM-Solver++ timesteps, or
    the last int(t0·steps) steps of the DDIM grid (both from the pipeline's scheduler config).  On flow families both
    presets use the flow-matching grid (the official code has no flow version); ``latent_hw`` feeds a
    resolution-dependent shift."""
    from .model import make_grid, make_official_grids

    if config.preset == "official":
        return make_official_grids(pipe, config.steps, config.t0, "dpmsolver", latent_hw=latent_hw)
    return make_grid(pipe, config.steps, config.t0, latent_hw=latent_hw), None


def drag_schedules(config: DragConfig, lora: bool) -> dict[str, Callable[[int, int], float]]:
    """The per-step CFG (linear) and LoRA-scale (cosine) ramps of the preset, passed to the recipe."""
    out = {"guidance": linear_ramp(config.guidance_min, config.guidance_max, config.preset)}
    if lora:
        out["lora_scale"] = cosine_ramp(1.0, config.lora_scale_min, config.preset)
    return out


def drag_latents(
    model: Callable,
    x0: Tensor,
    grid: Grid,
    sources: Sequence[Point],
    targets: Sequence[Point],
    mask: Tensor | None = None,
    sampler: str = "sde",
    config: DragConfig | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
    progress: bool = False,
    forward_grid: Grid | None = None,
    schedules: dict | None = None,
) -> EditResult:
    """:func:`diffsamplers.recipes.drag` on a (B, C, h, w) latent with (x, y) latent-pixel points and a boolean
    editable ``mask``; returns the recipe's :class:`diffsamplers.EditResult` (its ops in (row, col)).  All random draws (forward chains, paste noise) come from one generator seeded with
    ``config.seed``."""
    config = (config or DragConfig()).validate()
    _check_sampler(sampler)
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
    rc = lambda pts: [(int(p[1]), int(p[0])) for p in pts]  # noqa: E731  (x, y) -> (row, col)
    res = recipes.drag(
        model, x0, grid, rc(sources), rc(targets), sampler=sampler, noise=GaussianNoise(generator), mask=mask,
        preset=config.preset, r=config.r, alpha=config.alpha, beta=config.beta, step_size=config.step_size,
        paste=config.paste, variant=config.variant, forward_grid=forward_grid, schedules=schedules, on_op=on_step,
        solver=config.solver, order=config.order, progress=progress,
    )
    return res


def _save_frames(frames: list, directory: Path, op_path: list | None = None, duration_ms: int = 400,
                 meta: dict | None = None) -> dict[str, Any]:
    """``drag_000.png`` (input), ``drag_001.png`` … (after each operation), ``trajectory.gif`` and ``frames.json``
    (each frame's file, operation index and the operation's latent-pixel sources / targets); all atomic."""
    from cliutil import atomic_path, write_json_atomic

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, frame in enumerate(frames):
        with atomic_path(directory / f"drag_{k:03d}.png") as tmp:
            frame.save(tmp, format="PNG")
        paths.append(str(directory / f"drag_{k:03d}.png"))
    gif = directory / "trajectory.gif"
    with atomic_path(gif) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    rows = []
    for k, path in enumerate(paths):
        row: dict[str, Any] = {"file": Path(path).name, "op": k,
                               "what": "input image" if k == 0 else f"after drag operation {k} of {len(paths) - 1}"}
        if k and op_path and k - 1 < len(op_path):
            row.update(latent_sources=op_path[k - 1]["sources"], latent_targets=op_path[k - 1]["targets"])
        rows.append(row)
    index = write_json_atomic(directory / "frames.json", {**(meta or {}), "frames": rows, "gif": gif.name,
                                                          "gif_frame_ms": duration_ms})
    return {"frames": paths, "gif": str(gif), "index": str(index)}


def _stoppable(on_step, should_stop):
    """A LoRA step callback that also raises :class:`sdimage.errors.Stopped` when ``should_stop()`` says so."""
    if should_stop is None:
        return on_step

    def step(k: int, n: int) -> None:
        if should_stop():
            from .errors import Stopped

            raise Stopped("stopped")
        if on_step is not None:
            on_step(k, n)

    return step


def drag(
    pipe,
    image,
    sources: Sequence[Point],
    targets: Sequence[Point],
    prompt: str,
    mask=None,
    sampler: str = "sde",
    config: DragConfig | None = None,
    save_intermediates: str | Path | None = None,
    negative_prompt: str = "",
    progress: bool = False,
    on_op: Callable[[int, int, Any], None] | None = None,
    on_lora_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
):
    """SDE-Drag (``sampler="sde"``) or ODE-Drag (``"ode"``) of ``image``: move each source point to its target.

    ``image``: PIL image, path or (1, 3, H, W) tensor in [−1, 1] (H, W multiples of the VAE factor).  ``sources`` /
    ``targets``: (x, y) image pixels.  ``mask``: H×W, True / white = editable (None = everything); outside it the
    latent is reset to the recorded trajectory after every step.  ``save_intermediates``: a folder receiving the
    decoded image after every drag operation and ``trajectory.gif``.  The pipeline is returned unchanged (the LoRA
    adapter is removed afterwards).  Returns a :class:`sdimage.results.TaskResult` (``info`` JSON-ready; ``frames``
    the pictures saved with ``save_intermediates``), as every task does.

    Callbacks (for a front end such as :mod:`sdimage.gui`): ``on_op(i, m, image)`` after drag operation i (0-based)
    of m with the decoded PIL image; ``on_lora_step(k, n)`` after LoRA training step k (1-based) of n (not called
    when the adapter comes from the cache).  ``should_stop()`` is asked before every model evaluation and LoRA step:
    True raises :class:`sdimage.errors.Stopped` (the pipeline is left clean).
    """
    from .latents import decode, encode, image_multiple, mask_to_latent, to_pil, vae_factor
    from .lora import ensure_lora, remove_lora
    from .backbones import backbone, execution_device
    from .model import encode_prompt, grid_labels, make_eps_model
    from .runinfo import RunTimer, versions

    config = (config or DragConfig()).validate()
    bb = backbone(pipe)
    _check_sampler(sampler)
    if not isinstance(prompt, str):
        raise SdImageError("prompt must be a string")
    img = as_image_tensor(image)
    h, w = img.shape[-2:]
    factor = vae_factor(bb)
    multiple = image_multiple(bb)
    if h % multiple or w % multiple:
        raise SdImageError(f"image is {w}x{h}, not divisible by {multiple} (the backbone's latent factor)")
    sources, targets = validate_points(sources, targets, w, h)
    pmask = as_mask(mask, h, w)
    lat_src, lat_tgt = points_to_latent(sources, factor), points_to_latent(targets, factor)
    if all(a == b for a, b in zip(lat_src, lat_tgt)):
        raise SdImageError(f"every source/target pair falls on the same latent pixel (VAE factor {factor}): nothing to drag")
    check_drag_ops(lat_src, lat_tgt, config)
    grid, fgrid = drag_grids(bb, config, (h // factor, w // factor))  # checks steps / t0 before any work
    lmask = None
    if pmask is not None:
        lmask = mask_to_latent(pmask, (h // factor, w // factor), DRAG_MASK_RULE[config.preset]) > 0.5
        if not bool(lmask.any()):
            from .latents import SdImageWarning

            warnings.warn("the mask has no editable (white) latent pixel: the drag cannot change the image",
                          SdImageWarning, stacklevel=2)

    device = execution_device(bb)
    timer = RunTimer(device)
    info: dict[str, Any] = {
        "task": "drag", "method": method_label("drag", sampler), "sampler": sampler,
        "preset": config.preset, "solver": config.solver, "order": config.order, "recipe": "diffsamplers.recipes.drag",
        "prompt": prompt, "negative_prompt": negative_prompt, "seed": config.seed, "config": config.to_dict(),
        "image_size": [w, h], "sources": [list(p) for p in sources], "targets": [list(p) for p in targets],
        "latent_sources": [list(p) for p in lat_src], "latent_targets": [list(p) for p in lat_tgt],
        "mask": None if pmask is None else {"editable_fraction": float(pmask.float().mean()),
                                             "latent_editable_pixels": int(lmask.sum()),  # type: ignore[union-attr]
                                             "latent_rule": DRAG_MASK_RULE[config.preset]},
        "model": str(getattr(pipe, "name_or_path", "") or getattr(pipe.config, "_name_or_path", "")),
        "dtype": str(bb.dtype), "device": str(device), "arch": bb.arch,
    }
    frames = []
    try:
        with timer:
            t_start = time.perf_counter()
            x0 = encode(bb, img)
            if x0.dtype in (torch.float16, torch.bfloat16):
                x0 = x0.float()
            cond, uncond = encode_prompt(bb, prompt, negative_prompt)
            lora_info = None
            if config.lora_steps > 0:
                lora_info = ensure_lora(
                    bb, x0, img, prompt, cond, steps=config.lora_steps, rank=config.lora_rank, lr=config.lora_lr,
                    seed=config.seed, batch_size=config.lora_batch_size, cache_dir=config.lora_cache_dir,
                    progress=progress, on_step=_stoppable(on_lora_step, should_stop),
                )
            t_lora = time.perf_counter()
            model = make_eps_model(bb, cond, uncond, should_stop=should_stop)
            if save_intermediates is not None:
                frames.append(to_pil(img))
            decode_s = 0.0
            num_ops = num_drag_ops(lat_src, lat_tgt, config.step_size, config.preset)

            def on_step(i: int, x: Tensor) -> None:
                nonlocal decode_s
                if save_intermediates is not None or on_op is not None:
                    t = time.perf_counter()
                    frame = to_pil(decode(bb, x))
                    decode_s += time.perf_counter() - t
                    if save_intermediates is not None:
                        frames.append(frame)
                    if on_op is not None:
                        on_op(i, num_ops, frame)

            res = drag_latents(model, x0, grid, lat_src, lat_tgt, lmask, sampler, config, on_step=on_step,
                               progress=progress, forward_grid=fgrid,
                               schedules=drag_schedules(config, lora_info is not None))
            t_drag = time.perf_counter()
            out = decode(bb, res.x)
            t_end = time.perf_counter()
    finally:
        remove_lora(bb)
    m = len(res.intermediates)
    k = grid.num_steps
    info.update({
        "num_drag_ops": m,
        "grid_steps": k,
        "timesteps": grid_labels(grid),
        "op_path": [{"sources": [[int(p[1]), int(p[0])] for p in op.sources],  # (row, col) -> (x, y)
                     "targets": [[int(p[1]), int(p[0])] for p in op.targets]} for op in res.ops],
        "nfe": model.nfe,
        "nfe_per_op": model.nfe / m,
        "unet_rows": model.unet_rows,
        "nfe_rule": ("eps evaluations, one UNet call each (CFG batched); per op: K record + K replay (SDE) or "
                     "K inversion + K sampling (ODE), K = int(t0*steps)"),
        "official_nfe": official_nfe(config, m, sampler),
        "official_defaults_nfe": _official_defaults_nfe(config, lat_src, lat_tgt, sampler, model.nfe),
        "lora": lora_info,
        "timing_s": {"encode_lora": t_lora - t_start, "drag": t_drag - t_lora - decode_s,
                     "intermediate_decode": decode_s, "decode": t_end - t_drag},
    })
    info.update(timer.as_dict())
    info["versions"] = versions()
    if save_intermediates is not None:
        info["intermediates"] = _save_frames(frames, Path(save_intermediates), info["op_path"],
                                             meta={k: info[k] for k in ("method", "prompt", "seed", "image_size",
                                                                         "sources", "targets", "num_drag_ops")})
    return TaskResult(out, info, res.x, lmask, frames)
