"""Issue 14 for `python -m theory`: every bad input gives exit 2, exactly one stderr line starting with `error:`,
writes nothing, and leaves an existing output untouched.  A growing list: add a case to BAD_CONFIGS / BAD_ARGS."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from theory.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples/theory/example.json").read_text())
GAUSS1 = {"schedule": {"kind": "vp-linear"}, "data": {"weights": [1.0], "means": [[0.3]], "covs": [[[0.1]]]},
          "edited": {"weights": [1.0], "means": [[1.0]], "covs": [[[0.5]]]}, "t0": 0.6, "t_end": 0.002}
MIX3 = {"schedule": {"kind": "vp-linear"},
        "data": {"weights": [0.5, 0.5], "means": [[0, 0, 0], [1, 1, 1]],
                 "covs": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]] * 2},
        "edited": {"weights": [1.0], "means": [[0, 0, 0]], "covs": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]},
        "t0": 0.5, "t_end": 0.01}


def _with(base=EXAMPLE, **kw):
    d = json.loads(json.dumps(base))
    d.update(kw)
    return d


# name -> (config dict or raw JSON text, extra CLI args, a word the message must contain)
BAD_CONFIGS = {
    "cov_strings": (_with(data={"weights": [0.3, 0.7], "means": [[-2.0], [1.5]], "covs": [[["0.1"]], [["0.2"]]]}),
                    [], "numbers"),
    "weight_string": (_with(edited={"weights": ["1"], "means": [[0.5]], "covs": [[[0.4]]]}), [], "numbers"),
    "mean_bool": (_with(edited={"weights": [1.0], "means": [[True]], "covs": [[[0.4]]]}), [], "numbers"),
    "nan_token": ('{"schedule": {"kind": "vp-linear"}, "data": {"weights": [1.0], "means": [[NaN]], '
                  '"covs": [[[0.1]]]}, "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]}, '
                  '"t0": 0.6, "t_end": 0.002}', [], "NaN"),
    "infinity_t0": (json.dumps(_with()).replace('"t0": 0.6', '"t0": Infinity'), [], "Infinity"),
    "huge_number": (json.dumps(_with()).replace('"t0": 0.6', '"t0": 1e999'), [], "t0"),
    "t0_string": (_with(t0="0.5"), [], "t0"),
    "t0_out": (_with(t0=1.5), [], "t0"),
    "t0_zero": (_with(t0=0.0), [], "t0"),
    "t_end_gt_t0": (_with(t_end=0.7), [], "t0"),
    "rf_t0_one": (_with(schedule={"kind": "rectified-flow"}, t0=1.0), [], "rectified-flow"),
    "tol_zero": (_with(tol=0), [], "tol"),
    "tol_string": (_with(tol="1e-3"), [], "tol"),
    "grid_not_used_gaussian": (_with(GAUSS1, grid=400), [], "grid"),
    "grid_not_used_reversal": (_with(grid=400), ["--method", "reversal"], "grid"),
    "grid_3d": (_with(MIX3, grid=[50, 50, 50]), [], "3-D"),
    "grid_3d_method": (_with(MIX3), ["--method", "grid"], "3-D"),
    "grid_too_big": (_with(grid=100000), [], "25600"),
    "grid_1e9": (_with(grid=10 ** 9), [], "25600"),
    "grid_float": (_with(grid=400.5), [], "integer"),
    "grid_list_len": (_with(grid=[100, 100]), [], "grid"),
    "grid_work": (_with(grid=25600, n_steps=16000), [], "bound"),
    "n_steps_huge": (_with(n_steps=1000000), [], "100000"),
    "n_steps_grid_cap": (_with(n_steps=50000), [], "16384"),
    "n_steps_reversal_cap": (_with(n_steps=5000), ["--method", "reversal"], "2000"),
    "n_steps_one": (_with(n_steps=1), [], "n_steps"),
    "seed_negative": (_with(seed=-1), [], "seed"),
    "seed_huge": (_with(seed=2 ** 70), [], "seed"),
    "unknown_key": (_with(grids=400), [], "unknown"),
    "not_object": ("[1, 2, 3]", [], "object"),
    "malformed": ("{not json", [], "JSON"),
    "schedule_nan_param": (_with(schedule={"kind": "vp-linear", "beta_max": "20"}), [], "beta_max"),
    "ddpm_steps_string": (_with(schedule={"kind": "ddpm", "num_train_timesteps": "1000"}), [], "num_train"),
    "ddpm_steps_huge": (_with(schedule={"kind": "ddpm", "num_train_timesteps": 10 ** 9}), [], "100000"),
    "ddpm_ac_strings": (_with(schedule={"kind": "ddpm", "alphas_cumprod": ["0.9", "0.5"]}), [], "numbers"),
    "gaussian_on_mixture": (_with(), ["--method", "gaussian"], "gaussian"),
    "tol_with_particles": (_with(), ["--method", "particles", "--tol", "1e-3"], "tol"),
}

BAD_ARGS = {
    "tol_zero": ["--tol", "0"],
    "tol_negative": ["--tol", "-1e-3"],
    "tol_nan": ["--tol", "nan"],
    "tol_inf": ["--tol", "inf"],
    "tol_word": ["--tol", "abc"],
    "method": ["--method", "magic"],
}


def _write(tmp_path: Path, cfg) -> Path:
    p = tmp_path / "c.json"
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return p


def _one_error_line(err: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err, err


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config(name, tmp_path, capsys):
    cfg, args, word = BAD_CONFIGS[name]
    p = _write(tmp_path, cfg)
    before = sorted(os.listdir(tmp_path))
    assert main(["verify", str(p), *args]) == 2
    out = capsys.readouterr()
    _one_error_line(out.err)
    assert word.lower() in out.err.lower(), out.err
    assert out.out == ""
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("name", sorted(BAD_ARGS))
def test_bad_args(name, tmp_path, capsys):
    p = _write(tmp_path, EXAMPLE)
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(p), *BAD_ARGS[name]])
    assert exc.value.code == 2
    out = capsys.readouterr()
    _one_error_line(out.err)
    assert out.out == ""


def _run(*args, cwd=ROOT, timeout=60):
    return subprocess.run([sys.executable, "-m", "theory", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.mark.parametrize("name", ["cov_strings", "n_steps_huge", "grid_not_used_gaussian", "rf_t0_one",
                                  "nan_token", "grid_1e9"])
def test_bad_config_subprocess(name, tmp_path):
    """As a user runs it: a fresh process, exit 2, one line, fast (n_steps = 1e6 and grid = 1e9 are refused before
    any work instead of running for minutes or running out of memory)."""
    cfg, args, _ = BAD_CONFIGS[name]
    p = _write(tmp_path, cfg)
    r = _run("verify", str(p), *args, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    _one_error_line(r.stderr)
    assert r.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["c.json"]


def test_usage_errors_subprocess(tmp_path):
    for args in (["verify", str(_write(tmp_path, EXAMPLE)), "--tol", "0"], ["nonsense"], ["demo", "--bogus"]):
        r = _run(*args)
        assert r.returncode == 2, (args, r.stderr)
        _one_error_line(r.stderr)


def _demo_outputs(tmp_path: Path):
    """(--out value, what must stay as it was) for each bad destination."""
    f = tmp_path / "a_file"
    f.write_text("keep me")
    below = f / "sub"
    ro = tmp_path / "readonly"
    ro.mkdir()
    (ro / "report.json").write_text('{"old": true}')
    ro.chmod(0o555)
    clash = tmp_path / "clash"
    (clash / "report.json").mkdir(parents=True)
    return [(f, f), (below, f), (ro / "new", ro / "report.json"), (clash, clash / "report.json")]


def test_demo_bad_out_subprocess(tmp_path):
    """`demo --out` is checked before any work: a file, a folder below a file, a read-only folder (skipped as root,
    who can write anywhere), report.json being a folder; nothing written, existing files untouched."""
    cases = _demo_outputs(tmp_path)
    try:
        for out, keep in cases:
            if os.geteuid() == 0 and "readonly" in str(out):
                continue
            snap = keep.read_bytes() if keep.is_file() else None
            listing = sorted(p.name for p in tmp_path.rglob("*"))
            r = _run("demo", "--quick", "--out", str(out), timeout=60)
            assert r.returncode == 2, (out, r.returncode, r.stderr)
            _one_error_line(r.stderr)
            assert "--out" in r.stderr
            assert sorted(p.name for p in tmp_path.rglob("*")) == listing
            if snap is not None:
                assert keep.read_bytes() == snap
    finally:
        (tmp_path / "readonly").chmod(0o755)


def test_long_grid_run_is_announced(tmp_path, capsys, monkeypatch):
    """A grid run estimated over LONG_RUN_S prints one `note:` line on stderr before it starts (here the threshold
    is lowered so a small run triggers it)."""
    V = importlib.import_module("theory.verify")  # `theory.verify` the attribute is the function

    monkeypatch.setattr(V, "LONG_RUN_S", 0.0)
    p = _write(tmp_path, _with(grid=100, n_steps=16))
    assert main(["verify", str(p)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: grid run with 100 cells and 16 steps, estimated") and err.count("\n") == 1


def test_config_error_is_bad_input():
    from cliutil import BadInput
    from theory.errors import ConfigError

    assert issubclass(ConfigError, BadInput)


def test_internal_error_one_line_exit_1(tmp_path, capsys, monkeypatch):
    V = importlib.import_module("theory.verify")  # `theory.verify` the attribute is the function

    def boom(*a, **k):
        raise RuntimeError("simulated\nfailure")

    monkeypatch.setattr(V, "run_method", boom)
    p = _write(tmp_path, EXAMPLE)
    assert main(["verify", str(p)]) == 1
    err = capsys.readouterr().err
    _one_error_line(err)
    assert "internal error" in err and "simulated failure" in err
