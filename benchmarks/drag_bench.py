"""SDE-Drag / ODE-Drag cost: NFE per drag operation and per image (vs the official script), wall time, overhead.

    .venv/bin/python benchmarks/drag_bench.py [--full] [--out docs/figures/drag/drag_bench.json]

1. NFE at the default settings (200 steps, t0 = 0.6, CFG 1 -> 3), counted by running the real loop with a stub
   UNet (no compute), against the official script's count derived from its code (``sdimage.drag.official_nfe``).
2. Wall time on the tiny random model (64x64) with a reduced grid, and overhead = loop wall time / time spent
   inside ``unet.forward`` (measured with forward hooks, so CPU contention affects both sides alike).
3. ``--full``: the same for a full-size random-weight SD-1.5 UNet (512x512 image, 64x64 latent) on a 2-step pass.
4. ``--presets``: official vs fast (issue 19) — NFE per edit counted with the stub UNet at each preset's own full
   settings for drags of 2, 4, 10 and 20 latent px; the tiny model's real loop at both presets' settings (NFE,
   seconds per edit, overhead); with ``--full`` also the fast loop on the full-size UNet (a 2-step pass, for its
   overhead and seconds per NFE) and seconds per 512² edit for both presets = NFE × that measured s/NFE
   (the official edit itself would take hours on this CPU).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffsamplers import num_drag_ops
from sdimage.drag import DragConfig, drag, drag_grids, drag_latents, drag_schedules, official_nfe
from sdimage.model import make_eps_model
from sdimage.tiny import make_tiny_pipeline


class UnetTimer:
    """Accumulates seconds spent in ``unet.forward`` (pre/post forward hooks)."""

    def __init__(self, unet) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._t = 0.0
        self.h = [unet.register_forward_pre_hook(self._pre), unet.register_forward_hook(self._post)]

    def _pre(self, *a):
        self._t = time.perf_counter()

    def _post(self, *a):
        self.seconds += time.perf_counter() - self._t
        self.calls += 1

    def remove(self):
        for h in self.h:
            h.remove()


class StubUnet(torch.nn.Module):
    """Returns zeros: counts the loop's UNet work at full settings without computing anything."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.dtype = torch.float32
        self.rows = 0
        self.register_buffer("anchor", torch.zeros(1))

    @property
    def device(self) -> torch.device:  # the pipeline reads its device from its modules
        return self.anchor.device

    def forward(self, x, t, encoder_hidden_states=None, cross_attention_kwargs=None, return_dict=False):
        self.rows += x.shape[0]
        return (torch.zeros_like(x),)


def count_nfe(pipe, sampler: str, distance: float, config: DragConfig) -> dict:
    """NFE of one drag of ``distance`` latent px at ``config``, counted by running the real loop on a stub UNet."""
    stub = StubUnet(pipe.unet.config)
    fake = type(pipe)(**{**pipe.components, "unet": stub})  # the same pipeline class around the stub
    grid, fgrid = drag_grids(pipe, config)
    cond = torch.zeros(1, 77, pipe.unet.config.cross_attention_dim)
    model = make_eps_model(fake, cond, cond)
    src, tgt = [(4, 16)], [(4 + int(distance), 16)]
    m = num_drag_ops(src, tgt, config.step_size, config.preset)
    drag_latents(model, torch.zeros(1, 4, 32, 32), grid, src, tgt, None, sampler, config, forward_grid=fgrid,
                 schedules=drag_schedules(config, False))
    off = official_nfe(config, m, sampler)
    return {"sampler": sampler, "distance_latent_px": distance, "drag_ops": m, "nfe": model.nfe,
            "nfe_per_op": model.nfe / m, "unet_rows": model.unet_rows, "lora_train_steps": config.lora_steps,
            "official_unet_calls": off["unet_calls"], "official_eps_evals": off["eps_evals"],
            "official_unet_rows": off["unet_rows"]}


def time_loop(pipe, sampler: str, config: DragConfig, latent_hw: int, cond_dim: int, repeats: int = 1,
              distance: int = 1) -> dict:
    """Wall time of ``drag_latents`` (a drag of ``distance`` latent px) and the UNet's share."""
    grid, fgrid = drag_grids(pipe, config)
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(1, 77, cond_dim, generator=gen)
    x0 = torch.randn(1, 4, latent_hw, latent_hw, generator=gen)
    best = None
    for _ in range(repeats):
        model = make_eps_model(pipe, cond, torch.zeros_like(cond))
        timer = UnetTimer(pipe.unet)
        t = time.perf_counter()
        drag_latents(model, x0, grid, [(2, 2)], [(2 + distance, 2)], None, sampler, config, forward_grid=fgrid,
                     schedules=drag_schedules(config, False))
        wall = time.perf_counter() - t
        timer.remove()
        row = {"sampler": sampler, "grid_steps": grid.num_steps, "nfe": model.nfe, "wall_s": wall,
               "unet_s": timer.seconds, "overhead": wall / timer.seconds, "s_per_nfe": wall / model.nfe}
        if best is None or row["wall_s"] < best["wall_s"]:
            best = row
    return best


def full_pipe():
    """Tiny VAE/scheduler + a full-size SD-1.5 UNet with random weights (only the UNet matters for the loop)."""
    from diffusers import UNet2DConditionModel

    tiny = make_tiny_pipeline(0)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()  # SD-1.5 layout (860 M params)
    return type(tiny)(**{**tiny.components, "unet": unet})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/figures/drag/drag_bench.json")
    ap.add_argument("--full", action="store_true", help="also time a full-size random SD-1.5 UNet (2-step pass)")
    ap.add_argument("--tiny-steps", type=int, default=20, help="grid for the tiny-model timing (default 20)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest on a small shared box)")
    ap.add_argument("--presets", action="store_true", help="official vs fast only (section 4)")
    args = ap.parse_args()
    if args.presets:
        if args.threads:
            torch.set_num_threads(args.threads)
        return presets_main(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    res: dict = {"machine": "shared 2-core CPU (other jobs running: timings inflated)", "torch_threads": torch.get_num_threads()}
    pipe = make_tiny_pipeline(0)
    default = DragConfig()
    res["nfe_default"] = [count_nfe(pipe, s, d, default) for s in ("sde", "ode") for d in (2.0, 10.0, 20.0)]
    for r in res["nfe_default"]:
        print(f"NFE {r['sampler']} D={r['distance_latent_px']:>4} px: m={r['drag_ops']:>2} nfe={r['nfe']:>5} "
              f"({r['nfe_per_op']:.0f}/op, rows {r['unet_rows']}) official calls={r['official_unet_calls']} "
              f"eps={r['official_eps_evals']} rows={r['official_unet_rows']}")

    cfg = DragConfig(steps=args.tiny_steps, t0=0.6, lora_steps=0)
    res["tiny_loop"] = [time_loop(pipe, s, cfg, 32, 32, repeats=2) for s in ("sde", "ode")]
    for r in res["tiny_loop"]:
        print(f"tiny {r['sampler']}: {r['nfe']} NFE in {r['wall_s']:.2f} s (UNet {r['unet_s']:.2f} s, "
              f"overhead {r['overhead']:.3f}, {1e3 * r['s_per_nfe']:.1f} ms/NFE)")
    # whole image through the public API (VAE, prompt, one drag op, decode), and LoRA step cost
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    t = time.perf_counter()
    _, info = drag(pipe, img, [(8, 8)], [(10, 8)], "a photo", sampler="sde", config=cfg)
    res["tiny_image_api"] = {"wall_s": time.perf_counter() - t, "nfe": info["nfe"], "timing_s": info["timing_s"]}
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        lcfg = DragConfig(steps=4, t0=0.5, lora_steps=10, lora_cache_dir=d)
        _, info = drag(pipe, img, [(8, 8)], [(10, 8)], "a photo", sampler="sde", config=lcfg)
        res["tiny_lora_s_per_step"] = info["lora"]["train_s"] / 10
    per_nfe = {r["sampler"]: r["s_per_nfe"] for r in res["tiny_loop"]}
    res["tiny_default_estimate_s"] = {
        s: {f"m={m}": m * 240 * per_nfe[s] + 100 * res["tiny_lora_s_per_step"] for m in (1, 5, 10)} for s in per_nfe
    }
    print(f"tiny image via drag(): {res['tiny_image_api']['wall_s']:.2f} s; LoRA "
          f"{res['tiny_lora_s_per_step']:.3f} s/step; default-settings estimate {res['tiny_default_estimate_s']}")

    if args.full:
        fp = full_pipe()
        fcfg = DragConfig(steps=4, t0=0.5, lora_steps=0)  # K = 2 steps per pass
        with torch.no_grad():
            res["full_unet_loop"] = [time_loop(fp, s, fcfg, 64, 768) for s in ("sde", "ode")]
        for r in res["full_unet_loop"]:
            print(f"full SD-1.5 UNet {r['sampler']}: {r['nfe']} NFE in {r['wall_s']:.1f} s "
                  f"(UNet {r['unet_s']:.1f} s, overhead {r['overhead']:.4f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")


def presets_main(args) -> None:
    """Section 4 of the module docstring: official vs fast."""
    from diffsamplers.presets import preset_defaults

    res: dict = {"machine": "this project's shared 2-core CPU (other jobs running: timings are upper bounds)",
                 "torch_threads": torch.get_num_threads(), "presets": {}}
    pipe = make_tiny_pipeline(0)
    for preset in ("official", "fast"):
        cfg = DragConfig(preset=preset, lora_steps=0)
        nfe = [count_nfe(pipe, s, d, cfg) for s in ("sde", "ode") for d in (2.0, 4.0, 10.0, 20.0)]
        # the tiny model's real loop at the preset's own settings: a 4-latent-px drag (2 official operations)
        loop = [time_loop(pipe, s, cfg, 32, 32, distance=4) for s in ("sde", "ode")]
        res["presets"][preset] = {"defaults": dataclass_dict(preset_defaults(preset)), "nfe": nfe, "tiny_loop": loop}
        for r in loop:
            print(f"{preset} tiny {r['sampler']}: {r['nfe']} NFE in {r['wall_s']:.2f} s (overhead {r['overhead']:.3f})")
    off, fast = res["presets"]["official"], res["presets"]["fast"]
    res["nfe_ratio"] = [{"sampler": a["sampler"], "distance_latent_px": a["distance_latent_px"],
                         "official_nfe": a["nfe"], "fast_nfe": b["nfe"], "ratio": a["nfe"] / b["nfe"],
                         "official_lora_steps": preset_defaults("official").lora_steps,
                         "fast_lora_steps": preset_defaults("fast").lora_steps}
                        for a, b in zip(off["nfe"], fast["nfe"])]
    for r in res["nfe_ratio"]:
        print(f"{r['sampler']} D={r['distance_latent_px']:>4}: official {r['official_nfe']} NFE, fast {r['fast_nfe']} "
              f"NFE, ratio {r['ratio']:.1f}")
    if args.full:
        fp = full_pipe()
        fcfg = DragConfig(preset="fast", steps=4, t0=0.5)  # K = 2 steps per pass, the fast solver
        with torch.no_grad():
            res["full_fast_loop"] = [time_loop(fp, "sde", fcfg, 64, 768)]
        r = res["full_fast_loop"][0]
        res["full_512_seconds_per_edit"] = [
            {"sampler": a["sampler"], "distance_latent_px": a["distance_latent_px"],
             "official_s": a["nfe"] * r["s_per_nfe"], "fast_s": b["nfe"] * r["s_per_nfe"]}
            for a, b in zip(off["nfe"], fast["nfe"])]
        print(f"full SD-1.5 UNet, fast SDE loop: {r['nfe']} NFE in {r['wall_s']:.1f} s (overhead {r['overhead']:.4f}, "
              f"{r['s_per_nfe']:.1f} s/NFE)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")


def dataclass_dict(d) -> dict:
    import dataclasses
    import math

    return {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in dataclasses.asdict(d).items()}


if __name__ == "__main__":
    main()
