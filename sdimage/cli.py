"""``python -m sdimage <command>``: make-tiny-model, inpaint, translate, diffedit, reconstruct, drag, dragbench
(the last two from :mod:`sdimage.drag_cli`; shared helpers in :mod:`sdimage.cli_common`).

Bad input raises :class:`SdImageError`; :func:`main` prints it as ONE line on stderr and exits with status 2,
before anything is written (outputs are written atomically at the very end).
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Sequence

from . import drag_cli
from .cli_common import (Parser, add_model_args, add_task_args, check_input_file, check_model_args, check_out_path,
                         check_size, pipeline_from_args, task_settings_from_args)
from .errors import SdImageError

__all__ = ["main", "build_parser"]


def _size(args):
    s = getattr(args, "size", None)
    if not s:
        return None
    if len(s) > 2:
        raise SdImageError("--size takes one int (square) or WIDTH HEIGHT")
    return s[0] if len(s) == 1 else (s[0], s[1])


def _check_common(args) -> None:
    """Every check that needs no model: the task's settings (their declared rules, the preset's defaults filled in),
    device, seed, output writable, input readable."""
    task_settings_from_args(args)
    check_size(getattr(args, "size", None))
    check_model_args(args)
    check_out_path(args.out)
    check_input_file(args.image, "image")


def _load_image(args, pipe):
    from .latents import image_multiple, load_image

    return load_image(args.image, size=_size(args), multiple=image_multiple(pipe), strict=args.strict_size)


def _mask_resize(args, image) -> bool:
    """``--resize-mask``, or a mask of the input image's own size when the image itself was resized (to the VAE
    factor or ``--size``): that mask follows the picture (nearest neighbour), as drag's does."""
    if args.resize_mask:
        return True
    from PIL import Image

    with Image.open(args.image) as im, Image.open(args.mask) as mk:
        given, mask_size = im.size, mk.size
    return mask_size == given and tuple(image.shape[-2:][::-1]) != given


def _note_slow(args, pipe, image, steps: float, extra_rows: float = 0.0) -> None:
    """One ``note:`` line on stderr when the run is expected to be long on the CPU (``steps`` UNet steps, ×2 rows
    with classifier-free guidance, plus ``extra_rows``)."""
    from .cli_common import note_if_slow

    cfg = 2 if (getattr(args, "guidance", None) or 0) > 1 else 1
    h, w = image.shape[-2:]
    note_if_slow(pipe, w, h, cfg * steps + extra_rows, what=f"{args.command}")


def _meta(args, info: dict) -> dict:
    from .runinfo import versions

    params = {k: v for k, v in vars(args).items() if k != "func"}
    return {"command": args.command, "model": args.model, "params": params, **info, "versions": versions()}


def _finish(args, image, info) -> int:
    from .runinfo import write_outputs

    png, js = write_outputs(image, args.out, _meta(args, info))
    print(f"wrote {png} and {js} (NFE {info.get('nfe')}, {info.get('wall_s', 0):.2f} s)")
    return 0


# --------------------------------------------------------------------------------------------------- commands
def _cmd_make_tiny(args) -> int:
    from .tiny import save_tiny_model

    d = Path(args.dir)
    if d.exists() and not d.is_dir():
        raise SdImageError(f"{args.dir!r} is a file, not a folder")
    from .cli_common import check_writable_dir

    check_writable_dir(d, "make-tiny-model")
    if d.exists() and any(d.iterdir()) and not args.force:
        raise SdImageError(f"{args.dir!r} exists and is not empty (pass --force to overwrite)")
    from .backbones import adapter_class

    family = adapter_class(args.arch)
    if args.inpaint and not family.tiny_inpaint:
        raise SdImageError(f"--arch {args.arch} has no inpainting variant: --inpaint does not apply")
    if args.v_prediction and "v_prediction" not in family.tiny_prediction_types:
        raise SdImageError(f"--arch {args.arch} has no prediction type option: --v-prediction does not apply")
    save_tiny_model(d, seed=args.seed, inpaint=args.inpaint,
                    prediction_type="v_prediction" if args.v_prediction else "epsilon", arch=args.arch)
    print(f"wrote tiny {args.arch} {'inpainting ' if args.inpaint else ''}model to {d}")
    return 0


def _cmd_inpaint(args) -> int:
    from . import tasks
    from .latents import load_mask

    _check_common(args)
    check_input_file(args.mask, "mask")
    pipe = pipeline_from_args(args)
    image = _load_image(args, pipe)
    mask = load_mask(args.mask, image, resize=_mask_resize(args, image))
    if float(mask.sum()) == 0:  # before the work starts (and before the held warnings are printed)
        raise SdImageError(f"the mask is empty (no pixel of {args.mask!r} is >= 128): nothing to inpaint")
    _note_slow(args, pipe, image, args.steps * (args.strength or 1.0))
    res = tasks.inpaint(pipe, image, mask, args.prompt, sampler=args.sampler, solver=args.solver,
                              order=args.order, eta=args.eta, steps=args.steps, guidance=args.guidance,
                              negative_prompt=args.negative_prompt, seed=args.seed, strength=args.strength,
                              renoise=args.renoise, progress=not args.no_progress)
    return _finish(args, res.image, res.info)


def _cmd_translate(args) -> int:
    from . import tasks

    _check_common(args)
    pipe = pipeline_from_args(args)
    image = _load_image(args, pipe)
    _note_slow(args, pipe, image, args.steps * args.t0)
    res = tasks.translate(pipe, image, args.prompt, t0=args.t0, sampler=args.sampler, solver=args.solver,
                          order=args.order, eta=args.eta, steps=args.steps, guidance=args.guidance,
                          negative_prompt=args.negative_prompt, seed=args.seed, progress=not args.no_progress)
    res.info["preset"] = args.preset
    return _finish(args, res.image, res.info)


def _cmd_diffedit(args) -> int:
    from . import tasks
    from .latents import load_mask

    _check_common(args)
    if args.mask is not None:
        check_input_file(args.mask, "mask")
    pipe = pipeline_from_args(args)
    image = _load_image(args, pipe)
    mask = load_mask(args.mask, image, resize=_mask_resize(args, image)) if args.mask else None
    if mask is not None and float(mask.sum()) == 0:
        raise SdImageError(f"the mask is empty (no pixel of {args.mask!r} is >= 128): nothing to edit (leave out "
                           "--mask for DiffEdit's automatic mask)")
    _note_slow(args, pipe, image, 2 * args.steps * args.t0, 0 if args.mask else 2 * args.mask_draws)
    res = tasks.diffedit(pipe, image, args.source_prompt, args.target_prompt, t0=args.t0, sampler=args.sampler,
                         steps=args.steps, guidance=args.guidance, seed=args.seed, mask=mask,
                         mask_draws=args.mask_draws, mask_t0=args.mask_t0, preset=args.preset,
                         solver=args.solver, order=args.order, progress=not args.no_progress)
    return _finish(args, res.image, res.info)


def _cmd_reconstruct(args) -> int:
    from . import tasks

    _check_common(args)
    pipe = pipeline_from_args(args)
    image = _load_image(args, pipe)
    _note_slow(args, pipe, image, 2 * args.steps * args.t0)
    res = tasks.reconstruct(pipe, image, sampler=args.sampler, steps=args.steps, t0=args.t0, prompt=args.prompt,
                            guidance=args.guidance, seed=args.seed, solver=args.solver, order=args.order,
                            progress=not args.no_progress)
    res.info["preset"] = args.preset
    print(f"latent max |error| {res.info['latent_max_abs_error']:.3e}, pixel RMSE {res.info['pixel_rmse']:.3e}")
    return _finish(args, res.image, res.info)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m sdimage", description="Stable Diffusion editing with ODE or SDE samplers "
                "(Nie et al., ICLR 2024: SDE beats ODE in diffusion-based image editing).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("make-tiny-model", help="write a tiny random-weight pipeline (offline tests, smoke runs)")
    t.add_argument("dir")
    from .backbones import families

    fams = families()
    t.add_argument("--arch", choices=[c.arch for c in fams], default=fams[0].arch,
                   help="model family: " + ", ".join(f"{c.arch} ({c.label})" for c in fams)
                        + f"; default {fams[0].arch}")
    t.add_argument("--inpaint", action="store_true", help="9-channel inpainting UNet")
    t.add_argument("--v-prediction", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--force", action="store_true", help="write into a non-empty folder")
    t.set_defaults(func=_cmd_make_tiny)

    q = sub.add_parser("inpaint", help="inpaint the white region of --mask")
    add_model_args(q)
    q.add_argument("--image", required=True)
    q.add_argument("--mask", required=True, help="white = inpaint, black = keep (thresholded at 0.5)")
    q.add_argument("--resize-mask", action="store_true", help="resize a mask of another size (nearest neighbour)")
    q.add_argument("--prompt", default="")
    add_task_args(q, "inpaint")
    q.set_defaults(func=_cmd_inpaint)

    q = sub.add_parser("translate", help="SDEdit image-to-image translation (and its ODE counterpart)")
    add_model_args(q)
    q.add_argument("--image", required=True)
    q.add_argument("--prompt", required=True)
    add_task_args(q, "translate")
    q.set_defaults(func=_cmd_translate)

    q = sub.add_parser("diffedit", help="DiffEdit: automatic mask, then ODE (DDIM inversion) or SDE (Cycle-SDE) edit")
    add_model_args(q)
    q.add_argument("--image", required=True)
    q.add_argument("--source-prompt", required=True)
    q.add_argument("--target-prompt", required=True)
    q.add_argument("--mask", default=None, help="use this mask instead of the automatic one (white = edit)")
    q.add_argument("--resize-mask", action="store_true")
    add_task_args(q, "diffedit", negative=False)
    q.set_defaults(func=_cmd_diffedit)

    q = sub.add_parser("reconstruct", help="encode + decode with Cycle-SDE (sde) or DDIM inversion (ode); reports the error")
    add_model_args(q)
    q.add_argument("--image", required=True)
    q.add_argument("--prompt", default="")
    add_task_args(q, "reconstruct", negative=False)
    q.set_defaults(func=_cmd_reconstruct)

    drag_cli.add_parsers(sub)
    from .gui import add_parser as add_gui_parser  # `gui`: Gradio itself is imported only when the command runs

    add_gui_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input (:class:`SdImageError`) → one ``error:`` line, exit 2; any other failure → one line, exit 1
    (:func:`cliutil.run_cli`); transformers' / diffusers' logger chatter is off while the command runs.  Warnings
    (one ``warning:`` line each) are held until the work starts: a refused run prints only its error
    (:mod:`cliutil.held_warnings`)."""
    from cliutil import hold_warnings, quiet_third_party_logs, run_cli

    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings(), quiet_third_party_logs(), hold_warnings() as held:
        from .latents import SdImageWarning

        warnings.simplefilter("always", SdImageWarning)
        return run_cli(lambda: args.func(args), held=held)
