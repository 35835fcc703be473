"""CLI end to end on the tiny model: every command writes PNG + JSON; every bad input gives one line, exit 2, no file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sdimage.cli import main

FAST = ["--steps", "4", "--no-progress"]


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_written(out_png: Path, command: str):
    assert out_png.is_file() and Image.open(out_png).size == (64, 64)
    meta = json.loads(out_png.with_suffix(".json").read_text())
    assert meta["command"] == command
    for key in ("model", "params", "nfe", "wall_s", "peak_memory_bytes", "versions", "seed"):
        assert key in meta, key
    assert meta["nfe"] >= 1 and "torch" in meta["versions"] and "diffusers" in meta["versions"]
    assert not [p for p in out_png.parent.iterdir() if p.name.endswith(".tmp")]
    return meta


def test_make_tiny_model_via_python_m(tmp_path):
    d = tmp_path / "tiny"
    r = subprocess.run([sys.executable, "-m", "sdimage", "make-tiny-model", str(d), "--v-prediction"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (d / "model_index.json").is_file()
    assert json.loads((d / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    # a bad input through the real entry point: one line on stderr, exit 2, no traceback
    r = subprocess.run([sys.executable, "-m", "sdimage", "translate", "--model", str(d), "--image", "nope.png",
                        "--prompt", "x", "--out", str(tmp_path / "o.png")], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr and "does not exist" in lines[0]


def test_commands_end_to_end(capsys, tmp_path, tiny_model_dir, tiny_image_path, tiny_mask_path):
    m = ["--model", tiny_model_dir, "--image", tiny_image_path]
    cases = [
        ("inpaint", m + ["--mask", tiny_mask_path, "--prompt", "a cat", "--solver", "dpmpp", "--sampler", "sde"]),
        ("translate", m + ["--prompt", "a dog", "--t0", "0.5", "--eta", "0.3"]),
        ("diffedit", m + ["--source-prompt", "a cat", "--target-prompt", "a dog", "--t0", "0.5", "--mask-draws", "2"]),
        ("reconstruct", m + ["--sampler", "sde"]),
        ("reconstruct", m + ["--sampler", "sde", "--dtype", "float64"]),
    ]
    for k, (cmd, args) in enumerate(cases):
        out = tmp_path / f"{cmd}{k}.png"
        code, so, se = _run(capsys, [cmd, *args, *FAST, "--out", out])
        assert code == 0, se
        meta = _assert_written(out, cmd)
        assert meta["params"]["steps"] == 4
    assert json.loads((tmp_path / "reconstruct3.json").read_text())["latent_max_abs_error"] < 1e-4
    rec64 = json.loads((tmp_path / "reconstruct4.json").read_text())
    assert rec64["unet_dtype"] == "torch.float64" and rec64["latent_max_abs_error"] < 1e-10


def _bad(tmp_path, name, content=None, size=None, mode="L"):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    else:
        Image.fromarray(np.full(size[::-1], 255, np.uint8) if mode == "L" else
                        np.zeros((size[1], size[0], 3), np.uint8)).save(p)
    return p


def test_bad_inputs(capsys, tmp_path, tiny_model_dir, tiny_image_path, tiny_mask_path):
    not_model = tmp_path / "not_a_model"
    not_model.mkdir()
    (not_model / "x.txt").write_text("x")
    garbage = _bad(tmp_path, "garbage.png", content=b"not a png at all")
    mask_small = _bad(tmp_path, "mask32.png", size=(32, 32))
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(empty)
    odd = _bad(tmp_path, "odd.png", size=(65, 67), mode="RGB")
    model = ["--model", tiny_model_dir]
    img = ["--image", tiny_image_path]
    cases = [
        (["translate", *model, "--image", tmp_path / "missing.png", "--prompt", "x"], "does not exist"),
        (["translate", *model, "--image", garbage, "--prompt", "x"], "cannot read image"),
        (["inpaint", *model, *img, "--mask", garbage], "cannot read mask"),
        (["inpaint", *model, *img, "--mask", mask_small], "not resized unless you pass --resize-mask"),
        (["inpaint", *model, *img, "--mask", empty], "mask is empty"),
        (["translate", *model, "--image", odd, "--prompt", "x", "--strict-size"], "not divisible by the VAE factor"),
        (["translate", *model, *img, "--prompt", "x", "--t0", "0"], "--t0 must be in (0, 1]"),
        (["translate", *model, *img, "--prompt", "x", "--t0", "1.5"], "--t0 must be in (0, 1]"),
        (["diffedit", *model, *img, "--source-prompt", "a", "--target-prompt", "b", "--t0", "-0.1"], "--t0"),
        (["reconstruct", *model, *img, "--steps", "0"], "--steps must be in [1, 999]"),
        (["inpaint", *model, *img, "--mask", tiny_mask_path, "--steps", "-3"], "--steps must be in [1, 999]"),
        (["reconstruct", "--model", not_model, *img], "not a diffusers pipeline"),
        (["reconstruct", "--model", tmp_path / "nowhere", *img], "does not exist"),
        (["translate", *model, *img, "--prompt", "x", "--out", tmp_path / "x.jpg"], "must end in .png"),
    ]
    for argv, msg in cases:
        out = tmp_path / "out.png"
        if "--out" not in argv:
            argv = [*argv, "--out", out]
        code, so, se = _run(capsys, argv)
        lines = se.strip().splitlines()
        assert code == 2, (argv, se)
        assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], (msg, se)
        assert not out.exists() and not out.with_suffix(".json").exists()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_hub_id_without_network(capsys, tmp_path, monkeypatch, tiny_image_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, se = _run(capsys, ["reconstruct", "--model", "someone/no-such-model-xyz", "--image", tiny_image_path,
                                "--out", tmp_path / "o.png"])
    assert code == 2 and len(se.strip().splitlines()) == 1
    assert "--model DIR" in se and "model_index.json" in se


def test_adjusted_inputs_warn_and_run(capsys, tmp_path, tiny_model_dir):
    odd = _bad(tmp_path, "odd.png", size=(65, 67), mode="RGB")
    grey = tmp_path / "grey.png"
    m = np.zeros((32, 33), np.uint8)
    m[8:24, 8:24] = 200  # non-binary, thresholded to 1; size differs, resized on request
    Image.fromarray(m).save(grey)
    out = tmp_path / "o.png"
    code, _, se = _run(capsys, ["inpaint", "--model", tiny_model_dir, "--image", odd, "--mask", grey, "--resize-mask",
                                "--steps", "2", "--no-progress", "--out", out])
    assert code == 0, se
    assert "resized to 64x66" in se and "not binary" in se and "resized to 64x66 (nearest" in se
    assert Image.open(out).size == (64, 66)
