"""The browser editor in a real browser (issue 11): headless Chromium (Debian's ``chromium``) driven by Playwright.

Starts ``python -m sdimage gui`` on the tiny model in a subprocess, uploads an image, paints the editable region,
clicks Drag without points (a one-line message in the page), clicks a handle and a target point, picks "both",
sets few steps, runs, waits for the SDE and ODE results, checks that they differ from each other and from the
input, and downloads the JSON metadata.  The steps live in ``scripts/gui_screenshot.py`` (which also regenerates
the README figure); with ``SDIMAGE_GUI_SCREENSHOT=PATH`` this test saves its finished page there too.

Missing Chromium / Playwright skips the test, except when ``SDEODE_REQUIRE_BROWSER=1`` (``.ci/run`` sets it after
installing both): then it fails with what is missing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from scripts.gui_screenshot import decode_png, drive_drag, drive_stop, find_chromium, free_port, start_gui, stop_gui

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _browser_or_skip() -> str:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    try:
        import gradio  # noqa: F401
    except ImportError:
        missing.append("gradio (pip install -e '.[gui]')")
    chromium = find_chromium()
    if chromium is None:
        missing.append("chromium (apt-get install -y chromium)")
    if missing:
        msg = "the browser test needs " + ", ".join(missing)
        if os.environ.get("SDEODE_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (SDEODE_REQUIRE_BROWSER=1)")
        pytest.skip(msg)
    return chromium  # type: ignore[return-value]


def test_drag_in_a_real_browser(tiny_model_dir, tiny_image_path, tmp_path):
    chromium = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    t0 = time.time()
    port = free_port()
    proc = start_gui(str(tiny_model_dir), port, tmp_path / "out", tmp_path / "gui.log",
                     {"SDIMAGE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                res = drive_drag(page, f"http://127.0.0.1:{port}/", Path(tiny_image_path), tmp_path,
                                 points=((20, 32), (36, 32)), check_error=True)
                shot = os.environ.get("SDIMAGE_GUI_SCREENSHOT")
                if shot:
                    Path(shot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=shot, full_page=True)
                stopped = drive_stop(page)  # a long drag, then Stop (issue 23)
            finally:
                browser.close()
    finally:
        stop_gui(proc)
    elapsed = time.time() - t0

    # the bad click showed one line in the page, not a traceback
    assert "no points" in res["errors"]["no points"] and "Traceback" not in res["page_text"]
    # both results exist, differ from each other and from the input
    sde, ode = decode_png(res["images"]["sde"]), decode_png(res["images"]["ode"])
    inp = decode_png(Path(tiny_image_path).read_bytes())
    assert sde.shape == ode.shape == inp.shape == (64, 64, 3)
    assert np.abs(sde - ode).mean() > 1.0
    assert np.abs(sde - inp).mean() > 1.0 and np.abs(ode - inp).mean() > 1.0
    # the downloaded JSON: both samplers, the clicked points, the painted mask, the steps typed in the page
    meta = res["json"]
    assert meta["samplers"] == ["sde", "ode"] and set(meta["runs"]) == {"sde", "ode"}
    assert res["points"] == "20,32 -> 36,32" and meta["inputs"]["points"] == "20,32 -> 36,32"
    assert meta["inputs"]["mask"] == "mask.png" and 0.0 < meta["inputs"]["editable_fraction"] < 1.0
    assert meta["inputs"]["config"]["steps"] == 5 and meta["inputs"]["config"]["lora_steps"] == 2
    assert meta["runs"]["sde"]["num_drag_ops"] == 2 and meta["runs"]["sde"]["lora"]["cached"] is False
    assert meta["runs"]["ode"]["lora"]["cached"] is True
    assert "Done" in res["status"]
    # Stop: the page says so within seconds, with what the stopped drag kept
    assert stopped["status"].startswith("Stopped") and "SDE-Drag was stopped" in stopped["status"], stopped
    assert stopped["stop_s"] < 30, stopped
    print(f"browser drag test: {elapsed:.0f} s")
