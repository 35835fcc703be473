"""Command-line helpers shared by ``python -m sdimage`` (:mod:`sdimage.cli`) and its drag commands
(:mod:`sdimage.drag_cli`): the one-line-error parser, model / sampling options, input and output checks.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cliutil import MAX_SEED, OneLineParser, one_line
from cliutil import check_int as _check_int
from cliutil import check_new_file as _check_new_file
from cliutil import check_writable_dir as _check_writable_dir

from .errors import SdImageError

__all__ = ["Parser", "add_model_args", "add_task_args", "task_settings_from_args", "check_input_file", "check_out_path",
           "check_writable_dir", "check_model_args", "pipeline_from_args", "parse_point"]


class Parser(OneLineParser):
    """:class:`cliutil.OneLineParser` whose hint always reads ``python -m sdimage [COMMAND] --help`` (whatever
    ``prog`` argparse derived, e.g. from ``sys.argv[0]`` or a wrapping script)."""

    def error(self, message: str):
        words = self.prog.split()
        last = words[-1] if words else ""
        cmd = "python -m sdimage" + (f" {last}" if last and last not in ("sdimage", "__main__.py") else "")
        self.exit(2, f"error: {one_line(message)} (see `{cmd} --help`)\n")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model/--device/--dtype and the memory switches (shared by every task command, drag included)."""
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, help="local diffusers folder (with model_index.json) or a hub id")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    g.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    g.add_argument("--attention-slicing", action="store_true")
    g.add_argument("--vae-slicing", action="store_true")
    g.add_argument("--vae-tiling", action="store_true")
    g.add_argument("--cpu-offload", action="store_true", help="model CPU offload (accelerate; needs CUDA)")


def add_task_args(p: argparse.ArgumentParser, task: str, negative: bool = True) -> None:
    """A task's flags: the ODE/SDE switch, one flag per field of its settings declaration
    (:data:`sdimage.settings.TASK_SETTINGS`: type, rule, help), the prompt and output options."""
    from cliutil.settings import add_arguments
    from diffsamplers import SAMPLERS
    from diffsamplers.presets import preset_defaults

    from .backbones import families
    from .settings import TASK_SETTINGS

    cls = TASK_SETTINGS[task]
    g = p.add_argument_group(f"{task} settings")
    g.add_argument("--sampler", choices=list(SAMPLERS), default="sde", help="ODE or SDE (default sde)")
    has_preset = any(f == "preset" for f in cls.__dataclass_fields__)
    off, fast = preset_defaults("official"), preset_defaults("fast")
    per = ", ".join(f"{c.default_guidance:g} for {c.label}" + (" (its guidance embedding)" if c.guidance_embedded
                                                                else "") for c in families())
    text = {"guidance": f"per family: {per}",
            "steps": f"the --preset's; official {off.edit_steps}, fast {fast.edit_steps}" if has_preset
            else str(off.edit_steps),
            "solver": f"the --preset's; official {off.solver}, fast {fast.solver}" if has_preset else off.solver,
            "order": f"the --preset's; {off.order}" if has_preset else str(off.order)}
    defaults = {}
    if task == "reconstruct":
        defaults["guidance"], text["guidance"] = 1.0, "1"
    add_arguments(g, cls, defaults=defaults, default_text=text)
    if negative:
        g.add_argument("--negative-prompt", default="")
    g.add_argument("--out", required=True, help="output PNG; a JSON with the same stem is written beside it")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--strict-size", action="store_true",
                   help="error (instead of resizing down) when the image size is not divisible by the VAE factor")
    g.add_argument("--size", type=int, nargs="+", metavar="N",
                   help="resize the input first: one int (square) or WIDTH HEIGHT")


def task_settings_from_args(args):
    """The task's settings of the flags (the preset's defaults filled in), checked with messages naming the flags;
    the resolved values are written back onto ``args`` (the JSON's ``params``)."""
    from cliutil.settings import flags, from_args

    from .settings import TASK_SETTINGS

    cls = TASK_SETTINGS[args.command]
    st = from_args(cls, args)
    if args.command == "diffedit":
        st.validate(flags(cls), sampler=args.sampler)
    else:
        st.validate(flags(cls))
    for k, v in vars(st).items():
        setattr(args, k, v)
    return st


def check_input_file(path: str, what: str, image: bool = True) -> None:
    """Exists, is a file and (``image``: the default) is readable by PIL: checked before any model is loaded."""
    p = Path(path)
    if not p.exists():
        raise SdImageError(f"{what} file {path!r} does not exist")
    if not p.is_file():
        raise SdImageError(f"{what} path {path!r} is not a file")
    if not image:
        return
    from PIL import Image

    try:
        with Image.open(p) as im:
            im.verify()
    except Exception as err:
        raise SdImageError(f"cannot read {what} {path!r}: {err}") from None


def check_writable_dir(d: Path, flag: str) -> None:
    """``d`` is a writable folder or can be created (:func:`cliutil.check_writable_dir`, as an SdImageError)."""
    _check_writable_dir(d, flag, error=SdImageError)


def check_out_path(out: str) -> Path:
    """--out: a .png whose folder is writable and whose JSON twin is not a folder; checked before any work."""
    p = _check_new_file(out, "--out", [".png"], error=SdImageError)
    if p.with_suffix(".json").is_dir():
        raise SdImageError(f"--out: {str(p.with_suffix('.json'))!r} (the metadata file) is a folder")
    return p


def check_model_args(args) -> None:
    """--device and --seed checked before the model loads."""
    import torch

    try:
        dev = torch.device(args.device)
    except (RuntimeError, ValueError):
        raise SdImageError(f"--device {args.device!r} is not a device (cpu, cuda, cuda:1, mps, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SdImageError(f"--device {args.device} asked for, but CUDA is not available here")
    seed = getattr(args, "seed", None)
    _check_int(seed, "--seed", error=SdImageError)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise SdImageError(f"--seed must be in [0, 2**63 - 1], got {seed}")


def pipeline_from_args(args):
    """The pipeline of the model flags; on the CPU with float16, one accurate line instead of diffusers' three
    "running them will fail" warnings (silenced by the CLI: it does run, only slower)."""
    from cliutil import warning_line

    from .loading import load_pipeline

    if str(args.device).split(":")[0] == "cpu" and args.dtype == "float16" and not args.cpu_offload:
        warning_line("--dtype float16 on the CPU works but is usually slower than float32 (few half-precision CPU "
                     "kernels)")

    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype, attention_slicing=args.attention_slicing,
                         vae_slicing=args.vae_slicing, vae_tiling=args.vae_tiling, cpu_offload=args.cpu_offload)
    if hasattr(args, "guidance") and args.guidance is None:
        from .backbones import backbone

        args.guidance = backbone(pipe).default_guidance
    return pipe


def parse_point(text: str) -> tuple[int, int]:
    """'X,Y' (image pixels, integers) → (x, y)."""
    parts = str(text).replace(" ", "").split(",")
    if len(parts) != 2:
        raise SdImageError(f"point {text!r} must be X,Y (two integers, image pixels)")
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise SdImageError(f"point {text!r} must be X,Y (two integers, image pixels)") from None


# ------------------------------------------------------------------------------------------------ run-time estimate
SLOW_RUN_S = 120.0  # print the estimate when a CPU run is expected to take longer than this


def unet_flops(params: int, latent_px: int) -> float:
    """:func:`sdimage.backbones.unet_flops` (the UNet cost model; kept here for callers)."""
    from .backbones import unet_flops as flops

    return flops(params, latent_px)


def vae_flops(params: int, image_px: int) -> float:
    """FLOPs of one VAE decode plus one encode of ``image_px`` pixels (SD VAE: 2.5 + 1.1 TFLOP at 512², 84 M
    parameters; scaled linearly in parameters and pixels)."""
    return 3.6e12 * (params / 84e6) * (image_px / 512 ** 2)


def _matmul_flops_per_s(n: int = 768, reps: int = 3) -> float:
    import time

    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / max(time.perf_counter() - t, 1e-9)


def estimate_seconds(pipe, width: int, height: int, unet_rows: float, vae_passes: float = 1.0,
                     flops_per_s: float | None = None) -> float | None:
    """Rough CPU wall time of ``unet_rows`` UNet evaluations (batch rows: CFG counts 2) and ``vae_passes`` VAE
    encode + decode pairs at ``width`` × ``height``; None when the pipeline is not on the CPU.  The speed is this
    CPU's float32 matmul rate × 1.5 (what SD-1.5 convolutions reach with PyTorch's CPU kernels; measured on a 2-core
    box it was within a factor 2 at 256² and 512²)."""
    import torch

    from .backbones import execution_device

    if torch.device(execution_device(pipe)).type != "cpu":
        return None
    from .backbones import backbone

    bb = backbone(pipe)
    factor = bb.vae_factor
    lat_px = (width // factor) * (height // factor)
    vp = sum(p.numel() for p in bb.vae.parameters())
    flops = unet_rows * bb.row_flops(lat_px) + vae_passes * vae_flops(vp, width * height)
    if flops_per_s is None:
        if flops < 1e12:  # less than two SD-1.5 UNet rows at 512²: not worth measuring (tests, tiny models)
            return flops / 5e10
        flops_per_s = 1.5 * _matmul_flops_per_s()
    return flops / flops_per_s


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def note_if_slow(pipe, width: int, height: int, unet_rows: float, vae_passes: float = 1.0, what: str = "this run",
                 flops_per_s: float | None = None) -> float | None:
    """Print ONE line on stderr before a CPU run expected to take longer than :data:`SLOW_RUN_S`; returns the
    estimate (seconds, or None off the CPU).  Called when the checks are over and the work starts: the warning lines
    held so far are printed first (:func:`cliutil.work_starts`)."""
    import sys

    from cliutil import work_starts

    work_starts()
    est = estimate_seconds(pipe, width, height, unet_rows, vae_passes, flops_per_s)
    if est is not None and est > SLOW_RUN_S:
        print(f"note: {what} will take roughly {_duration(est)} on this CPU ({unet_rows:.0f} UNet evaluations at "
              f"{width}x{height}); a GPU (--device cuda) or a smaller --size is much faster", file=sys.stderr)
    return est


MAX_SIZE = 4096  # pixels per side (--size): a 4096² SD run needs ~40 GB for attention alone


def check_size(size, flag: str = "--size") -> None:
    """--size: one int (square) or WIDTH HEIGHT, each in [8, MAX_SIZE] pixels."""
    if not size:
        return
    if len(size) > 2:
        raise SdImageError(f"{flag} takes one int (square) or WIDTH HEIGHT, got {len(size)} numbers")
    for v in size:
        _check_int(v, flag, 8, MAX_SIZE, error=SdImageError)
