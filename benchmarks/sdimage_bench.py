"""Benchmark of the sdimage tasks: NFE, wall time and overhead = wall / (NFE × one UNet call).

    .venv/bin/python benchmarks/sdimage_bench.py --out runs/sdimage_bench.json            # tiny model, 50 steps
    .venv/bin/python benchmarks/sdimage_bench.py --full --out runs/sdimage_bench_full.json  # SD-1.5-shaped, 2 steps
    .venv/bin/python benchmarks/sdimage_bench.py --full --device cuda --dtype float16 --out ...  # on a GPU

One UNet call is timed separately (median of repeats) at the batch the tasks use: 2 rows for classifier-free
guidance, 1 row when guidance is 1.  Three overheads per task, the UNet time measured inside the run by forward
hooks (so CPU contention hits numerator and denominator alike): ``overhead_sampling`` = sampler-loop wall / UNet
time (the cost of this package's plumbing around the UNet), ``overhead_total`` = whole-task wall (text encoder,
VAE encode/decode included) / UNet time, and ``overhead_nominal`` = whole-task wall / (NFE × one separately timed
UNet call), the issue's definition.  The NFE table compares against the diffusers
pipelines and the official SDE-Drag script at their default settings.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdimage import tasks  # noqa: E402
from sdimage.backbones import ARCHS, backbone  # noqa: E402
from sdimage.model import encode_prompt  # noqa: E402
from sdimage.runinfo import versions, write_meta_json  # noqa: E402

# NFE = UNet calls (a CFG call with both branches batched counts once) at default settings.
NFE_TABLE = [
    # task, reference implementation, its defaults, its UNet calls, ours at the same settings, ours at our defaults
    ("inpaint", "diffusers StableDiffusionInpaintPipeline", "50 steps, strength 1.0", 50,
     "50 (steps 50, strength 1)", "50"),
    ("translate", "diffusers StableDiffusionImg2ImgPipeline", "50 steps, strength 0.8", 40,
     "40 (--t0 0.8)", "25 (t0 0.5)"),
    ("diffedit ODE", "diffusers StableDiffusionDiffEditPipeline (generate_mask + invert + __call__)",
     "mask 1 call (10 maps), invert 50 steps x inpaint_strength 0.8 = 40, edit 40", 81,
     "81 (--t0 0.8: mask 1 + inversion 40 + DDIM 40)", "71 (t0 0.7: 1 + 35 + 35)"),
    ("diffedit SDE", "paper's Cycle-SDE DiffEdit", "50 steps, t0 0.7: record 35 + replay 35 (+ mask)", 71,
     "71 (mask 1 + record 35 + replay 35)", "71"),
    ("reconstruct", "DDIM inversion + DDIM / Cycle-SDE record + replay", "50 steps, t0 1", 100, "100", "100"),
    ("SDE-Drag (per drag operation)", "official SDE-Drag benchmark script", "200 steps, t0 0.6", 240,
     "see docs/sdimage.md drag section (sdimage.drag)", "record 120 + replay 120 = 240"),
]


class UnetClock:
    """Forward hooks accumulating the wall time spent inside ``pipe.unet`` (CUDA-synchronised)."""

    def __init__(self, unet):
        self.total = 0.0
        self._t = 0.0
        self.cuda = unet.device.type == "cuda"
        unet.register_forward_pre_hook(self._pre)
        unet.register_forward_hook(self._post)

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _pre(self, module, args):
        self._sync()
        self._t = time.perf_counter()

    def _post(self, module, args, out):
        self._sync()
        self.total += time.perf_counter() - self._t


def time_unet(pipe, batch: int, repeats: int, h: int, w: int) -> float:
    """Median wall time of one denoiser call (UNet or transformer, through its adapter) on ``batch`` rows."""
    bb = backbone(pipe)
    cond, _ = encode_prompt(pipe, "a photo", None)
    dev, dt = bb.denoiser.device, bb.dtype
    x = torch.randn(batch, bb.latent_channels, h, w, device=dev, dtype=dt)
    e = cond.to(dev, dt).expand(batch)
    label = bb.grid(10, (h, w)).timesteps[5]
    ts = []
    with torch.no_grad():
        for k in range(repeats + 1):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            bb.forward(x, label, e)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if k:  # first call is a warm-up
                ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="SD-1.5-shaped random pipeline, 2 steps")
    ap.add_argument("--arch", default=ARCHS[0],
                    help=f"tiny model family: {', '.join(ARCHS)}, or 'all' (one after another)")
    ap.add_argument("--model", default=None, help="a diffusers folder instead of the built-in random pipelines")
    ap.add_argument("--steps", type=int, default=None, help="default 50 (tiny) / 2 (full)")
    ap.add_argument("--size", type=int, default=None, help="image side in pixels (default 64 tiny / 512 full)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="UNet timing repeats")
    ap.add_argument("--tasks", default="inpaint,translate,diffedit,reconstruct,drag")
    ap.add_argument("--out", default="runs/sdimage_bench.json")
    a = ap.parse_args(argv)
    if a.arch == "all":  # one run (and one JSON, OUT_<arch>.json) per family
        for arch in ARCHS:
            run(argparse.Namespace(**{**vars(a), "arch": arch,
                                      "out": str(Path(a.out).with_name(f"{Path(a.out).stem}_{arch}.json"))}))
        return 0
    return run(a)


def run(a: argparse.Namespace) -> int:
    """One benchmark run for the parsed options ``a`` (one family)."""
    torch.set_num_threads(a.threads)
    from sdimage.loading import load_pipeline, parse_dtype
    from sdimage.backbones.sd import make_sd15_shaped_pipeline
    from sdimage.tiny import make_tiny_pipeline

    dtype = parse_dtype(a.dtype)
    if a.model:
        pipe = load_pipeline(a.model, device=a.device, dtype=a.dtype)
        label = a.model
    elif a.full:
        pipe = make_sd15_shaped_pipeline(seed=0, dtype=dtype).to(a.device)
        label = "random SD-1.5-shaped pipeline"
    else:
        pipe = make_tiny_pipeline(seed=0, arch=a.arch).to(a.device)
        if dtype != torch.float32:
            pipe = pipe.to(dtype=dtype)
        label = f"tiny random {a.arch} pipeline"
    steps = a.steps or (2 if a.full else 50)
    size = a.size or (512 if (a.full or a.model) else 64)
    f = pipe.vae_scale_factor
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(1, 3, size, size, generator=g) * 2 - 1)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    h = w = size // f
    unet_b2 = time_unet(pipe, 2, a.repeats, h, w)
    unet_b1 = time_unet(pipe, 1, a.repeats, h, w)
    print(f"{label}: one UNet call {unet_b2 * 1e3:.1f} ms (batch 2), {unet_b1 * 1e3:.1f} ms (batch 1)")
    clock = UnetClock(backbone(pipe).denoiser)
    runs = []
    selected = a.tasks.split(",")
    jobs = []
    for s in ("ode", "sde"):
        if "inpaint" in selected:
            jobs.append(("inpaint", s, lambda s=s: tasks.inpaint(pipe, image, mask, "a cat", sampler=s, steps=steps)))
        if "translate" in selected:
            jobs.append(("translate", s, lambda s=s: tasks.translate(pipe, image, "a dog", t0=0.5, sampler=s,
                                                                    steps=steps)))
        if "diffedit" in selected:
            jobs.append(("diffedit", s, lambda s=s: tasks.diffedit(pipe, image, "a cat", "a dog", t0=0.7, sampler=s,
                                                                  steps=steps, mask=mask)))
    if "reconstruct" in selected:
        for m in ("ode", "sde"):
            jobs.append(("reconstruct", m, lambda m=m: tasks.reconstruct(pipe, image, sampler=m, steps=steps)))
    if "drag" in selected:
        from sdimage.drag import DragConfig, drag

        for m in ("ode", "sde"):
            def run_drag(m=m):
                cfg = DragConfig(steps=steps, t0=0.6, lora_steps=0)
                _, info = drag(pipe, image, [(size // 4, size // 4)], [(size // 4 + 3 * f, size // 4 + 2 * f)],
                               "a photo", sampler=m, config=cfg)
                info["sampling_s"] = info["timing_s"]["drag"]
                return type("R", (), {"info": info})
            jobs.append(("drag", m, run_drag))
    for name, variant, job in jobs:
        clock.total = 0.0
        info = job().info
        rows, nfe = info["unet_rows"], info["nfe"]
        # nominal: NFE x one separately timed call at the batch the task uses (2 rows with CFG, 1 without)
        nominal = unet_b2 * (rows - nfe) + unet_b1 * (2 * nfe - rows) if rows <= 2 * nfe else unet_b2 * rows / 2
        r = {"task": name, "variant": variant, "nfe": nfe, "unet_rows": rows, "wall_s": info["wall_s"],
             "sampling_s": info.get("sampling_s"), "unet_in_run_s": round(clock.total, 4),
             "unet_nominal_s": round(nominal, 4),
             "overhead_total": round(info["wall_s"] / clock.total, 3),
             "overhead_sampling": round(info["sampling_s"] / clock.total, 3),
             "overhead_nominal": round(info["wall_s"] / nominal, 3),
             "peak_memory_bytes": info["peak_memory_bytes"], "peak_memory_kind": info["peak_memory_kind"]}
        if "latent_max_abs_error" in info:
            r["latent_max_abs_error"] = info["latent_max_abs_error"]
        runs.append(r)
        print(f"{name:12s} {variant:15s} NFE {nfe:4d}  wall {info['wall_s']:8.2f} s  sampling "
              f"{info.get('sampling_s', 0):8.2f} s  UNet {clock.total:8.2f} s  overhead sampling "
              f"{r['overhead_sampling']:.3f} total {r['overhead_total']:.3f} nominal {r['overhead_nominal']:.3f}")
    result = {
        "pipeline": label, "arch": backbone(pipe).arch, "device": a.device, "dtype": a.dtype, "threads": a.threads, "steps": steps,
        "image_size": size, "unet_call_s": {"batch2": unet_b2, "batch1": unet_b1}, "runs": runs,
        "nfe_table": [dict(zip(("task", "reference", "reference_defaults", "reference_nfe", "ours_same_settings",
                                "ours_defaults"), row)) for row in NFE_TABLE],
        "versions": versions(),
        "note": "NFE counts UNet calls; a classifier-free-guidance call batches both branches (2 rows).",
    }
    write_meta_json(a.out, result)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
