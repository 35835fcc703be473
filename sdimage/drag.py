"""SDE-Drag and its ODE baseline (Nie et al., ICLR 2024, Sec. 5 / App. C): point dragging on Stable Diffusion.

One *drag operation* moves every handle point by at most ``step_size`` latent pixels:

1. encode the current latent to t0: Cycle-SDE Markov forward chain with recorded noises (SDE) or DDIM
   inversion (ODE), both from :mod:`diffsamplers`;
2. copy-and-paste at t0 (:func:`copy_paste`);
3. denoise back to t = 0: Cycle-SDE replay (SDE) or DDIM (ODE); after every step the region outside the
   editable mask is reset to the recorded forward trajectory (``post_step`` hook).

``m = num_drag_steps(...)`` operations run one after the other, each a full noise → paste → denoise cycle,
all point pairs moving together.  Guidance and LoRA scale follow the schedules of the official benchmark script
(:func:`guidance_schedule`, :func:`lora_scale_schedule`).  No sampler update is implemented here.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, NoiseSource, cycle_encode, cycle_replay, invert_ddim, sample_ddim
from diffsamplers import edits

from .errors import SdImageError

__all__ = [
    "DragConfig",
    "DragResult",
    "copy_paste",
    "patch_bounds",
    "num_drag_steps",
    "drag_path",
    "guidance_schedule",
    "lora_scale_schedule",
    "official_nfe",
    "validate_points",
    "points_to_latent",
    "mask_to_latent",
    "drag_latents",
    "drag",
]

Point = tuple[int, int]


@dataclass
class DragConfig:
    """Every parameter of SDE-Drag / ODE-Drag; defaults are those of the official DragBench script."""

    steps: int = 200  # discretisation of [0, T]; t0 = 0.6 gives 120 forward + 120 backward steps
    t0: float = 0.6  # copy-and-paste at grid fraction t0
    guidance_min: float = 1.0  # CFG at the clean end of the trajectory (t -> 0)
    guidance_max: float = 3.0  # CFG at t0 (linear ramp in the step index)
    step_size: float = 2.0  # latent pixels per drag operation
    r: int = 5  # patch half-size in latent pixels (clipped at the borders)
    alpha: float = 1.1  # target = alpha * source patch
    beta: float = 0.3  # source = beta * source patch + sqrt(1 - beta^2) * fresh noise
    lora_steps: int = 100  # 0 disables LoRA fine-tuning
    lora_rank: int = 4
    lora_lr: float = 2e-4
    lora_scale_min: float = 0.5  # LoRA scale eased (cosine) from 1 near t = 0 to this value at t0
    lora_batch_size: int = 1
    seed: int = 1234
    paste: bool = True  # False: skip copy-and-paste (pure reconstruction; used by tests and ablations)
    variant: str = "markov"  # Cycle-SDE encoder (paper: Markov forward chain)
    lora_cache_dir: str | None = None  # default ~/.cache/sdimage/drag_lora

    def validate(self) -> "DragConfig":
        if self.steps < 1:
            raise SdImageError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 < self.t0 <= 1.0:
            raise SdImageError(f"t0 must be in (0, 1], got {self.t0}")
        if self.step_size <= 0:
            raise SdImageError(f"step_size must be > 0, got {self.step_size}")
        if self.r < 0:
            raise SdImageError(f"r must be >= 0, got {self.r}")
        if not 0.0 <= self.beta <= 1.0:
            raise SdImageError(f"beta must be in [0, 1], got {self.beta}")
        if self.lora_steps < 0 or self.lora_rank < 1:
            raise SdImageError("lora_steps must be >= 0 and lora_rank >= 1")
        if self.guidance_min < 1.0 or self.guidance_max < 1.0:
            raise SdImageError("guidance must be >= 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DragResult:
    """Output of :func:`drag_latents`: the final latent and the latent after every drag operation."""

    latent: Tensor
    intermediates: list[Tensor] = field(default_factory=list)
    sources: list[list[Point]] = field(default_factory=list)
    targets: list[list[Point]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- copy-and-paste


def patch_bounds(src: Point, tgt: Point, r: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Half-sizes (left, right, top, bottom) of the patch shared by ``src`` and ``tgt`` (``(x, y)`` latent pixels).

    Each side is ``r`` shrunk so that the window fits in the latent around *both* points:
    ``left = min(r, sx, tx)``, ``right = min(r, W-1-sx, W-1-tx)``, ``top = min(r, sy, ty)``,
    ``bottom = min(r, H-1-sy, H-1-ty)``; the window around p is ``[px - left, px + right] × [py - top, py + bottom]``
    (:func:`diffsamplers.patch_bounds` in (row, col) order).
    """
    (top, bottom), (left, right) = edits.patch_bounds((src[1], src[0]), (tgt[1], tgt[0]), r, (height, width))
    return left, right, top, bottom


def copy_paste(
    latent: Tensor,
    sources: Sequence[Point],
    targets: Sequence[Point],
    r: int = 5,
    alpha: float = 1.1,
    beta: float = 0.3,
    noise: NoiseSource | None = None,
) -> Tensor:
    """SDE-Drag's copy-and-paste at t0 on a ``(B, C, H, W)`` latent; points are ``(x, y)`` latent pixels.

    :func:`diffsamplers.copy_paste`: for each pair in order, ``P = latent[window(src)]``;
    ``latent[window(src)] = beta * P + sqrt(1 - beta^2) * noise(k, P)``; ``latent[window(tgt)] = alpha * P``
    (written last, so it wins where the windows overlap).  Windows follow :func:`patch_bounds`.
    """
    h, w = latent.shape[-2:]
    for x, y in list(sources) + list(targets):
        if not (0 <= int(x) < w and 0 <= int(y) < h):
            raise ValueError(f"point ({int(x)}, {int(y)}) outside the {w}x{h} latent")
    rc = lambda pts: [(int(p[1]), int(p[0])) for p in pts]  # noqa: E731  (x, y) -> (row, col)
    return edits.copy_paste(latent, rc(sources), rc(targets), r, alpha, beta, noise)


# ------------------------------------------------------------------------------------------ drag operations


def num_drag_steps(sources: Sequence[Point], targets: Sequence[Point], step_size: float = 2.0) -> int:
    """Number m of drag operations (official rule, :func:`diffsamplers.num_drag_steps`) for the largest
    source→target distance D (latent px): 1 if D ≤ step_size, else ⌊D/step_size⌋ or one more, whichever makes the
    per-operation move closer to ``step_size``."""
    if len(sources) != len(targets) or not sources:
        raise ValueError("need the same, non-zero number of sources and targets")
    d = max(math.hypot(t[0] - s[0], t[1] - s[1]) for s, t in zip(sources, targets))
    return edits.num_drag_steps(d, step_size)


def drag_path(sources: Sequence[Point], targets: Sequence[Point], m: int) -> list[tuple[list[Point], list[Point]]]:
    """(sources, targets) of each of the m operations: ``s + trunc(i/m · d)`` → ``s + trunc((i+1)/m · d)`` (official)."""
    ops = []
    for i in range(m):
        a, b = [], []
        for s, t in zip(sources, targets):
            dx, dy = t[0] - s[0], t[1] - s[1]
            a.append((s[0] + int(i / m * dx), s[1] + int(i / m * dy)))
            b.append((s[0] + int((i + 1) / m * dx), s[1] + int((i + 1) / m * dy)))
        ops.append((a, b))
    return ops


def _ramp(k: int, n: int) -> float:
    """0 at the clean end of an n-step backward pass (step n-1), 1 at t0 (step 0)."""
    return 1.0 if n <= 1 else (n - 1 - k) / (n - 1)


def guidance_schedule(k: int, n: int, gmin: float = 1.0, gmax: float = 3.0) -> float:
    """CFG at backward step k of n (k = 0 at t0): linear from ``gmax`` at t0 to ``gmin`` at the last step."""
    return gmin + (gmax - gmin) * _ramp(k, n)


def lora_scale_schedule(k: int, n: int, smin: float = 0.5) -> float:
    """LoRA scale at backward step k of n: cosine ease from 1 (last step, t ≈ 0) to ``smin`` (t0)."""
    f = (1.0 - math.cos(math.pi * _ramp(k, n))) / 2.0
    return (1.0 - f) + f * smin


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


# ------------------------------------------------------------------------------------------ inputs


def validate_points(sources, targets, width: int, height: int) -> tuple[list[Point], list[Point]]:
    """Check pixel points: equal non-zero counts, inside the image, source != target.  Raises :class:`SdImageError`."""
    sources = [tuple(int(v) for v in p) for p in sources]
    targets = [tuple(int(v) for v in p) for p in targets]
    if not sources or len(sources) != len(targets):
        raise SdImageError(f"need matching source/target points, got {len(sources)} sources and {len(targets)} targets")
    for name, pts in (("source", sources), ("target", targets)):
        for p in pts:
            if len(p) != 2:
                raise SdImageError(f"{name} point {p} is not (x, y)")
            if not (0 <= p[0] < width and 0 <= p[1] < height):
                raise SdImageError(f"{name} point ({p[0]}, {p[1]}) is outside the {width}x{height} image")
    for s, t in zip(sources, targets):
        if s == t:
            raise SdImageError(f"source and target are the same point ({s[0]}, {s[1]})")
    return sources, targets  # type: ignore[return-value]


def points_to_latent(points: Sequence[Point], factor: int) -> list[Point]:
    """Image pixels → latent pixels by integer division (the official ``div(8, rounding_mode='trunc')``)."""
    return [(int(p[0]) // factor, int(p[1]) // factor) for p in points]


def mask_to_latent(mask: Tensor, height: int, width: int) -> Tensor:
    """A (H, W) / (1, 1, H, W) editable mask (1 = editable) → a boolean (1, 1, h, w) latent mask.

    Rule: area-average the mask over each latent cell; a cell is editable when more than half of it is.
    """
    m = mask.float()
    while m.dim() < 4:
        m = m.unsqueeze(0)
    m = m[:, :1]
    if m.shape[-2:] != (height, width):
        m = F.interpolate(m, size=(height, width), mode="area")
    return m > 0.5


# ------------------------------------------------------------------------------------------ the loop


def _step_schedules(grid: Grid, config: DragConfig, use_lora: bool):
    """Maps from a model time label to CFG scale and LoRA scale (both passes share the labels of ``grid``)."""
    n = grid.num_steps
    g = {int(grid.timesteps[k]): guidance_schedule(k, n, config.guidance_min, config.guidance_max) for k in range(n)}
    s = {int(grid.timesteps[k]): lora_scale_schedule(k, n, config.lora_scale_min) for k in range(n)}

    def guidance(t) -> float:
        return g[int(t)]

    def xattn(t) -> dict | None:
        return {"scale": s[int(t)]} if use_lora else None

    return guidance, xattn


def drag_latents(
    model: Callable[[Tensor, Tensor], Tensor],
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
) -> DragResult:
    """Run the m drag operations on a latent.  ``grid`` is the t0 tail; points in latent pixels; ``mask`` boolean.

    All random draws (forward chains, paste noise) come from one generator seeded with ``config.seed``.
    """
    config = (config or DragConfig()).validate()
    if sampler not in ("sde", "ode"):
        raise SdImageError(f"sampler must be 'sde' or 'ode', got {sampler!r}")
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
    noise = GaussianNoise(generator)
    m = num_drag_steps(sources, targets, config.step_size)
    ops = drag_path(sources, targets, m)
    keep = None if mask is None else mask.to(device=x0.device)
    x = x0
    result = DragResult(latent=x0)
    for i, (src, tgt) in enumerate(ops):
        if sampler == "sde":
            trace = cycle_encode(model, x, grid, noise, variant=config.variant, progress=progress)  # type: ignore[arg-type]
            ref = trace.chain
        else:
            ref = invert_ddim(model, x, grid, progress=progress)
        xt = ref[0]
        if config.paste:
            xt = copy_paste(xt, src, tgt, config.r, config.alpha, config.beta, noise)

        def reset(j: int, z: Tensor, ref=ref) -> Tensor:
            return z if keep is None else torch.where(keep, z, ref[j + 1])

        if sampler == "sde":
            x = cycle_replay(model, xt, grid, trace.noises, eta=1.0, post_step=reset, progress=progress)
        else:
            x = sample_ddim(model, xt, grid, eta=0.0, post_step=reset, progress=progress)
        result.intermediates.append(x)
        result.sources.append(src)
        result.targets.append(tgt)
        if on_step is not None:
            on_step(i, x)
    result.latent = x
    return result


def _as_image_tensor(image) -> Tensor:
    """PIL image / path / uint8 array / tensor → float32 (1, 3, H, W) in [−1, 1]."""
    from .latents import load_image

    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Tensor):
        x = image if image.dim() == 4 else image.unsqueeze(0)
        return x.float()
    from .metrics import to_tensor

    return to_tensor(image)


def _as_mask(mask, height: int, width: int) -> Tensor | None:
    """Editable-pixel mask (True = editable) as a bool (1, 1, H, W) tensor; size must equal the image's."""
    import numpy as np

    if mask is None:
        return None
    if hasattr(mask, "convert"):  # PIL: grey > 127 (>= 128) is editable
        mask = np.asarray(mask.convert("L")) >= 128
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2:
        raise SdImageError(f"mask must be a single-channel H×W array, got shape {tuple(m.shape)}")
    if tuple(m.shape) != (height, width):
        raise SdImageError(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {width}x{height}")
    if m.dtype != torch.bool:
        m = m.float()
        m = m > (0.5 if float(m.max()) <= 1.0 else 127.5)
    return m[None, None]


def _save_frames(frames: list, directory: Path, duration_ms: int = 400) -> dict[str, Any]:
    """``drag_000.png`` (input), ``drag_001.png`` … (after each operation) and ``trajectory.gif``."""
    from .latents import save_image

    directory.mkdir(parents=True, exist_ok=True)
    paths = [str(save_image(f, directory / f"drag_{k:03d}.png")) for k, f in enumerate(frames)]
    gif = directory / "trajectory.gif"
    tmp = directory / ".trajectory.gif.tmp"
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    tmp.replace(gif)
    return {"frames": paths, "gif": str(gif)}


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
):
    """SDE-Drag (``sampler="sde"``) or ODE-Drag (``"ode"``) of ``image``: move each source point to its target.

    ``image``: PIL image, path or (1, 3, H, W) tensor in [−1, 1] (H, W multiples of the VAE factor).  ``sources`` /
    ``targets``: (x, y) image pixels.  ``mask``: H×W, True / white = editable (None = everything); outside it the
    latent is reset to the recorded trajectory after every step.  ``save_intermediates``: a folder receiving the
    decoded image after every drag operation and ``trajectory.gif``.  The pipeline is returned unchanged (the LoRA
    adapter is removed afterwards).  Returns ``(PIL image, info)`` with ``info`` JSON-ready.
    """
    from .latents import decode, encode, to_pil, vae_factor
    from .lora import ensure_lora, remove_lora
    from .model import encode_prompt, make_eps_model, make_grid
    from .runinfo import RunTimer, versions

    config = (config or DragConfig()).validate()
    if sampler not in ("sde", "ode"):
        raise SdImageError(f"sampler must be 'sde' or 'ode', got {sampler!r}")
    if not isinstance(prompt, str):
        raise SdImageError("prompt must be a string")
    img = _as_image_tensor(image)
    h, w = img.shape[-2:]
    factor = vae_factor(pipe)
    if h % factor or w % factor:
        raise SdImageError(f"image is {w}x{h}, not divisible by the VAE factor {factor}")
    sources, targets = validate_points(sources, targets, w, h)
    pmask = _as_mask(mask, h, w)
    lat_src, lat_tgt = points_to_latent(sources, factor), points_to_latent(targets, factor)
    if all(a == b for a, b in zip(lat_src, lat_tgt)):
        raise SdImageError(f"every source/target pair falls on the same latent pixel (VAE factor {factor}): nothing to drag")
    lmask = None
    if pmask is not None:
        lmask = mask_to_latent(pmask, h // factor, w // factor)
        if not bool(lmask.any()):
            from .latents import SdImageWarning

            warnings.warn("the mask has no editable (white) latent pixel: the drag cannot change the image",
                          SdImageWarning, stacklevel=2)

    device = getattr(pipe, "_execution_device", None) or pipe.device
    timer = RunTimer(device)
    info: dict[str, Any] = {
        "task": "drag", "method": "SDE-Drag" if sampler == "sde" else "ODE-Drag", "sampler": sampler,
        "prompt": prompt, "negative_prompt": negative_prompt, "seed": config.seed, "config": config.to_dict(),
        "image_size": [w, h], "sources": [list(p) for p in sources], "targets": [list(p) for p in targets],
        "latent_sources": [list(p) for p in lat_src], "latent_targets": [list(p) for p in lat_tgt],
        "mask": None if pmask is None else {"editable_fraction": float(pmask.float().mean()),
                                             "latent_editable_pixels": int(lmask.sum())},
        "model": str(getattr(pipe, "name_or_path", "") or getattr(pipe.config, "_name_or_path", "")),
        "dtype": str(pipe.unet.dtype), "device": str(device),
    }
    frames = []
    try:
        with timer:
            t_start = time.perf_counter()
            x0 = encode(pipe, img)
            if x0.dtype in (torch.float16, torch.bfloat16):
                x0 = x0.float()
            cond, uncond = encode_prompt(pipe, prompt, negative_prompt)
            lora_info = None
            if config.lora_steps > 0:
                lora_info = ensure_lora(
                    pipe, x0, img, prompt, cond, steps=config.lora_steps, rank=config.lora_rank, lr=config.lora_lr,
                    seed=config.seed, batch_size=config.lora_batch_size, cache_dir=config.lora_cache_dir,
                    progress=progress,
                )
            t_lora = time.perf_counter()
            grid = make_grid(pipe, config.steps, config.t0)
            guidance, xattn = _step_schedules(grid, config, lora_info is not None)
            model = make_eps_model(pipe, cond, uncond, guidance=guidance,
                                   cross_attention_kwargs=xattn if lora_info is not None else None)
            if save_intermediates is not None:
                frames.append(to_pil(img))
            decode_s = 0.0

            def on_step(i: int, x: Tensor) -> None:
                nonlocal decode_s
                if save_intermediates is not None:
                    t = time.perf_counter()
                    frames.append(to_pil(decode(pipe, x)))
                    decode_s += time.perf_counter() - t

            res = drag_latents(model, x0, grid, lat_src, lat_tgt, lmask, sampler, config, on_step=on_step,
                               progress=progress)
            t_drag = time.perf_counter()
            out = decode(pipe, res.latent)
            t_end = time.perf_counter()
    finally:
        remove_lora(pipe)
    m = len(res.intermediates)
    k = grid.num_steps
    info.update({
        "num_drag_ops": m,
        "grid_steps": k,
        "op_path": [{"sources": [list(p) for p in a], "targets": [list(p) for p in b]}
                    for a, b in zip(res.sources, res.targets)],
        "nfe": model.nfe,
        "nfe_per_op": model.nfe / m,
        "unet_rows": model.unet_rows,
        "nfe_rule": ("eps evaluations, one UNet call each (CFG batched); per op: K record + K replay (SDE) or "
                     "K inversion + K sampling (ODE), K = int(t0*steps)"),
        "official_nfe": official_nfe(config, m, sampler),
        "lora": lora_info,
        "timing_s": {"encode_lora": t_lora - t_start, "drag": t_drag - t_lora - decode_s,
                     "intermediate_decode": decode_s, "decode": t_end - t_drag},
    })
    info.update(timer.as_dict())
    info["versions"] = versions()
    if save_intermediates is not None:
        info["intermediates"] = _save_frames(frames, Path(save_intermediates))
    return to_pil(out), info
