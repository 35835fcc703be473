"""Drive the browser editor (``python -m sdimage gui``) in headless Chromium and save a screenshot of the finished
page: ``python -m scripts.gui_screenshot [--model DIR] [--out docs/figures/gui.png]``.

Without ``--model`` a tiny random-weight model is made in a temporary folder (offline; its results are noise-like).
The steps are those of ``tests/sdimage/test_gui_browser.py``, which uses the helpers below: start the real command
in a subprocess, upload an image, paint the editable region, click a handle and a target point, pick "both", set
few steps, run, wait for the SDE and ODE results and download the JSON metadata.

Chromium: Debian's ``chromium`` package (``apt-get install -y chromium``), driven by Playwright from PyPI
(``pip install playwright``) with ``executable_path`` (Playwright's own browser download is not needed).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium() -> str | None:
    """$SDIMAGE_CHROMIUM, else the first system Chromium found."""
    env = os.environ.get("SDIMAGE_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for c in CHROMIUM_CANDIDATES:
        if Path(c).is_file():
            return c
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demo_image(path: Path, size: int = 64) -> Path:
    """A smooth colourful test picture (the tests' 64x64 image)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / (size - 1.0)
    arr = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    Image.fromarray((arr * 255).astype(np.uint8)).save(path)
    return path


def start_gui(model: str, port: int, out_dir: Path, log_path: Path, extra_env: dict | None = None,
              timeout: float = 120.0, cwd: Path | None = None) -> subprocess.Popen:
    """``python -m sdimage gui --model MODEL --port PORT`` in a subprocess (in ``cwd``, default the repository);
    returns once the page answers."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdimage", "gui", "--model", str(model), "--port", str(port), "--out-dir", str(out_dir)],
        cwd=str(cwd or ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"the gui exited with status {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the gui did not answer on {url} within {timeout:.0f} s:\n{Path(log_path).read_text()[-3000:]}")


def stop_gui(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fill_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.wait_for(timeout=30000)
    box.fill(str(value))
    box.press("Enter")
    box.press("Tab")


def _view_rect(page):
    """The points view's <img>: (left, top, shown scale, zoom of the view over the image), as Gradio maps clicks
    (object-fit: contain, never scaled up)."""
    img = page.locator("#drag-points img")
    bb = img.bounding_box()
    nw, nh = page.evaluate("el => [el.naturalWidth, el.naturalHeight]", img.element_handle())
    r = min(bb["width"] / nw, bb["height"] / nh, 1.0)
    return bb["x"] + (bb["width"] - nw * r) / 2, bb["y"] + (bb["height"] - nh * r) / 2, r, nw


def _view_src(page) -> str | None:
    return page.evaluate("() => { const i = document.querySelector('#drag-points img'); "
                         "return i && i.complete && i.naturalWidth > 0 ? i.src : null; }")


def _wait_view_change(page, old: str | None, timeout_ms: int = 60000) -> str:
    page.wait_for_function(
        "([old]) => { const i = document.querySelector('#drag-points img'); "
        "return i && i.complete && i.naturalWidth > 0 && i.src !== old; }", arg=[old], timeout=timeout_ms)
    return _view_src(page)


def drive_drag(page, url: str, image_path: Path, download_dir: Path, *, points=((20, 32), (36, 32)),
               image_width: int = 64, prompt: str = "a colourful gradient", sampler_label: str = "Both",
               steps: int = 5, step_size: float = 4, lora_steps: int = 2, timeout_s: float = 100,
               check_error: bool = False) -> dict:
    """The whole drag workflow in the page; returns the two result images (PNG bytes), the downloaded JSON, the
    points text and the status line.  ``page``: a Playwright page."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    errors: dict[str, str] = {}
    page.goto(url)
    editor = page.locator("#drag-editor")
    editor.wait_for(timeout=60000)
    page.wait_for_timeout(1000)
    for attempt in range(3):  # on a loaded machine the first upload can land before the page is wired up
        editor.locator("input[type=file]").first.set_input_files(str(image_path))
        try:
            src = _wait_view_change(page, None, 30000)  # the points view shows the uploaded image
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise

    # paint the editable region: one stroke across the middle of the canvas (few mouse moves: the canvas is WebGL,
    # rendered in software in a headless browser, so every move is slow on a small machine)
    bb = editor.locator("canvas").last.bounding_box()
    x0, y = bb["x"] + bb["width"] * 0.3, bb["y"] + bb["height"] * 0.5
    page.mouse.move(x0, y)
    page.mouse.down()
    for k in range(1, 5):
        page.mouse.move(x0 + bb["width"] * 0.1 * k, y)
    page.mouse.up()
    src = _wait_view_change(page, src)  # the tinted region appears in the points view
    while True:  # let the strokes' updates settle
        page.wait_for_timeout(1500)
        now = _view_src(page)
        if now == src:
            break
        src = now

    if check_error:  # Drag without points: a one-line message in the page, no stack trace
        page.locator("#drag-run").click()
        toast = page.get_by_text("no points: click a handle point on the image", exact=False).first
        toast.wait_for(timeout=30000)
        errors["no points"] = page.locator(".toast-body").first.inner_text()
        for close in page.locator(".toast-close").all():
            close.click()
        page.wait_for_timeout(500)

    # click a handle, then its target (each click redraws the view: wait for it before the next click)
    for x, y in points:
        page.locator("#drag-points img").scroll_into_view_if_needed()  # the Run button may have scrolled it away
        left, top, r, nw = _view_rect(page)
        zoom = nw / image_width
        page.mouse.click(left + (x + 0.5) * zoom * r, top + (y + 0.5) * zoom * r)
        src = _wait_view_change(page, src)
    points_text = page.locator("#drag-points-text textarea").input_value()

    page.locator("#drag-prompt textarea").fill(prompt)
    page.locator("#drag-sampler").get_by_label(sampler_label, exact=False).check()
    # few steps: open both parameter panels (they stay open: the screenshot shows every parameter)
    page.get_by_text("Drag parameters", exact=False).first.click()
    page.get_by_text("LoRA on the image", exact=False).first.click()
    _fill_number(page, "drag-steps", steps)
    _fill_number(page, "drag-step-size", step_size)
    _fill_number(page, "drag-lora-steps", lora_steps)
    page.locator("#drag-prompt textarea").click()
    page.wait_for_timeout(1000)

    page.locator("#drag-run").click()
    page.wait_for_function("() => /Done/.test(document.querySelector('#drag-status')?.innerText || '')",
                           timeout=timeout_s * 1000)
    page.locator("#drag-sde img").wait_for(timeout=30000)
    page.locator("#drag-ode img").wait_for(timeout=30000)
    status = page.locator("#drag-status").inner_text()
    images = {}
    for k in ("sde", "ode", "live"):
        src_k = page.locator(f"#drag-{k} img").first.get_attribute("src")
        images[k] = page.request.get(src_k).body()

    json_link = None
    links = page.locator("#drag-files a")
    for i in range(links.count()):
        a = links.nth(i)
        if (a.get_attribute("download") or "").endswith(".json") or (a.get_attribute("href") or "").endswith(".json"):
            json_link = a
            break
    if json_link is None:
        raise AssertionError("no download link for the JSON metadata in the Downloads box")
    with page.expect_download(timeout=30000) as dl:
        json_link.click()
    target = download_dir / "drag.json"
    dl.value.save_as(str(target))
    page.wait_for_timeout(1000)  # let the GIF and the file list finish rendering (screenshot)
    return {"images": images, "json": json.loads(target.read_text()), "json_path": target, "points": points_text,
            "status": status, "errors": errors, "page_text": page.locator("body").inner_text()}


def drive_stop(page, steps: int = 999, step_size: float = 0.1, timeout_s: float = 60) -> dict:
    """After :func:`drive_drag` (image, mask and points in place): start a long drag, press Stop once it runs, and
    return the status line and the seconds from the click to the page saying it stopped."""
    _fill_number(page, "drag-steps", steps)
    _fill_number(page, "drag-step-size", step_size)
    page.locator("#drag-sampler").get_by_label("SDE", exact=True).check()
    page.locator("#drag-use-lora input").uncheck()
    page.locator("#drag-prompt textarea").click()
    page.wait_for_timeout(500)
    page.locator("#drag-run").click()
    page.wait_for_function("() => /model calls|operation/.test(document.querySelector('#drag-status')?.innerText "
                           "|| '')", timeout=timeout_s * 1000)
    t = time.time()
    page.locator("#drag-stop").click()
    page.wait_for_function("() => /Stopped/.test(document.querySelector('#drag-status')?.innerText || '')",
                           timeout=timeout_s * 1000)
    return {"status": page.locator("#drag-status").inner_text(), "stop_s": time.time() - t}


def decode_png(data: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def run(model: str | None, out: Path, image: Path | None = None, headful: bool = False, steps: int = 5,
        step_size: float = 4, lora_steps: int = 2) -> dict:
    """Start the gui, drive the drag workflow, save a full-page screenshot to ``out``; returns drive_drag's dict."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: apt-get install -y chromium (or set SDIMAGE_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="sdimage-gui-shot-") as tmp:
        tmp = Path(tmp)
        env = {"SDIMAGE_CACHE": str(tmp / "cache")}
        cwd = None
        if model is None:  # the tiny model, shown in the page by a short relative name
            from sdimage.tiny import save_tiny_model

            save_tiny_model(tmp / "tiny-sd", seed=0)
            model, cwd = "tiny-sd", tmp
            env["OMP_NUM_THREADS"] = "1"  # the tiny model runs fastest on one thread
        else:
            model = str(Path(model).resolve()) if Path(model).exists() else model
        img = Path(image).resolve() if image else write_demo_image(tmp / "image.png")
        width = _image_width(img)
        port = free_port()
        proc = start_gui(model, port, tmp / "out", tmp / "gui.log", env, cwd=cwd, timeout=600)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=not headful,
                                            args=["--no-sandbox", "--disable-dev-shm-usage"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                res = drive_drag(page, f"http://127.0.0.1:{port}/", img, tmp, image_width=width,
                                 points=_default_points(img), steps=steps, step_size=step_size, lora_steps=lora_steps,
                                 timeout_s=3600)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            stop_gui(proc)
    return res


def _image_width(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0]


def _default_points(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    return ((int(w * 0.31), h // 2), (int(w * 0.56), h // 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.gui_screenshot", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="diffusers model folder or hub id (default: a tiny random model)")
    ap.add_argument("--image", default=None, help="image to drag (default: a 64x64 test picture)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "gui.png"))
    ap.add_argument("--steps", type=int, default=5, help="drag steps (default 5: the tiny model; 200 is official)")
    ap.add_argument("--step-size", type=float, default=4)
    ap.add_argument("--lora-steps", type=int, default=2)
    ap.add_argument("--headful", action="store_true")
    args = ap.parse_args(argv)
    t = time.time()
    res = run(args.model, Path(args.out), Path(args.image) if args.image else None, args.headful, args.steps,
              args.step_size, args.lora_steps)
    print(f"wrote {args.out} ({time.time() - t:.0f} s); points {res['points']!r}; {res['status'].splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
