"""CLI: example config, every bad-input case gives one stderr line, exit 2, no traceback (more cases:
test_cli_bad_input.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from theory.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples/theory/example.json").read_text())


def _with(**kw):
    d = json.loads(json.dumps(EXAMPLE))
    d.update(kw)
    return d


BAD = {
    "nonspd": _with(edited={"weights": [1.0], "means": [[0.5]], "covs": [[[-0.4]]]}),
    "nonsym": _with(data={"weights": [1.0], "means": [[0.0, 0.0]], "covs": [[[1.0, 0.5], [0.1, 1.0]]]},
                    edited={"weights": [1.0], "means": [[0.0, 0.0]], "covs": [[[1.0, 0.0], [0.0, 1.0]]]}),
    "weights": _with(data={"weights": [0.3, 0.3], "means": [[-2.0], [1.5]], "covs": [[[0.1]], [[0.2]]]}),
    "dims": _with(edited={"weights": [1.0], "means": [[0.5, 0.1]], "covs": [[[0.4, 0], [0, 0.4]]]}),
    "t0_le_tend": _with(t0=0.001),
    "t0_out": _with(t0=1.5),
    "t_end_neg": _with(t_end=-0.1),
    "schedule": _with(schedule={"kind": "sub-vp"}),
    "sampler": _with(sampler="heun"),
    "missing_key": {k: v for k, v in EXAMPLE.items() if k != "edited"},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input(name, tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(BAD[name]))
    assert main(["verify", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err


def test_grid_3d_missing_file_malformed(tmp_path, capsys):
    d3 = _with(data={"weights": [0.5, 0.5], "means": [[0, 0, 0], [1, 1, 1]], "covs": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]] * 2},
               edited={"weights": [1.0], "means": [[0, 0, 0]], "covs": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]})
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d3))
    assert main(["verify", str(p), "--method", "grid"]) == 2
    assert main(["verify", str(tmp_path / "nope.json")]) == 2
    p.write_text("{not json")
    assert main(["verify", str(p)]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(p), "--method", "magic"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("error:") for e in err)


def test_example_subprocess():
    r = subprocess.run([sys.executable, "-m", "theory", "verify", str(ROOT / "examples/theory/example.json"),
                        "--method", "reversal"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    for k in ["method", "sampler", "times", "kl", "fisher", "kl_start", "kl_end", "kl_drop", "fisher_integral",
              "residual", "seconds"]:
        assert k in rep
    assert rep["method"] == "reversal" and rep["residual"] / rep["kl_start"] < 1e-3
    assert 0.25 < rep["kl_start"] < 0.26 and rep["kl_end"] < 0.01
    r = subprocess.run([sys.executable, "-m", "theory", "verify", "/nonexistent.json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
