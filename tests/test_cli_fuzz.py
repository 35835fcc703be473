"""Bad input against the command lines: exit code 2, exactly one stderr line and it starts with ``error:``, no new
file, an existing output untouched (docs/CONTRIBUTING.md, "Exit codes").  A growing list: every bad input found
(issue 14 lists the first ~100) becomes a case here.

Most cases call ``main(argv)`` in-process with ``capsys`` (the checks run before any model loads, so each costs
milliseconds) and must leave no global state behind; a handful run the real entry points as subprocesses.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------- workspace
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Inputs of every case, an existing output (out.png / out.json, which must stay as they are) and DragBench
    folders with hostile values.  Nothing in it may change."""
    from PIL import Image

    from sdimage.drag import DragConfig
    from sdimage.dragbench import DragSample, run_settings, write_sample

    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "img.png")
    m = np.zeros((64, 64), np.uint8)
    m[16:48, 16:48] = 255
    Image.fromarray(m).save(d / "mask.png")
    Image.new("L", (32, 32), 255).save(d / "mask32.png")
    (d / "out.png").write_bytes(b"an existing result")
    (d / "out.json").write_text('{"existing": true}')
    (d / "file").write_text("a plain file")
    (d / "json_dir.json").mkdir()
    (d / "garbage.pt").write_bytes(b"\x00garbage, not a checkpoint")
    configs = {"t0s_15": {"t0s": [1.5]}, "t0s_empty": {"t0s": []}, "unknown_key": {"nope": 1},
               "etas": {"etas": [2.0]}, "n10": {"n": 10}, "nd": {"mixture": "nd"}, "train_int": {"train": 5},
               "steps_str": {"steps": "ten"}, "t_end": {"t_end": 0.9}}
    for name, cfg in configs.items():
        (d / f"{name}.json").write_text(json.dumps(cfg))
    (d / "alpha_nan.json").write_text('{"drag_alpha": NaN}')
    (d / "bad.json").write_text("{not json")

    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    ok = DragSample(img, "a cat", [(10, 10)], [(20, 12)], np.ones((64, 64), bool))
    write_sample(ok, d / "bench_ok" / "s", "sde-drag")
    s = write_sample(ok, d / "bench_inf" / "s", "sde-drag")
    (s / "prompt.json").write_text('{"prompt": "x", "source": [[Infinity, 2]], "target": [[5, 6]]}')
    for name, mask in (("bench_ragged", [[0, 1], [1]]), ("bench_str", "abc")):
        s = write_sample(ok, d / name / "s", "dragdiffusion")
        (s / "meta_data.pkl").write_bytes(pickle.dumps({"prompt": "x", "points": [[1, 2], [5, 6]], "mask": mask}))
    res = d / "res_other"  # a DragBench result folder made with SDE / 150 steps
    res.mkdir()
    settings = run_settings("sde", DragConfig(steps=150), str(d / "no-model"), "float32")
    (res / "manifest.json").write_text(json.dumps({"format": "sdimage.dragbench/1", "settings": settings}))
    return d


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): (hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(d.rglob("*"))}


def _global_state() -> tuple:
    import torch

    return (torch.get_num_threads(), os.getcwd(), warnings.showwarning,  # (imports may add warning filters)
            logging.getLogger("transformers").level, logging.getLogger("diffusers").level,
            os.environ.get("TRANSFORMERS_VERBOSITY"), os.environ.get("DIFFUSERS_VERBOSITY"))


def _assert_rule(code, err: str, expect: str) -> None:
    lines = err.splitlines()
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {err!r}"
    assert expect in lines[0], lines[0]


def _in_process(main, argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- sdimage
SD = ["--model", "{d}/no-model", "--image", "{d}/img.png", "--out", "{d}/out.png"]
TR = ["translate", *SD, "--prompt", "x"]
DE = ["diffedit", *SD, "--source-prompt", "a", "--target-prompt", "b"]
DR = ["drag", "--model", "{d}/no-model", "--image", "{d}/img.png", "--prompt", "x", "--out", "{d}/out.png",
      "--source", "10,10", "--target", "20,10"]
DB = ["dragbench", "--model", "{d}/no-model", "--out", "{d}/res_new"]

SDIMAGE = [
    ([*TR, "--guidance", "nan"], "--guidance must be a finite number"),
    ([*TR, "--guidance", "inf"], "--guidance must be a finite number"),
    ([*TR, "--guidance", "-1"], "--guidance must be in [0, 30]"),
    ([*TR, "--eta", "nan"], "--eta must be a finite number"),
    ([*TR, "--eta", "2"], "--eta must be in [0, 1]"),
    ([*TR, "--eta", "abc"], "invalid float value"),
    ([*TR, "--t0", "0"], "--t0 must be in (0, 1]"),
    ([*TR, "--t0", "inf"], "--t0 must be a finite number"),
    ([*TR, "--steps", "5000"], "--steps must be in [1, 999]"),
    ([*TR, "--seed", str(2 ** 70)], "--seed must be in [0, 2**63 - 1]"),
    ([*TR, "--seed", "-1"], "--seed must be in [0, 2**63 - 1]"),
    ([*TR, "--device", "banana"], "--device 'banana' is not a device"),
    ([*TR, "--size", "100000"], "--size must be in [8, 4096]"),
    ([*TR, "--size", "64", "64", "64"], "--size takes one int"),
    ([*TR, "--out", "{d}/file/o.png"], "is a file"),
    ([*TR, "--out", "{d}/json_dir.png"], "the metadata file"),
    ([*TR, "--out", "{d}/o.jpg"], "must end in .png"),
    ([*TR, "--out", "{d}"], "--out must end in .png"),
    ([*TR, "--image", "{d}/missing.png"], "does not exist"),
    ([*TR, "--image", "{d}/file"], "cannot read image"),
    ([*TR, "--model", "{d}/file"], "is a file, not a diffusers pipeline"),
    (["inpaint", *SD, "--mask", "{d}/mask.png", "--strength", "nan"], "--strength must be a finite number"),
    (["inpaint", *SD, "--mask", "{d}/mask.png", "--strength", "0"], "--strength must be in (0, 1]"),
    (["inpaint", *SD, "--mask", "{d}/file"], "cannot read mask"),
    ([*DE, "--mask-t0", "2"], "--mask-t0 must be in (0, 1]"),
    ([*DE, "--mask-draws", "0"], "--mask-draws must be in [1, 1000]"),
    ([*DE, "--mask-draws", str(10 ** 9)], "--mask-draws must be in [1, 1000]"),
    (["reconstruct", *SD, "--steps", "0"], "--steps must be in [1, 999]"),
    ([*DR, "--alpha", "nan"], "--alpha must be a finite number"),
    ([*DR, "--guidance", "nan"], "--guidance must be a finite number"),
    ([*DR, "--guidance", "0.5"], "--guidance must be in [1, 30]"),
    ([*DR, "--step-size", "nan"], "--step-size must be a finite number"),
    ([*DR, "--step-size", "0"], "--step-size must be > 0"),
    ([*DR, "--lora-lr", "nan"], "--lora-lr must be a finite number"),
    ([*DR, "--beta", "2"], "--beta must be in [0, 1]"),
    ([*DR, "--r", "-1"], "--r must be in [0, 64]"),
    ([*DR, "--lora-rank", "0"], "--lora-rank must be in [1, 256]"),
    ([*DR, "--lora-rank", "100000"], "--lora-rank must be in [1, 256]"),
    ([*DR, "--lora-steps", "1000000"], "--lora-steps must be in [0, 5000]"),
    ([*DR, "--r", "100000"], "--r must be in [0, 64]"),
    ([*DR, *[a for _ in range(101) for a in ("--source", "1,1", "--target", "2,2")]], "at most 100 handle/target pairs"),
    ([*DR, "--alpha", "-2"], "--alpha must be in [0, 10]"),
    ([*DR, "--t0", "1.0"], "official preset"),
    ([*DR, "--save-intermediates", "{d}/file"], "is a file"),
    ([*DR, "--size", "100000"], "--size must be in [8, 4096]"),
    ([*DR, "--mask", "{d}/mask32.png"], "mask"),
    ([*DR[:-4], "--source", "70,3", "--target", "5,5"], "outside the 64x64 image"),
    ([*DR[:-4], "--source", "5,5", "--target", "5,5"], "same point"),
    ([*DR[:-4], "--source", "5", "--target", "8,8"], "must be X,Y"),
    ([*DB, "--root", "{d}/bench_inf"], "non-finite coordinate"),
    ([*DB, "--root", "{d}/bench_ragged"], "'mask' must be an H×W array of numbers"),
    ([*DB, "--root", "{d}/bench_str"], "'mask' must be an H×W array of numbers"),
    ([*DB, "--root", "{d}/missing"], "not a folder"),
    ([*DB, "--root", "{d}/bench_ok", "--step-size", "nan"], "--step-size must be a finite number"),
    (["dragbench", "--model", "{d}/no-model", "--root", "{d}/bench_ok", "--out", "{d}/file"], "is a file"),
    (["dragbench", "--model", "{d}/no-model", "--root", "{d}/bench_ok", "--out", "{d}/res_other", "--sampler", "ode",
      "--steps", "20"], "other settings (sampler 'sde' -> 'ode', steps 150 -> 20"),
    (["make-tiny-model", "{d}/file"], "is a file"),
    ([], "the following arguments are required: command (see `python -m sdimage --help`)"),
    (["no-such-command"], "(see `python -m sdimage --help`)"),
    (["translate", "--bogus"], "(see `python -m sdimage translate --help`)"),
]


@pytest.mark.parametrize("argv, expect", SDIMAGE, ids=[" ".join(a[:1] + a[-2:]) for a, _ in SDIMAGE])
def test_sdimage_bad_input(ws, capsys, argv, expect):
    from sdimage.cli import main

    before, state = _snapshot(ws), _global_state()
    code, err = _in_process(main, [a.format(d=ws) for a in argv], capsys)
    _assert_rule(code, err, expect)
    assert _snapshot(ws) == before and _global_state() == state


# --------------------------------------------------------------------------------------------------- toy
TOUT = ["--out", "{d}/toy_out"]  # must never be created
TOY = [
    (["editing", "--quick", "--config", "{d}/t0s_15.json", *TOUT], "t0s[0] must be in (0, 1], got 1.5"),
    (["editing", "--quick", "--config", "{d}/t0s_empty.json", *TOUT], "t0s must be a non-empty list"),
    (["editing", "--quick", "--config", "{d}/alpha_nan.json", *TOUT], "drag_alpha must be a finite number"),
    (["editing", "--quick", "--config", "{d}/t_end.json", *TOUT], "t_end (0.9) must be below"),
    (["editing", "--quick", "--config", "{d}/steps_str.json", *TOUT], "steps must be a non-empty list"),
    (["editing", "--quick", "--config", "{d}/bad.json", *TOUT], "is not valid JSON"),
    (["editing", "--quick", "--config", "{d}/missing.json", *TOUT], "cannot read config"),
    (["editing", "--quick", "--config", "{d}/unknown_key.json", *TOUT], "unknown config key 'nope'"),
    (["editing", "--quick", "--threads", "0", *TOUT], "--threads must be in [1, 1024]"),
    (["editing", "--quick", "--seed", "-1", *TOUT], "--seed must be in [0,"),
    (["editing", "--quick", "--out", "{d}/file"], "is a file"),
    (["editing", "--quick", "--out", "{d}/file/sub"], "is a file"),
    (["editing", "--quick", "--bogus", *TOUT], "unrecognized arguments: --bogus (see `python -m toy --help`)"),
    (["editing", "--quick"], "required: --out (see `python -m toy editing --help`)"),
    (["study", "--quick", "--config", "{d}/etas.json", *TOUT], "etas[0] must be in [0, 1], got 2.0"),
    (["score-error", "--quick", "--config", "{d}/n10.json", *TOUT], "n must be in [50,"),
    (["kl-curves", "--quick", "--config", "{d}/nd.json", *TOUT], "mixture must be one of 1d, 2d"),
    (["kl-curves", "--quick", "--config", "{d}/train_int.json", *TOUT], "'train' must be an object"),
    (["kl-curves", "--quick", "--checkpoint", "{d}/garbage.pt", *TOUT], "--checkpoint"),
    (["kl-curves", "--quick", "--checkpoint", "{d}/missing.pt", *TOUT], "does not exist"),
    (["train", "--steps", "-1", *TOUT], "--steps must be in [1,"),
    (["train", "--dim", "1000", "--mixture", "nd", *TOUT], "--dim must be in [1, 64]"),
    (["train", "--seed", "-1", *TOUT], "--seed must be in [0,"),
    (["digits", "train", "--batch-size", "0", *TOUT], "--batch-size must be in [1,"),
    (["digits", "train", "--channels", "16,abc", *TOUT], "--channels must be comma-separated integers"),
    (["digits", "train", "--channels", "12,32", *TOUT], "multiples of 8"),
    (["digits", "train", "--minutes", "nan", *TOUT], "--minutes must be a finite number"),
    (["digits", "train", "--warmup", "0", *TOUT], "--warmup must be in [1,"),
    (["digits", "train", "--save", "{d}/file/x.pt", *TOUT], "is a file"),
    (["digits", "inpaint", "--model", "learned", "--checkpoint", "{d}/garbage.pt", *TOUT],
     "is not a learned digits UNet checkpoint"),
    (["digits", "inpaint", "--checkpoint", "{d}/garbage.pt", *TOUT], "--model learned only"),
    (["digits", "drag", "--threads", "0", *TOUT], "--threads must be in [1, 1024]"),
    ([], "the following arguments are required: command (see `python -m toy --help`)"),
]


@pytest.mark.parametrize("argv, expect", TOY, ids=[" ".join(a[:2] + a[-3:-2]) for a, _ in TOY])
def test_toy_bad_input(ws, capsys, argv, expect):
    from toy.cli import main

    before, state = _snapshot(ws), _global_state()
    code, err = _in_process(main, [a.format(d=ws) for a in argv], capsys)
    _assert_rule(code, err, expect)
    assert _snapshot(ws) == before and _global_state() == state


# --------------------------------------------------------------------------------------------------- entry points
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from sdimage.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("fuzz-tiny") / "model", seed=0)


def _proc(args, cwd, env_drop=()):
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


ENTRY = [
    (["-m", "sdimage", *TR, "--eta", "2"], "--eta must be in [0, 1]"),
    (["-m", "toy", "editing", "--quick", "--config", "{d}/t0s_15.json", *TOUT], "t0s[0] must be in (0, 1]"),
    (["-m", "toy.digits", "train", "--batch-size", "0", *TOUT], "--batch-size must be in [1,"),
]


@pytest.mark.parametrize("args, expect", ENTRY, ids=[a[1] for a, _ in ENTRY])
def test_entry_points(ws, args, expect):
    before = _snapshot(ws)
    r = _proc([a.format(d=ws) for a in args], ws)
    _assert_rule(r.returncode, r.stderr, expect)
    assert r.stdout == "" and _snapshot(ws) == before


def test_error_after_the_model_loads_is_still_one_line(ws, tiny_model):
    """``main()`` called from Python (no ``python -m`` environment): transformers' "requires torchvision" notices
    and diffusers' chatter stay off stderr, so an error after the model has loaded is still the only line."""
    before = _snapshot(ws)
    code = ("import sys; from sdimage.cli import main; sys.exit(main(sys.argv[1:]))")
    r = _proc(["-c", code, "inpaint", "--model", str(tiny_model), "--image", f"{ws}/img.png", "--mask",
               f"{ws}/mask32.png", "--out", f"{ws}/out.png", "--steps", "2", "--no-progress"], ws,
              env_drop=("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS"))
    _assert_rule(r.returncode, r.stderr, "mask")
    assert "32x32" in r.stderr and _snapshot(ws) == before


def test_every_shipped_toy_config_passes_the_checks():
    """The checks refuse bad values only: the default, ``quick()`` and ``tiny()`` configs all pass."""
    from toy.checks import validate_config
    from toy.editing import EditingConfig
    from toy.klcurves import KLCurvesConfig
    from toy.scoreerror import ScoreErrorConfig
    from toy.study import StudyConfig
    from toy.train import TrainConfig

    for cls in (EditingConfig, KLCurvesConfig, StudyConfig, ScoreErrorConfig, TrainConfig):
        for make in (cls, getattr(cls, "quick", cls), getattr(cls, "tiny", cls)):
            validate_config(make())


# --------------------------------------------------------------------------------------------------- issue 23
@pytest.fixture(scope="module")
def ro(tmp_path_factory):
    """A folder that cannot be written: a chmod-555 folder for a normal user; as root (which writes there anyway)
    /sys, which root cannot write either.  Skipped where neither holds."""
    d = tmp_path_factory.mktemp("readonly")
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    try:
        Path("/sys/.sdimage-probe").write_bytes(b"")
    except OSError:
        yield Path("/sys")
        return
    os.unlink("/sys/.sdimage-probe")
    pytest.skip("no read-only folder here (root, and /sys is writable)")


RO = [  # every output location is probed before the model loads / any work (exit 2, one line, nothing written)
    ("theory", ["demo", "--quick", "--out", "{ro}/theory"]),
    ("toy", ["editing", "--quick", "--out", "{ro}/toy"]),
    ("toy", ["digits", "drag", "--out", "{ro}/digits"]),
    ("sdimage", [*(a.replace("{d}/out.png", "{ro}/o.png") for a in TR)]),
    ("sdimage", [*(a.replace("{d}/out.png", "{ro}/o.png") for a in DR)]),
    ("sdimage", ["make-tiny-model", "{ro}/tiny"]),
    ("sdimage", [*DB[:-2], "--root", "{d}/bench_ok", "--out", "{ro}/bench"]),
    ("sdimage", ["drag", *DR[1:], "--save-intermediates", "{ro}/frames"]),
    ("sdimage", ["gui", "--model", "{d}/no-model", "--out-dir", "{ro}/gui"]),
]


@pytest.mark.parametrize("cli, argv", RO, ids=[f"{c} {a[0]}" for c, a in RO])
def test_unwritable_output_is_refused_first(ws, ro, capsys, cli, argv):
    import importlib

    main = importlib.import_module(f"{cli}.cli").main
    before = _snapshot(ws)
    code, err = _in_process(main, [a.format(d=ws, ro=ro) for a in argv], capsys)
    _assert_rule(code, err, "is not writable")
    assert _snapshot(ws) == before


@pytest.fixture(scope="module")
def hostile_images(tmp_path_factory):
    """A PNG whose header claims 10000² pixels (Pillow warns of a decompression bomb), an all-127 mask (a warning,
    then empty) and a 65×63 image (resized, with a warning)."""
    import struct
    import zlib

    from PIL import Image

    d = tmp_path_factory.mktemp("hostile")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0))
    (d / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                                 + chunk(b"IEND", b""))
    Image.new("L", (64, 64), 127).save(d / "m127.png")
    Image.new("RGB", (65, 63), (90, 120, 30)).save(d / "odd.png")
    Image.new("L", (32, 32), 255).save(d / "m32.png")
    return d


WARN = [  # refused runs: the error line and no warning line before it
    (["translate", "--image", "{h}/huge.png", "--prompt", "x"], "cannot read image"),
    (["inpaint", "--image", "{d}/img.png", "--mask", "{h}/m127.png"], "is empty"),
    (["diffedit", "--image", "{d}/img.png", "--mask", "{h}/m127.png", "--source-prompt", "a", "--target-prompt", "b"],
     "is empty"),
    (["inpaint", "--image", "{h}/odd.png", "--mask", "{h}/m32.png"], "mask"),
]


@pytest.mark.parametrize("argv, expect", WARN, ids=["hugehdr", "inpaint-mask-127", "diffedit-mask-127", "odd-img"])
def test_refused_run_prints_no_warning(ws, tiny_model, hostile_images, capsys, argv, expect):
    from sdimage.cli import main

    before, state = _snapshot(ws), _global_state()
    args = [argv[0], "--model", str(tiny_model), "--out", f"{ws}/out.png", "--steps", "2", "--no-progress",
            *[a.format(d=ws, h=hostile_images) for a in argv[1:]]]
    code, err = _in_process(main, args, capsys)
    _assert_rule(code, err, expect)
    assert _snapshot(ws) == before and _global_state() == state


def test_dragbench_refuses_string_coordinates(ws, capsys, tmp_path):
    from sdimage.cli import main

    s = tmp_path / "bench" / "s"
    s.mkdir(parents=True)
    for f in ("origin_image.png", "mask.png"):
        (s / f).write_bytes((ws / "bench_ok" / "s" / f).read_bytes())
    (s / "prompt.json").write_text('{"prompt": "x", "source": [["10", 10]], "target": [[20, 12]]}')
    code, err = _in_process(main, [*(a.format(d=ws) for a in DB[:-2]), "--out", str(tmp_path / "res"), "--root",
                                   str(tmp_path / "bench")], capsys)
    _assert_rule(code, err, "not a number: '10'")
    assert not (tmp_path / "res").exists()


def test_largest_accepted_steps_builds_every_preset(ws, tiny_model, capsys):
    """Every --steps the checks accept builds the schedule of every preset (1000 asked SD's steps_offset=1 config for
    timestep 1000: ValueError / IndexError inside); 1000 is refused before any work."""
    from sdimage.cli import main
    from sdimage.settings import MAX_STEPS
    from sdimage.drag import DragConfig, drag_grids
    from sdimage.loading import load_pipeline

    code, err = _in_process(main, [a.format(d=ws) for a in DR] + ["--steps", "1000", "--t0", "0.05"], capsys)
    _assert_rule(code, err, f"--steps must be in [1, {MAX_STEPS}]")
    pipe = load_pipeline(str(tiny_model))
    for preset in ("official", "clean", "fast"):
        for t0 in (0.05, 0.6, 1.0):
            try:
                config = DragConfig(steps=MAX_STEPS, t0=t0, preset=preset).validate()
            except ValueError:  # the official preset's own t0 rule
                assert preset == "official"
                continue
            back, _ = drag_grids(pipe, config, (8, 8))
            assert len(back) == int(t0 * MAX_STEPS) + 1 or preset == "official"  # points: steps + 1
