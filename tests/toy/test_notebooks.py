"""Every notebook executes top to bottom in fast mode (SDEODE_FAST=1) on a python3 kernel of this interpreter, and the
copy stored in the repository (executed, with its figures) is not stale: same cells, same kinds of output.
(``digits.ipynb`` is executed in tests/toy/test_digits.py against a shared run.)  Refresh the stored copies with
``python -m scripts.execute_notebooks``."""
import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if p.name != "digits.ipynb")


@pytest.fixture()
def kernel_env(tmp_path, monkeypatch):
    """A 'python3' kernelspec pointing at sys.executable (the venv), found first via JUPYTER_PATH."""
    kdir = tmp_path / "kernels" / "python3"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("SDEODE_FAST", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return tmp_path


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"toy_kl_curves.ipynb", "toy_fisher_identity.ipynb", "toy_editing.ipynb",
            "toy_schedule_eta_study.ipynb"} <= names


def _pngs(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_and_stored_copy_is_current(path, kernel_env):
    from scripts.execute_notebooks import execute, output_kinds

    stored = nbformat.read(path, as_version=4)
    assert _pngs(stored) > 0, f"{path.name} is stored without its figures: run python -m scripts.execute_notebooks"
    nb = execute(path, timeout=240)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert _pngs(nb) > 0
    assert output_kinds(nb) == output_kinds(stored), f"{path.name} is stale: run python -m scripts.execute_notebooks"
