"""The learned model of the shapes drag test bed (issue 13): a tiny UNet trained for a few steps on a small setting,
cached and reloaded, its ε-model's shapes and dtypes, the drag through the recipes with the paste off, and a whole
(tiny) run with the exact and the learned model side by side."""
import json

import numpy as np
import pytest
import torch

from diffsamplers import GaussianNoise, recipes
from toy.digits.learned import learned_eps_model, make_unet
from toy.io import to_jsonable
from toy.shapes import (DragSettings, LearnedConfig, PairConfig, ShapeConfig, ShapesDragConfig, build_shapes,
                        editable_box, get_learned, make_schedule, make_tasks, run_shapes_drag)
from toy.shapes.learned import cache_key
from toy.shapes.plots import fig_score_error
from toy.shapes.report import markdown_report

TINY = LearnedConfig(steps=3, batch_size=4, warmup=2, channels=(8, 16), eval_samples=8)
SMALL = ShapeConfig(side=16, kinds=("square",), sizes=(2,), border=3)


@pytest.fixture(scope="module")
def small():
    return build_shapes(SMALL)


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    model, meta = get_learned("single", small, TINY, "sd", cache)
    return cache, model, meta


def test_learned_trains_caches_and_reloads(small, trained):
    cache, model, meta = trained
    assert meta["cached"] is False and meta["steps"] == 3 and meta["schedule"] == "sd"
    assert meta["score_error"]["mean_sq_eps_error"] > 0 and meta["num_parameters"] > 0
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".pt")   # no leftovers
    again, meta2 = get_learned("single", small, TINY, "sd", cache)
    assert meta2["cached"] is True and meta2["checkpoint"] == meta["checkpoint"]
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x, torch.tensor(500)), again(x, torch.tensor(500)))         # the same weights
    # trained again elsewhere: the same weights (seeded draws, no wall-clock dependence)
    fresh, meta3 = get_learned("single", small, TINY, "sd", cache.parent / "elsewhere")
    assert meta3["cached"] is False and torch.equal(model(x, torch.tensor(500)), fresh(x, torch.tensor(500)))
    # another training setting, data set or schedule is another cache entry
    keys = {cache_key("single", SMALL.to_dict(), TINY, "sd"), cache_key("pair", SMALL.to_dict(), TINY, "sd"),
            cache_key("single", SMALL.to_dict(), LearnedConfig(**{**TINY.to_dict(), "steps": 2}), "sd"),
            cache_key("single", {**SMALL.to_dict(), "sizes": (3,)}, TINY, "sd"),
            cache_key("single", SMALL.to_dict(), TINY, "ddpm-linear")}
    assert len(keys) == 5 and cache_key("single", SMALL.to_dict(), TINY, "sd") in meta["checkpoint"]


def test_learned_eps_model_shapes_and_dtypes(trained):
    _, model, _ = trained
    for shape, dt in (((4, 1, 16, 16), torch.float32), ((4, 256), torch.float64), ((1, 1, 16, 16), torch.float64)):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=dt)
        eps = model(x, torch.tensor(300))
        assert eps.shape == x.shape and eps.dtype == dt and torch.isfinite(eps).all()


def test_digits_unet_default_side_unchanged():
    """The side parameter defaults to the digits' 16: the digits UNet and ε-model are as before."""
    unet = make_unet()
    assert unet.config.sample_size == 16
    eps = learned_eps_model(unet)(torch.zeros(2, 256), torch.tensor(10))
    assert eps.shape == (2, 256)


def test_learned_drag_without_paste_returns_the_input(small, trained):
    """recipes.drag with the Cycle-SDE and paste off reproduces the input with the learned ε too (float64)."""
    _, model, _ = trained
    sched = make_schedule("sd")
    t = make_tasks(small, 1, 2, seed=0)[0]
    x = small.as_image(small.images[t.source_index])[None, None]
    res = recipes.drag(model, x, sched.grid(30).tail(0.6), [t.handle], [t.target], sampler="sde",
                       noise=GaussianNoise(0), mask=editable_box(small, t, 2), r=3, step_size=1.0, paste=False,
                       preset="official")
    assert len(res.ops) >= 2
    assert float((res.x - x).abs().max()) <= 1e-10


def test_run_with_exact_and_learned_side_by_side(tmp_path):
    cfg = ShapesDragConfig(shapes=ShapeConfig(side=16, sizes=(2,), border=3), pairs=PairConfig(side=16, sizes=(2,),
                           border=3), defaults=DragSettings(steps=12, r=3, distance=2), n_groups=2, pair_groups=2,
                           learned_groups=2, nll_samples=128, examples=2, sweeps={"t0": [0.4]}, pair_sweeps={},
                           learned_sweeps={"t0": [0.4]}, learned=TINY)
    rep = json.loads(json.dumps(to_jsonable(run_shapes_drag(cfg, None, cache_dir=tmp_path / "cache"))))
    for model in ("exact", "learned"):
        for fam in ("single", "pair"):
            ms = rep["methods"][model][fam]
            for m in ("SDE", "ODE"):
                for k in ("position_error_px", "nll", "outside_mask_change", "success_rate"):
                    assert {"mean", "ci95", "lo95", "hi95", "n"} <= set(ms[m][k])
                assert ms[m]["outside_mask_change"]["mean"] == 0
            if fam == "pair":
                assert "other_shift_px" in ms["SDE"] and "other_change" in ms["ODE"]
            assert ms is rep["results"][model][fam]["defaults"]["methods"] or \
                ms == rep["results"][model][fam]["defaults"]["methods"]
        assert [r["value"] for r in rep["results"][model]["single"]["sweeps"]["t0"]] == [0.4, 0.6]
    assert rep["models"]["exact"]["single"]["mean_sq_eps_error"] == 0
    for fam in ("single", "pair"):
        lm = rep["models"]["learned"][fam]
        assert lm["score_error"]["mean_sq_eps_error"] > 0 and lm["mean_sq_eps_error_at_t0"]["t"] > 0
        # learned and exact run on the same tasks: paired learned − exact
        p = rep["results"]["learned"][fam]["defaults"]["paired_learned_minus_exact"]["SDE"]["position_error_px"]
        le, ex = rep["per_task"]["learned"][fam], rep["per_task"]["exact"][fam]
        assert [t["source_index"] for t in le] == [t["source_index"] for t in ex[:len(le)]]
        diff = np.mean([a["SDE"]["position_error_px"] - b["SDE"]["position_error_px"] for a, b in zip(le, ex)])
        assert abs(p["mean"] - diff) < 1e-12
    md = markdown_report(rep)
    assert "| single | learned | SDE-Drag |" in md and "| pair | exact | ODE-Drag |" in md
    assert "Paired Δ = learned − exact" in md
    fig = fig_score_error(rep)                                   # the figure the full run writes for the learned UNets
    assert len(fig.axes[0].lines) == 4


def test_learned_config_validation():
    with pytest.raises(ValueError):
        LearnedConfig(steps=0)
    with pytest.raises(ValueError):
        LearnedConfig(channels=(8, 8))
    with pytest.raises(ValueError):
        ShapesDragConfig(learned_sweeps={"schedule": ["ddpm-linear"]})
    with pytest.raises(ValueError):
        ShapesDragConfig(models=("exact", "neural"))
    with pytest.raises(ValueError):
        ShapesDragConfig(pair_sweeps={"t0": [1.5]})
