"""The main job: verify the theorem and run every lab in its quick setting, writing everything under results/.

Each stage is an ordinary CLI command of the package (printed before it runs), so any one can be rerun alone.
``--full`` drops the quick settings (slower: tens of minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stages(out: Path, quick: bool) -> list[tuple[str, list[str]]]:
    q = ["--quick"] if quick else []
    tiny = out / "sdimage" / "tiny-model"
    # The flux stages demonstrate one rectified-flow family on purpose (packed latents, embedded guidance) through the
    # same drag command; they name it rather than read the registry (sdimage.backbones.families), which would import
    # torch and diffusers into this driver and run a stage per family.  Every family is tested from the registry.
    tiny_flux = out / "sdimage" / "tiny-flux-model"
    img = out / "sdimage" / "input.png"
    return [
        ("theory", ["-m", "theory", "demo", "--out", str(out / "theory")]),
        ("toy kl-curves", ["-m", "toy", "kl-curves", *q, "--out", str(out / "toy" / "kl-curves")]),
        ("toy kl-curves rectified-flow", ["-m", "toy", "kl-curves", *q, "--config",
                                          str(ROOT / "examples" / "toy" / "kl_curves_rectified_flow.json"),
                                          "--out", str(out / "toy" / "kl-curves-rectified-flow")]),
        ("toy editing", ["-m", "toy", "editing", *q, "--out", str(out / "toy" / "editing")]),
        ("toy study", ["-m", "toy", "study", *q, "--out", str(out / "toy" / "study")]),
        ("digits", ["-m", "toy", "digits", "all", *q, "--out", str(out / "digits")]),
        ("toy score-error", ["-m", "toy", "score-error", *q, "--out", str(out / "toy" / "score-error")]),
        ("toy shapes drag", ["-m", "toy", "shapes", "drag", *q, "--out", str(out / "toy" / "shapes"),
                             "--cache", str(out / "cache" / "shapes")]),
        ("toy shapes drag textured", ["-m", "toy", "shapes", "drag", *q, "--config",
                                      str(ROOT / "examples" / "toy" / "shapes_textured_shaded.json"),
                                      "--out", str(out / "toy" / "shapes-textured"),
                                      "--cache", str(out / "cache" / "shapes")]),
        ("toy fast-study", ["-m", "toy", "fast-study", *q, "--out", str(out / "toy" / "fast-study"),
                            "--cache", str(out / "cache" / "shapes")]),
        ("sdimage tiny model", ["-m", "sdimage", "make-tiny-model", str(tiny), "--force"]),
        ("sdimage demo image", ["-m", "scripts.demo_image", str(img)]),
        ("sdimage translate (sde)", ["-m", "sdimage", "translate", "--model", str(tiny), "--image", str(img),
                                     "--prompt", "a photo", "--t0", "0.5", "--steps", "20", "--sampler", "sde",
                                     "--out", str(out / "sdimage" / "translate_sde.png")]),
        ("sdimage reconstruct (sde)", ["-m", "sdimage", "reconstruct", "--model", str(tiny), "--image", str(img),
                                       "--sampler", "sde", "--steps", "20", "--dtype", "float64",
                                       "--out", str(out / "sdimage" / "reconstruct.png")]),
        ("sdimage drag (sde)", ["-m", "sdimage", "drag", "--model", str(tiny), "--image", str(img),
                                "--source", "20,20", "--target", "36,28", "--prompt", "a photo", "--sampler", "sde",
                                "--steps", "20", "--lora-steps", "0", "--out", str(out / "sdimage" / "drag_sde.png")]),
        ("sdimage tiny flux model", ["-m", "sdimage", "make-tiny-model", str(tiny_flux), "--arch", "flux", "--force"]),
        ("sdimage drag (sde, fast preset)", ["-m", "sdimage", "drag", "--model", str(tiny), "--image", str(img),
                                             "--source", "20,20", "--target", "36,28", "--prompt", "a photo",
                                             "--sampler", "sde", "--preset", "fast",
                                             "--out", str(out / "sdimage" / "drag_sde_fast.png")]),
        ("sdimage drag flux (sde)", ["-m", "sdimage", "drag", "--model", str(tiny_flux), "--image", str(img),
                                     "--source", "20,20", "--target", "36,28", "--prompt", "a photo", "--sampler",
                                     "sde", "--steps", "20", "--lora-steps", "0",
                                     "--out", str(out / "sdimage" / "drag_flux_sde.png")]),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run.sh", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--full", action="store_true", help="full settings instead of --quick")
    ap.add_argument("--only", nargs="*", default=None, help="run only stages whose name starts with one of these")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name, cmd in stages(args.out, quick=not args.full):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        print(f"== {name}: python {' '.join(cmd)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, *cmd])
        out_rel = None
        if "--out" in cmd:
            try:
                out_rel = str(Path(cmd[cmd.index("--out") + 1]).resolve().relative_to(args.out.resolve()))
            except ValueError:
                out_rel = None
        summary.append({"stage": name, "command": ["python", *cmd], "exit_code": rc,
                        "seconds": round(time.perf_counter() - t, 2), "out": out_rel})
        print(f"   -> exit {rc} in {summary[-1]['seconds']} s", flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    from .results_page import write_page

    page = write_page(args.out, summary)
    failed = [s["stage"] for s in summary if s["exit_code"] != 0]
    print(f"results in {args.out}/ ; {len(summary) - len(failed)} of {len(summary)} stages ok" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"results page: {page} (and {args.out / 'README.md'})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
