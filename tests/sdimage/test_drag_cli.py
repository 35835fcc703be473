"""``python -m sdimage drag`` / ``dragbench`` end to end on the tiny model, and every input error."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sdimage.cli import main

FAST = ["--steps", "4", "--t0", "0.5", "--no-progress"]


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_drag_cli_end_to_end(tiny_model_dir, tiny_image_path, tiny_mask_path, tmp_path, capsys):
    out = tmp_path / "res" / "dragged.png"
    frames = tmp_path / "frames"
    rc, so, se = run(capsys, "drag", "--model", tiny_model_dir, "--image", tiny_image_path, "--mask", tiny_mask_path,
                     "--source", "24,30", "--target", "32,30", "--source", "36,40", "--target", "38,36",
                     "--prompt", "a cat", "--sampler", "sde", "--lora-steps", "1", "--lora-cache", tmp_path / "lc",
                     "--save-intermediates", frames, "--out", out, *FAST)
    assert rc == 0, se
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "drag" and meta["method"] == "SDE-Drag"
    m = meta["num_drag_ops"]
    assert m == 2  # |(8, 0)| / 2 latent px (VAE factor 2): 4 latent px -> 2 operations
    assert meta["nfe"] == m * 2 * 2  # K = int(0.5 * 4) = 2: record + replay per operation
    assert meta["official_nfe"]["eps_evals"] == meta["nfe"]
    assert meta["lora"]["cached"] is False
    assert Image.open(out).size == (64, 64)
    gif = Image.open(frames / "trajectory.gif")
    assert gif.n_frames == m + 1 and len(list(frames.glob("drag_*.png"))) == m + 1
    index = json.loads((frames / "frames.json").read_text())  # each frame: file, operation, its latent points
    assert [f["file"] for f in index["frames"]] == [f"drag_{k:03d}.png" for k in range(m + 1)]
    assert index["frames"][0]["op"] == 0 and "latent_sources" not in index["frames"][0]
    assert index["frames"][1]["latent_sources"] == meta["op_path"][0]["sources"]
    # outside the mask the picture is (nearly: VAE round trip) the reconstruction -- and re-dragging reuses LoRA
    rc, so, se = run(capsys, "drag", "--model", tiny_model_dir, "--image", tiny_image_path, "--source", "24,30",
                     "--target", "32,30", "--prompt", "a cat", "--sampler", "ode", "--lora-steps", "1",
                     "--lora-cache", tmp_path / "lc", "--out", tmp_path / "ode.png", *FAST)
    assert rc == 0, se
    assert json.loads((tmp_path / "ode.json").read_text())["lora"]["cached"] is True


@pytest.fixture()
def other_size_mask(tmp_path):
    p = tmp_path / "m32.png"
    Image.new("L", (32, 32), 255).save(p)
    return p


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--source", "70,3", "--target", "5,5"], "outside the 64x64 image"),
        (["--source", "5,5", "--target", "5,-1"], "outside the 64x64 image"),
        (["--source", "5,5", "--target", "5,5"], "same point"),
        (["--source", "5,5", "--source", "9,9", "--target", "8,8"], "must pair up"),
        (["--source", "5", "--target", "8,8"], "must be X,Y"),
        ([], "at least one --source"),
        (["--source", "5,5", "--target", "9,9", "--mask", "OTHER"], "mask"),
        (["--source", "5,5", "--target", "9,9", "--mask", "MISSING"], "does not exist"),
        (["--source", "5,5", "--target", "9,9", "--t0", "0"], "t0"),
    ],
)
def test_drag_cli_errors(tiny_model_dir, tiny_image_path, other_size_mask, tmp_path, capsys, args, msg):
    args = [other_size_mask if a == "OTHER" else tmp_path / "nope.png" if a == "MISSING" else a for a in args]
    out = tmp_path / "o.png"
    rc, so, se = run(capsys, "drag", "--model", tiny_model_dir, "--image", tiny_image_path, "--prompt", "x",
                     "--out", out, *args)
    assert rc == 2
    assert msg in se and len(se.strip().splitlines()) == 1 and se.startswith("error:")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_drag_cli_missing_image_and_bad_model(tmp_path, tiny_image_path, capsys):
    rc, _, se = run(capsys, "drag", "--model", tmp_path, "--image", tmp_path / "x.png", "--source", "1,1",
                    "--target", "5,5", "--prompt", "x", "--out", tmp_path / "o.png")
    assert rc == 2 and "does not exist" in se
    rc, _, se = run(capsys, "drag", "--model", tmp_path, "--image", tiny_image_path, "--source", "1,1",
                    "--target", "5,5", "--prompt", "x", "--out", tmp_path / "o.png")
    assert rc == 2 and len(se.strip().splitlines()) == 1 and not (tmp_path / "o.png").exists()


def test_drag_resizes_like_every_command(tiny_model_dir, tmp_path, capsys):
    """A 65x67 picture is resized down to the VAE factor (as inpaint / translate do) and the points go with it;
    --strict-size refuses it instead."""
    rng = np.random.default_rng(0)
    img = tmp_path / "odd.png"
    Image.fromarray(rng.integers(0, 256, (67, 65, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "o.png"
    args = ["drag", "--model", tiny_model_dir, "--image", img, "--source", "64,10", "--target", "40,66", "--prompt",
            "x", "--lora-steps", "0", "--step-size", "50", "--out", out, *FAST]
    rc, so, se = run(capsys, *args)
    assert rc == 0, se
    assert "resized to 64x66" in se and "points scaled from the 65x67 input" in se
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["image_size"] == [64, 66] and meta["input_image"]["size"] == [65, 67]
    assert meta["sources"] == [[63, 9]] and meta["targets"] == [[39, 65]]  # floor(p * new / old)
    assert Image.open(out).size == (64, 66)
    out.unlink()
    rc, so, se = run(capsys, *args, "--strict-size")
    assert rc == 2 and "not divisible by the VAE factor" in se and not out.exists()


def make_sample(seed=0, size=64, n=2, prompt="a photo of a cat"):
    from sdimage.dragbench import DragSample

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    mask = np.zeros((size, size), bool)
    mask[8:56, 4:60] = True
    return DragSample(img, prompt, [(10 + 5 * k, 20 + 3 * k) for k in range(n)],
                      [(30 + 4 * k, 22 + 2 * k) for k in range(n)], mask)


def _fake_lpips_weights(d):
    """Random-weight stand-ins in the real files' formats (torchvision AlexNet + lpips v0.1 linear layers)."""
    from sdimage.metrics import AlexLPIPS

    d.mkdir()
    net = AlexLPIPS()
    torch.save({f"features.{k}": v for k, v in net.net.features.state_dict().items()}, d / "alexnet-owt-7be5be79.pth")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(AlexLPIPS.CHANNELS)},
               d / "alex.pth")
    return d


def test_dragbench_cli(tiny_model_dir, tmp_path, capsys):
    from sdimage.dragbench import write_sample

    root = tmp_path / "bench"
    write_sample(make_sample(5, n=2), root / "human" / "s0", "dragdiffusion")
    write_sample(make_sample(6, n=1), root / "s1", "sde-drag")
    out = tmp_path / "out"
    common = ["--model", tiny_model_dir, "--root", root, "--out", out, "--lora-steps", "0", "--sampler", "ode",
              "--step-size", "50", *FAST]
    rc, so, se = run(capsys, "dragbench", *common)
    assert rc == 0, se
    assert "2 samples, 0 already done" in so
    assert (out / "human__s0.png").is_file() and (out / "s1.json").is_file()
    # --evaluate without metric weights: error before any work
    rc, so, se = run(capsys, "dragbench", *common, "--evaluate", "--lpips-weights", tmp_path / "none")
    assert rc == 2 and "LPIPS weights not found" in se
    lp = _fake_lpips_weights(tmp_path / "lpips")
    rc, so, se = run(capsys, "dragbench", *common, "--evaluate", "--lpips-weights", lp, "--dift-model",
                     tiny_model_dir, "--dift-ensemble", "2")
    assert rc == 0, se
    assert "2 already done" in so and "evaluated 2/2" in so
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["per_sample"]["human/s0"]["distances"]) == 2
    assert metrics["image_fidelity"] <= 1.0 and np.isfinite(metrics["mean_distance"])


def test_dragbench_cli_errors(tiny_model_dir, tmp_path, capsys):
    from sdimage.dragbench import write_sample

    out = tmp_path / "out"
    base = ["--model", tiny_model_dir, "--out", out, *FAST]
    rc, _, se = run(capsys, "dragbench", "--root", tmp_path / "missing", *base)
    assert rc == 2 and "not a folder" in se
    root = tmp_path / "bench"
    d = write_sample(make_sample(7), root / "bad", "sde-drag")
    (d / "prompt.json").write_text("{")
    rc, _, se = run(capsys, "dragbench", "--root", root, *base)
    assert rc == 2 and "not valid JSON" in se and len(se.strip().splitlines()) == 1
    assert not out.exists()


def test_official_preset_rejects_t0_one_before_loading(capsys, tmp_path, tiny_image_path):
    from sdimage.cli import main

    code = main(["drag", "--model", str(tmp_path / "no-model"), "--image", str(tiny_image_path), "--source", "10,10",
                 "--target", "20,10", "--prompt", "x", "--t0", "1.0", "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "official preset" in err and not (tmp_path / "o.png").exists()
    code = main(["diffedit", "--model", str(tmp_path / "no-model"), "--image", str(tiny_image_path),
                 "--source-prompt", "a", "--target-prompt", "b", "--t0", "1.0", "--out", str(tmp_path / "d.png")])
    err = capsys.readouterr().err
    assert code == 2 and "official DiffEdit-SDE" in err
