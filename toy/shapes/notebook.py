"""Generate ``notebooks/shapes.ipynb`` (``python -m toy.shapes.notebook [PATH]``) with :func:`toy.notebooks.build`;
store it executed with ``python -m scripts.execute_notebooks shapes.ipynb``.  The notebook only calls the package:
``SDEODE_FAST=1`` runs ``ShapesDragConfig.fast()`` (seconds), otherwise the ``--quick`` configuration (~1 min)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..notebooks import build

__all__ = ["CELLS", "write_notebook"]

CELLS: list[str] = [
    "# Drag test bed with a known right answer (issue 13)\n\n"
    "Discs and squares rendered on a lattice of a 32×32 image; every image is one narrow isotropic Gaussian "
    "component, so the data distribution p0 and its ε are exact at every noise level. A drag task moves one object "
    "by a lattice displacement; the right answer (the object rendered at the target) is itself an image of the data "
    "set. SDE-Drag and ODE-Drag are the same call of `diffsamplers.recipes.drag` (`sampler=\"sde\"` / `\"ode\"`); "
    "position error, NLL under p0 and success are measured exactly. Set `SDEODE_FAST=1` for a seconds-scale run; "
    "the full run is `python -m toy shapes drag --out DIR` (docs/shapes.md).",
    "%matplotlib inline\n"
    "import os, tempfile\n"
    "from pathlib import Path\n"
    "import torch\n"
    "from IPython.display import Image, Markdown, display\n"
    "from toy.shapes import ShapesDragConfig, build_shapes, run_shapes_drag\n"
    "torch.set_num_threads(1)\n"
    "FAST = os.environ.get(\"SDEODE_FAST\", \"0\") == \"1\"\n"
    "cfg = ShapesDragConfig.fast() if FAST else ShapesDragConfig.quick()\n"
    "out = Path(tempfile.mkdtemp(prefix=\"shapes_\"))\n"
    "print(\"fast mode\" if FAST else \"quick mode\", \"->\", out)",
    "## The data: rendered images (components) and samples of the exact p0",
    "import matplotlib.pyplot as plt\n"
    "shapes = build_shapes(cfg.shapes)\n"
    "g = torch.Generator().manual_seed(0)\n"
    "picks = torch.randperm(len(shapes), generator=g)[:8]\n"
    "samples = shapes.mixture.sample(8, g)\n"
    "fig, ax = plt.subplots(2, 8, figsize=(12, 3.3))\n"
    "for i in range(8):\n"
    "    for row, img in enumerate((shapes.images[picks[i]], samples[i])):\n"
    "        ax[row, i].imshow(shapes.as_image(img).clamp(-1, 1), cmap=\"gray\", vmin=-1, vmax=1)\n"
    "        ax[row, i].axis(\"off\")\n"
    "ax[0, 0].set_title(\"rendered images\", loc=\"left\", fontsize=9)\n"
    "ax[1, 0].set_title(\"draws of p0 (image + s·noise, s = 0.08)\", loc=\"left\", fontsize=9)\n"
    "plt.show()",
    "## SDE-Drag vs ODE-Drag: defaults and sweeps (paired 95% intervals)",
    "report = run_shapes_drag(cfg, out)\n"
    "display(Markdown((out / \"report.md\").read_text()))",
    "## Typical results, failures, outcomes, sweep curves (SDE red, ODE blue)",
    "for png in (\"examples.png\", \"failures.png\", \"outcomes.png\", \"sweeps.png\"):\n"
    "    if (out / png).exists():\n"
    "        display(Markdown(f\"**{png}**\")); display(Image(filename=str(out / png)))",
]


def write_notebook(path: str | Path = "notebooks/shapes.ipynb") -> Path:
    import nbformat

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(CELLS), p)
    return p


if __name__ == "__main__":  # pragma: no cover
    print(write_notebook(sys.argv[1] if len(sys.argv) > 1 else "notebooks/shapes.ipynb"))
