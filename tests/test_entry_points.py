"""The console entry points of ``pyproject.toml`` ([project.scripts]): one per command line (``python -m theory``,
``python -m toy``, ``python -m sdimage``), each target importable and callable, installed by ``pip install -e .``
(the script next to the interpreter imports the declared target), and ``<script> --help`` exits 0 with the usage
text."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 (requires-python >= 3.10)
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# the packages with a command line: those with a __main__ module
CLI_PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__main__.py") if (p.parent / "__init__.py").exists())


def _scripts() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def test_one_script_per_command_line():
    scripts = _scripts()
    assert CLI_PACKAGES == ["sdimage", "theory", "toy"]
    assert scripts == {f"sdebeatsode-{pkg}": scripts[f"sdebeatsode-{pkg}"] for pkg in CLI_PACKAGES}
    for pkg in CLI_PACKAGES:
        module = scripts[f"sdebeatsode-{pkg}"].split(":")[0]
        assert module in (f"{pkg}.cli", f"{pkg}.__main__")  # the function `python -m PKG` runs


@pytest.mark.parametrize("name", sorted(_scripts()))
def test_script_target_imports_and_is_callable(name):
    module, _, attr = _scripts()[name].partition(":")
    env = dict(os.environ)  # sdimage.__main__ sets the third-party verbosity variables on import: keep ours
    try:
        target = getattr(importlib.import_module(module), attr)
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert callable(target)
    if module.endswith(".__main__"):  # importing it must not run the command
        assert target is importlib.import_module(module.rsplit(".", 1)[0] + ".cli").main


def _script(name: str) -> Path:
    """The installed console script next to the interpreter (a venv's bin/, where ``pip install -e .`` puts it)."""
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        pytest.fail(f"{exe} is missing: rerun `pip install -e .`")
    return exe


@pytest.mark.parametrize("name", sorted(_scripts()))
def test_installed_script_runs_the_declared_target(name):
    module, _, attr = _scripts()[name].partition(":")
    text = _script(name).read_text(encoding="utf-8")
    assert f"from {module} import {attr}\n" in text, f"{name} is stale: rerun `pip install -e .`"


@pytest.mark.parametrize("name", sorted(_scripts()))
def test_script_help_exits_0(name):
    pkg = name.removeprefix("sdebeatsode-")
    res = subprocess.run([str(_script(name)), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT.parent,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"usage: python -m {pkg} ") and res.stderr == ""
