"""The three presets of the editing recipes: ``"official"`` (the paper's code, ML-GSAI/SDE-Drag), ``"clean"`` and
``"fast"``.

Line by line, where they differ (everything else is shared):

====================  ================================================  =============================================
rule                  ``"official"`` (``cycle_sde.py``, ``diffedit.py``,  ``"clean"``
                      ``sdedrag_dragbench.py``, ``utils/drag.py``)
====================  ================================================  =============================================
paste window          half-open [p − lo, p + hi): (2r)², not centred     [p − lo, p + hi]: (2r + 1)², centred on p
point path            s + trunc(i/m·d) in float32                       s + trunc(i·d/m) in exact integers
number of operations  float32 norms and comparisons                    float64
ramps (CFG, LoRA)     value at backward step k of K: ramp(j/(K−1)),     ramp((K−1−k)/(K−1)): exactly ``end`` at t0 and
                      j = K − k, so ``end`` + one ramp step at t0 and   ``begin`` at the last step
                      ``begin`` + one ramp step at the last step
time grid (Cycle-SDE) :func:`official_grids`: K = int(t0·S) steps from  the last K points of the sampler's grid
                      timestep T[S−K−1], each step τ → τ − T/S, ending  (one step later at t0, ending at the
                      at ᾱ of the last timestep; forward kernels         scheduler's final ᾱ); forward kernels on the
                      u → u + T/S for the listed u                       same levels
====================  ================================================  =============================================

The official code's timestep lists are not always evenly spaced (SD-1.5's DPM-Solver++ list at 200 steps has
…, 509, 504, 500, 495, …), while its updates step by T/S: the backward step from 504 lands on 499 although the
next step starts from 500, and the forward kernel paired with it goes 500 → 505.  For t0 > 0.5 at 200 steps this
happens inside the edited range; :func:`official_grids` reproduces it with an inconsistent :class:`Grid`
(``to_alphas``) and a separate forward grid.  No single grid expresses it.

``"fast"`` keeps every rule of ``"clean"``; it changes defaults only (:data:`PRESET_DEFAULTS`, declared once
below; a value the user gives wins), chosen by measurement on the shapes bed and the digits (docs/fast.md):

====================  ================================================  =============================================
default               ``"official"`` / ``"clean"``                      ``"fast"``
====================  ================================================  =============================================
solver                η-DDIM: Cycle-SDE (η = 1) record/replay (SDE),    ``solver`` / ``order`` (the study chose DDIM;
                      DDIM inversion + DDIM (ODE)                       "dpmpp": SDE-DPM-Solver++ 2M record and exact
                                                                        replay, 2M inversion + 2M)
drag grid             200 steps (K = int(t0·200) per pass)              ``drag_steps``
drag operations       one per 2 px of the longest drag                  ``drag_step_size`` (inf: the whole drag as one
                                                                        paste of the window, as RegionDrag)
LoRA (sdimage)        100 steps                                         ``lora_steps``
DiffEdit / SDEdit /   50 steps, DDIM                                    ``edit_steps``, the preset's solver
reconstruct
====================  ================================================  =============================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from .edits import PRESETS, check_preset
from .grid import Grid

__all__ = ["method_label", "PRESETS", "check_preset", "ramp", "linear_ramp", "cosine_ramp", "official_num_steps", "official_grids",
           "PresetDefaults", "PRESET_DEFAULTS", "preset_defaults", "solver_label", "describe_preset"]


@dataclass(frozen=True)
class PresetDefaults:
    """The defaults a preset sets besides its rules (flags and fields a user gives win).  Declared once here; the
    drag / DiffEdit configs, every CLI, the browser editor and the shapes bed derive theirs from this table."""

    solver: str            # "ddim" (η-DDIM / Cycle-SDE, the paper) or "dpmpp" (DPM-Solver++ / SDE-DPM-Solver++)
    order: int             # DPM-Solver++ order (ignored by ddim)
    drag_steps: int        # grid size S of drag; each operation runs K = int(t0·S) steps per pass
    drag_step_size: float  # latent (bed: image) px per drag operation; inf = the whole drag in one operation
    lora_steps: int        # drag's LoRA fine-tuning steps (0: none)
    edit_steps: int        # grid size of DiffEdit / SDEdit (translate) / reconstruct / inpaint


PRESET_DEFAULTS: Mapping[str, PresetDefaults] = MappingProxyType({
    # the official code: 200-step grids and step 2 for drag (sdedrag_dragbench.py), 100 LoRA steps, 50 steps
    # for DiffEdit (diffedit.py)
    "official": PresetDefaults("ddim", 2, 200, 2.0, 100, 50),
    "clean": PresetDefaults("ddim", 2, 200, 2.0, 100, 50),
    # chosen on the shapes bed and the digits (benchmarks/fast_study.py, docs/fast.md)
    "fast": PresetDefaults("ddim", 2, 20, math.inf, 0, 20),
})


def preset_defaults(preset: str) -> PresetDefaults:
    """The :class:`PresetDefaults` of ``preset``."""
    return PRESET_DEFAULTS[check_preset(preset)]


def solver_label(solver: str, order: int = 2) -> str:
    """A solver's name for help texts and metadata: ``"DDIM"`` or ``"DPM-Solver++ 2M"`` (``"1S"`` at order 1)."""
    return "DDIM" if solver == "ddim" else f"DPM-Solver++ {order}{'M' if order == 2 else 'S'}"


def method_label(kind: str, sampler: str, solver: str = "ddim", order: int = 2, eta: float | None = None) -> str:
    """The one name of a method in metadata, reports and figures.  ``kind``: ``"sample"`` (a sampler run:
    ``"DDIM (ODE)"``, ``"DDPM (SDE)"``, ``"DDIM eta=0.5"``, ``"SDE-DPM-Solver++ order 2"``), ``"edit"`` (encode at
    t0 and decode: ``"Cycle-SDE (SDE)"``, ``"DDIM inversion + DDIM (ODE)"``, …) or ``"drag"`` (``"SDE-Drag"``,
    ``"ODE-Drag"``; a hybrid schedule keeps its own name, e.g. ``"hybrid-late"``)."""
    if kind == "drag":
        return sampler if sampler.startswith("hybrid") else f"{sampler.upper()}-Drag"
    sde = sampler.lower() == "sde"
    if kind == "sample":
        if solver == "ddim":
            e = eta if eta is not None else (1.0 if sde else 0.0)
            return "DDIM (ODE)" if e == 0 else ("DDPM (SDE)" if e == 1 else f"DDIM eta={e:g}")
        return f"{'SDE-' if sde else ''}DPM-Solver++ order {order}"
    if kind == "edit":
        if solver == "ddim":
            return "Cycle-SDE (SDE)" if sde else "DDIM inversion + DDIM (ODE)"
        return (f"Cycle-SDE with SDE-DPM-Solver++ ({order}M) record and replay (SDE)" if sde
                else f"DPM-Solver++ ({order}M) inversion + DPM-Solver++ (ODE)")
    raise ValueError(f"kind must be sample, edit or drag, got {kind!r}")


def describe_preset(preset: str) -> str:
    """One line: what ``preset`` runs by default (solver, drag grid and operations, LoRA, edit steps)."""
    d = preset_defaults(preset)
    ops = "the whole drag as one operation" if math.isinf(d.drag_step_size) else \
        f"one drag operation per {d.drag_step_size:g} latent px"
    lora = "no LoRA" if d.lora_steps == 0 else f"{d.lora_steps} LoRA steps"
    return (f"{solver_label(d.solver, d.order)}, {d.drag_steps}-step drag grid, {ops}, {lora}, {d.edit_steps} steps "
            f"for DiffEdit / SDEdit / reconstruct")

Ramp = Callable[[int, int], float]


def _position(k: int, n: int, preset: str) -> float:
    """Where backward step k of n sits on the ramp (1 at t0, 0 at the clean end) under the preset."""
    if check_preset(preset) == "official":
        j, length = n - k, n - 1
    else:
        j, length = n - 1 - k, n - 1
    return 1.0 if length == 0 else j / length


def linear_ramp(begin: float, end: float, preset: str = "official") -> Ramp:
    """k, n ↦ begin + (end − begin)·x at backward step k of n (x: 1 at t0, 0 at the end; official ``'linear'``)."""
    check_preset(preset)

    def f(k: int, n: int) -> float:
        if preset == "official" and n > 1:
            return begin + (end - begin) * (n - k) / (n - 1)  # the official expression, same float operations
        return begin + (end - begin) * _position(k, n, preset)

    return f


def cosine_ramp(begin: float, end: float, preset: str = "official") -> Ramp:
    """k, n ↦ (1 − c)·begin + c·end with c = (1 − cos(π x))/2 (official ``scale_schedule(..., 'cos')``)."""
    check_preset(preset)

    def f(k: int, n: int) -> float:
        if preset == "official" and n > 1:
            factor = (1 - math.cos((n - k) * math.pi / (n - 1))) / 2
        else:
            factor = (1 - math.cos(_position(k, n, preset) * math.pi)) / 2
        return (1 - factor) * begin + factor * end

    return f


def ramp(kind: str, begin: float, end: float, preset: str = "official") -> Ramp:
    """``kind`` 'linear' (CFG) or 'cos' (LoRA scale) ramp from ``begin`` (clean end) to ``end`` (t0)."""
    if kind == "linear":
        return linear_ramp(begin, end, preset)
    if kind == "cos":
        return cosine_ramp(begin, end, preset)
    raise ValueError(f"ramp kind must be 'linear' or 'cos', got {kind!r}")


def official_num_steps(t0: float, steps: int) -> int:
    """K = int(t0·steps), the official code's number of edited steps; it must lie in [1, steps − 1] (its loops
    start at timestep index steps − K − 1, so t0 = 1 has no first step)."""
    k = int(float(t0) * int(steps))
    if not 1 <= k <= int(steps) - 1:
        raise ValueError(f"the official preset needs 1 <= int(t0 * steps) <= steps - 1; t0 = {t0} and {steps} steps "
                         f"give {k} (use the clean preset for t0 = 1)")
    return k


def official_grids(
    timesteps: Sequence[int] | Tensor,
    alphas_cumprod: Tensor,
    t0: float,
    num_train_timesteps: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Grid, Grid]:
    """(backward grid, forward grid) of the official Cycle-SDE loops over a scheduler's descending ``timesteps``.

    With S = len(timesteps), δ = T // S and K = int(t0·S): backward step k (k = 0..K−1) evaluates the model at
    τ_k = timesteps[S−K−1+k] and goes from ᾱ[τ_k] to ᾱ[τ_k − δ] (1 below 0); the forward kernel it reverses goes
    from ᾱ[u_k] to ᾱ[u_k + δ] with u_k = timesteps[S−K+k], the clean input sitting at ᾱ[timesteps[S−1]].
    """
    ts = [int(t) for t in torch.as_tensor(timesteps).flatten().tolist()]
    ac = torch.as_tensor(alphas_cumprod).to(dtype)
    n_train = int(num_train_timesteps if num_train_timesteps is not None else ac.shape[0])
    s = len(ts)
    k_steps = official_num_steps(t0, s)
    delta = n_train // s
    one = torch.ones((), dtype=dtype)

    def abar(t: int) -> Tensor:
        return ac[t] if 0 <= t < ac.shape[0] else one

    t_begin = s - k_steps
    tau = ts[t_begin - 1:s - 1]
    dep = torch.stack([abar(t) for t in tau])
    land = torch.stack([abar(t - delta) for t in tau])
    labels = torch.tensor(tau + [-1], dtype=torch.long)
    pts = torch.cat([dep, land[-1:]])
    if torch.equal(land[:-1], dep[1:]):
        back = Grid(labels, pts.sqrt(), (1 - pts).clamp_min(0).sqrt())
    else:
        back = Grid(labels, pts.sqrt(), (1 - pts).clamp_min(0).sqrt(), land.sqrt(), (1 - land).clamp_min(0).sqrt())
    u = ts[t_begin:]
    f_dep = torch.stack([abar(t + delta) for t in u])
    f_land = torch.stack([abar(t) for t in u])
    f_pts = torch.cat([f_dep, f_land[-1:]])
    if torch.equal(f_land[:-1], f_dep[1:]):
        fwd = Grid(labels, f_pts.sqrt(), (1 - f_pts).clamp_min(0).sqrt())
    else:
        fwd = Grid(labels, f_pts.sqrt(), (1 - f_pts).clamp_min(0).sqrt(), f_land.sqrt(), (1 - f_land).clamp_min(0).sqrt())
    return back, fwd
