"""The DragBench runner across two real processes (torchrun, gloo on CPU): every sample is dragged exactly once,
the union equals the single-process run byte for byte, and a killed rank's samples are picked up on resume."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    pre = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                                                str(nproc), "--master_addr", "127.0.0.1", "--master_port",
                                                str(_free_port())]
    r = subprocess.run(pre + ["-m", "sdimage", "dragbench", *args], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def bench(tmp_path_factory, tiny_model_dir):
    """Five 64×64 samples: three in SDE-Drag's layout, two in DragDiffusion's (in a category folder)."""
    from PIL import Image

    from sdimage.dragbench import DragSample, write_sample

    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    for i in range(5):
        img = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))
        m = np.zeros((64, 64), bool)
        m[10:50, 10:50] = True
        s = DragSample(img, f"a photo {i}", [(20, 20 + i)], [(30, 24 + i)], m)
        if i < 3:
            write_sample(s, root / f"s{i}", "sde-drag")
        else:
            write_sample(s, root / "animals" / f"d{i}", "dragdiffusion")
    common = ["--model", str(tiny_model_dir), "--root", str(root), "--steps", "4", "--lora-steps", "0",
              "--no-progress"]
    return root, common


def _ran(stdout: str) -> dict[int, list[str]]:
    out = {}
    for rank, n, ids in re.findall(r"dragbench process (\d+)/2: dragged (\d+): ?(.*)", stdout):
        out[int(rank)] = [s for s in ids.split(", ") if s]
        assert len(out[int(rank)]) == int(n)
    return out


def test_two_processes_split_once_and_equal_one_process(bench, tmp_path):
    root, common = bench
    one, two = tmp_path / "one", tmp_path / "two"
    _run([*common, "--out", str(one)])
    r = _run([*common, "--out", str(two)], nproc=2)
    ran = _ran(r.stdout)
    ids = ["animals/d3", "animals/d4", "s0", "s1", "s2"]
    assert sorted(ran) == [0, 1] and all(ran.values())
    assert sorted(ran[0] + ran[1]) == ids  # each sample dragged by exactly one process
    pngs = sorted(p.name for p in one.glob("*.png"))
    assert pngs == ["animals__d3.png", "animals__d4.png", "s0.png", "s1.png", "s2.png"]
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (one, two)]  # written once, by rank 0
    assert manifests[0]["settings"] == manifests[1]["settings"] and manifests[1]["settings"]["config"]["steps"] == 4
    assert not list(two.glob(".*.tmp"))
    for name in pngs:
        assert (one / name).read_bytes() == (two / name).read_bytes()
        meta = json.loads((two / name).with_suffix(".json").read_text())
        assert meta["num_processes"] == 2 and meta["sample_id"] in ran[meta["process_index"]]

    # rank 1 killed before it wrote its results: its samples have no JSON (a PNG may be left) -> redone on resume
    for sid in ran[1]:
        (two / f"{sid.replace('/', '__')}.json").unlink()
    r = _run([*common, "--out", str(two)], nproc=2)
    again = _ran(r.stdout)
    assert sorted(again[0] + again[1]) == sorted(ran[1])
    assert f"{len(ids) - len(ran[1])} already done" in r.stdout
    for name in pngs:
        assert (one / name).read_bytes() == (two / name).read_bytes()
