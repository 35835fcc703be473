"""``python -m sdimage drag`` and ``python -m sdimage dragbench`` (registered by :mod:`sdimage.cli`).

Every input check runs before the model is loaded and before anything is written; errors are
:class:`SdImageError` (one line on stderr, exit status 2 via ``sdimage.cli.main``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_common import (add_model_args, check_input_file, check_model_args, check_out_path, check_size,
                         check_writable_dir, note_if_slow, parse_point, pipeline_from_args)
from .errors import SdImageError

__all__ = ["add_parsers", "config_from_args"]


def _drag_params(q: argparse.ArgumentParser) -> None:
    """The drag flags, one per :class:`sdimage.settings.DragConfig` field (its declaration: type, rule, help), plus
    the sampler switch and the prompt options."""
    from cliutil.settings import add_arguments
    from diffsamplers import SAMPLERS
    from diffsamplers.presets import preset_defaults

    from .settings import DragConfig

    g = q.add_argument_group("SDE-Drag parameters (defaults: the official DragBench script, or the --preset's)")
    g.add_argument("--sampler", choices=sorted(SAMPLERS, reverse=True), default="sde", help="SDE-Drag (Cycle-SDE) or ODE-Drag (DDIM)")
    official, fast = DragConfig(), DragConfig(preset="fast")
    per_preset = {}
    for name in ("steps", "step_size", "lora_steps", "solver", "order"):  # None: the preset's
        a, b = getattr(official, name), getattr(fast, name)
        show = lambda v: "one operation" if v == float("inf") else f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
        per_preset[name] = f"the preset's; official {show(a)}, fast {show(b)}"
    assert preset_defaults("official").drag_steps == official.steps
    add_arguments(g, DragConfig, default_text=per_preset)
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--no-progress", action="store_true")


def config_from_args(args):
    """The :class:`DragConfig` of the flags, checked (messages name the flags) before any model loads."""
    from cliutil.settings import from_args

    from .settings import CONFIG_FLAGS, DragConfig

    try:
        return from_args(DragConfig, args).validate(CONFIG_FLAGS)
    except TypeError as err:  # pragma: no cover - a flag without a field
        raise SdImageError(str(err)) from None


def add_parsers(sub) -> None:
    q = sub.add_parser("drag", help="SDE-Drag / ODE-Drag: move --source points to --target points")
    add_model_args(q)
    q.add_argument("--image", required=True)
    q.add_argument("--mask", default=None, help="white = editable; outside it the image is kept (default: all)")
    q.add_argument("--resize-mask", action="store_true", help="resize a mask of another size (nearest neighbour)")
    q.add_argument("--source", action="append", default=[], metavar="X,Y", help="handle point (repeat for several)")
    q.add_argument("--target", action="append", default=[], metavar="X,Y", help="target point (same order)")
    q.add_argument("--prompt", required=True)
    q.add_argument("--out", required=True, help="output PNG; the JSON is written beside it")
    q.add_argument("--save-intermediates", default=None, metavar="DIR",
                   help="write the image after every drag operation, trajectory.gif and frames.json to DIR")
    q.add_argument("--size", type=int, nargs="+", metavar="N",
                   help="resize the input first: one int (square) or WIDTH HEIGHT (points are scaled with it)")
    q.add_argument("--strict-size", action="store_true",
                   help="error (instead of resizing down, points scaled) when the size is not divisible by the VAE "
                        "factor")
    _drag_params(q)
    q.set_defaults(func=_cmd_drag)

    q = sub.add_parser("dragbench", help="run (and evaluate) SDE-Drag / ODE-Drag on a DragBench folder; resumable")
    add_model_args(q)
    q.add_argument("--root", required=True, help="DragBench root (either layout, see docs/drag.md)")
    q.add_argument("--out", required=True, help="output folder: <sample>.png + .json per sample, metrics.json")
    q.add_argument("--evaluate", action="store_true", help="compute Image Fidelity and Mean Distance afterwards")
    q.add_argument("--eval-only", action="store_true", help="evaluate the existing results in --out, drag nothing")
    q.add_argument("--lpips-weights", default=None, metavar="DIR",
                   help="folder with alexnet-owt-7be5be79.pth and alex.pth (default $SDIMAGE_LPIPS_DIR, torch hub)")
    q.add_argument("--dift-model", default=None, metavar="M",
                   help="diffusers SD model for DIFT features (the papers use SD-2.1); required by --evaluate")
    q.add_argument("--dift-t", type=int, default=261)
    q.add_argument("--dift-up-index", type=int, default=1)
    q.add_argument("--dift-ensemble", type=int, default=8)
    q.add_argument("--overwrite", action="store_true",
                   help="resume into an --out made with other settings: its results are redone with these")
    _drag_params(q)
    q.set_defaults(func=_cmd_dragbench)


def _meta(args, info: dict) -> dict:
    params = {k: v for k, v in vars(args).items() if k != "func"}
    return {"command": args.command, "params": params, **info}


def _scale(p, w0: int, h0: int, w: int, h: int) -> tuple[int, int]:
    """A pixel point of a w0×h0 image on the same picture resized to w×h (floor: stays inside)."""
    return min(w - 1, p[0] * w // w0), min(h - 1, p[1] * h // h0)


def _cmd_drag(args) -> int:
    from cliutil import warning_line

    from .drag import drag, validate_points
    from .latents import image_multiple, load_image, load_mask
    from .runinfo import write_outputs

    out = check_out_path(args.out)
    check_model_args(args)
    check_size(args.size)
    if args.save_intermediates is not None:
        check_writable_dir(Path(args.save_intermediates), "--save-intermediates")
    check_input_file(args.image, "image")
    sources = [parse_point(p) for p in args.source]
    targets = [parse_point(p) for p in args.target]
    if not sources:
        raise SdImageError("give at least one --source X,Y and --target X,Y")
    if len(sources) != len(targets):
        raise SdImageError(f"{len(sources)} --source but {len(targets)} --target points: they must pair up")
    config = config_from_args(args)
    original = load_image(args.image, multiple=1)  # points are pixels of the input image as given
    h0, w0 = original.shape[-2:]
    validate_points(sources, targets, w0, h0)
    if args.mask is not None:
        check_input_file(args.mask, "mask")
        load_mask(args.mask, original, resize=args.resize_mask)  # size checked before the model loads
    pipe = pipeline_from_args(args)
    size = None if not args.size else (args.size[0] if len(args.size) == 1 else tuple(args.size))
    image = load_image(args.image, size=size, multiple=image_multiple(pipe), strict=args.strict_size)
    h, w = image.shape[-2:]
    resized = (w, h) != (w0, h0)
    if resized:  # like every command: resized (down to the VAE factor, or --size); the points go with the picture
        sources = [_scale(p, w0, h0, w, h) for p in sources]
        targets = [_scale(p, w0, h0, w, h) for p in targets]
        warning_line(f"drag points scaled from the {w0}x{h0} input to the {w}x{h} image")
    mask = None
    if args.mask is not None:  # a mask of the input's size (or any size with --resize-mask) follows the resize
        mask = load_mask(args.mask, image, resize=args.resize_mask or resized)
    _note_slow_drag(args, pipe, config, w, h, [(sources, targets)])
    res = drag(pipe, image, sources, targets, args.prompt, mask=mask, sampler=args.sampler, config=config,
               save_intermediates=args.save_intermediates, negative_prompt=args.negative_prompt,
               progress=not args.no_progress)
    result, info = res.image, res.info
    info["model"] = args.model
    if resized:
        info["input_image"] = {"size": [w0, h0], "sources": [list(map(int, p)) for p in map(parse_point, args.source)],
                               "targets": [list(map(int, p)) for p in map(parse_point, args.target)],
                               "rule": "points scaled with the picture: floor(p * new / old)"}
    png, js = write_outputs(result, out, _meta(args, info))
    print(f"wrote {png} and {js} ({info['num_drag_ops']} drag ops, NFE {info['nfe']}, {info['wall_s']:.1f} s)")
    return 0


def _note_slow_drag(args, pipe, config, w: int, h: int, point_sets, what: str | None = None) -> None:
    """One ``note:`` line before a long CPU run: 4·K UNet rows per drag operation (official count) + LoRA training
    (forward + backward ≈ 3 rows per step, per image)."""
    from diffsamplers import num_drag_ops

    from .drag import official_nfe
    from .latents import vae_factor

    f = vae_factor(pipe)
    rows = 0.0
    for src, tgt in point_sets:
        try:
            m = num_drag_ops([(x // f, y // f) for x, y in src], [(x // f, y // f) for x, y in tgt], config.step_size,
                             config.preset)
        except (ValueError, ZeroDivisionError):  # degenerate points: drag() says so in one line
            m = 1
        rows += official_nfe(config, m, args.sampler)["unet_rows"] + 3 * config.lora_steps
    note_if_slow(pipe, w, h, rows, vae_passes=len(point_sets), what=what or args.command)


def _metric_fns(args):
    from .metrics import DiftFeatures, load_lpips

    lpips = load_lpips(args.lpips_weights, device=args.device)
    if args.dift_model is None:
        raise SdImageError("--evaluate needs --dift-model (a local SD-2.1 diffusers folder for DIFT features)")
    from .loading import load_pipeline

    dift_pipe = load_pipeline(args.dift_model, device=args.device, dtype=args.dtype if args.dtype != "float64" else "float32")
    feats = DiftFeatures(dift_pipe, t=args.dift_t, up_ft_index=args.dift_up_index, ensemble=args.dift_ensemble)
    return lpips, feats


def _cmd_dragbench(args) -> int:
    from .dragbench import check_resume, evaluate_dragbench, find_samples, read_sample, run_dragbench, run_settings

    out = Path(args.out)
    check_writable_dir(out, "--out")
    check_model_args(args)
    config = config_from_args(args)
    samples = [read_sample(p, sid) for sid, p in find_samples(args.root)]  # validate every sample before any work
    if not args.eval_only:  # results of other settings in --out: refused before the model loads
        check_resume(out, run_settings(args.sampler, config, args.model, args.dtype, args.negative_prompt),
                     [s.id for s in samples], args.overwrite)
    lpips = feats = None
    if args.evaluate or args.eval_only:
        lpips, feats = _metric_fns(args)
    main = True
    if not args.eval_only:
        try:  # under `accelerate launch` / torchrun, each process takes its own GPU (or a CPU share, gloo)
            from accelerate import PartialState

            state = PartialState(cpu=args.device == "cpu")
            if state.num_processes > 1 and args.device == "cuda":
                args.device = str(state.device)
        except ImportError:  # pragma: no cover
            PartialState = None
        pipe = pipeline_from_args(args)
        if PartialState is None or PartialState().is_main_process:
            _note_slow_drag(args, pipe, config, *samples[0].size, [(s.sources, s.targets) for s in samples],
                            what=f"dragbench ({len(samples)} samples, finished ones are skipped)")
        summary = run_dragbench(pipe, args.root, out, sampler=args.sampler, config=config,
                                progress=not args.no_progress, meta={"model": args.model, "command": "dragbench"},
                                negative_prompt=args.negative_prompt, overwrite=args.overwrite)
        try:
            from accelerate import PartialState

            main = PartialState().is_main_process
        except ImportError:  # pragma: no cover
            pass
        if summary["num_processes"] > 1:  # every process says what it did (the split is checked in the tests)
            sys.stdout.write(f"dragbench process {summary['process_index']}/{summary['num_processes']}: dragged "
                             f"{summary['ran']}: {', '.join(summary['ran_ids'])}\n")  # one write: no interleaving
            sys.stdout.flush()
        if main:
            print(f"dragbench: {summary['samples']} samples, {summary['skipped']} already done, "
                  f"{summary['ran']} dragged here -> {out}")
    if main and (args.evaluate or args.eval_only):
        m = evaluate_dragbench(args.root, out, lpips=lpips, features=feats, progress=not args.no_progress)
        fid = "n/a" if m["image_fidelity"] is None else f"{m['image_fidelity']:.4f}"
        md = "n/a" if m["mean_distance"] is None else f"{m['mean_distance']:.2f}"
        print(f"evaluated {m['evaluated']}/{m['samples']} (missing {len(m['missing'])}): "
              f"Image Fidelity {fid}, Mean Distance {md} px -> {out / 'metrics.json'}")
    return 0
