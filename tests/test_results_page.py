"""The main job's results page lists every stage that ran, and every number on it equals the JSON it links to."""
from __future__ import annotations

import json
import re
import shutil
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scripts.results_page import write_page

ROOT = Path(__file__).resolve().parents[1]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.numbers, self.stages, self.sections, self.images = [], [], [], []
        self._num = self._stage = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("class") == "num":
            self._num = [a["data-json"], a["data-key"], ""]
        if tag == "td" and a.get("class") == "stage":
            self._stage = ""
        if tag == "h2" and a.get("class") == "section":
            self.sections.append(a["data-stage"])
        if tag == "img":
            self.images.append(a["src"])

    def handle_data(self, data):
        if self._num is not None:
            self._num[2] += data
        if self._stage is not None:
            self._stage += data

    def handle_endtag(self, tag):
        if tag == "a" and self._num is not None:
            self.numbers.append(tuple(self._num))
            self._num = None
        if tag == "td" and self._stage is not None:
            self.stages.append(self._stage)
            self._stage = None


def _value(obj, key: str):
    for k in key.split("."):
        obj = obj[int(k)] if isinstance(obj, list) else obj[k]
    return obj


@pytest.fixture()
def results(tmp_path):
    """A results folder made of the stored reports (docs/figures) and small real ones, plus a stage the page has
    no builder for and a failed stage."""
    from theory.config import load_config
    from theory.verify import verify

    res = tmp_path / "results"
    for src, dst in (("docs/figures/toy/editing", "toy/editing"), ("docs/figures/toy/kl-curves", "toy/kl-curves"),
                     ("docs/figures/toy/study", "toy/study"), ("docs/figures/digits/exact", "digits"),
                     ("docs/figures/shapes/quick", "toy/shapes"), ("docs/figures/toy/score-error", "toy/score-error"),
                     ("docs/figures/fast", "toy/fast-study")):
        shutil.copytree(ROOT / src, res / dst)
    (res / "theory").mkdir(parents=True)
    cfg = load_config(ROOT / "examples/theory/example.json")
    rep = {"mixture1d_sde_grid": verify(cfg, "grid")}
    (res / "theory" / "report.json").write_text(json.dumps(rep))
    (res / "sdimage").mkdir()
    (res / "sdimage" / "reconstruct.json").write_text(json.dumps({"latent_max_abs_error": 3.2e-14, "nfe": 40}))
    (res / "newlab").mkdir()
    (res / "newlab" / "report.json").write_text(json.dumps({"answer": 42}))
    shutil.copy(ROOT / "docs/figures/toy/study/study_eta.png", res / "newlab" / "curve.png")
    out = lambda p: ["--out", str(res / p)]  # noqa: E731
    summary = [
        {"stage": "theory", "command": ["python", "-m", "theory", "demo", *out("theory")], "exit_code": 0, "seconds": 1},
        {"stage": "toy kl-curves", "command": ["python", "-m", "toy", "kl-curves", *out("toy/kl-curves")],
         "exit_code": 0, "seconds": 1},
        {"stage": "toy editing", "command": ["python", "-m", "toy", "editing", *out("toy/editing")], "exit_code": 0,
         "seconds": 1},
        {"stage": "toy study", "command": ["python", "-m", "toy", "study", *out("toy/study")], "exit_code": 0,
         "seconds": 1},
        {"stage": "digits", "command": ["python", "-m", "toy", "digits", "all", *out("digits")], "exit_code": 0,
         "seconds": 1},
        {"stage": "toy score-error", "command": ["python", "-m", "toy", "score-error", *out("toy/score-error")],
         "exit_code": 0, "seconds": 1},
        {"stage": "toy shapes drag", "command": ["python", "-m", "toy", "shapes", "drag", *out("toy/shapes")],
         "exit_code": 0, "seconds": 1},
        {"stage": "toy fast-study", "command": ["python", "-m", "toy", "fast-study", *out("toy/fast-study")],
         "exit_code": 0, "seconds": 1},
        {"stage": "sdimage reconstruct (sde)", "command": ["python", "-m", "sdimage", "reconstruct",
                                                          *out("sdimage/reconstruct.png")], "exit_code": 0, "seconds": 1},
        {"stage": "sdimage tiny model", "command": ["python", "-m", "sdimage", "make-tiny-model", str(res / "tiny")],
         "exit_code": 0, "seconds": 1},
        {"stage": "new lab", "command": ["python", "-m", "toy", "newlab", *out("newlab")], "exit_code": 0, "seconds": 1},
        {"stage": "broken lab", "command": ["python", "-m", "toy", "broken", *out("broken")], "exit_code": 1,
         "seconds": 1},
    ]
    return res, summary


def test_page_lists_every_stage_and_its_numbers_equal_the_json(results):
    res, summary = results
    page = write_page(res, summary)
    p = _Page()
    p.feed(page.read_text())
    names = [s["stage"] for s in summary]
    assert p.stages == names and p.sections == names
    assert len(p.numbers) > 60
    files = {}
    for rel, key, text in p.numbers:
        data = files.setdefault(rel, json.loads((res / rel).read_text()))
        want = _value(data, key)
        if isinstance(want, (bool, str)):
            assert text == str(want), (rel, key)
        else:  # the shown digits are the JSON value rounded: off by at most half a unit of the last digit
            half = 0.5 * 10.0 ** Decimal(text).as_tuple().exponent
            assert abs(float(text) - want) <= half * (1 + 1e-9), (rel, key, text, want)
    assert {rel for rel, _, _ in p.numbers} >= {"theory/report.json", "toy/editing/report.json",
                                                "toy/kl-curves/report.json", "toy/study/report.json",
                                                "digits/report.json", "sdimage/reconstruct.json",
                                                "toy/shapes/report.json", "toy/score-error/report.json",
                                                "toy/fast-study/report.json"}
    assert all((res / img).is_file() for img in p.images) and "newlab/curve.png" in p.images
    md = (res / "README.md").read_text()
    for _, _, text in p.numbers:
        assert f"[{text}](" in md
    assert "this stage failed" in md and "no summary for this stage yet" in md and "could not read" not in md
    assert "a set-up step" in md
    # the digits verdicts on the page are the ones of the digits report
    from toy.digits.report import verdicts

    digit_rows = re.findall(r"\| digits [^|]+\|[^|]+\|[^\n]+\| \*\*(\w+)\*\* \|", md)
    assert digit_rows == [v["favours"] for v in verdicts(json.loads((res / "digits/report.json").read_text()))]


def test_a_moved_results_folder_still_resolves(results, tmp_path):
    """The main job records each stage's --out relative to the results folder; the page follows the folder."""
    res, summary = results
    for st in summary:
        cmd = st["command"]
        if "--out" in cmd:
            st["out"] = str(Path(cmd[cmd.index("--out") + 1]).relative_to(res))
            cmd[cmd.index("--out") + 1] = "results/" + st["out"]  # relative to a working folder that is gone
    moved = tmp_path / "elsewhere"
    shutil.move(str(res), moved)
    write_page(moved, summary)
    md = (moved / "README.md").read_text()
    assert "could not read" not in md and "no report found" not in md and "[4/4](toy/editing/report.json)" in md


def test_page_cli_needs_a_summary(tmp_path, capsys):
    from scripts.results_page import main

    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
