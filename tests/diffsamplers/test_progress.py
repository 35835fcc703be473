"""The progress display (:mod:`diffsamplers.progress`): one tqdm bar per drag on a terminal, "drag op i/m" over every
step of every pass of every operation; off a terminal no carriage return and one plain line per operation; stand-alone
sampler calls keep one display each under the same rule."""
from __future__ import annotations

import io
import math
import re
import sys

import pytest
import torch
import tqdm.auto

import diffsamplers as ds
from diffsamplers import recipes
from diffsamplers.progress import Progress, is_interactive, progress_steps
from gaussian_helpers import vp_grid

F64 = torch.float64


def gaussian_eps(x, t):
    """ε of N(0.3, 0.5 I) data on the VP path (closed form), plus a small non-linear term."""
    a = float(torch.exp(torch.tensor(-0.25 * float(t) ** 2 * 19.9 - 0.05 * float(t))))
    s = math.sqrt(1 - a * a)
    return s * (x - 0.3 * a) / (0.5 * a * a + s * s) + 0.05 * torch.tanh(x)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def bars(monkeypatch):
    """Every tqdm bar made while the test runs (enabled or not)."""
    made = []
    base = tqdm.auto.tqdm

    class Recording(base):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.shown = not self.disable  # (tqdm sets disable when it closes)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    return made


def run_drag(sampler: str, progress=True):
    x0 = torch.randn(1, 2, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(5))
    grid = vp_grid(10).tail(0.5)
    res = recipes.drag(gaussian_eps, x0, grid, [(1, 1)], [(5, 5)], sampler=sampler, noise=ds.GaussianNoise(4), r=1,
                       step_size=2.0, progress=progress)
    return res, grid


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_drag_off_a_terminal_prints_one_plain_line_per_operation(sampler, capsys, bars):
    res, grid = run_drag(sampler)
    err = capsys.readouterr().err
    m = len(res.ops)
    assert m == 3
    assert "\r" not in err
    lines = err.splitlines()
    assert 1 <= len(lines) <= m + 1
    for i, line in enumerate(lines[:m], 1):
        assert re.fullmatch(rf"drag: operation {i}/{m} done \({2 * grid.num_steps} steps, \d+\.\d s\)", line), line
    assert len(bars) == 1 and not bars[0].shown  # one (silent) bar: a front end following tqdm still sees one drag


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_drag_on_a_terminal_is_one_bar_over_every_step(sampler, monkeypatch, bars):
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    res, grid = run_drag(sampler)
    m = len(res.ops)
    total = m * 2 * grid.num_steps  # per operation: encode (record / inversion) + decode (replay / sampling)
    assert len(bars) == 1, [b.desc for b in bars]
    bar = bars[0]
    assert bar.shown and bar.total == total and bar.n == total
    out = tty.getvalue()
    assert f"drag op {m}/{m}" in out and f"/{total} " in out
    assert "Cycle-SDE" not in out and "DDIM" not in out and "inversion" not in out  # no per-pass bars
    assert "drag: operation" not in out  # the plain lines are for logs only


def test_drag_with_progress_off_makes_no_display(capsys, bars):
    run_drag("sde", progress=False)
    assert capsys.readouterr().err == "" and bars == []


def test_a_shared_display_grows_by_the_drag_and_stays_open():
    buf = io.StringIO()
    with Progress(5, "job", file=buf) as p:
        p.update(5)
        res, grid = run_drag("sde", progress=p)
        assert not p.closed
        m = len(res.ops)
        assert p.total == 5 + m * 2 * grid.num_steps and p.n == p.total
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert [ln.split(" done")[0] for ln in lines[:m]] == [f"drag: operation {i}/{m}" for i in range(1, m + 1)]
    assert lines[m].startswith(f"job: {p.total} steps, ") and len(lines) == m + 1


def test_stand_alone_samplers_keep_one_display_each(capsys, monkeypatch, bars):
    grid = vp_grid(6)
    x = torch.randn(3, dtype=F64, generator=torch.Generator().manual_seed(1))
    ds.sample_ddim(gaussian_eps, x, grid, progress=True)
    trace = ds.cycle_encode(gaussian_eps, x, grid, ds.GaussianNoise(2), progress=True)
    ds.cycle_replay(gaussian_eps, trace.chain[0], grid, trace.noises, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    n = grid.num_steps
    lines = err.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["DDIM eta=0", "Cycle-SDE record", "Cycle-SDE replay"]
    assert all(re.fullmatch(rf"[^:]+: {n} steps, \d+\.\d s", ln) for ln in lines), lines
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    bars.clear()
    ds.invert_ddim(gaussian_eps, x, grid, progress=True)
    assert len(bars) == 1 and bars[0].shown and bars[0].total == n == bars[0].n
    assert "DDIM inversion" in tty.getvalue()
    recipes.reconstruct(gaussian_eps, x, grid, "sde", ds.GaussianNoise(3), progress=True)
    assert len(bars) == 2 and bars[1].total == 2 * n == bars[1].n  # encode + decode: one bar


def test_progress_steps_and_the_terminal_rule():
    assert list(progress_steps(3, False, "x")) == [0, 1, 2] and list(progress_steps(2, None, "x")) == [0, 1]
    assert is_interactive(FakeTTY()) and not is_interactive(io.StringIO()) and not is_interactive(object())
    buf = io.StringIO()
    with Progress(4, "train", file=buf) as p:
        for _ in progress_steps(4, p, "ignored"):
            pass
        p.line("a\rb")
    assert buf.getvalue().startswith("a b\ntrain: 4 steps, ")
    buf = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress(4, "failed", file=buf) as p:
            raise RuntimeError
    assert buf.getvalue() == ""  # an error ends the display without the closing line
