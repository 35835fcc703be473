"""toy score-error lab (issue 12 item 5): tiny run, report structure, ordering sanity, CLI, bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from toy.scoreerror import ScoreErrorConfig, run_score_error, smooth_field

ROOT = Path(__file__).resolve().parents[2]


def test_smooth_field_is_fixed_and_bounded():
    u1, u2 = smooth_field(2, 3), smooth_field(2, 3)
    x = np.random.default_rng(0).normal(size=(500, 2)) * 3
    assert np.array_equal(u1(x), u2(x)) and np.abs(u1(x)).max() <= np.sqrt(2) + 1e-12
    assert 0.3 < np.sqrt(np.mean(u1(x) ** 2)) < 1.2


def test_tiny_run(tmp_path):
    cfg = ScoreErrorConfig.tiny()
    rep = run_score_error(cfg, tmp_path)
    names = [r["level"] for r in rep["levels"]]
    assert names == ["exact", "perturbed 0.4", "mlp 300"]
    for r in rep["levels"]:
        assert len(r["kl_edited"]) == len(cfg.etas) == len(r["kl_unedited"])
        assert np.all(np.isfinite(r["kl_edited"]))
    errs = [r["eps_rms_error"] for r in rep["levels"]]
    assert errs[0] < 1e-6 < errs[1]
    exact, pert = rep["levels"][0], rep["levels"][1]
    # the edited start is farther from the data than the unedited one at eta = 0 (ODE keeps the mismatch)
    assert exact["kl_edited"][0] > exact["kl_unedited"][0]
    # with the exact score the SDE (eta = 1) lowers the edited KL; a large perturbation costs accuracy
    assert exact["kl_edited"][-1] < exact["kl_edited"][0]
    assert min(pert["kl_edited"]) > min(exact["kl_edited"])
    for f in ("report.json", "heatmap.png", "curves.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["experiment"] == "score-error"


def test_cli_help_and_bad_config(tmp_path):
    r = subprocess.run([sys.executable, "-m", "toy", "score-error", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "--quick" in r.stdout
    bad = tmp_path / "c.json"
    bad.write_text('{"no_such_field": 1}')
    r = subprocess.run([sys.executable, "-m", "toy", "score-error", "--out", str(tmp_path / "o"), "--config", str(bad)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
