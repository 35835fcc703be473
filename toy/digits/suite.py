"""Run the digit experiments and write their reports: ``run_experiment(name, ctx, out)`` → ``out/<name>.json``;
``run_all`` → every experiment plus ``report.json`` and the Markdown tables ``report.md``."""
from __future__ import annotations

import time
from pathlib import Path

from .common import Context
from .diffedit import run_diffedit
from .drag import run_drag
from .inpaint import run_inpaint
from .mixture import MixtureConfig
from .translate import run_translate

__all__ = ["RUNNERS", "run_experiment", "run_all"]

RUNNERS = {"inpaint": run_inpaint, "translate": run_translate, "diffedit": run_diffedit, "drag": run_drag}


def run_experiment(name: str, ctx: Context, out: Path) -> dict:
    from ..io import run_meta, write_json

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rep = RUNNERS[name](ctx, out)
    rep["sizes"] = ctx.sizes.to_dict()
    rep["seed"] = ctx.seed
    rep["mixture"] = {**MixtureConfig().to_dict(), "components": ctx.mixture.num_components}
    rep["schedule"] = ("ddpm_linear(T=1000, beta 1e-4..0.02); evenly spaced timesteps; diffsamplers.recipes with "
                       "sampler='ode' (DDIM / DDIM inversion) or 'sde' (DDPM / Cycle-SDE)")
    if ctx.learned_meta:
        rep["learned_model"] = ctx.learned_meta
    rep["meta"] = run_meta(time.time() - t0)
    write_json(out / f"{name}.json", rep)
    return rep


def run_all(ctx: Context, out: Path) -> dict:
    from cliutil import write_text_atomic

    from ..io import write_json
    from .report import markdown_report

    reps = {name: run_experiment(name, ctx, out) for name in RUNNERS}
    write_json(out / "report.json", reps)
    write_text_atomic(out / "report.md", markdown_report(reps))
    return reps
