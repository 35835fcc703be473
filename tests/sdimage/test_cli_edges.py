"""Bad input to the sdimage CLI: one `error:` line, exit 2, nothing written, an existing output untouched — checked
before any model loads (the model path does not even exist in most cases here)."""
from __future__ import annotations

import os
import stat

import pytest

from sdimage.cli import main


def _run(capsys, args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


CASES = [
    (["translate", "--prompt", "x", "--guidance", "nan"], "--guidance must be a finite number"),
    (["translate", "--prompt", "x", "--eta", "2"], "--eta must be in [0, 1]"),
    (["translate", "--prompt", "x", "--eta", "nan"], "--eta must be a finite number"),
    (["translate", "--prompt", "x", "--t0", "inf"], "--t0 must be a finite number"),
    (["translate", "--prompt", "x", "--steps", "5000"], "--steps must be in [1, 999]"),
    (["translate", "--prompt", "x", "--seed", str(2 ** 70)], "--seed must be in [0, 2**63 - 1]"),
    (["translate", "--prompt", "x", "--device", "banana"], "--device 'banana' is not a device"),
    (["translate", "--prompt", "x", "--size", "100000"], "--size must be in [8, 4096]"),
    (["diffedit", "--source-prompt", "a", "--target-prompt", "b", "--mask-t0", "2"], "--mask-t0 must be in (0, 1]"),
    (["inpaint", "--mask", "MASK", "--strength", "nan"], "--strength must be a finite number"),
    (["reconstruct", "--steps", "0"], "--steps must be in [1, 999]"),
]


@pytest.mark.parametrize("args, msg", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_numbers_one_line_exit_2_nothing_written(capsys, tmp_path, tiny_image_path, tiny_mask_path, args, msg):
    out = tmp_path / "o.png"
    args = [str(tiny_mask_path) if a == "MASK" else a for a in args]
    code, _, err = _run(capsys, [*args[:1], "--model", tmp_path / "no-model", "--image", tiny_image_path,
                                 "--out", out, *args[1:]])
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and msg in err, err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_are_refused_before_work(capsys, tmp_path, tiny_image_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "o.json").mkdir()
    base = ["translate", "--model", tmp_path / "no-model", "--image", tiny_image_path, "--prompt", "x"]
    for out, msg in ((blocker / "o.png", "is a file"), (tmp_path / "o.png", "the metadata file")):
        code, _, err = _run(capsys, [*base, "--out", out])
        assert code == 2 and msg in err, err
    code, _, err = _run(capsys, ["drag", "--model", tmp_path / "no-model", "--image", tiny_image_path, "--source",
                                 "10,10", "--target", "20,10", "--prompt", "x", "--out", tmp_path / "d.png",
                                 "--save-intermediates", blocker])
    assert code == 2 and "is a file" in err
    code, _, err = _run(capsys, ["make-tiny-model", blocker])
    assert code == 2 and "is a file" in err and blocker.read_text() == "x"


def test_top_level_usage_hint(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "`python -m sdimage --help`" in err and "sdimage sdimage" not in err


def test_outputs_get_the_usual_file_mode(tmp_path):
    from PIL import Image

    from sdimage.runinfo import write_outputs

    old = os.umask(0o022)
    try:
        png, js = write_outputs(Image.new("RGB", (8, 8)), tmp_path / "a.png", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(png.stat().st_mode) == 0o644 and stat.S_IMODE(js.stat().st_mode) == 0o644


def test_sdimage_errors_are_the_shared_bad_input():
    from cliutil import BadInput

    from sdimage.errors import SdImageError

    assert issubclass(SdImageError, BadInput) and issubclass(SdImageError, ValueError)


def test_long_cpu_runs_get_a_one_line_estimate(tiny_pipe, capsys):
    from sdimage.cli_common import note_if_slow, unet_flops

    assert abs(unet_flops(859_520_964, 64 * 64) / 0.8033e12 - 1) < 0.05  # SD-1.5 at 512² (flop counter)
    assert abs(unet_flops(859_520_964, 128 * 128) / 4.674e12 - 1) < 0.05  # and at 1024²
    est = note_if_slow(tiny_pipe, 64, 64, 100, flops_per_s=1e12)
    assert est < 1 and capsys.readouterr().err == ""
    est = note_if_slow(tiny_pipe, 1024, 1024, 100, flops_per_s=1e3, what="translate")  # a very slow "CPU"
    err = capsys.readouterr().err
    assert est > 120 and err.count("\n") == 1 and err.startswith("note: translate will take roughly")


def test_float16_on_the_cpu_gets_one_accurate_line(tiny_model_dir, capfd):
    """Not diffusers' three "running them will fail" warnings (it runs): one line of ours."""
    from argparse import Namespace

    from cliutil import quiet_third_party_logs
    from sdimage.cli_common import pipeline_from_args

    args = Namespace(model=str(tiny_model_dir), device="cpu", dtype="float16", attention_slicing=False,
                     vae_slicing=False, vae_tiling=False, cpu_offload=False)
    with quiet_third_party_logs():
        pipeline_from_args(args)
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "float16 on the CPU works" in err and "will fail" not in err
