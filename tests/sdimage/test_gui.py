"""Browser editor (issue 11): the plain handlers of sdimage.gui_handlers on the tiny model (bad inputs, drag with
both samplers, LoRA cache shared with the CLI, the other tabs), the `gui` command's checks, and the Gradio app
scripted through gradio_client (/drag, /translate, an error that leaves the server serving)."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdimage import gui_handlers as H
from sdimage.errors import SdImageError

FAST_DRAG = dict(steps=5, t0=0.6, step_size=4, lora_steps=2)  # 3 steps per operation, 2 operations for 16 px
POINTS = "24,32 -> 40,32"


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    """A private tiny pipeline (the drag adds and removes a LoRA adapter on it)."""
    from sdimage.loading import load_pipeline

    return load_pipeline(str(tiny_model_dir))


@pytest.fixture()
def ws(pipe, tmp_path):
    return H.Workspace(pipe, model="tiny", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"))


@pytest.fixture(scope="module")
def image(tiny_image_path):
    with Image.open(tiny_image_path) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def mask(tiny_mask_path):
    with Image.open(tiny_mask_path) as im:
        return im.convert("L")


def _arr(im) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64)


def _require_gradio():
    try:
        import gradio  # noqa: F401
        import gradio_client  # noqa: F401
    except ImportError:
        msg = "gradio is missing: pip install -e '.[dev]' (or '.[gui]')"
        if os.environ.get("SDEODE_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


# ------------------------------------------------------------------------------------------- points and editor
def test_points_alternate_undo_and_parse():
    t = H.add_point("", 24, 32)
    assert t == "24,32 ->" and H.parse_points(t) == ([], (24, 32))
    t = H.add_point(t, 40, 32)
    assert t == "24,32 -> 40,32"
    t = H.add_point(H.add_point(t, 1, 2), 3, 4)
    assert H.parse_points(t) == ([((24, 32), (40, 32)), ((1, 2), (3, 4))], None)
    assert H.undo_point(t) == "24,32 -> 40,32\n1,2 ->"
    assert H.undo_point(H.undo_point(t)) == "24,32 -> 40,32"
    assert H.undo_point("") == ""
    assert H.parse_points(" (24, 32) → (40, 32) ; 1 2 3 4") == ([((24, 32), (40, 32)), ((1, 2), (3, 4))], None)
    assert H.points_for_image(t, 64, 64) == ([(24, 32), (1, 2)], [(40, 32), (3, 4)])


@pytest.mark.parametrize("text, words", [
    ("", "no points"),
    ("24,32 ->", "unpaired"),
    ("24,32 -> 40,32\n5,5 ->", "unpaired"),
    ("24,32 -> 70,32", "outside the 64x64 image"),
    ("-1,32 -> 40,32", "outside"),
    ("24,32 -> 24,32", "same point"),
    ("24,32 -> 40", "cannot read points line 1"),
])
def test_points_errors(text, words):
    with pytest.raises(SdImageError, match=words):
        H.points_for_image(text, 64, 64)


def test_editor_value_to_image_and_mask():
    bg = Image.new("RGBA", (70, 66), (10, 20, 30, 255))
    layer = Image.new("RGBA", (70, 66), (0, 0, 0, 0))
    layer.paste((51, 204, 102, 150), (8, 8, 40, 40))
    img, m = H.editor_to_inputs({"background": bg, "layers": [layer], "composite": None}, factor=8)
    assert img.size == (64, 64) and img.mode == "RGB" and m.size == (64, 64)
    mm = np.asarray(m) > 0
    assert mm[20, 20] and not mm[50, 50]
    img, m = H.editor_to_inputs({"background": bg, "layers": [], "composite": None}, factor=2, max_side=35)
    assert img.size == (34, 32) and m is None  # scaled down to the longer side, multiples of 2; nothing painted
    _, m = H.editor_to_inputs({"background": bg, "layers": [Image.new("RGBA", (70, 66))]}, factor=2)
    assert m is None  # an untouched layer is no mask
    with pytest.raises(SdImageError, match="no image"):
        H.editor_to_inputs({"background": None, "layers": [], "composite": None}, factor=8)
    with pytest.raises(SdImageError, match="too small"):
        H.fit_size(5, 64, 8)
    # a mask file: white = editable, a transparent pixel is not
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :] = 255
    rgba[0, 0, 3] = 0
    m = np.asarray(H.as_mask(Image.fromarray(rgba, "RGBA"), (4, 4))) > 0
    assert m[1].all() and not m[0, 0] and m[0, 1] and not m[2:].any()
    with pytest.raises(SdImageError, match="the mask is 4x4 but the image is 8x8"):
        H.as_mask(Image.fromarray(rgba, "RGBA"), (8, 8))


def test_draw_points_zooms_and_marks(image, mask):
    view = H.draw_points(image, "24,32 -> 40,32\n10,10 ->", mask, scale=4)
    assert view.size == (256, 256)
    a = np.asarray(view)
    assert a[32 * 4 + 2, 24 * 4 + 2][0] > 180  # the red handle at its pixel's centre
    assert a[32 * 4 + 2, 40 * 4 + 2][2] > 180  # the blue target
    assert H.view_scale(64, 64) == 8 and H.view_scale(512, 384) == 1 and H.view_scale(700, 300) == 1


# -------------------------------------------------------------------------------------------------- bad input
def _runs(ws):
    out = Path(ws.out_dir)
    return [] if not out.exists() else list(out.iterdir())


@pytest.mark.parametrize("case, words", [
    ("no image", "no image: upload an image first"),
    ("no points", "no points"),
    ("unpaired", "unpaired points: the handle at \\(24, 32\\) has no target"),
    ("outside", "outside the 64x64 image"),
    ("empty mask", "the mask is empty"),
    ("mask size", "the mask is 32x32 but the image is 64x64"),
    ("odd size", "the image is 63x64, not divisible by 2"),
    ("sampler", "sampler must be one of sde, ode, both"),
    ("steps", r"steps must be in \[1, 999\], got 5000"),
    ("step size", r"the drag needs \d+ operations at step size 0.001 latent px: more than 500"),
    ("lora rank", r"lora rank must be in \[1, 256\]"),
    ("r", r"r must be in \[0, 64\]"),
    ("many points", r"too many points lines: at most 100 handle/target pairs"),
    ("t0", "t0 must be in"),
])
def test_drag_bad_input_is_one_clear_line(ws, image, mask, case, words):
    kw = dict(image=image, mask=mask, points=POINTS, prompt="p", sampler="both", **FAST_DRAG)
    if case == "no image":
        kw["image"] = None
    elif case == "no points":
        kw["points"] = ""
    elif case == "unpaired":
        kw["points"] = "24,32 ->"
    elif case == "outside":
        kw["points"] = "24,32 -> 64,10"
    elif case == "empty mask":
        kw["mask"] = Image.new("L", (64, 64), 0)
    elif case == "mask size":
        kw["mask"] = Image.new("L", (32, 32), 255)
    elif case == "odd size":
        kw["image"] = image.crop((0, 0, 63, 64))
        kw["mask"] = None
    elif case == "sampler":
        kw["sampler"] = "euler"
    elif case == "steps":
        kw["steps"] = 5000
    elif case == "t0":
        kw["t0"] = 0.0
    elif case == "step size":
        kw["step_size"] = 0.001
    elif case == "lora rank":
        kw.update(use_lora=True, lora_rank=10 ** 6)
    elif case == "r":
        kw["r"] = 1000
    elif case == "many points":
        kw["points"] = "\n".join(["24,32 -> 40,32"] * 200)
    with pytest.raises(SdImageError, match=words) as err:
        H.run_drag(ws, **kw)
    assert "\n" not in str(err.value)
    assert _runs(ws) == []  # checked before any work: nothing written


@pytest.mark.parametrize("task, kw, words", [
    ("inpaint", dict(mask=None), "the mask is empty: paint the region to inpaint"),
    ("inpaint", dict(mask="black"), "the mask is empty"),
    ("inpaint", dict(image=None), "no image"),
    ("inpaint", dict(strength=0.0), "strength must be in"),
    ("translate", dict(prompt=" "), "no prompt"),
    ("translate", dict(solver="heun"), "solver must be one of ddim, dpmpp"),
    ("diffedit", dict(target_prompt=""), "needs a source prompt"),
    ("diffedit", dict(steps=1), "official DiffEdit-SDE"),
    ("diffedit", dict(seed=-1), "seed must be in"),
    ("diffedit", dict(mask_draws=10 ** 9), r"mask draws must be in \[1, 1000\]"),
    ("diffedit", dict(mask="black"), "the given mask is empty"),
    ("translate", dict(order="3"), r"order must be in \[1, 2\], got 3"),
    ("translate", dict(image="not-an-image"), "the image is not an image"),
])
def test_task_bad_input_is_one_clear_line(ws, image, mask, task, kw, words):
    if kw.get("mask") == "black":
        kw = {**kw, "mask": Image.new("L", (64, 64), 0)}
    if kw.get("image") == "not-an-image":
        (ws_path := Path(ws.out_dir).parent / "notes.txt").write_text("text")
        kw = {**kw, "image": str(ws_path)}
    base = {"inpaint": dict(image=image, mask=mask, prompt="p"),
            "translate": dict(image=image, prompt="p"),
            "diffedit": dict(image=image, source_prompt="a", target_prompt="b")}[task]
    fn = {"inpaint": H.run_inpaint, "translate": H.run_translate, "diffedit": H.run_diffedit}[task]
    with pytest.raises(SdImageError, match=words):
        fn(ws, **{**base, **kw})
    assert _runs(ws) == []


# --------------------------------------------------------------------------------------------- drag and LoRA
def test_drag_both_samplers_lora_cached_like_the_cli(ws, image, mask, tiny_model_dir, tiny_image_path, tmp_path):
    events, frames = [], []
    out = H.run_drag(ws, image, mask, POINTS, "a gradient", "both", **FAST_DRAG,
                     on_progress=lambda *a: events.append(a), on_intermediate=lambda *a: frames.append(a))
    sde, ode, inp = _arr(out.images["sde"]), _arr(out.images["ode"]), _arr(image)
    assert sde.shape == ode.shape == inp.shape == (64, 64, 3)
    assert np.abs(sde - ode).mean() > 1.0 and np.abs(sde - inp).mean() > 1.0 and np.abs(ode - inp).mean() > 1.0
    # outside the mask both keep close to the input; metadata, JSON, GIFs
    meta = json.loads(Path(out.json_path).read_text())
    assert meta["task"] == "drag" and meta["samplers"] == ["sde", "ode"] and meta["inputs"]["points"] == POINTS
    runs = meta["runs"]
    assert runs["sde"]["method"] == "SDE-Drag" and runs["ode"]["method"] == "ODE-Drag"
    assert runs["sde"]["seed"] == runs["ode"]["seed"] == 1234 and runs["sde"]["num_drag_ops"] == 2
    assert runs["sde"]["lora"]["cached"] is False and runs["ode"]["lora"]["cached"] is True  # trained once
    assert Path(runs["sde"]["lora"]["path"]).parent == Path(ws.lora_cache)
    assert out.files[0] == out.json_path and all(Path(f).is_file() for f in out.files)
    assert Path(out.gif).is_file() and Image.open(out.gif).n_frames == 3  # input + 2 operations
    assert {Path(f).name for f in out.files} >= {"drag.json", "sde.png", "ode.png", "sde_trajectory.gif",
                                                 "ode_trajectory.gif", "trajectory_sde_ode.gif"}
    # progress: 2 LoRA steps (first run only), then 2 operations per sampler with the image after each
    assert [e for e in events if e[0].startswith("LoRA")] == [("LoRA training (SDE run)", 1, 2),
                                                              ("LoRA training (SDE run)", 2, 2)]
    assert [e for e in events if "operation" in e[0]] == [("SDE-Drag operation", 1, 2), ("SDE-Drag operation", 2, 2),
                                                          ("ODE-Drag operation", 1, 2), ("ODE-Drag operation", 2, 2)]
    assert [(f[0], f[1], f[2]) for f in frames] == [("sde", 0, 2), ("sde", 1, 2), ("ode", 0, 2), ("ode", 1, 2)]
    assert _arr(frames[1][3]).tolist() == sde.tolist()  # the last intermediate is the result

    # a second run on the same image: no training, the same adapter, the same result (same seed)
    events.clear()
    again = H.run_drag(ws, image, mask, POINTS, "a gradient", "sde", **FAST_DRAG,
                       on_progress=lambda *a: events.append(a))
    assert again.metadata["runs"]["sde"]["lora"]["cached"] is True
    assert not [e for e in events if e[0].startswith("LoRA")]
    assert np.array_equal(_arr(again.images["sde"]), sde)
    assert again.folder != out.folder  # every run gets its own folder

    # the CLI finds the GUI's adapter in the same cache (same key: image pixels, prompt, LoRA parameters, UNet)
    from sdimage.cli import main

    res = tmp_path / "cli.png"
    rc = main(["drag", "--model", str(tiny_model_dir), "--image", str(tiny_image_path), "--source", "24,32",
               "--target", "40,32", "--prompt", "a gradient", "--out", str(res), "--steps", "5", "--t0", "0.6",
               "--step-size", "4", "--lora-steps", "2", "--lora-cache", ws.lora_cache, "--sampler", "sde",
               "--no-progress"])
    assert rc == 0
    assert json.loads(res.with_suffix(".json").read_text())["lora"]["cached"] is True


def test_drag_without_mask_and_without_lora(ws, image):
    out = H.run_drag(ws, image, None, POINTS, "", "ode", **{**FAST_DRAG, "lora_steps": 0})
    assert list(out.images) == ["ode"] and out.metadata["runs"]["ode"]["lora"] is None
    assert "no mask painted: the whole image is editable" in out.notes
    assert out.gif.endswith("ode_trajectory.gif")


# ------------------------------------------------------------------------------------------------ other tabs
def test_inpaint_translate_diffedit_side_by_side(ws, image, mask):
    outs = {
        "inpaint": H.run_inpaint(ws, image, mask, "a red square", "both", steps=4, seed=3),
        "translate": H.run_translate(ws, image, "a red square", "both", steps=4, t0=0.5, seed=3),
        "diffedit": H.run_diffedit(ws, image, "a gradient", "a red square", "both", steps=4, mask_draws=2, seed=3),
    }
    for task, out in outs.items():
        a, b = _arr(out.images["sde"]), _arr(out.images["ode"])
        assert a.shape == (64, 64, 3) and np.abs(a - b).mean() > 0.5, task
        meta = json.loads(Path(out.json_path).read_text())
        assert meta["task"] == task and set(meta["runs"]) == {"sde", "ode"}
        assert meta["runs"]["sde"]["seed"] == meta["runs"]["ode"]["seed"] == 3
        assert meta["runs"]["sde"]["sampler"] == "sde" and meta["runs"]["ode"]["sampler"] == "ode"
    assert set(outs["diffedit"].extra_images) == {"sde", "ode"}  # the automatic mask, shown in the page
    # a mask painted in the DiffEdit tab replaces the automatic one; a size that is not a multiple is resized
    out = H.run_diffedit(ws, image.resize((65, 64)), "a", "b", "ode", mask=mask.resize((65, 64)), steps=4)
    assert out.metadata["runs"]["ode"]["mask_source"] == "given" and out.images["ode"].size == (64, 64)
    assert any("resized to 64x64" in n for n in out.notes)


def _other_families():
    from sdimage.backbones import families

    arches = [c.arch for c in families()][1:]  # the first (the default) is the module's own pipe
    return [a if k == 0 else pytest.param(a, marks=pytest.mark.slow) for k, a in enumerate(arches)]


KNOWN = {"flux": (4, 3.5), "sdxl": (2, 7.5), "sd3": (4, 7.0), "qwenimage": (8, 4.0)}  # tiny models: multiple, CFG


@pytest.mark.parametrize("arch", _other_families())
def test_other_backbones(arch, image, mask, tmp_path):
    """Every registered family works in the editor: the family's image multiple and CFG default are used."""
    from sdimage.backbones import adapter_class
    from sdimage.latents import image_multiple
    from sdimage.tiny import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=0, arch=arch)
    ws = H.Workspace(pipe, model=f"tiny-{arch}", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"))
    factor, cfg = KNOWN.get(arch, (image_multiple(pipe), adapter_class(arch).default_guidance))
    assert ws.factor() == factor and ws.default_guidance() == cfg
    out = H.run_drag(ws, image, mask, "16,32 -> 48,32", "p", "both", steps=5, t0=0.6, step_size=8, lora_steps=2)
    a, b = _arr(out.images["sde"]), _arr(out.images["ode"])
    assert np.abs(a - b).mean() > 1.0 and out.metadata["runs"]["ode"]["lora"]["cached"] is True
    assert out.metadata["runs"]["sde"]["arch"] == arch
    out = H.run_translate(ws, image, "a red square", "both", steps=4)
    assert out.metadata["runs"]["sde"]["guidance"] == ws.default_guidance()
    if factor > 2:
        with pytest.raises(SdImageError, match=f"not divisible by {factor}"):
            H.run_drag(ws, image.crop((0, 0, 62, 64)), None, "16,32 -> 48,32", "p", "sde", **FAST_DRAG)


# ------------------------------------------------------------------------------------------------ the command
def test_gui_command_checks_before_loading(tmp_path, capsys):
    from sdimage.cli import main

    assert main(["gui", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err and "\n" not in err
    assert main(["gui", "--model", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be in [1, 65535]" in capsys.readouterr().err
    assert main(["gui", "--model", str(tmp_path), "--max-queue", "0"]) == 2
    assert "--max-queue must be in [1, 1000]" in capsys.readouterr().err
    with socket.socket() as busy:  # a port in use: said before the model loads
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["gui", "--model", str(tmp_path), "--port", str(busy.getsockname()[1])]) == 2
    assert "is another server running there" in capsys.readouterr().err
    assert main(["gui", "--model", str(tmp_path), "--device", "nonsense"]) == 2
    assert "is not a device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["gui", "--help"])
    assert e.value.code == 0
    assert "127.0.0.1" in capsys.readouterr().out  # binds this machine only unless --host says otherwise


# ------------------------------------------------------------------------------------------------ gradio_client
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gradio_client_scripts_drag(pipe, tmp_path, tiny_image_path, tiny_mask_path):
    _require_gradio()
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from sdimage.gui import DRAG_API_INPUTS, build_app, launch

    app = build_app(pipe, model="tiny", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"))
    port = _free_port()
    launch(app, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert {"/drag", "/inpaint", "/translate", "/diffedit"} <= set(api)
        assert tuple(p["parameter_name"] for p in api["/drag"]["parameters"]) == DRAG_API_INPUTS
        kw = dict(image=handle_file(str(tiny_image_path)), mask=handle_file(str(tiny_mask_path)), points=POINTS,
                  prompt="a gradient", sampler="both", steps=5, t0=0.6, step_size=4, use_lora=True, lora_steps=2)
        status, live, sde, ode, gif, files, meta = client.predict(**kw, api_name="/drag")
        assert status.startswith("**Done**")
        a, b = _arr(Image.open(sde)), _arr(Image.open(ode))
        assert a.shape == (64, 64, 3) and np.abs(a - b).mean() > 1.0
        meta = json.loads(meta)
        assert set(meta["runs"]) == {"sde", "ode"} and meta["runs"]["sde"]["lora"]["cached"] is False
        assert any(Path(f).name == "drag.json" for f in files) and Path(gif).suffix == ".gif"
        # bad input: a one-line message, and the server keeps serving
        with pytest.raises(AppError, match="unpaired points"):
            client.predict(**{**kw, "points": "24,32 ->"}, api_name="/drag")
        with pytest.raises(AppError, match="no image"):
            client.predict(**{**kw, "image": None}, api_name="/drag")
        out = client.predict(handle_file(str(tiny_image_path)), "a red square", "ode", 3, 7.5, 0, "ddim", 2, 0.5, "",
                             api_name="/translate")  # positional: the order of sdimage.gui_app.api_inputs
        assert Image.open(out[2]).size == (64, 64) and out[1] is None  # ODE only: the SDE slot stays empty
    finally:
        app.close()


@pytest.mark.slow
def test_server_bounds_every_upload_and_number(pipe, tmp_path, tiny_image_path, tiny_mask_path):
    """Issue 23 through gradio_client: a non-image and a 6000² header on every endpoint are one plain-text line
    (checked before decoding), numbers beyond the CLI's bounds are refused, an all-black given DiffEdit mask is
    refused, ``order`` is accepted as the advertised string, and --max-side applies to API uploads."""
    _require_gradio()
    import struct
    import zlib

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from sdimage.gui import build_app, launch

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    huge = tmp_path / "huge.png"  # a 6000x6000 header over a few bytes: refused from the header, never decoded
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6000, 6000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    black = tmp_path / "black.png"
    Image.new("L", (64, 64), 0).save(black)
    big = tmp_path / "big.png"
    with Image.open(tiny_image_path) as im:
        im.convert("RGB").resize((128, 128)).save(big)

    app = build_app(pipe, model="tiny", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"), max_side=64)
    port = _free_port()
    launch(app, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        img, msk = handle_file(str(tiny_image_path)), handle_file(str(tiny_mask_path))
        calls = {  # endpoint -> (args with the image first, keyword overrides)
            "/drag": dict(image=img, mask=msk, points=POINTS, prompt="p", sampler="sde", steps=5, t0=0.6,
                          step_size=4, use_lora=False),
            "/inpaint": dict(image=img, mask=msk, prompt="p", sampler="ode", steps=2, negative_prompt=""),
            "/translate": dict(image=img, prompt="p", sampler="ode", t0=0.5, steps=2, negative_prompt=""),
            "/diffedit": dict(image=img, mask=msk, source_prompt="a", target_prompt="b", sampler="ode", steps=4),
        }
        for api, kw in calls.items():
            for bad, words in ((text, "the image is not an image ('notes.txt'"), (huge, "6000x6000 (36.0 megapixels)")):
                with pytest.raises(AppError) as e:
                    client.predict(**{**kw, "image": handle_file(str(bad))}, api_name=api)
                msg = str(e.value)
                assert words in msg and "\n" not in msg.strip() and "&#x27;" not in msg, (api, msg)
        with pytest.raises(AppError, match="(greater than maximum value|steps must be at most) 999"):
            client.predict(**{**calls["/drag"], "steps": 1000}, api_name="/drag")
        with pytest.raises(AppError, match=r"greater than maximum value 1000|mask draws must be in \[1, 1000\]"):
            client.predict(**{**calls["/diffedit"], "mask": None, "mask_draws": 10 ** 9}, api_name="/diffedit")
        with pytest.raises(AppError, match="the given mask is empty"):
            client.predict(**{**calls["/diffedit"], "mask": handle_file(str(black))}, api_name="/diffedit")
        out = client.predict(**{**calls["/translate"], "image": handle_file(str(big)), "order": "2",
                                "solver": "dpmpp"}, api_name="/translate")
        assert Image.open(out[2]).size == (64, 64) and "longer than --max-side 64" in out[0]  # 128² API upload
    finally:
        app.close()


def test_exposure_needs_a_password(tmp_path, capsys):
    """Issue 23: a non-loopback --host or --share without --auth / --auth-file / --no-auth is refused before the
    model loads (one line); loopback needs nothing; malformed credentials are one line too."""
    from sdimage.cli import main
    from sdimage.gui_access import exposure_auth, is_loopback

    nope = ["--model", str(tmp_path / "nope")]
    for extra in (["--host", "0.0.0.0"], ["--share"]):
        assert main(["gui", *nope, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pass --auth USER:PASS" in err and "--no-auth" in err, err
    assert main(["gui", *nope, "--host", "0.0.0.0", "--auth", "alice"]) == 2
    assert "--auth must be USER:PASS" in capsys.readouterr().err
    assert main(["gui", *nope, "--host", "0.0.0.0", "--no-auth", "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err  # --no-auth: on to the model; its error is the only line (the warning is dropped)
    assert err.count("\n") == 1 and err.startswith("error: model folder") and "does not exist" in err, err
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert exposure_auth("127.0.0.1", False, None, None, False) == (None, None)
    (f := tmp_path / "creds").write_text("# users\nalice:s3cret:x\n\nbob:pw\n")
    creds, warning = exposure_auth("0.0.0.0", False, None, str(f), False)
    assert creds == [("alice", "s3cret:x"), ("bob", "pw")] and "with a password" in warning
    assert "WITHOUT a password" in exposure_auth("0.0.0.0", False, None, None, True)[1]


@pytest.mark.slow
def test_ctrl_c_exits_130(tiny_model_dir, tmp_path):
    """Issue 23: the server stops on SIGINT (Ctrl-C) with exit status 130 and one line, as every CLI."""
    _require_gradio()
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1",
           "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sdimage", "gui", "--model", str(tiny_model_dir), "--port",
                             str(_free_port()), "--out-dir", str(tmp_path / "out")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "sdimage gui: ... serving ..." once the model is loaded
        assert "serving" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it hangs: every thread's stack (faulthandler on SIGABRT)
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            raise AssertionError("no exit 60 s after SIGINT:\n" + err[-6000:]) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted", err
