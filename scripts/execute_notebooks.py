"""Execute the notebooks in fast mode and store them with their outputs (figures included), so the repository shows
the plots.  ``python -m scripts.execute_notebooks [NAME.ipynb ...]`` (default: every notebook in ``notebooks/``).

Fast mode is ``SDEODE_FAST=1``; ``digits.ipynb`` shows the committed full run (``DIGITS_REPORT_DIR`` =
``docs/figures/digits/exact``) instead of recomputing.  The test suite re-executes every notebook and fails when a
stored copy is stale (other cells, or other kinds of output).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {"SDEODE_FAST": "1", "PYTHONPATH": str(ROOT)}
EXTRA_ENV = {"digits.ipynb": {"DIGITS_REPORT_DIR": "docs/figures/digits/exact"}}


def kernel_dir(tmp: Path) -> Path:
    """A 'python3' kernelspec that runs this interpreter (the venv), for JUPYTER_PATH."""
    kdir = tmp / "kernels" / "python3"
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sde-beats-ode)", "language": "python"}))
    return tmp


def execute(path: Path, timeout: int = 600):
    """The notebook at ``path`` executed in fast mode (returned, not written)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout, record_timing=False,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return nb


def output_kinds(nb) -> list[tuple[str, list]]:
    """Per cell: its source and the kinds of its rich outputs (type and MIME types; printed text is left out, its
    chunking varies) — what a stale copy would change."""
    out = []
    for c in nb.cells:
        kinds = [(o.get("output_type"), sorted(o.get("data", {}))) for o in c.get("outputs", [])
                 if o.get("output_type") != "stream"] if c.cell_type == "code" else []
        out.append((c.source, kinds))
    return out


def main(argv: list[str] | None = None) -> int:
    import nbformat

    names = (sys.argv[1:] if argv is None else argv) or sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", *ENV, "DIGITS_REPORT_DIR")}
        try:
            os.environ["JUPYTER_PATH"] = str(kernel_dir(Path(tmp)))
            for name in names:
                os.environ.update(ENV)
                os.environ.pop("DIGITS_REPORT_DIR", None)
                os.environ.update(EXTRA_ENV.get(name, {}))
                path = ROOT / "notebooks" / name
                nb = execute(path)
                errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
                if errors:
                    print(f"error: {name} raised {errors[0].get('ename')}: {errors[0].get('evalue')}", file=sys.stderr)
                    return 1
                tmp_out = path.with_suffix(".ipynb.tmp")
                nbformat.write(nb, tmp_out)
                tmp_out.replace(path)
                print(f"executed and stored {path.relative_to(ROOT)}")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
