"""Generate ``notebooks/shapes.ipynb`` (``python -m toy.shapes.notebook [PATH]``) with :func:`toy.notebooks.build`;
store it executed with ``python -m scripts.execute_notebooks shapes.ipynb``.  The notebook only calls the package:
``SDEODE_FAST=1`` runs ``ShapesDragConfig.fast()`` (seconds; its 10-step UNets are trained into a temporary cache),
otherwise the ``--quick`` configuration (~1–2 min; UNets cached in the default cache folder)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..notebooks import build

__all__ = ["CELLS", "write_notebook"]

CELLS: list[str] = [
    "# Drag test bed with a known right answer (issue 13)\n\n"
    "Discs and squares rendered on a lattice of a 32×32 image, and two-object scenes (a disc and a square); every "
    "image is one narrow isotropic Gaussian component, so the data distribution p0 and its ε are exact at every noise "
    "level. A drag task moves one object by a lattice displacement (in a two-object scene the other object must stay); "
    "the right answer (the scene with that object rendered at the target) is itself an image of the data set. "
    "SDE-Drag and ODE-Drag are the same call of `diffsamplers.recipes.drag` (`sampler=\"sde\"` / `\"ode\"`), run "
    "with the exact ε and with a small UNet trained on CPU on the same data (cached); position error, NLL under p0, "
    "the other object's shift and success are measured exactly. Set `SDEODE_FAST=1` for a seconds-scale run (a "
    "10-step UNet); the full run is `python -m toy shapes drag --out DIR` (docs/shapes.md).",
    "%matplotlib inline\n"
    "import os, tempfile\n"
    "from pathlib import Path\n"
    "import torch\n"
    "from IPython.display import Image, Markdown, display\n"
    "from toy.shapes import ShapesDragConfig, build_pairs, build_shapes, default_cache_dir, run_shapes_drag\n"
    "torch.set_num_threads(1)\n"
    "FAST = os.environ.get(\"SDEODE_FAST\", \"0\") == \"1\"\n"
    "cfg = ShapesDragConfig.fast() if FAST else ShapesDragConfig.quick()\n"
    "out = Path(tempfile.mkdtemp(prefix=\"shapes_\"))\n"
    "cache = out / \"cache\" if FAST else default_cache_dir()   # the learned UNets: trained once, then loaded\n"
    "print(\"fast mode\" if FAST else \"quick mode\", \"->\", out)",
    "## The data: rendered images (components) and samples of the exact p0, one object and two objects",
    "import matplotlib.pyplot as plt\n"
    "shapes, pairs = build_shapes(cfg.shapes), build_pairs(cfg.pairs)\n"
    "g = torch.Generator().manual_seed(0)\n"
    "picks = torch.randperm(len(shapes), generator=g)[:8]\n"
    "rows = [(\"rendered images\", shapes.images[picks]), (\"draws of p0 (image + s·noise, s = 0.08)\", "
    "shapes.mixture.sample(8, g)),\n"
    "        (\"two-object scenes: draws of their p0\", pairs.mixture.sample(8, g))]\n"
    "fig, ax = plt.subplots(3, 8, figsize=(12, 5))\n"
    "for r, (title, imgs) in enumerate(rows):\n"
    "    for i in range(8):\n"
    "        ax[r, i].imshow(shapes.as_image(imgs[i]).clamp(-1, 1), cmap=\"gray\", vmin=-1, vmax=1)\n"
    "        ax[r, i].axis(\"off\")\n"
    "    ax[r, 0].set_title(title, loc=\"left\", fontsize=9)\n"
    "plt.show()\n"
    "print(f\"{len(shapes)} one-object images, {len(pairs)} two-object scenes\")",
    "## SDE-Drag vs ODE-Drag, exact and learned score: defaults and sweeps (paired 95% intervals)",
    "report = run_shapes_drag(cfg, out, cache_dir=cache)\n"
    "for fam, meta in report[\"models\"][\"learned\"].items():\n"
    "    err = meta[\"score_error\"][\"mean_sq_eps_error\"]\n"
    "    print(f\"learned {fam} UNet: {meta['steps']} steps, score error {err:.3f}\")\n"
    "display(Markdown((out / \"report.md\").read_text()))",
    "## Typical results, failures, outcomes, sweep curves (SDE red, ODE blue; exact solid, learned dashed), the "
    "learned score's error",
    "for png in (\"examples.png\", \"examples_pair.png\", \"failures.png\", \"failures_pair.png\", \"outcomes.png\",\n"
    "            \"sweeps.png\", \"sweeps_pair.png\", \"score_error.png\"):\n"
    "    if (out / png).exists():\n"
    "        display(Markdown(f\"**{png}**\")); display(Image(filename=str(out / png)))",
    "## Where the paste leaves the data (issue 20): textured and shaded scenes, −log p_t along the chain, hybrids\n\n"
    "`textured`: the object over one of several structured backgrounds (gradient, stripes, checks, a fixed noise "
    "texture), the background part of the scene, so a pasted window carries the source's background to the target "
    "and leaves a hole; `shaded`: objects with an intensity ramp or an outline. Both are exact mixtures. With the "
    "exact p_t, −log p_t(x_t) is recorded right after the paste at t0 and after every decoding step (the theorem's "
    "quantity along the chain); ODE/SDE hybrids are per-step η schedules of the same `recipes.drag` call.",
    "import dataclasses\n"
    "from toy.shapes.hybrids import METHOD_NAMES\n"
    "from toy.shapes.textured import build_textured\n"
    "from toy.shapes.shaded import build_shaded\n"
    "tex, sha = build_textured(cfg.textured), build_shaded(cfg.shaded)\n"
    "fig, ax = plt.subplots(2, 8, figsize=(12, 3.4))\n"
    "for r, d in enumerate((tex, sha)):\n"
    "    picks = torch.randperm(len(d), generator=torch.Generator().manual_seed(1))[:8]\n"
    "    for i, k in enumerate(picks.tolist()):\n"
    "        ax[r, i].imshow(d.as_image(d.images[k]), cmap=\"gray\", vmin=-1, vmax=1); ax[r, i].axis(\"off\")\n"
    "        ax[r, i].set_title(d.variants[k], fontsize=7)\n"
    "plt.show()\n"
    "cfg20 = dataclasses.replace(cfg, families=(\"textured\", \"shaded\"), methods=METHOD_NAMES)\n"
    "out20 = out / \"issue20\"\n"
    "report20 = run_shapes_drag(cfg20, out20, cache_dir=cache)\n"
    "md = (out20 / \"report.md\").read_text()\n"
    "display(Markdown(md[md.index(\"## Seams\"):md.index(\"## Verdicts\")]))",
    "for png in (\"pareto.png\", \"nll_path_textured.png\", \"nll_path_shaded.png\", \"mismatch_textured.png\",\n"
    "            \"mismatch_shaded.png\", \"examples_textured.png\", \"examples_shaded.png\"):\n"
    "    if (out20 / png).exists():\n"
    "        display(Markdown(f\"**{png}**\")); display(Image(filename=str(out20 / png)))",
]


def write_notebook(path: str | Path = "notebooks/shapes.ipynb") -> Path:
    import nbformat

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(CELLS), p)
    return p


if __name__ == "__main__":  # pragma: no cover
    print(write_notebook(sys.argv[1] if len(sys.argv) > 1 else "notebooks/shapes.ipynb"))
