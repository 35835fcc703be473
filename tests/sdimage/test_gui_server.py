"""The editor as a server (issue 23), through ``gradio_client`` on 127.0.0.1: a client killed mid-drag frees the
model within seconds, Stop keeps a drag's finished operations, concurrent clients against a small queue either
finish or get the busy message, and a soak of drags and translations keeps memory and disk bounded.

Every loop here is bounded in time and stops by itself.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

POINTS = "24,32 -> 40,32"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    pytest.importorskip("gradio")
    pytest.importorskip("gradio_client")
    from sdimage.loading import load_pipeline

    return load_pipeline(str(tiny_model_dir))


def _serve(pipe, tmp_path, **kw):
    from sdimage.gui import build_app, launch

    app = build_app(pipe, model="tiny", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"), **kw)
    port = _free_port()
    launch(app, port=port, block=False)
    return app, f"http://127.0.0.1:{port}/"


def _wait(cond, timeout: float, every: float = 0.05) -> float:
    """Seconds until ``cond()`` holds; fails after ``timeout``."""
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - t


LONG_DRAG = dict(points=POINTS, prompt="p", sampler="sde", steps=999, t0=1.0, step_size=0.05, preset="clean",
                 use_lora=False)  # 160 operations of 999 steps each: minutes of work on the tiny model


def test_killed_client_frees_the_model_within_seconds(pipe, tmp_path, tiny_image_path):
    """A client process killed mid-drag: the run stops (the model is free) within seconds, and the next job
    finishes at once."""
    from gradio_client import Client, handle_file

    app, url = _serve(pipe, tmp_path)
    ws = app.sdimage_workspace
    script = textwrap.dedent(f"""
        from gradio_client import Client, handle_file
        c = Client({url!r}, verbose=False)
        job = c.submit(image=handle_file({str(tiny_image_path)!r}), mask=None, api_name="/drag", **{LONG_DRAG!r})
        import time
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: ws.lock.locked(), 60)  # the drag is running
        time.sleep(1.0)
        assert ws.lock.locked()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        freed = _wait(lambda: not ws.lock.locked(), 30)
        t = time.monotonic()
        out = Client(url, verbose=False).predict(image=handle_file(str(tiny_image_path)), prompt="p", sampler="ode",
                                                 steps=1, t0=0.5, api_name="/translate")
        next_s = time.monotonic() - t
        assert out[0].startswith("**Done**")
        assert freed < 20 and next_s < 20, (freed, next_s)
        print(f"model freed {freed:.1f} s after the kill; the next job took {next_s:.1f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
        app.close()


def test_cancelled_job_stops_and_keeps_nothing_running(pipe, tmp_path, tiny_image_path):
    """``job.cancel()`` from the client (what a closed tab does through the page) stops the run."""
    from gradio_client import Client, handle_file

    app, url = _serve(pipe, tmp_path)
    ws = app.sdimage_workspace
    try:
        client = Client(url, verbose=False)
        job = client.submit(image=handle_file(str(tiny_image_path)), mask=None, api_name="/drag", **LONG_DRAG)
        _wait(lambda: ws.lock.locked(), 60)
        job.cancel()
        assert _wait(lambda: not ws.lock.locked(), 30) < 20
    finally:
        app.close()


def test_stop_keeps_the_finished_operations(pipe, tmp_path, tiny_image_path):
    """The Stop flag (what the Stop button sets for its session): the drag stops within one model evaluation of
    it, returns the operations it finished, and says so."""
    from sdimage import gui_run as R

    ws = R.Workspace(pipe, model="tiny", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"))
    calls = []
    done_ops = []

    def should_stop():
        calls.append(len(done_ops))
        return len(done_ops) >= 2  # stop once two operations are done

    out = R.run_drag(ws, str(tiny_image_path), None, POINTS, "p", "sde", steps=20, t0=0.5, step_size=2,
                     preset="clean", use_lora=False, should_stop=should_stop,
                     on_intermediate=lambda name, i, m, frame: done_ops.append(i))
    assert out.stopped and out.metadata["stopped"].startswith("stopped: SDE-Drag was stopped after 2 of ")
    assert "sde" in out.images and out.images["sde"].size == (64, 64)
    kept = sorted(Path(out.folder).glob("sde_op*.png"))
    assert [p.name for p in kept] == ["sde_op001.png", "sde_op002.png"]
    assert calls.count(2) == 1  # the first evaluation after the second operation stopped the run
    assert not ws.lock.locked()


def test_concurrent_clients_finish_or_get_the_busy_message(pipe, tmp_path, tiny_image_path):
    """Six clients at once against a queue of two: each finishes, or is told the queue is full; none hangs, and
    the server serves again afterwards."""
    from gradio_client import Client, handle_file
    app, url = _serve(pipe, tmp_path, max_queue=2)
    results: dict[int, str] = {}

    def one(k: int) -> None:
        try:
            out = Client(url, verbose=False).predict(image=handle_file(str(tiny_image_path)), prompt="p",
                                                     sampler="both", steps=40, t0=1.0, api_name="/translate")
            results[k] = "done" if out[0].startswith("**Done**") else out[0]
        except Exception as err:  # noqa: BLE001  (gradio_client's QueueError: "Queue is full! Please try again.")
            results[k] = f"busy: {err}" if "queue is full" in str(err).lower() else f"error: {type(err).__name__}: {err}"

    try:
        threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert len(results) == 6, results
        assert all(v == "done" or v.startswith("busy") for v in results.values()), results
        assert list(results.values()).count("done") >= 1 and any(v.startswith("busy") for v in results.values())
        out = Client(url, verbose=False).predict(image=handle_file(str(tiny_image_path)), prompt="p", sampler="ode",
                                                 steps=1, t0=0.5, api_name="/translate")
        assert out[0].startswith("**Done**")
    finally:
        app.close()


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _folder_mb(d: Path) -> float:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) / 2 ** 20 if d.exists() else 0.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident memory from /proc")
def test_soak_keeps_memory_and_disk_bounded(pipe, tmp_path, tiny_image_path, monkeypatch):
    """20 drags and 20 translations in a row: the resident memory grows by less than 300 MB after the first
    round, and Gradio's upload/result cache is emptied by its cleanup (results stay only in --out-dir)."""
    from gradio_client import Client, handle_file

    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    app, url = _serve(pipe, tmp_path, delete_cache=(2, 2))
    try:
        client = Client(url, verbose=False)
        img = handle_file(str(tiny_image_path))
        rss = []
        for k in range(20):
            out = client.predict(image=img, mask=None, points=POINTS, prompt="p", sampler="sde", steps=5, t0=0.6,
                                 step_size=8, preset="clean", use_lora=False, api_name="/drag")
            assert out[0].startswith("**Done**"), out[0]
            out = client.predict(image=img, prompt="p", sampler="ode", steps=2, t0=0.5, api_name="/translate")
            assert out[0].startswith("**Done**"), out[0]
            rss.append(_rss_mb())
        grew = max(rss) - rss[0]
        runs = list((tmp_path / "out").iterdir())
        assert len(runs) == 40  # every result where --out-dir says
        time.sleep(5)  # two cleanup periods
        left = _folder_mb(cache)
        assert grew < 300, rss
        assert left < 1.0, left
        print(f"RSS {rss[0]:.0f} -> {max(rss):.0f} MB over 40 runs; Gradio cache after cleanup {left:.2f} MB")
    finally:
        app.close()


def test_busy_and_stop_wording_in_the_page(pipe, tmp_path):
    """The page says one run at a time and what Stop does; every tab has a Stop button."""
    from sdimage.gui import build_app

    app = build_app(pipe, model="tiny", out_dir=str(tmp_path / "out"))
    ids = {getattr(b, "elem_id", None) for b in app.blocks.values()}
    for tab in ("drag", "inpaint", "translate", "diffedit"):
        assert f"{tab}-stop" in ids and f"{tab}-run" in ids
