"""The ``"fast"`` preset applies exactly its documented settings everywhere it is offered, flags override it, and
the shapes bed counts ``nfe`` from the model calls."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import diffsamplers as ds
from diffsamplers.presets import PRESET_DEFAULTS, preset_defaults


def test_preset_table():
    assert ds.PRESETS == ("official", "clean", "fast")
    off, fast = preset_defaults("official"), preset_defaults("fast")
    # the official code's numbers (reference.md): 200 steps, step 2 latent px, 100 LoRA steps, DiffEdit 50 steps
    assert (off.solver, off.drag_steps, off.drag_step_size, off.lora_steps, off.edit_steps) == ("ddim", 200, 2.0, 100,
                                                                                               50)
    # the values docs/fast.md documents (chosen by `python -m toy fast-study`, docs/figures/fast/report.md)
    assert (fast.solver, fast.drag_steps, fast.drag_step_size, fast.lora_steps, fast.edit_steps) == (
        "ddim", 20, math.inf, 0, 20)
    # one operation of K = int(0.6 * 20) = 12 steps per pass against the official >= 1 operation of 120
    assert 2 * int(0.6 * off.drag_steps) >= 10 * 2 * int(0.6 * fast.drag_steps)
    with pytest.raises(ValueError, match="preset"):
        preset_defaults("quick")
    with pytest.raises(TypeError):
        PRESET_DEFAULTS["fast"] = off  # type: ignore[index]


def test_fast_uses_the_clean_rules():
    x = torch.zeros(1, 1, 12, 12)
    a = ds.copy_paste(x + 1, [(5, 5)], [(5, 8)], 2, beta=1.0, preset="fast")
    b = ds.copy_paste(x + 1, [(5, 5)], [(5, 8)], 2, beta=1.0, preset="clean")
    assert torch.equal(a, b)
    assert ds.drag_path([(0, 0)], [(15, 44)], 22, "fast") == ds.drag_path([(0, 0)], [(15, 44)], 22, "clean")
    assert ds.num_drag_ops([(0, 0)], [(7, 9)], 2.0, "fast") == ds.num_drag_ops([(0, 0)], [(7, 9)], 2.0, "clean")
    assert ds.num_drag_ops([(0, 0)], [(70, 90)], math.inf, "fast") == 1
    for k in range(5):
        assert ds.linear_ramp(1, 3, "fast")(k, 5) == ds.linear_ramp(1, 3, "clean")(k, 5)


def test_drag_config_takes_the_preset_defaults_and_given_values_win():
    from sdimage.drag import DragConfig

    f = preset_defaults("fast")
    c = DragConfig(preset="fast")
    assert (c.steps, c.step_size, c.lora_steps, c.solver, c.order) == (f.drag_steps, f.drag_step_size, f.lora_steps,
                                                                       f.solver, f.order)
    o = DragConfig()
    assert (o.steps, o.step_size, o.lora_steps, o.solver) == (200, 2.0, 100, "ddim")
    g = DragConfig(preset="fast", steps=37, step_size=3.0, lora_steps=5, solver="ddim", order=1)
    assert (g.steps, g.step_size, g.lora_steps, g.solver, g.order) == (37, 3.0, 5, "ddim", 1)
    json.dumps(c.validate().to_dict())  # inf step size is written as "inf"


def test_drag_cli_flags(tmp_path):
    from sdimage.cli import build_parser
    from sdimage.drag_cli import config_from_args

    base = ["drag", "--model", "m", "--image", "i.png", "--prompt", "p", "--source", "1,1", "--target", "2,2",
            "--out", str(tmp_path / "o.png")]
    p = build_parser()
    f = preset_defaults("fast")
    c = config_from_args(p.parse_args(base + ["--preset", "fast"]))
    assert (c.steps, c.step_size, c.lora_steps, c.solver, c.order) == (f.drag_steps, f.drag_step_size, f.lora_steps,
                                                                       f.solver, f.order)
    c = config_from_args(p.parse_args(base + ["--preset", "fast", "--steps", "30", "--step-size", "inf",
                                              "--lora-steps", "3", "--solver", "ddim"]))
    assert (c.steps, c.step_size, c.lora_steps, c.solver) == (30, math.inf, 3, "ddim")
    c = config_from_args(p.parse_args(base))
    assert (c.steps, c.step_size, c.lora_steps, c.solver, c.preset) == (200, 2.0, 100, "ddim", "official")


def test_edit_cli_preset_resolution(tmp_path):
    from sdimage.cli import build_parser
    from sdimage.cli_common import task_settings_from_args  # what the commands call

    p = build_parser()
    f = preset_defaults("fast")
    for cmd in (["translate", "--prompt", "x"], ["reconstruct"],
                ["diffedit", "--source-prompt", "a", "--target-prompt", "b"]):
        argv = [cmd[0], "--model", "m", "--image", "i.png", *cmd[1:], "--out", str(tmp_path / "o.png")]
        a = p.parse_args(argv + ["--preset", "fast"])
        task_settings_from_args(a)
        assert (a.steps, a.solver, a.order) == (f.edit_steps, f.solver, f.order)
        a = p.parse_args(argv + ["--preset", "fast", "--steps", "7", "--solver", "ddim"])
        task_settings_from_args(a)
        assert (a.steps, a.solver) == (7, "ddim")
        a = p.parse_args(argv)
        task_settings_from_args(a)
        assert (a.steps, a.solver) == (50, "ddim")
    a = p.parse_args(["translate", "--model", "m", "--image", "i.png", "--prompt", "x", "--preset", "fast",
                      "--eta", "0.5", "--out", str(tmp_path / "o.png")])
    task_settings_from_args(a)
    assert a.solver == "ddim"  # --eta is a DDIM setting: it keeps DDIM under the fast preset


def test_gui_preset_fields():
    from sdimage import gui_handlers as H

    f = preset_defaults("fast")
    steps, step, use_lora, lora_steps, note = H.drag_preset_fields("fast")
    assert steps == f.drag_steps and use_lora == (f.lora_steps > 0) and "fast" in note and "trades" in note
    assert step == (f.drag_step_size if math.isfinite(f.drag_step_size) else 1000.0)
    assert H.drag_preset_fields("official")[:3] == (200, 2.0, True)
    assert H.edit_preset_steps("fast") == f.edit_steps and H.edit_preset_steps("official") == 50


def test_shapes_bed_preset_and_nfe_counts_model_calls():
    from toy.io import merge_config
    from toy.shapes.data import ShapeConfig, build_shapes
    from toy.shapes.experiment import DragSettings, ShapesDragConfig, run_setting
    from toy.shapes.measures import TemplateBank
    from toy.shapes.tasks import exact_model, make_schedule

    f = preset_defaults("fast")
    cfg = dataclasses.replace(merge_config(ShapesDragConfig.quick(), {"defaults": {"preset": "fast"}}))
    r = cfg.defaults.resolved(cfg.base_steps)
    assert (r.steps, r.step_size, r.solver, r.order) == (f.drag_steps, f.drag_step_size, f.solver, f.order)
    r = ShapesDragConfig.quick().defaults.resolved(50)
    assert (r.steps, r.step_size, r.solver) == (50, 2.0, "ddim")  # the bed's other defaults are unchanged
    given = dataclasses.replace(merge_config(ShapesDragConfig.quick(), {"defaults": {"preset": "fast", "steps": 12}}))
    assert given.defaults.resolved(50).steps == 12
    # nfe = the calls the recipe made on a task's batch
    data = build_shapes(ShapeConfig(side=16, kinds=("square",), sizes=(2,), border=3))
    sched = make_schedule("sd")
    exact = exact_model(data, sched, torch.float32)
    calls = []

    def counting(x, t):
        calls.append(x.shape[0])
        return exact(x, t)

    s = DragSettings(preset="fast", steps=10, step_size=2.0, r=3, distance=2)
    res = run_setting(data, TemplateBank(data), s, 2, 0, 0.0, model=counting)
    for m in ("ODE", "SDE"):
        assert sum(res.values[m]["nfe"]) > 0
    n_tasks = len(res.tasks)
    per_call = sum(1 for _ in calls)
    # every call serves one batch; summing nfe over tasks counts each call once per task of its batch
    assert sum(res.values["ODE"]["nfe"]) + sum(res.values["SDE"]["nfe"]) == sum(calls)
    assert per_call >= 2 and n_tasks >= 2
    k = int(0.6 * 10)
    ops = torch.tensor(res.ops, dtype=torch.float64)
    assert torch.allclose(torch.tensor(res.values["SDE"]["nfe"]), 2 * k * ops)


def _paired(dpos: float, dsucc: float, nll_lo: float, ratio: float) -> dict:
    c = lambda m, lo: {"mean": m, "ci95": 0.1, "lo95": lo, "hi95": m + 0.1}  # noqa: E731
    return {m: {"position_error_px": c(dpos, dpos - 0.1), "success_rate": c(dsucc, dsucc - 0.1),
                "nll": c(nll_lo + 0.1, nll_lo), "nfe_ratio": ratio} for m in ("ODE", "SDE")}


def test_study_rule_and_choice():
    from toy.faststudy import FastStudyConfig, choose, passes

    cfg = FastStudyConfig()
    assert passes(_paired(0.25, -0.05, 0.0, 10.0), cfg)[0]          # on the bounds: passes
    assert not passes(_paired(0.26, 0.0, -1.0, 20.0), cfg)[0]       # position error worse by more than 0.25 px
    assert not passes(_paired(0.0, -0.06, -1.0, 20.0), cfg)[0]      # success lost by more than 0.05
    assert not passes(_paired(0.0, 0.0, 0.01, 20.0), cfg)[0]        # NLL significantly worse
    assert not passes(_paired(0.0, 0.0, -1.0, 9.9), cfg)[0]         # not 10x cheaper
    table = {"a": {"c1": _paired(0.1, 0.0, -1, 12.0), "c2": _paired(0.0, 0.0, -1, 30.0)},   # min ratio 12
             "b": {"c1": _paired(0.2, 0.0, -1, 40.0), "c2": _paired(0.2, 0.0, -1, 40.0)},   # cheapest, passes
             "c": {"c1": _paired(0.0, 0.0, -1, 40.0), "c2": _paired(0.0, 0.0, -1, 40.0)},   # as cheap, better
             "d": {"c1": _paired(0.9, 0.0, -1, 80.0), "c2": _paired(0.0, 0.0, -1, 80.0)}}   # cheaper, fails c1
    d = choose(table, cfg)
    assert d["chosen"] == "c"
    assert choose({"d": table["d"]}, cfg)["chosen"] is None
    assert choose({"d": table["d"]}, cfg)["fallback"] is None   # its failure is significant (interval > 0)
    soft = {"e": {"c1": _paired(0.0, -0.06, -1, 30.0)},          # success -0.06 [-0.16, +0.04]: within noise
            "f": {"c1": _paired(0.0, -0.07, -1, 60.0)},          # as soft, cheaper
            "g": {"c1": _paired(0.3, -0.06, -1, 90.0)}}          # two failures
    d = choose(soft, cfg)
    assert d["chosen"] is None and d["fallback"] == "f"


def test_fast_study_cli_refuses_bad_config(tmp_path, capsys):
    from toy.cli import main

    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"solvers": ["heun"]}))
    assert main(["fast-study", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "solvers" in err[0]
    assert not (tmp_path / "o" / "report.json").exists()
