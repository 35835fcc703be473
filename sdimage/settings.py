"""Every setting of every editing task, declared once (:mod:`cliutil.settings`): :class:`DragConfig` for SDE-Drag /
ODE-Drag and one dataclass per task (:class:`InpaintSettings`, :class:`TranslateSettings`,
:class:`DiffEditSettings`, :class:`ReconstructSettings`).

Each field carries its help, bounds, flag and label; the command lines (``python -m sdimage drag | dragbench |
inpaint | translate | diffedit | reconstruct``), the browser editor's inputs and its API, the checks, the JSON
metadata and the DragBench manifest are all derived from these declarations.  A bound here is the bound
everywhere: no request can ask for unbounded work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cliutil import MAX_SEED
from cliutil.settings import Setting, coerce, declared, flags, setting, to_meta, validate
from diffsamplers import PRESETS, SOLVERS, VARIANTS
from diffsamplers.presets import describe_preset, preset_defaults

from .errors import SdImageError

__all__ = ["MAX_STEPS", "MAX_SEED", "MAX_MASK_DRAWS", "MAX_DRAG_OPS", "MAX_POINTS", "MAX_LORA_STEPS", "DragConfig",
           "TaskSettings", "InpaintSettings", "TranslateSettings", "DiffEditSettings", "ReconstructSettings",
           "TASK_SETTINGS", "CONFIG_FLAGS", "api_name", "gui_names", "from_form"]

MAX_STEPS = 999
"""Most steps of a schedule: the SD schedulers have 1000 training steps, and with SD's ``steps_offset=1`` a
1000-step schedule asks for timestep 1000, which does not exist (every preset, every task); 999 builds on every
registered family."""
MAX_MASK_DRAWS = 1000
"""Most noise draws of DiffEdit's automatic mask (the paper uses 10)."""
MAX_DRAG_OPS = 500
"""Most drag operations one drag may take (a tiny step size would otherwise mean unbounded work); the official
step of 2 latent px needs 91 operations for a corner-to-corner drag on a 1024² SDXL image."""
MAX_POINTS = 100
"""Most handle / target pairs of one drag (the CLI's --source, the editor's points, a DragBench sample)."""
MAX_LORA_STEPS = 5000
"""Most LoRA fine-tuning steps (the official code trains 100)."""

_FAST_EDIT = (lambda d: f"{d.edit_steps} steps" + (f" of DPM-Solver++ {d.order}M" if d.solver == "dpmpp" else "")
              )(preset_defaults("fast"))
_T0 = dict(lo=0.0, hi=1.0, lo_open=True, step=0.01)


@dataclass
class DragConfig:
    """Every parameter of SDE-Drag / ODE-Drag; defaults are those of the official DragBench script.  ``steps``,
    ``step_size``, ``lora_steps``, ``solver`` and ``order`` left None take the preset's value
    (:func:`diffsamplers.presets.preset_defaults`) at construction: a value given wins."""

    steps: int | None = setting(None, "steps of the full schedule", kind="int", lo=1, hi=MAX_STEPS,
                                label="Steps (full schedule)")
    t0: float = setting(0.6, "copy-and-paste time as a fraction", label="t0 (copy-and-paste time)", **_T0)
    guidance_min: float = setting(1.0, "CFG at t -> 0", flag="--guidance-min", lo=1.0, hi=30.0, step=0.1,
                                  label="CFG at t -> 0")
    guidance_max: float = setting(3.0, "CFG at t0, ramped linearly", flag="--guidance", lo=1.0, hi=30.0, step=0.1,
                                  label="CFG at t0")
    step_size: float | None = setting(None, "latent px per drag operation, or inf for one operation", kind="float",
                                      lo=0.0, lo_open=True, allow_inf=True,
                                      label="Step size (latent px per operation)")
    r: int = setting(5, "patch half-size in latent px", lo=0, hi=64, label="Patch half-size r (latent px)")
    alpha: float = setting(1.1, "target = alpha * source patch", lo=0.0, hi=10.0, step=0.05,
                           label="alpha (target = alpha x source)")
    beta: float = setting(0.3, "source = beta * patch + sqrt(1 - beta^2) * noise", lo=0.0, hi=1.0, step=0.05,
                          label="beta (source noise mix)")
    lora_steps: int | None = setting(None, "LoRA fine-tuning steps, 0 = off", kind="int", lo=0, hi=MAX_LORA_STEPS,
                                     label="LoRA steps")
    lora_rank: int = setting(4, "LoRA rank", lo=1, hi=256, label="LoRA rank")
    lora_lr: float = setting(2e-4, "LoRA learning rate", lo=0.0, hi=1.0, lo_open=True, label="LoRA learning rate")
    lora_scale_min: float = setting(0.5, "LoRA scale at t0 (eased from 1 near t = 0)", lo=0.0, hi=1.0, step=0.05,
                                    label="LoRA scale at t0")
    lora_batch_size: int = setting(1, "LoRA batch size", lo=1, hi=64, gui=False)
    seed: int = setting(1234, "seed of every random draw", lo=0, hi=MAX_SEED, label="Seed")
    paste: bool = setting(True, "copy-and-paste (False: pure reconstruction; tests and ablations)", cli=False,
                          gui=False)
    variant: str = setting("markov", "Cycle-SDE encoder (paper: Markov forward chain)",
                           choices=VARIANTS, cli=False, gui=False)
    preset: str = setting("official", "official: reproduce the paper's code; clean: centred (2r+1)^2 window, exact "
                          f"ramps and grid; fast: the clean rules with {describe_preset('fast')} (docs/drag.md, "
                          "docs/fast.md)",
                          choices=PRESETS, label="Preset (docs/drag.md, docs/fast.md)")
    lora_cache_dir: str | None = setting(None, "LoRA cache folder (default $SDIMAGE_CACHE or ~/.cache/sdimage)",
                                         kind="str", optional=True, flag="--lora-cache", gui=False)
    solver: str | None = setting(None, "ddim: Cycle-SDE / DDIM inversion (the paper); dpmpp: SDE-DPM-Solver++ / "
                                 "DPM-Solver++", kind="str", choices=SOLVERS, label="Solver")
    order: int | None = setting(None, "DPM-Solver++ order", kind="int", lo=1, hi=2, label="DPM-Solver++ order")

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:  # validate() says it with the flag's name
            return
        d = preset_defaults(self.preset)
        for name, value in (("steps", d.drag_steps), ("step_size", d.drag_step_size), ("lora_steps", d.lora_steps),
                            ("solver", d.solver), ("order", d.order)):
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self, names: dict[str, str] | None = None) -> "DragConfig":
        """Check every field against its declaration; a message names the field as ``names[field]`` (the CLI passes
        its flags, :data:`CONFIG_FLAGS`; the GUI :func:`gui_names`) or by its field name."""
        n = {s.name: s.name for s in declared(self)} | (names or {})
        from cliutil.settings import check_value

        check_value(next(s for s in declared(self) if s.name == "preset"), self.preset, n["preset"], SdImageError)
        validate(self, n, SdImageError)
        if self.preset == "official":
            from .model import check_official_steps

            check_official_steps(self.t0, self.steps)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON values (``step_size`` inf is written ``"inf"``: one operation)."""
        return to_meta(self)


CONFIG_FLAGS = flags(DragConfig)
"""The command-line flag of each :class:`DragConfig` field (``python -m sdimage drag`` / ``dragbench``)."""


@dataclass
class TaskSettings:
    """The settings every task shares.  None: the default named in the help (the family's CFG, the preset's
    steps, solver and order)."""

    steps: int | None = setting(None, "steps of the full schedule", kind="int", lo=1, hi=MAX_STEPS, label="Steps")
    guidance: float | None = setting(None, "classifier-free guidance", kind="float", lo=0.0, hi=30.0, optional=True,
                                     step=0.1, label="CFG")
    seed: int = setting(0, "seed of every random draw", lo=0, hi=MAX_SEED, label="Seed")
    solver: str | None = setting(None, "ddim: DDIM (ode) / DDPM (sde); dpmpp: DPM-Solver++ (ode) / "
                                 "SDE-DPM-Solver++ (sde)", kind="str", choices=SOLVERS,
                                 label="Solver (DDIM/DDPM or DPM-Solver++ / SDE-DPM-Solver++)")
    order: int | None = setting(None, "DPM-Solver++ order", kind="int", lo=1, hi=2, label="DPM-Solver++ order")

    def resolve(self, preset: str | None = None, eta: float | None = None) -> "TaskSettings":
        """Fill steps, solver and order left None from the preset's defaults (``edit_steps``; a DDIM ``eta`` means
        the DDIM solver)."""
        d = preset_defaults(preset if preset in PRESETS else "official")
        if self.steps is None:
            self.steps = d.edit_steps
        if self.solver is None:
            self.solver = "ddim" if eta is not None else d.solver
        if self.order is None:
            self.order = d.order
        return self

    def validate(self, names: dict[str, str] | None = None) -> "TaskSettings":
        validate(self, names, SdImageError)
        return self

    def to_dict(self) -> dict[str, Any]:
        return to_meta(self)


@dataclass
class InpaintSettings(TaskSettings):
    strength: float = setting(1.0, "start from this fraction of the schedule", label="Strength", **_T0)
    eta: float | None = setting(None, "DDIM eta (overrides --sampler: 0 = ODE, 1 = SDE); ddim solver only",
                                kind="float", lo=0.0, hi=1.0, optional=True, gui=False)
    renoise: str = setting("fixed", "known region re-noised with the initial noise (diffusers) or fresh noise per "
                           "step", choices=("fixed", "fresh"), gui=False)

    def __post_init__(self) -> None:
        self.resolve(eta=self.eta)


@dataclass
class TranslateSettings(TaskSettings):
    t0: float = setting(0.5, "noise level to start from", label="t0 (noise level to start from)", **_T0)
    eta: float | None = setting(None, "DDIM eta (overrides --sampler: 0 = ODE, 1 = SDE); ddim solver only",
                                kind="float", lo=0.0, hi=1.0, optional=True, gui=False)
    preset: str = setting("official", f"official: the paper's sampler; fast: {_FAST_EDIT} (--steps, --solver, "
                          "--order given win; docs/fast.md)", choices=PRESETS, label="Preset (docs/fast.md)")

    def __post_init__(self) -> None:
        self.resolve(self.preset, self.eta)


@dataclass
class DiffEditSettings(TaskSettings):
    t0: float = setting(0.7, "encode ratio", label="t0 (encode ratio)", **_T0)
    mask_draws: int = setting(10, "noise draws averaged for the automatic mask", lo=1, hi=MAX_MASK_DRAWS,
                              label="Mask: noise draws")
    mask_t0: float = setting(0.5, "noise level of the automatic mask estimate", label="Mask: noise level", **_T0)
    preset: str = setting("official", "official: the paper's code; clean: this package's consistent rules; fast: "
                          f"the clean rules with {_FAST_EDIT} (docs/fast.md)", choices=PRESETS,
                          label=f"Preset (fast: {_FAST_EDIT}; docs/fast.md)")

    def __post_init__(self) -> None:
        self.resolve(self.preset)

    def validate(self, names: dict[str, str] | None = None, sampler: str | None = None) -> "DiffEditSettings":
        super().validate(names)
        if self.preset == "official" and sampler == "sde":
            from .model import check_official_steps

            check_official_steps(self.t0, self.steps, "the official DiffEdit-SDE")
        return self


@dataclass
class ReconstructSettings(TaskSettings):
    t0: float = setting(1.0, "invert up to this noise level", label="t0", **_T0)
    preset: str = setting("official", f"official: the paper's sampler; fast: {_FAST_EDIT}", choices=PRESETS)

    def __post_init__(self) -> None:
        self.resolve(self.preset)
        self.guidance = 1.0 if self.guidance is None else self.guidance


TASK_SETTINGS: dict[str, type[TaskSettings]] = {"inpaint": InpaintSettings, "translate": TranslateSettings,
                                                 "diffedit": DiffEditSettings, "reconstruct": ReconstructSettings}
"""Each task's settings declaration (the CLI command and the GUI tab of the same name)."""


def api_name(s: Setting) -> str:
    """A setting's name in the browser editor's API: its flag without the dashes (``--guidance`` → ``guidance``)."""
    return s.cli_flag[2:].replace("-", "_")


def gui_names(cls_or_obj) -> dict[str, str]:
    """{field: its name in a browser-editor message}: the API name in words (``mask draws``)."""
    return {s.name: api_name(s).replace("_", " ") for s in declared(cls_or_obj)}


def from_form(cls, values: dict[str, Any], **fixed: Any):
    """``cls`` from a web form's or an API client's values, keyed by field name: each loosely typed value is read
    as its declared type (``"2"``, ``10.0``; None or ``""``: the default), then every rule is checked; a message
    names the field as the page does (:func:`gui_names`)."""
    specs = {s.name: s for s in declared(cls)}
    names = gui_names(cls)
    kw = {}
    for k, v in values.items():
        v = coerce(specs[k], v, names[k], SdImageError)
        if v is not None:
            kw[k] = v
    return cls(**kw, **fixed).validate(names)
