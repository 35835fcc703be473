"""Issue 20 on the shapes drag bed: the textured and shaded families (exact mixtures, tasks, measures, seams), the
theorem's quantity along every chain (nll_path), the ODE/SDE hybrids through the recipes, and the config / figure
failure rules."""
import json
import math

import numpy as np
import pytest
import torch

from diffsamplers import GaussianNoise, recipes
from toy.shapes import DragSettings, LearnedConfig, ShapesDragConfig, TemplateBank, editable_box, exact_model
from toy.shapes import make_schedule, measure, nll_data_range, run_shapes_drag
from toy.shapes.experiment import run_setting
from toy.shapes.hybrids import HYBRIDS, METHOD_NAMES, eta_schedule, method_kwargs
from toy.shapes.mismatch import correlation
from toy.shapes.scenes import build_variant_set, make_variant_tasks
from toy.shapes.seams import paste_windows, seam_measures
from toy.shapes.shaded import ShadedConfig
from toy.shapes.textured import BACKGROUNDS, TexturedConfig, background_pattern

SMALL = dict(side=16, sizes=(2,), border=3)
TEX = TexturedConfig(**SMALL, backgrounds=("gradient-h", "checks", "noise"), period=4)
SHA = ShadedConfig(**SMALL)
TINY_DRAG = DragSettings(steps=12, r=3, distance=2)


@pytest.fixture(scope="module", params=["textured", "shaded"])
def family(request):
    return request.param, build_variant_set(TEX if request.param == "textured" else SHA)


def test_backgrounds_and_styles_render():
    for name in BACKGROUNDS:
        p = background_pattern(name, 32)
        assert p.shape == (32, 32) and float(p.min()) >= 0 and float(p.max()) <= 1 and float(p.std()) > 0.1
    assert torch.equal(background_pattern("noise", 32), background_pattern("noise", 32))   # a fixed texture
    cfg = TexturedConfig()
    img = cfg.draw("square", 3, "stripes", (16, 16))
    assert torch.all(img[13:20, 13:20] == 1.0)                    # the object covers its box
    assert torch.allclose(img[0], cfg.background_image("stripes")[0])   # the background is kept elsewhere
    sh = ShadedConfig()
    g = sh.draw("square", 3, "gradient-v", (16, 16))
    col = g[13:20, 16]
    assert torch.all(col[1:] > col[:-1]) and float(col[0]) > sh.low and float(col[-1]) < sh.foreground
    o = sh.draw("square", 3, "outline", (16, 16))
    assert float(o[13, 16]) == sh.foreground and float(o[16, 16]) == sh.low and float(o[11, 16]) == sh.background
    for bad in (dict(backgrounds=("plaid",)), dict(contrast=-0.1), dict(contrast=2.0), dict(period=1)):
        with pytest.raises(ValueError):
            TexturedConfig(**bad)
    for bad in (dict(styles=("glow",)), dict(low=1.0)):
        with pytest.raises(ValueError):
            ShadedConfig(**bad)


@pytest.mark.parametrize("alpha,sigma", [(0.9995, 0.03), (0.4, 0.92), (0.07, 0.998)])
def test_eps_is_autograd_of_log_density(family, alpha, sigma):
    _, data = family
    mix = data.mixture
    x = mix.sample(4, torch.Generator().manual_seed(1), alpha=alpha, sigma=sigma).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(x, alpha, sigma).sum(), x)
    assert torch.allclose(mix.eps(x.detach(), alpha, sigma), -sigma * grad, rtol=1e-8, atol=1e-8)
    model = exact_model(data, make_schedule("sd"), torch.float64)
    a, s = make_schedule("sd").alpha_sigma(600)
    xi = x.detach().reshape(4, 1, 16, 16)
    assert torch.allclose(model(xi, torch.tensor(600)).reshape(4, -1), mix.eps(x.detach(), a, s))


def test_samples_look_like_the_data(family):
    _, data = family
    x, k = data.mixture.sample(64, torch.Generator().manual_seed(0), return_components=True)
    d = torch.cdist(x, data.images)
    s_sqrt_d = data.config.iso_std * math.sqrt(data.dim)
    assert torch.equal(d.argmin(dim=1), k)
    assert torch.all((d.min(dim=1).values - s_sqrt_d).abs() < 0.25 * s_sqrt_d)


def test_answer_likely_and_measures_perfect_on_it(family):
    name, data = family
    bank = TemplateBank(data)
    rng = nll_data_range(data, 512, 0)
    tasks = make_variant_tasks(data, 4, 2, seed=1)
    assert tasks == make_variant_tasks(data, 4, 2, seed=1)
    answers = data.images_of([t.answer_index for t in tasks])
    inputs = data.images_of([t.source_index for t in tasks])
    masks = torch.stack([editable_box(data, t, 2) for t in tasks]).reshape(len(tasks), -1)
    assert torch.all(-data.mixture.log_prob(answers) < rng["min"])
    for t in tasks:
        assert data.variants[t.answer_index] == data.variants[t.source_index] == t.variant
        if name == "textured":      # the background stays: input and answer agree outside the two object boxes
            keep = ~editable_box(data, t, 0).reshape(-1)
            assert torch.equal(data.images[t.source_index][keep], data.images[t.answer_index][keep])
    good = measure(data, bank, tasks, inputs, answers, masks, rng["max"])
    seams = seam_measures(tasks, answers, answers, masks, 3, 1.0, "official", data.side)
    for k in ("position_error_px", "l2_to_answer", "outside_mask_change"):
        assert np.all(good[k] == 0), k
    assert all(np.all(v == 0) for v in seams.values())
    assert np.all(good["success_rate"] == 1) and np.all(good["outcome_moved"] == 1)
    bad = measure(data, bank, tasks, inputs, inputs, masks, rng["max"])
    dist = np.array([math.hypot(*t.displacement) for t in tasks])
    assert np.allclose(bad["position_error_px"], dist) and np.all(bad["outcome_stayed"] == 1)
    assert np.all(bad["success_rate"] == 0)
    bs = seam_measures(tasks, inputs, answers, masks, 3, 1.0, "official", data.side)
    assert np.all(bs["l2_source_window"] > 1) and np.all(bs["l2_target_window"] > 1)


def test_paste_windows_follow_the_recipe():
    """The windows are where copy_paste writes: pasting into a zero image with α = 1, β = 0 and a marked source
    touches exactly the union of the source and target windows."""
    src, tgt, every = paste_windows((8, 8), (8, 12), 3, 2.0, "official", 16)
    assert int(src.sum()) == 36 and int(tgt.sum()) == 36 and bool((src | tgt).le(every).all())
    from diffsamplers.edits import copy_paste
    x = torch.ones(1, 1, 16, 16)
    y = copy_paste(x, [(8, 8)], [(8, 10)], 3, alpha=2.0, beta=0.0, noise=lambda k, p: torch.zeros_like(p))
    changed = (y != x)[0, 0]
    s1, t1, _ = paste_windows((8, 8), (8, 10), 3, 4.0, "official", 16)
    assert torch.equal(changed, s1 | t1)


def test_hybrid_schedules():
    assert eta_schedule("hybrid-late", 10) == [0.0] * 5 + [1.0] * 5
    assert eta_schedule("hybrid-early", 10) == [1.0] * 5 + [0.0] * 5
    assert eta_schedule("hybrid-eta0.25", 3) == [0.25] * 3
    assert all(m.startswith("hybrid") for m in HYBRIDS)
    for bad in ("hybrid-wild", "hybrid-eta2"):
        with pytest.raises(ValueError):
            eta_schedule(bad, 4)
    with pytest.raises(ValueError):
        ShapesDragConfig(methods=("SDE", "ODE"))
    with pytest.raises(ValueError):
        ShapesDragConfig(methods=("ODE", "SDE", "hybrid-x"))


def test_hybrid_extremes_equal_ode_and_sde_drag():
    """η ≡ 0 through the hybrid path is ODE-Drag and η ≡ 1 is SDE-Drag, exactly (float64, exact model)."""
    data = build_variant_set(TEX)
    sched = make_schedule("sd")
    model = exact_model(data, sched, torch.float64)
    t = make_variant_tasks(data, 1, 2, seed=0)
    x = data.as_image(data.images_of([u.source_index for u in t])).unsqueeze(1)
    grid = sched.grid(16).tail(0.6)
    mask = editable_box(data, t[0], 2)

    def drag(**kw):
        return recipes.drag(model, x, grid, [t[0].handle], [t[0].target], noise=GaussianNoise(3), mask=mask, r=3,
                            step_size=1.0, preset="official", **kw).x

    n = grid.num_steps
    ode, sde = drag(**method_kwargs("ODE", n)), drag(**method_kwargs("SDE", n))
    assert not torch.equal(ode, sde)
    assert torch.equal(drag(sampler="sde", eta=[0.0] * n), ode)
    assert torch.equal(drag(sampler="sde", eta=[1.0] * n), sde)
    late = drag(**method_kwargs("hybrid-late", n))
    assert not torch.equal(late, ode) and not torch.equal(late, sde)


def test_nll_path_ends_at_the_reported_nll():
    data = build_variant_set(SHA)
    rng = nll_data_range(data, 256, 0)
    res = run_setting(data, TemplateBank(data), TINY_DRAG, 2, 0, rng["max"], methods=METHOD_NAMES, record_nll=True)
    grid = make_schedule("sd").grid(TINY_DRAG.steps).tail(TINY_DRAG.t0)
    for m in METHOD_NAMES:
        path = res.paths[m]
        assert path.shape == (grid.num_steps, len(res.tasks)) and np.all(np.isfinite(path))
        # the last step is the output (the same float64 NLL up to the batch's summation order)
        assert np.allclose(path[-1], res.values[m]["nll"], rtol=0, atol=1e-9)
        assert np.all(np.isfinite(res.values[m]["nll_t0"]))
    # at t0 the recorded value is −log p_t0 of the pasted Markov-encoded state: near typical draws of p_t0 (scored
    # at any other level it would be thousands of nats away), and far above a clean image's −log p_0
    assert np.all(np.abs(res.values["SDE"]["nll_t0"] - res.reference[0]) < 100)
    assert np.all(res.values["SDE"]["nll_t0"] > res.values["SDE"]["nll"] + 500)
    s = res.summary()
    assert s["nll_path"]["methods"]["ODE"]["mean"][-1] == pytest.approx(s["methods"]["ODE"]["nll"]["mean"], abs=1e-8)
    assert set(s["hybrids"]["methods"]) == set(HYBRIDS)


def test_correlation_interval():
    x = np.arange(20.0)
    c = correlation(x, 3 * x + 1)
    assert c["pearson_r"] == pytest.approx(1.0) and c["spearman_rho"] == pytest.approx(1.0)
    g = np.random.default_rng(0)
    c = correlation(g.normal(size=400), g.normal(size=400))
    assert c["lo95"] < 0 < c["hi95"] and c["hi95"] - c["lo95"] < 0.25
    assert math.isnan(correlation(np.ones(10), x[:10])["pearson_r"])


def test_textured_and_shaded_run(tmp_path):
    cfg = ShapesDragConfig(textured=TEX, shaded=SHA, defaults=TINY_DRAG, families=("textured", "shaded"),
                           variant_groups=2, learned_groups=2, nll_samples=128, examples=2,
                           variant_sweeps={"t0": [0.4]}, contrast_sweep=[0.0], learned_sweeps={},
                           methods=("ODE", "SDE", "hybrid-late"),
                           learned=LearnedConfig(steps=3, batch_size=4, warmup=2, channels=(8, 16), eval_samples=8))
    rep = run_shapes_drag(cfg, tmp_path, cache_dir=tmp_path / "cache")
    on_disk = json.loads((tmp_path / "report.json").read_text())
    for model in ("exact", "learned"):
        for fam in ("textured", "shaded"):
            d = on_disk["results"][model][fam]["defaults"]
            assert set(d["methods"]) == {"ODE", "SDE", "hybrid-late"} and d["n_tasks"] == 4
            assert len(d["nll_path"]["methods"]["SDE"]["mean"]) == len(d["nll_path"]["timesteps"])
            assert "hybrid-late" in d["hybrids"]["methods"] and "nll_advantage" in d["mismatch"]
            for m in d["methods"]:
                # reset outside the mask; the drag runs in float32, which rounds a textured background (~1e-7)
                assert d["methods"][m]["outside_mask_change"]["mean"] < 1e-5
    rows = on_disk["results"]["exact"]["textured"]["sweeps"]["contrast"]
    assert [r["value"] for r in rows] == [0.0, TEX.contrast] and [r["default"] for r in rows] == [False, True]
    assert [r["value"] for r in on_disk["results"]["exact"]["shaded"]["sweeps"]["t0"]] == [0.4, 0.6]
    md = (tmp_path / "report.md").read_text()
    assert "## ODE/SDE hybrids" in md and "| textured | exact | hybrid-late |" in md and "## Seams" in md
    for png in ("pareto.png", "nll_path_textured.png", "mismatch_shaded.png", "sweeps_textured.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    assert rep["figures"] == on_disk["figures"]


def test_bad_config_refused_before_work_and_figure_failure_keeps_report(tmp_path, capsys, monkeypatch):
    from toy.cli import main

    bad = tmp_path / "bad.json"
    for content in ('{"examples": 0}', '{"families": ["textured", "plaid"]}', '{"textured": {"contrast": -1}}',
                    '{"methods": ["ODE", "SDE", "hybrid-x"]}', '{"contrast_sweep": [5.0]}'):
        bad.write_text(content)
        assert main(["shapes", "drag", "--out", str(tmp_path / "o"), "--config", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), content
    assert not (tmp_path / "o").exists()
    import toy.shapes.plots as plots

    def broken(*a, **k):
        raise ValueError("no figure today")

    monkeypatch.setattr(plots, "shapes_figures", broken)
    cfg = ShapesDragConfig(shaded=SHA, defaults=TINY_DRAG, families=("shaded",), models=("exact",),
                           variant_groups=2, nll_samples=64, variant_sweeps={}, record_nll=False)
    with pytest.raises(RuntimeError, match="report was written"):
        run_shapes_drag(cfg, tmp_path / "f")
    kept = json.loads((tmp_path / "f" / "report.json").read_text())
    assert "no figure today" in kept["figure_error"] and kept["results"]["exact"]["shaded"]["defaults"]["n_tasks"] == 4
    assert (tmp_path / "f" / "report.md").exists()
