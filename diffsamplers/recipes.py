"""Editing recipes: every editing method of the paper written once, as pure functions of an ε-model callable
``model(x, t) -> ε``, a :class:`Grid`, a noise source and state tensors of any shape (2-D points, 16×16 digits,
Stable Diffusion latents).  ``toy``, ``toy.digits`` and ``sdimage`` only build models, data, masks and points and
call these.

The ODE/SDE switch is one word, ``sampler="ode" | "sde"``, checked once (:func:`check_sampler`); η and the solver
(order) are options below it (:func:`sample`).

- :func:`inpaint` — known-region blend after every step (RePaint-free inpainting; diffusers' inpainting pipeline
  with a base model): known = α_s y_0 + σ_s z, z fixed (diffusers) or fresh, and y_0 itself after the last step.
- :func:`sdedit` — SDEdit (Meng et al. 2022): x_t0 = α y + σ z, then the reverse SDE or the probability-flow ODE.
- :func:`diffedit_mask` / :func:`diffedit` — DiffEdit (Couairon et al. 2023): mask from |ε_target − ε_source|;
  encode by DDIM inversion (ODE) or Cycle-SDE (SDE), decode with the target model, reset outside the mask after
  every step (paper Sec. 4, DiffEdit-SDE).
- :func:`edit_at_t0` — the shared core: encode to t0 (DDIM inversion or Cycle-SDE), apply any edit there, decode
  (DDIM or Cycle-SDE replay), resetting outside a mask after every step.  DiffEdit, reconstruction and every drag
  operation are this function with a particular edit / decoder / mask.
- :func:`reconstruct` — encode + decode with one model: DDIM inversion + DDIM (ODE) or Cycle-SDE (SDE, exact).
- :func:`drag` — SDE-Drag / ODE-Drag (paper Sec. 5, Alg. 1): m operations, each encode → copy-and-paste at t0 →
  decode with the mask reset; guidance and LoRA-scale schedules passed in as callables of the backward step.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Mapping, Sequence

import torch
from torch import Tensor

from .cycle import SOLVERS, Variant, check_solver, cycle_encode, cycle_replay
from .edits import check_preset, copy_paste, drag_path, num_drag_ops
from .grid import Grid
from .noise import NoiseSource
from .progress import Progress, ProgressArg
from .sampling import EpsModel, PostStep, invert_ddim, invert_dpmpp, sample_ddim, sample_dpmpp
from .steps import as_eps

__all__ = [
    "SAMPLERS", "SOLVERS", "check_sampler", "sample", "EditResult", "inpaint", "sdedit", "diffedit_mask", "diffedit",
    "edit_at_t0", "edit_steps", "reconstruct", "drag", "DragOp",
]

Sampler = Literal["ode", "sde"]
SAMPLERS: tuple[str, ...] = ("ode", "sde")
Schedule = Callable[[int, int], float]


def check_sampler(sampler: str, solver: str = "ddim", order: int = 2, eta: float | None = None) -> None:
    """The one check of the ODE/SDE switch and the options below it."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be 'ode' or 'sde', got {sampler!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be 'ddim' or 'dpmpp', got {solver!r}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if eta is not None:
        if solver != "ddim":
            raise ValueError("eta applies to the ddim solver only")
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")


def sample(
    model: EpsModel, x: Tensor, grid: Grid, sampler: Sampler = "sde", *, solver: str = "ddim", order: int = 2,
    eta: float | None = None, noise: NoiseSource | None = None, post_step: PostStep | None = None,
    progress: ProgressArg = False,
) -> Tensor:
    """Denoise from grid point 0: ODE = DDIM (η = 0) or DPM-Solver++; SDE = DDPM (η = 1) or SDE-DPM-Solver++;
    ``eta`` set: η-DDIM in between (paper Eq. 6)."""
    check_sampler(sampler, solver, order, eta)
    if solver == "ddim":
        e = float(eta) if eta is not None else (0.0 if sampler == "ode" else 1.0)
        return sample_ddim(model, x, grid, eta=e, noise=noise if e > 0 else None, post_step=post_step, progress=progress)
    return sample_dpmpp(model, x, grid, order=order, sde=sampler == "sde", noise=noise if sampler == "sde" else None,
                        post_step=post_step, progress=progress)


@dataclass
class DragOp:
    """One drag operation: the points it moves from and to."""

    sources: list[tuple[int, ...]]
    targets: list[tuple[int, ...]]


@dataclass
class EditResult:
    """What a recipe returns: the edited state and what it was made from."""

    x: Tensor                                   # final state (end of the grid)
    x_t0: Tensor | None = None                  # the (edited) state the decoding started from
    mask: Tensor | None = None                  # DiffEdit / drag: the editable region used
    intermediates: list[Tensor] = field(default_factory=list)  # drag: the state after every operation
    ops: list[DragOp] = field(default_factory=list)             # drag: the points of every operation


def _noise_needed(noise: NoiseSource | None, what: str) -> NoiseSource:
    if noise is None:
        raise ValueError(f"{what} needs a noise source (GaussianNoise(seed or generator))")
    return noise


def _reset(keep_edit: Tensor | None, ref: list[Tensor], then: PostStep | None = None, lag: int = 0
           ) -> PostStep | None:
    """After step i: inside the editable mask keep the state, outside take the reference trajectory's point
    i + 1 − ``lag``; then run ``then`` (a caller's hook)."""
    if keep_edit is None:
        return then
    m = keep_edit

    def post(i: int, x: Tensor) -> Tensor:
        r = ref[i + 1 - lag]
        if m.dtype == torch.bool:
            x = torch.where(m.to(x.device), x, r)
        else:
            mm = m.to(device=x.device, dtype=x.dtype)
            x = mm * x + (1 - mm) * r
        return x if then is None else then(i, x)

    return post


# ---------------------------------------------------------------------------------------------------------- inpaint
@torch.no_grad()
def inpaint(
    model: EpsModel, y0: Tensor, known: Tensor, grid: Grid, sampler: Sampler = "sde", noise: NoiseSource | None = None,
    *, start: Literal["noised", "noise"] = "noised", fill: float | None = None,
    renoise: Literal["fixed", "fresh"] = "fixed", blend: bool = True, solver: str = "ddim", order: int = 2,
    eta: float | None = None, progress: ProgressArg = False,
) -> EditResult:
    """Inpainting by known-region blending (diffusers' inpainting pipeline with a base model).

    ``known`` (1 / True = keep) broadcasts against ``y0``.  The first draw z of ``noise`` starts the chain:
    ``start="noised"``: x = α_0 ỹ + σ_0 z with ỹ = y0 where known and ``fill`` in the hole (None: y0 there too,
    diffusers' strength < 1); ``start="noise"``: x = z (diffusers at strength 1).  After step i the known region is
    α_s y0 + σ_s z' with z' = z (``renoise="fixed"``, diffusers) or a fresh draw, and y0 after the last step.
    ``blend=False`` skips the blend (a model that sees the known region itself, e.g. a 9-channel inpainting UNet).
    """
    check_sampler(sampler, solver, order, eta)
    if renoise not in ("fixed", "fresh"):
        raise ValueError(f"renoise must be 'fixed' or 'fresh', got {renoise!r}")
    if start not in ("noised", "noise"):
        raise ValueError(f"start must be 'noised' or 'noise', got {start!r}")
    noise = _noise_needed(noise, "inpaint")
    k = known.to(device=y0.device)
    kb = k if k.dtype == torch.bool else k > 0.5
    z = noise(0, y0)
    if start == "noise":
        x = z
    else:
        y = y0 if fill is None else torch.where(kb, y0, torch.full_like(y0, float(fill)))
        x = float(grid.alphas[0]) * y + float(grid.sigmas[0]) * z
    post = None
    if blend:
        n = grid.num_steps

        def post(i: int, xs: Tensor) -> Tensor:
            if i < n - 1:
                zz = z if renoise == "fixed" else noise(i, y0)
                _, _, a_s, s_s = grid.step(i)
                kn = float(a_s) * y0 + float(s_s) * zz
            else:
                kn = y0
            return torch.where(kb, kn, xs)

    out = sample(model, x, grid, sampler, solver=solver, order=order, eta=eta, noise=noise, post_step=post,
                 progress=progress)
    return EditResult(out, x_t0=x, mask=~kb)


# ----------------------------------------------------------------------------------------------------------- sdedit
@torch.no_grad()
def sdedit(
    model: EpsModel, y: Tensor, grid: Grid, sampler: Sampler = "sde", noise: NoiseSource | None = None, *,
    solver: str = "ddim", order: int = 2, eta: float | None = None, progress: ProgressArg = False,
) -> EditResult:
    """SDEdit: x_t0 = α_t0 y + σ_t0 z (z the first draw of ``noise``), then denoise to the end of ``grid``."""
    check_sampler(sampler, solver, order, eta)
    noise = _noise_needed(noise, "sdedit")
    x = float(grid.alphas[0]) * y + float(grid.sigmas[0]) * noise(0, y)
    out = sample(model, x, grid, sampler, solver=solver, order=order, eta=eta, noise=noise, progress=progress)
    return EditResult(out, x_t0=x)


# --------------------------------------------------------------------------------------------------------- diffedit
@torch.no_grad()
def diffedit_mask(
    source_model: EpsModel, target_model: EpsModel, x0: Tensor, grid: Grid, noise: NoiseSource, *, draws: int = 10,
    threshold_ratio: float = 3.0, channel_dims: Sequence[int] = (1,),
) -> Tensor:
    """DiffEdit's mask (as diffusers' ``generate_mask``): noise ``x0`` [B, ...] ``draws`` times to grid point 0,
    average |ε_target − ε_source| over draws and ``channel_dims``, clamp each sample's map at ``threshold_ratio``
    × its mean, scale to [0, 1] and binarise (> 0.5).  Both models see all draws in one batch.  Returns a bool
    mask shaped like ``x0`` with size 1 on ``channel_dims`` (True = edit)."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    b = x0.shape[0]
    xs = x0.repeat((draws,) + (1,) * (x0.dim() - 1))
    xt = float(grid.alphas[0]) * xs + float(grid.sigmas[0]) * noise(0, xs)
    t = grid.timesteps[0]
    diff = (as_eps(target_model(xt, t)) - as_eps(source_model(xt, t))).abs()
    diff = diff.reshape((draws, b) + tuple(x0.shape[1:])).mean(0)
    dims = tuple(int(d) for d in channel_dims)
    if dims:
        diff = diff.mean(dim=dims, keepdim=True)
    rest = tuple(range(1, diff.dim()))
    clamp = diff.mean(dim=rest, keepdim=True) * threshold_ratio if rest else diff * threshold_ratio
    norm = torch.where(clamp > 0, diff.clamp_min(0).minimum(clamp) / clamp.clamp_min(torch.finfo(diff.dtype).tiny),
                       torch.zeros_like(diff))
    return norm > 0.5


@contextmanager
def _display(progress: ProgressArg, total: int, desc: str, *, grow: bool = False,
             closing_line: bool = True) -> Iterator[Progress | None]:
    """The display a recipe advances: None (no progress), a :class:`Progress` of its own for ``total`` steps
    (``progress=True``; closed at the end) or the caller's shared one (grown by ``total`` if ``grow``; left open,
    with its description as it was)."""
    if isinstance(progress, Progress):
        if grow:
            progress.grow(total)
        desc = progress.desc
        try:
            yield progress
        finally:
            progress.set_description(desc)
    elif progress:
        with Progress(total, desc, closing_line=closing_line) as bar:
            yield bar
    else:
        yield None


def edit_steps(grid: Grid, sampler: Sampler = "sde", forward_grid: Grid | None = None) -> int:
    """Steps of one :func:`edit_at_t0` as its progress counts them: the encoding pass (ODE: inversion on
    ``forward_grid``; SDE: Cycle-SDE record on ``grid``) plus the decoding pass on ``grid``."""
    fg = grid if forward_grid is None or sampler != "ode" else forward_grid
    return fg.num_steps + grid.num_steps


@torch.no_grad()
def edit_at_t0(
    model: EpsModel, x0: Tensor, grid: Grid, sampler: Sampler = "sde", noise: NoiseSource | None = None, *,
    edit: Callable[[Tensor], Tensor] | None = None, decode_model: EpsModel | None = None, mask: Tensor | None = None,
    post_step: PostStep | None = None, forward_grid: Grid | None = None, variant: Variant = "markov",
    fixed_point_iters: int = 0, reset_lag: int = 0, solver: str = "ddim", order: int = 2,
    eta: float | Sequence[float] = 1.0, progress: ProgressArg = False,
) -> EditResult:
    """Encode ``x0`` to grid point 0 with ``model`` (SDE: Cycle-SDE, paper Eqs. 7–8; ODE: DDIM or DPM-Solver++
    inversion), apply ``edit`` there, and decode with ``decode_model`` (default ``model``; SDE: replay of the recorded
    noises with η-DDIM, Eq. 6, or SDE-DPM-Solver++; ODE: DDIM or DPM-Solver++).  ``solver`` ``"ddim"`` (the paper)
    or ``"dpmpp"`` (``order`` 1 or 2); ``eta`` (SDE, DDIM): a number, or one value per step (0 = an ODE step: a
    hybrid, see :mod:`diffsamplers.cycle`).  After every decoding step the state outside ``mask`` (True / 1 =
    editable) is reset to the encoded trajectory at the same level (``reset_lag=1``: one level noisier, as diffusers'
    DiffEdit pipeline does), then ``post_step`` runs.  ``forward_grid``: see :func:`cycle_encode` (the ODE inverts on
    it too).  With no edit, the same model and no mask, the SDE returns ``x0`` up to float error.  ``progress=True``
    shows one display for both passes (:mod:`diffsamplers.progress`); a shared ``Progress`` is advanced by
    :func:`edit_steps` steps."""
    if reset_lag not in (0, 1):
        raise ValueError(f"reset_lag must be 0 or 1, got {reset_lag}")
    check_sampler(sampler)
    check_solver(solver, order)
    if fixed_point_iters and (sampler != "ode" or solver != "ddim"):
        raise ValueError("fixed_point_iters refines DDIM inversion: it needs sampler='ode' and solver='ddim'")
    dec = model if decode_model is None else decode_model
    fg = grid if forward_grid is None else forward_grid
    with _display(progress, edit_steps(grid, sampler, forward_grid), f"{sampler.upper()} encode + decode") as bar:
        shown = bar if bar is not None else False
        if sampler == "ode":
            if solver == "ddim":
                ref = invert_ddim(model, x0, fg, fixed_point_iters=fixed_point_iters, progress=shown)
            else:
                ref = invert_dpmpp(model, x0, fg, order=order, progress=shown)
        else:
            trace = cycle_encode(model, x0, grid, _noise_needed(noise, "Cycle-SDE"), variant=variant, eta=eta,
                                 progress=shown, forward_grid=forward_grid, solver=solver, order=order)
            ref = trace.chain
        xt = ref[0] if edit is None else edit(ref[0])
        post = _reset(mask, ref, post_step, reset_lag)
        if sampler == "ode" and solver == "ddim":
            out = sample_ddim(dec, xt, grid, eta=0.0, post_step=post, progress=shown)
        elif sampler == "ode":
            out = sample_dpmpp(dec, xt, grid, order=order, sde=False, post_step=post, progress=shown)
        else:
            out = cycle_replay(dec, xt, grid, trace.noises, eta=trace.eta, post_step=post, progress=shown,
                               solver=solver, order=order)
    return EditResult(out, x_t0=xt, mask=mask)


@torch.no_grad()
def diffedit(
    encode_model: EpsModel, target_model: EpsModel, x0: Tensor, mask: Tensor, grid: Grid, sampler: Sampler = "sde",
    noise: NoiseSource | None = None, *, forward_grid: Grid | None = None, variant: Variant = "markov",
    reset_lag: int = 0, solver: str = "ddim", order: int = 2, progress: ProgressArg = False,
) -> EditResult:
    """DiffEdit with the ODE (DDIM inversion by ``encode_model`` → DDIM with ``target_model``) or the SDE (Cycle-SDE
    recorded with ``encode_model`` → replay with ``target_model``); outside ``mask`` (True / 1 = edit) the state is
    reset to the encoded trajectory after every step (:func:`edit_at_t0` with the target model as decoder;
    ``reset_lag=1`` reproduces diffusers' DiffEdit pipeline, which resets to the inverted latent one level noisier,
    so its unmasked region ends one inversion step away from the input)."""
    return edit_at_t0(encode_model, x0, grid, sampler, noise, decode_model=target_model, mask=mask,
                      forward_grid=forward_grid, variant=variant, reset_lag=reset_lag, solver=solver, order=order,
                      progress=progress)


# ------------------------------------------------------------------------------------------------------ reconstruct
@torch.no_grad()
def reconstruct(
    model: EpsModel, x0: Tensor, grid: Grid, sampler: Sampler = "sde", noise: NoiseSource | None = None, *,
    variant: Variant = "markov", fixed_point_iters: int = 0, solver: str = "ddim", order: int = 2,
    progress: ProgressArg = False,
) -> EditResult:
    """Encode to grid point 0 and decode with the same model (:func:`edit_at_t0` with no edit): Cycle-SDE (SDE;
    exact up to float error, DDIM or SDE-DPM-Solver++) or inversion + sampling (ODE; DDIM with O(1/N) error, or
    refined by ``fixed_point_iters``; DPM-Solver++)."""
    return edit_at_t0(model, x0, grid, sampler, noise, variant=variant, fixed_point_iters=fixed_point_iters,
                      solver=solver, order=order, progress=progress)


# ------------------------------------------------------------------------------------------------------------- drag
def _scheduled(model: Callable, grid: Grid, schedules: Mapping[str, Schedule] | None) -> EpsModel:
    """``model(x, t, **{name: f(k, K)})`` where k is the backward step whose label is t (same labels both passes)."""
    if not schedules:
        return model
    n = grid.num_steps
    index = {float(grid.timesteps[k]): k for k in range(n)}
    values = {k: {name: float(f(k, n)) for name, f in schedules.items()} for k in range(n)}

    def m(x: Tensor, t) -> Tensor:
        return model(x, t, **values[index[float(t)]])

    return m


@torch.no_grad()
def drag(
    model: Callable, x0: Tensor, grid: Grid, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], *,
    sampler: Sampler = "sde", noise: NoiseSource | None = None, mask: Tensor | None = None, preset: str = "official",
    r: int = 5, alpha: float = 1.1, beta: float = 0.3, step_size: float = 2.0, paste: bool = True,
    variant: Variant = "markov", forward_grid: Grid | None = None, schedules: Mapping[str, Schedule] | None = None,
    solver: str = "ddim", order: int = 2, eta: float | Sequence[float] = 1.0,
    on_op: Callable[[int, Tensor], None] | None = None, on_step: Callable[[int, int, Tensor], None] | None = None,
    progress: ProgressArg = False,
) -> EditResult:
    """SDE-Drag (``sampler="sde"``) / ODE-Drag: move every source point to its target in m operations.

    m and the path follow the preset (:func:`num_drag_ops`, :func:`drag_path`); each operation encodes the current
    state to grid point 0 (Cycle-SDE Markov chain with recorded noises, or DDIM inversion), pastes at t0
    (:func:`copy_paste` with the preset's window; its noise is drawn after the chain's), then decodes (Cycle-SDE
    replay or DDIM) resetting the state outside ``mask`` (True = editable) to the encoded trajectory after every
    step.  Points are index tuples over the trailing spatial dimensions.  ``schedules`` maps keyword names to
    functions (k, K) ↦ value of the backward step k of K; the model is then called as ``model(x, t, **values)`` in
    both passes (CFG scale, LoRA scale).  ``paste=False`` returns the input (SDE) up to float error.  ``solver`` /
    ``order`` / ``eta``: as :func:`edit_at_t0` (a per-step η with zeros is an ODE/SDE hybrid; η ≡ 0 equals ODE-Drag).
    ``on_op(i, x)`` runs after operation i; ``on_step(i, k, x)`` right after the paste of operation i (k = −1) and
    after its decoding step k (after the mask reset).  ``progress=True``: one display for the whole drag, ``"drag op
    i/m"`` over every step of every pass of every operation (m × :func:`edit_steps`); off a terminal one plain line
    per finished operation instead (:mod:`diffsamplers.progress`).  A shared ``Progress`` grows by those steps and
    is left open.
    """
    check_sampler(sampler)
    check_preset(preset)
    if sampler == "sde" or (paste and beta < 1.0):
        noise = _noise_needed(noise, "drag")
    m = num_drag_ops(sources, targets, step_size, preset)
    ops = [DragOp(a, b) for a, b in drag_path(sources, targets, m, preset)]
    eps = _scheduled(model, grid, schedules)
    keep = None if mask is None else mask.to(device=x0.device)
    x = x0
    result = EditResult(x0, mask=keep, ops=ops)
    m, per_op = len(ops), edit_steps(grid, sampler, forward_grid)
    with _display(progress, m * per_op, f"drag op 1/{m}", grow=True, closing_line=False) as bar:
        for i, op in enumerate(ops):
            t_op = time.perf_counter()
            if bar is not None:
                bar.set_description(f"drag op {i + 1}/{m}")

            def paste_op(xt: Tensor, op: DragOp = op, i: int = i) -> Tensor:
                if paste:
                    xt = copy_paste(xt, op.sources, op.targets, r, alpha, beta, noise, preset)
                if on_step is not None:
                    on_step(i, -1, xt)
                return xt

            def after(k: int, xs: Tensor, i: int = i) -> Tensor:
                on_step(i, k, xs)  # type: ignore[misc]
                return xs

            res = edit_at_t0(eps, x, grid, sampler, noise, edit=paste_op if paste or on_step else None, mask=keep,
                             post_step=after if on_step is not None else None, forward_grid=forward_grid,
                             variant=variant, solver=solver, order=order, eta=eta,
                             progress=bar if bar is not None else False)
            if bar is not None:
                bar.line(f"drag: operation {i + 1}/{m} done ({per_op} steps, {time.perf_counter() - t_op:.1f} s)")
            x = res.x
            if i == 0:
                result.x_t0 = res.x_t0
            result.intermediates.append(x)
            if on_op is not None:
                on_op(i, x)
    result.x = x
    return result
