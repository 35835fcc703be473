"""Command-line helpers shared by ``python -m sdimage`` (:mod:`sdimage.cli`) and its drag commands
(:mod:`sdimage.drag_cli`): the one-line-error parser, model / sampling options, input and output checks.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .errors import SdImageError

__all__ = ["Parser", "add_model_args", "add_sampling_args", "add_preset_arg", "check_input_file", "check_out_path",
           "check_writable_dir", "check_number", "check_model_args", "pipeline_from_args", "parse_point"]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints the whole usage block)
        words = self.prog.split()
        cmd = "python -m sdimage" + (f" {words[-1]}" if words[-1] != "sdimage" else "")
        self.exit(2, f"error: {message} (see `{cmd} --help`)\n")


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


def add_sampling_args(p: argparse.ArgumentParser, steps: int = 50, guidance: float = 7.5, sampler: str = "sde") -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--sampler", choices=["ode", "sde"], default=sampler, help=f"ODE or SDE (default {sampler})")
    g.add_argument("--steps", type=int, default=steps, help=f"number of steps of the full schedule (default {steps})")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--guidance", type=float, default=guidance, help=f"classifier-free guidance (default {guidance})")
    g.add_argument("--out", required=True, help="output PNG; a JSON with the same stem is written beside it")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--strict-size", action="store_true",
                   help="error (instead of resizing down) when the image size is not divisible by the VAE factor")
    g.add_argument("--size", type=int, nargs="+", metavar="N",
                   help="resize the input first: one int (square) or WIDTH HEIGHT")


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
    """``d`` exists as a writable folder or can be created (its nearest existing parent is a writable folder)."""
    import os

    q = d
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise SdImageError(f"{flag}: {str(q)!r} is a file, so {str(d)!r} cannot be a folder")
    if not os.access(q, os.W_OK | os.X_OK):
        raise SdImageError(f"{flag}: {str(q)!r} is not writable")


def check_out_path(out: str) -> Path:
    """--out: a .png whose folder is writable and whose JSON twin is not a folder; checked before any work."""
    p = Path(out)
    if p.suffix.lower() != ".png":
        raise SdImageError(f"--out must end in .png, got {out!r}")
    if p.exists() and p.is_dir():
        raise SdImageError(f"--out {out!r} is a directory")
    if p.with_suffix(".json").is_dir():
        raise SdImageError(f"--out: {str(p.with_suffix('.json'))!r} (the metadata file) is a directory")
    check_writable_dir(p.parent, "--out")
    return p


def check_number(value, flag: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> None:
    """A finite number within [lo, hi] (or (lo, hi] with ``lo_open``); one clear line otherwise."""
    import math

    if value is None:
        return
    if not math.isfinite(float(value)):
        raise SdImageError(f"{flag} must be a finite number, got {value}")
    low = lo is not None and (value <= lo if lo_open else value < lo)
    high = hi is not None and value > hi
    if (low or high) and lo is not None and hi is not None:
        raise SdImageError(f"{flag} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {value}")
    if low:
        raise SdImageError(f"{flag} must be {'>' if lo_open else '>='} {lo:g}, got {value}")
    if high:
        raise SdImageError(f"{flag} must be <= {hi:g}, got {value}")


MAX_SEED = 2 ** 63 - 1
MAX_STEPS = 1000


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
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise SdImageError(f"--seed must be in [0, 2**63 - 1], got {seed}")


def pipeline_from_args(args):
    from .loading import load_pipeline

    return load_pipeline(args.model, device=args.device, dtype=args.dtype, attention_slicing=args.attention_slicing,
                         vae_slicing=args.vae_slicing, vae_tiling=args.vae_tiling, cpu_offload=args.cpu_offload)


def add_preset_arg(p: argparse.ArgumentParser) -> None:
    """--preset official|clean (drag and DiffEdit; see docs/drag.md and docs/sdimage.md for the differences)."""
    p.add_argument("--preset", choices=["official", "clean"], default="official",
                   help="official: reproduce the paper's code (default); clean: this package's consistent rules")


def parse_point(text: str) -> tuple[int, int]:
    """'X,Y' (image pixels, integers) → (x, y)."""
    parts = str(text).replace(" ", "").split(",")
    if len(parts) != 2:
        raise SdImageError(f"point {text!r} must be X,Y (two integers, image pixels)")
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise SdImageError(f"point {text!r} must be X,Y (two integers, image pixels)") from None
