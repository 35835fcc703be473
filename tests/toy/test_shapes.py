"""Shapes drag test bed (issue 13): the exact model, the tasks and their right answers, the measures, the drag
through the recipes, the CLI."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffsamplers import GaussianNoise, recipes
from toy.shapes import (DragSettings, ShapeConfig, ShapesDragConfig, TemplateBank, build_shapes, editable_box,
                        exact_model, make_schedule, make_tasks, measure, nll_data_range, render, run_shapes_drag)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shapes():
    return build_shapes()


@pytest.fixture(scope="module")
def bank(shapes):
    return TemplateBank(shapes)


def test_rendering_and_lattice(shapes):
    cfg = shapes.config
    assert len(shapes) == len(cfg.kinds) * len(cfg.sizes) * len(cfg.centres()) ** 2
    assert shapes.images.min() >= -1 and shapes.images.max() <= 1
    sq = render("square", 3, (10, 12), 32)
    assert torch.equal(sq[7:14, 9:16], torch.ones(7, 7, dtype=sq.dtype)) and float(sq.sum()) == 49 * 1 - (1024 - 49)
    disc = render("disc", 5, (16, 16), 32)
    core = disc[11:22, 11:22]                         # the disc's 11×11 box, symmetric about its centre pixel
    assert torch.equal(core, core.T) and torch.equal(core, core.flip(0)) and torch.equal(core, core.flip(1))
    assert float(disc[16, 16]) == 1.0 and float(disc[10, 16]) == -1.0 and -1 < float(disc[11, 13]) < 1
    with pytest.raises(ValueError):
        ShapeConfig(kinds=("star",))


def test_samples_look_like_the_data(shapes):
    """Every draw of p_0 sits next to the rendered image it was drawn around (distance ≈ s√d), and that image is its
    nearest one."""
    x, k = shapes.mixture.sample(64, torch.Generator().manual_seed(0), return_components=True)
    d = torch.cdist(x, shapes.images)
    s_sqrt_d = shapes.config.iso_std * math.sqrt(shapes.dim)
    assert torch.equal(d.argmin(dim=1), k)
    assert torch.all((d.min(dim=1).values - s_sqrt_d).abs() < 0.2 * s_sqrt_d)


@pytest.mark.parametrize("alpha,sigma", [(0.9995, 0.03), (0.65, 0.76), (0.4, 0.92), (0.07, 0.998)])
def test_eps_is_autograd_of_log_density(shapes, alpha, sigma):
    mix = shapes.mixture
    g = torch.Generator().manual_seed(1)
    x = mix.sample(4, g, alpha=alpha, sigma=sigma).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(x, alpha, sigma).sum(), x)
    eps = mix.eps(x.detach(), alpha, sigma)
    assert torch.allclose(eps, -sigma * grad, rtol=1e-8, atol=1e-8)


def test_exact_model_on_the_schedule(shapes):
    sched = make_schedule("sd")
    a, s = sched.alpha_sigma(600)
    assert 0.39 < a < 0.41 and abs(a * a + s * s - 1) < 1e-12
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    eps = exact_model(shapes, sched, torch.float64)(x, torch.tensor(600))
    assert eps.shape == x.shape
    assert torch.allclose(eps.reshape(3, -1), shapes.mixture.eps(x.reshape(3, -1), a, s))
    with pytest.raises(ValueError):
        make_schedule("cosine")


def test_tasks_have_known_answers(shapes):
    tasks = make_tasks(shapes, 5, 4, seed=0)
    assert tasks == make_tasks(shapes, 5, 4, seed=0)
    for t in tasks:
        d = t.displacement
        assert max(abs(d[0]), abs(d[1])) == 4 and (t.target[0] - t.handle[0], t.target[1] - t.handle[1]) == d
        assert shapes.kinds[t.answer_index] == t.kind and shapes.centres[t.answer_index] == t.answer_centre
        m = editable_box(shapes, t, 3)
        obj = (shapes.images[t.source_index] > -1) | (shapes.images[t.answer_index] > -1)
        assert bool(m.flatten()[obj].all())          # the mask covers the object at source and at target
    edge = make_tasks(shapes, 5, 4, seed=0, handle="edge")
    assert [t.answer_index for t in edge] == [t.answer_index for t in tasks]
    assert any(t.handle != t.source_centre for t in edge)
    with pytest.raises(ValueError):
        make_tasks(build_shapes(ShapeConfig(lattice_step=2, kinds=("disc",), sizes=(3,))), 2, 3, seed=0)  # off-lattice
    with pytest.raises(ValueError):
        make_tasks(shapes, 2, 30, seed=0)            # no room for that drag


def test_right_answer_has_high_likelihood_and_perfect_measures(shapes, bank):
    rng = nll_data_range(shapes, 1024, 0)
    tasks = make_tasks(shapes, 3, 4, seed=1)
    answers = shapes.images[[t.answer_index for t in tasks]]
    inputs = shapes.images[[t.source_index for t in tasks]]
    masks = torch.stack([editable_box(shapes, t, 3) for t in tasks]).reshape(len(tasks), -1)
    nll_answer = -shapes.mixture.log_prob(answers)
    assert torch.all(nll_answer < rng["min"])        # more likely than every draw of p_0 (it is a component mean)
    good = measure(shapes, bank, tasks, inputs, answers, masks, rng["max"])
    assert np.all(good["position_error_px"] == 0) and np.all(good["l2_to_answer"] == 0)
    assert np.all(good["outside_mask_change"] == 0) and np.all(good["success_rate"] == 1)
    assert np.all(good["outcome_moved"] == 1) and np.allclose(good["drag_fraction"], 1)
    bad = measure(shapes, bank, tasks, inputs, inputs, masks, rng["max"])   # the unedited input
    dist = np.array([math.hypot(*t.displacement) for t in tasks])
    assert np.allclose(bad["position_error_px"], dist) and np.all(bad["success_rate"] == 0)
    assert np.all(bad["outcome_stayed"] == 1) and np.all(bad["l2_to_answer"] > 5)
    assert np.allclose(bad["drag_fraction"], 0)
    # a blend of input and answer (two half objects) is off the data and fails
    blend = measure(shapes, bank, tasks, inputs, 0.5 * (inputs + answers), masks, rng["max"])
    assert np.all(blend["outcome_off"] == 1) and np.all(blend["success_rate"] == 0)
    # a change outside the mask is measured
    moved = answers.clone()
    outside = (~masks).int().argmax(dim=1)               # one pixel outside each task's mask
    moved[torch.arange(len(tasks)), outside] += 0.5
    assert np.allclose(measure(shapes, bank, tasks, inputs, moved, masks, rng["max"])["outside_mask_change"], 0.5)


def test_drag_without_paste_returns_the_input(shapes):
    """recipes.drag with the SDE (Cycle-SDE) and paste off reproduces the input in float64."""
    sched = make_schedule("sd")
    model = exact_model(shapes, sched, torch.float64)
    t = make_tasks(shapes, 1, 4, seed=3)[0]
    x = shapes.as_image(shapes.images[t.source_index])[None, None]
    grid = sched.grid(50).tail(0.6)
    res = recipes.drag(model, x, grid, [t.handle], [t.target], sampler="sde", noise=GaussianNoise(0),
                       mask=editable_box(shapes, t, 3), r=6, step_size=2.0, paste=False, preset="official")
    assert len(res.ops) >= 2                       # several full encode → decode cycles
    assert float((res.x - x).abs().max()) <= 1e-10


def test_quick_experiment_writes_report(tmp_path):
    cfg = ShapesDragConfig(defaults=DragSettings(steps=20), n_groups=2, pair_groups=2, nll_samples=256, examples=2,
                           sweeps={"t0": [0.4]}, pair_sweeps={}, models=("exact",))
    rep = run_shapes_drag(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    for fam, n in (("single", 8), ("pair", 4)):
        for m in ("ODE", "SDE"):
            for k in ("position_error_px", "nll", "outside_mask_change", "success_rate"):
                d = on_disk["methods"]["exact"][fam][m][k]
                assert {"mean", "ci95", "lo95", "hi95", "n"} <= set(d) and d["n"] == n
            assert on_disk["methods"]["exact"][fam][m]["outside_mask_change"]["mean"] == 0   # reset outside the mask
    assert set(on_disk["families"]) == {"single", "pair"} and set(on_disk["results"]) == {"exact"}
    assert on_disk["settings"]["t0"] == 0.6 and on_disk["seed"] == 0 and "wall_seconds" in on_disk["meta"]
    assert [r["value"] for r in on_disk["results"]["exact"]["single"]["sweeps"]["t0"]] == [0.4, 0.6]
    assert on_disk["results"]["exact"]["pair"]["sweeps"] == {}
    assert (tmp_path / "report.md").read_text().startswith("# Shapes drag test bed")
    for png in ("examples.png", "examples_pair.png", "failures.png", "failures_pair.png", "outcomes.png",
                "sweeps.png"):
        assert (tmp_path / png).stat().st_size > 1000
    # ODE and SDE are paired on the same tasks: the paired difference is the difference of the means
    d = rep["results"]["exact"]["single"]["defaults"]
    p = d["paired_ode_minus_sde"]["position_error_px"]["mean"]
    ms = d["methods"]
    assert math.isclose(p, ms["ODE"]["position_error_px"]["mean"] - ms["SDE"]["position_error_px"]["mean"],
                        abs_tol=1e-12)


def test_settings_validation():
    with pytest.raises(ValueError):
        DragSettings(handle="corner")
    with pytest.raises(ValueError):
        DragSettings(t0=0.0)
    with pytest.raises(ValueError):
        ShapesDragConfig(sweeps={"gamma": [1.0]})


def test_cli_bad_input_exits_2(tmp_path, capsys):
    from toy.cli import main

    bad = tmp_path / "bad.json"
    for content in ('{"n_groups": 1}', '{"defaults": {"handle": "corner"}}', '{"nope": 1}', "[1, 2]", "{"):
        bad.write_text(content)
        assert main(["shapes", "drag", "--out", str(tmp_path / "o"), "--config", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:")
    assert main(["shapes", "drag", "--out", str(tmp_path / "o"), "--threads", "0"]) == 2
    capsys.readouterr()
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv in (["--out", str(afile)], ["--out", str(afile / "sub")], ["--out", str(tmp_path / "o"), "--cache",
                 str(afile)], ["--out", str(tmp_path / "o"), "--models", "exact,neural"]):
        assert main(["shapes", "drag", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), argv
    assert not (tmp_path / "o" / "report.json").exists()
    r = subprocess.run([sys.executable, "-m", "toy", "shapes", "drag", "--config", str(tmp_path / "missing.json"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
