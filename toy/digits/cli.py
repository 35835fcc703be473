"""``python -m toy digits {inpaint,translate,diffedit,drag,all,train,train-classifier} ...`` (also ``python -m toy.digits``)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from cliutil import BadInput, OneLineParser, check_int, check_new_file, check_number

from ..io import run_command

__all__ = ["add_parser", "build_parser", "main", "train_command", "EXPERIMENTS", "check_learned_checkpoint"]

EXPERIMENTS = ("inpaint", "translate", "diffedit", "drag", "all")


def check_learned_checkpoint(path) -> None:
    """A learned-UNet checkpoint (``python -m toy digits train`` writes one) that loads; one line otherwise."""
    from .learned import load_learned

    try:
        load_learned(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - garbage, truncated or foreign files: one line, no traceback
        raise BadInput(f"--checkpoint {str(path)!r} is not a learned digits UNet checkpoint "
                       f"(`python -m toy digits train` writes one): {type(exc).__name__}") from None


def _run(args) -> int:
    import torch

    from ..cli import check_common_args

    check_common_args(args)
    if args.model == "learned":
        check_learned_checkpoint(args.checkpoint)
    elif args.checkpoint is not None:
        raise BadInput("--checkpoint is used by --model learned only")
    torch.set_num_threads(max(1, args.threads))
    from .common import make_context
    from .suite import run_all, run_experiment

    ctx = make_context(args.model, args.quick, args.seed, args.checkpoint)
    t0 = time.time()
    out = Path(args.out)
    if args.experiment == "all":
        run_all(ctx, out)
        print(f"digits all ({args.model}): wrote {out / 'report.json'} and {out / 'report.md'} in {time.time() - t0:.1f} s")
    else:
        run_experiment(args.experiment, ctx, out)
        print(f"digits {args.experiment} ({args.model}): wrote {out / (args.experiment + '.json')} in {time.time() - t0:.1f} s")
    return 0


def _channels(text: str) -> tuple[int, ...]:
    try:
        ch = tuple(int(c) for c in str(text).split(","))
    except ValueError:
        raise BadInput(f"--channels must be comma-separated integers such as 16,32,32, got {text!r}") from None
    if not 1 <= len(ch) <= 4:
        raise BadInput(f"--channels takes 1 to 4 levels (16×16 images), got {len(ch)}")
    for c in ch:
        check_int(c, "--channels", 8, 1024)
        if c % 8:  # the UNet's group norm has 8 groups
            raise BadInput(f"--channels must be multiples of 8 (group norm), got {c}")
    return ch


def _check_train_args(args):
    """Every train flag before any folder is made or any step is run."""
    from ..cli import check_common_args
    from .learned import TrainConfig, UNetConfig

    check_common_args(args)
    check_number(args.minutes, "--minutes", 0.0, 24 * 60.0, lo_open=True)
    check_int(args.max_steps, "--max-steps", 1, 10_000_000)
    check_number(args.lr, "--lr", 0.0, 1.0, lo_open=True)
    check_int(args.batch_size, "--batch-size", 1, 65_536)
    check_int(args.warmup, "--warmup", 1, 10_000_000)
    check_number(args.ema_decay, "--ema-decay", 0.0, 1.0, hi_open=True)
    if args.save:
        check_new_file(args.save, "--save", [".pt"])
    cfg = TrainConfig(minutes=args.minutes, max_steps=args.max_steps, seed=args.seed, lr=args.lr,
                      batch_size=args.batch_size, warmup=args.warmup, ema_decay=args.ema_decay)
    return cfg, UNetConfig(block_out_channels=_channels(args.channels))


def _train(args) -> int:
    import torch

    cfg, ucfg = _check_train_args(args)
    torch.set_num_threads(max(1, args.threads))
    from .data import load_digits
    from .learned import train_unet
    from .mixture import build_mixture

    mix = build_mixture(load_digits())
    meta = train_unet(mix, args.out, cfg, ucfg, final_path=args.save, command=train_command(args))
    print(f"trained {meta['steps']} steps in {meta['train_seconds']:.0f} s; "
          f"score error {meta['score_error']['mean_sq_eps_error']:.4g}; wrote {Path(args.out) / 'unet_digits16.pt'}")
    return 0


def train_command(args) -> str:
    """The command line that reproduces a parsed ``train`` invocation (recorded in the checkpoint metadata)."""
    parts = ["python -m toy.digits train", f"--minutes {args.minutes:g}", f"--max-steps {args.max_steps}",
             f"--channels {args.channels}", f"--lr {args.lr:g}", f"--batch-size {args.batch_size}",
             f"--warmup {args.warmup}", f"--ema-decay {args.ema_decay:g}", f"--seed {args.seed}",
             f"--threads {args.threads}", f"--out {args.out}"]
    if args.save:
        parts.append(f"--save {args.save}")
    return " ".join(parts)


def _train_classifier(args) -> int:
    import torch

    from ..cli import check_common_args

    check_common_args(args)
    check_int(args.epochs, "--epochs", 1, 10_000)
    check_new_file(args.save, "--save", [".pt"])
    torch.set_num_threads(max(1, args.threads))
    from .data import load_digits
    from .metrics import train_classifier
    from .mixture import build_mixture

    data = load_digits()
    train, test = data.split()
    mix = build_mixture(data)
    g = torch.Generator().manual_seed(1)
    xs, k = mix.sample(4500, g, return_components=True)
    net, _ = train_classifier(train.images, train.labels, epochs=args.epochs, extra=(xs, mix.labels[k]), path=args.save)
    acc = float((net(test.images).argmax(1) == test.labels).float().mean())
    print(f"classifier: held-out accuracy {acc:.3f}; wrote {args.save}")
    return 0


def _add_commands(sub) -> None:
    for name in EXPERIMENTS:
        p = sub.add_parser(name, help=f"digits experiment: {name}")
        p.add_argument("--quick", action="store_true", help="small, fast settings")
        p.add_argument("--model", choices=("exact", "learned"), default="exact")
        p.add_argument("--checkpoint", help="learned UNet checkpoint (default: packaged toy/digits/data/unet_digits16.pt)")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
        p.set_defaults(func=_run, experiment=name)
    p = sub.add_parser("train", help="train the learned UNet on mixture samples (CPU, wall-clock budget)")
    p.add_argument("--minutes", type=float, default=14.0)
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--save", help="also write the final fp16 EMA checkpoint here")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--channels", default="16,32,32", help="UNet block_out_channels, comma-separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_train)
    p = sub.add_parser("train-classifier", help="train the digit CNN used for Fréchet distances")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--save", default=str(Path(__file__).parent / "data" / "classifier16.pt"))
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_train_classifier)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``digits`` with its sub-commands on the ``python -m toy`` parser."""
    p = subparsers.add_parser("digits", help="pixel-space digits test bed with an exact model (issue 6)")
    sub = p.add_subparsers(dest="digits_command", required=True)
    _add_commands(sub)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m toy.digits", description="Digits test bed: SDE vs ODE editing.")
    _add_commands(parser.add_subparsers(dest="digits_command", required=True, parser_class=OneLineParser))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))
