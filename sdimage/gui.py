"""``python -m sdimage gui``: a browser editor (Gradio) for drag, inpaint, translate and DiffEdit, each with an
ODE / SDE / both switch showing the two samplers side by side (same seed).

The page only collects inputs and shows outputs; every edit is a plain function of :mod:`sdimage.gui_handlers`
over the package's API (:func:`sdimage.drag.drag`, :mod:`sdimage.tasks`).  The pipeline is loaded once at
start-up; one edit runs at a time.  Scriptable endpoints (``gradio_client``): ``/drag``, ``/inpaint``,
``/translate``, ``/diffedit`` (image and mask as files; points as ``x,y -> x,y`` lines).  Bad input shows a
one-line message in the page (``gr.Error``) and the server keeps serving.

Gradio is imported only when the app is built (``pip install -e '.[gui]'``), so the rest of the package and the
CLI work without it.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

from .errors import SdImageError

__all__ = ["add_parser", "build_app", "launch", "DRAG_API_INPUTS"]

log = logging.getLogger(__name__)

SAMPLER_RADIO = [("SDE", "sde"), ("ODE", "ode"), ("Both: SDE and ODE side by side (same seed)", "both")]
# small results (e.g. 64x64) are shown scaled up, without smoothing (the points view is zoomed on the server:
# Gradio maps clicks assuming an image is never scaled up)
CSS = """
.sdimage-result img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""
# the /drag endpoint's parameters, in order (gradio_client: client.predict(*values, api_name="/drag"))
DRAG_API_INPUTS = ("image", "mask", "points", "prompt", "sampler", "steps", "t0", "guidance", "guidance_min",
                   "step_size", "r", "alpha", "beta", "preset", "negative_prompt", "use_lora", "lora_steps",
                   "lora_rank", "lora_lr", "lora_scale_min", "seed")


# ------------------------------------------------------------------------------------------------------ command
def add_parser(sub) -> None:
    """Register ``gui`` on the CLI's subparsers (no Gradio import here)."""
    from .cli_common import add_model_args

    q = sub.add_parser("gui", help="browser editor (Gradio): drag, inpaint, translate, DiffEdit; ODE and SDE side "
                                   "by side")
    add_model_args(q)
    q.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it on the network)")
    q.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    q.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (off by default)")
    q.add_argument("--auth", default=None, metavar="USER:PASS",
                   help="password for the page and the API; required with a non-loopback --host or --share")
    q.add_argument("--auth-file", default=None, metavar="FILE", help="USER:PASS lines (instead of --auth)")
    q.add_argument("--no-auth", action="store_true",
                   help="serve a non-loopback --host or --share without a password (explicitly)")
    q.add_argument("--max-side", type=int, default=512,
                   help="uploaded images are scaled down so the longer side is at most this (default 512; 0 = keep)")
    q.add_argument("--max-upload-mb", type=float, default=None,
                   help="largest upload in megabytes (default 50); images of more than 25 megapixels are refused "
                        "from their header, before decoding")
    q.add_argument("--out-dir", default=None, help="folder for the results (default: a new temporary folder)")
    q.add_argument("--lora-cache", default=None,
                   help="LoRA cache folder (default, as the CLI: $SDIMAGE_CACHE/drag_lora or "
                        "~/.cache/sdimage/drag_lora)")
    q.set_defaults(func=_cmd_gui)


def _cmd_gui(args) -> int:
    from .cli_common import check_model_args, check_writable_dir, pipeline_from_args

    check_model_args(args)
    if not 1 <= args.port <= 65535:
        raise SdImageError(f"--port must be in [1, 65535], got {args.port}")
    if args.max_side < 0:
        raise SdImageError(f"--max-side must be >= 0, got {args.max_side}")
    if args.max_upload_mb is not None:
        from cliutil import check_number

        check_number(args.max_upload_mb, "--max-upload-mb", 0.0, 10_000.0, lo_open=True, error=SdImageError)
    if args.out_dir is not None:
        from pathlib import Path

        check_writable_dir(Path(args.out_dir), "--out-dir")
    from cliutil import warning_line, work_starts

    from .gui_access import exposure_auth

    auth, exposed = exposure_auth(args.host, args.share, args.auth, args.auth_file, args.no_auth)
    if exposed:
        warning_line(exposed)
    _check_port_free(args.host, args.port)
    _import_gradio()
    pipe = pipeline_from_args(args)
    work_starts()
    app = build_app(pipe, model=args.model, out_dir=args.out_dir, lora_cache=args.lora_cache,
                    max_side=args.max_side or None)
    where = "a public share link and " if args.share else ""
    print(f"sdimage gui: model {args.model} on {args.device}; serving {where}http://{args.host}:{args.port} "
          "(Ctrl+C to stop)", flush=True)
    try:
        served = launch(app, host=args.host, port=args.port, share=args.share, max_upload_mb=args.max_upload_mb,
                        block=False, auth=auth)
    except OSError as err:  # the port was taken meanwhile, or the host is not an address of this machine
        raise SdImageError(f"cannot serve on {args.host}:{args.port}: {str(err).splitlines()[0]}") from None
    if args.share and isinstance(served, tuple) and len(served) > 2 and served[2]:
        print(f"sdimage gui: public link {served[2]}", flush=True)
    try:  # serve until Ctrl-C, which exits 130 as every CLI does (cliutil.run_cli)
        import time

        while True:
            time.sleep(0.5)
    finally:
        app.close()


def _check_port_free(host: str, port: int) -> None:
    """Fail before loading the model when the address cannot be served (port in use, unknown host)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise SdImageError(f"--host {host!r} is not an address of this machine: {err}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as err:
            raise SdImageError(f"cannot serve on {host}:{port} ({err.strerror or err}): is another server running "
                               "there? pass --port") from None


def _import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise SdImageError("the browser editor needs Gradio: pip install -e '.[gui]' (or pip install 'gradio>=6,<7')") \
            from None
    return gr


def launch(app, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, block: bool = True,
           max_upload_mb: float | None = None, **kw):
    """Start the server (``block=False``: return at once, for tests; stop with ``app.close()``).  Uploads larger than
    ``max_upload_mb`` (default :data:`sdimage.gui_limits.MAX_UPLOAD_MB`) are refused by Gradio."""
    from .gui_limits import MAX_UPLOAD_MB

    out_dir = app.sdimage_workspace.out_dir
    mb = MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb
    return app.launch(server_name=host, server_port=port, share=bool(share), prevent_thread_lock=not block,
                      allowed_paths=[out_dir], show_error=False, quiet=not block, css=CSS,
                      max_file_size=f"{mb:g}mb", **kw)


# ----------------------------------------------------------------------------------------------------- the app
def _message(err: BaseException) -> str:
    if isinstance(err, SdImageError):
        return str(err)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def build_app(pipe, model: str = "", out_dir: str | None = None, lora_cache: str | None = None,
              max_side: int | None = 512, drag_defaults: dict[str, Any] | None = None,
              task_defaults: dict[str, Any] | None = None):
    """The Gradio Blocks app on a loaded pipeline.  ``drag_defaults`` / ``task_defaults`` override the shown
    defaults of the drag parameters (e.g. ``{"steps": 10}``) and of the other tabs (``{"steps": 5}``): demos and
    tests; the page otherwise starts at the official defaults."""
    import tempfile

    gr = _import_gradio()

    from diffsamplers import PRESETS

    from . import gui_handlers as H
    from .cli_common import MAX_STEPS
    from .drag import DragConfig
    from .gui_limits import MAX_MASK_DRAWS, guard_uploads

    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="sdimage-gui-")
    os.makedirs(out_dir, exist_ok=True)
    ws = H.Workspace(pipe, model=model, out_dir=str(out_dir), lora_cache=lora_cache, max_side=max_side)
    factor = ws.factor()
    d = {**DragConfig().to_dict(), **(drag_defaults or {})}
    td = {"steps": 50, **(task_defaults or {})}
    from .backbones import backbone, execution_device

    device = execution_device(pipe)

    bb = backbone(pipe)
    cfg = float(bb.default_guidance)  # the family's CFG default for the task tabs

    def fail(err: BaseException):
        if not isinstance(err, SdImageError):
            log.exception("sdimage gui: unexpected error", exc_info=err)
        # plain text: an API client reads it as written; the page's toast sanitises what it renders (Gradio)
        return gr.Error(_message(err), print_exception=False)

    def guarded(fn):
        """UI helpers: any problem becomes a one-line message in the page."""
        def inner(*a, **k):
            try:
                return fn(*a, **k)
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001
                raise fail(err) from None
        inner.__name__ = fn.__name__
        return inner

    # ------------------------------------------------------------------ helpers shared by the tabs
    def incomplete(value) -> bool:
        return value is None or (isinstance(value, dict) and value.get("background") is None
                                 and value.get("composite") is None)

    @guarded
    def prep_editor(value, work=None):
        """An editor's value → (image, mask) for an endpoint; falls back on the editor's last complete value
        (``work``: the points view's, or :func:`track`'s) when the editor hands over an incomplete one."""
        if incomplete(value):
            if isinstance(work, dict):
                return work["image"], work["mask"]
            raise SdImageError("no image: upload an image first")
        return H.editor_to_inputs(value, factor, max_side)

    def on_edit(value, points, work):
        """The drag editor changed (an upload or a stroke): the working image and mask, kept server-side for the
        points view; the points are cleared when the image is a new one.  This is the editor's only listener
        besides the Drag button (Gradio hands an editor value to one event only)."""
        if value is None:
            return None, 1, "", None, gr.Timer(active=False)
        if incomplete(value):
            # Gradio 6's editor can announce an upload before its canvas holds the image, and then stays silent:
            # keep what is shown and ask again in a moment (the retry timer reads the editor afresh)
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=True)
        try:
            image, mask = H.editor_to_inputs(value, factor, max_side)
        except Exception as err:  # noqa: BLE001
            raise fail(err) from None
        import hashlib

        key = hashlib.sha1(image.tobytes()).hexdigest()
        same = isinstance(work, dict) and work.get("key") == key
        scale = H.view_scale(*image.size)
        view = H.draw_points(image, points if same else "", mask, scale)
        # the same image (a stroke): leave the points alone (a click may have come in meanwhile); a new one: clear
        return view, scale, gr.skip() if same else "", {"key": key, "image": image, "mask": mask}, \
            gr.Timer(active=False)

    def track(value, work):
        """Inpaint / DiffEdit editors: remember the last complete value (image, mask), the fallback of their Run
        button when the editor hands over an incomplete one (see ``on_edit``)."""
        if value is None:
            return None, gr.Timer(active=False)
        if incomplete(value):
            return gr.skip(), gr.Timer(active=True)
        try:
            image, mask = H.editor_to_inputs(value, factor, max_side)
        except Exception as err:  # noqa: BLE001
            raise fail(err) from None
        return {"image": image, "mask": mask}, gr.Timer(active=False)

    def tracked(editor_component):
        state, timer = gr.State(None), gr.Timer(1.0, active=False)
        editor_component.change(track, [editor_component, state], [state, timer], **ui)
        timer.tick(track, [editor_component, state], [state, timer], **ui)
        return state

    def render_view(work, points):
        """The points view: the working image zoomed to a clickable size, the painted region tinted, arrows."""
        if not isinstance(work, dict):
            return None, 1
        scale = H.view_scale(*work["image"].size)
        return H.draw_points(work["image"], points, work["mask"], scale), scale

    def click_point(points, scale, evt: gr.SelectData):
        if evt is None or evt.index is None:
            return points
        x, y = evt.index[:2]
        s = max(1, int(scale or 1))
        try:
            return H.add_point(points, int(x) // s, int(y) // s)
        except SdImageError as err:
            raise fail(err) from None

    click_point.__annotations__["evt"] = gr.SelectData  # a real class (this module has postponed annotations)

    def out_image(images, key):
        return images.get(key)

    def notes_md(out) -> str:
        return "\n".join(f"- {n}" for n in out.notes)

    def finish_status(task: str, out) -> str:
        runs = out.metadata.get("runs", {})
        parts = []
        for k, info in runs.items():
            wall = info.get("wall_s")
            took = f", {wall:.1f} s" if isinstance(wall, (int, float)) else ""
            parts.append(f"{k.upper()}: NFE {info.get('nfe')}{took}")
            lora = info.get("lora")
            if isinstance(lora, dict):
                trained = f"trained ({lora.get('train_s', 0):.1f} s)"
                parts[-1] += ", LoRA " + ("from cache" if lora.get("cached") else trained)
        s = f"**Done** ({task}): " + "; ".join(parts) + f". Files in `{out.folder}`."
        if out.notes:
            s += "\n\n" + notes_md(out)
        return s

    # ------------------------------------------------------------------ drag (runs in a thread; streams updates)
    def drag_endpoint(image, mask, points, prompt, sampler, steps, t0, guidance, guidance_min, step_size, r, alpha,
                      beta, preset, negative_prompt, use_lora, lora_steps, lora_rank, lora_lr, lora_scale_min, seed,
                      progress=gr.Progress()):
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        class _Cancelled(Exception):
            pass

        def on_progress(what, done, total):
            if cancelled.is_set():
                raise _Cancelled()
            events.put(("progress", what, done, total))

        def on_intermediate(name, i, m, frame):
            events.put(("frame", name, i, m, frame))

        def in_thread():
            try:
                out = H.run_drag(ws, image, mask, points, prompt or "", sampler, steps=steps, t0=t0, guidance=guidance,
                                 guidance_min=guidance_min, step_size=step_size, r=r, alpha=alpha, beta=beta,
                                 use_lora=bool(use_lora), lora_steps=lora_steps, lora_rank=lora_rank, lora_lr=lora_lr,
                                 lora_scale_min=lora_scale_min, seed=seed, preset=preset,
                                 negative_prompt=negative_prompt or "", on_progress=on_progress,
                                 on_intermediate=on_intermediate)
                events.put(("done", out))
            except _Cancelled:
                events.put(("cancelled",))
            except BaseException as err:  # noqa: BLE001 - reported in the page
                events.put(("error", err))

        threading.Thread(target=in_thread, name="sdimage-gui-drag", daemon=True).start()
        try:
            progress(0, desc="starting")
            while True:
                kind, *rest = events.get()
                if kind == "progress":
                    what, done, total = rest
                    progress((done, total), desc=what)
                elif kind == "frame":
                    name, i, m, frame = rest
                    yield {status: f"{name.upper()}-Drag: operation {i + 1} of {m} done", live: frame}
                elif kind == "error":
                    raise fail(rest[0])
                elif kind == "cancelled":
                    return
                else:
                    out = rest[0]
                    for n in out.notes:
                        gr.Warning(n)
                    yield (finish_status("drag", out), out.images.get(out.metadata["samplers"][-1]),
                           out_image(out.images, "sde"), out_image(out.images, "ode"), out.gif, out.files,
                           H.metadata_text(out.metadata))
                    return
        finally:
            cancelled.set()

    def task_outputs(task: str, out):
        for n in out.notes:
            gr.Warning(n)
        res = [finish_status(task, out), out.images.get("sde"), out.images.get("ode"), out.files,
               H.metadata_text(out.metadata)]
        if task == "diffedit":
            masks = out.extra_images
            res.append(masks.get("sde") if "sde" in masks else masks.get("ode"))
        return tuple(res)

    def task_progress(progress):
        return lambda what, done, total: progress((done, total), desc=what)

    def inpaint_endpoint(image, mask, prompt, sampler, negative_prompt, steps, guidance, solver, order, strength, seed,
                         progress=gr.Progress(track_tqdm=True)):
        try:
            out = H.run_inpaint(ws, image, mask, prompt or "", sampler, negative_prompt=negative_prompt or "",
                                steps=steps, guidance=guidance, solver=solver, order=order,
                                strength=strength, seed=seed, on_progress=task_progress(progress))
        except Exception as err:  # noqa: BLE001
            raise fail(err) from None
        return task_outputs("inpaint", out)

    def translate_endpoint(image, prompt, sampler, t0, negative_prompt, steps, guidance, solver, order, seed,
                           progress=gr.Progress(track_tqdm=True)):
        try:
            out = H.run_translate(ws, image, prompt or "", sampler, t0=t0, negative_prompt=negative_prompt or "",
                                  steps=steps, guidance=guidance, solver=solver, order=order, seed=seed,
                                  on_progress=task_progress(progress))
        except Exception as err:  # noqa: BLE001
            raise fail(err) from None
        return task_outputs("translate", out)

    def diffedit_endpoint(image, mask, source_prompt, target_prompt, sampler, t0, steps, guidance, mask_draws, mask_t0,
                          preset, seed, progress=gr.Progress(track_tqdm=True)):
        try:
            out = H.run_diffedit(ws, image, source_prompt or "", target_prompt or "", sampler, mask=mask, t0=t0,
                                 steps=steps, guidance=guidance, seed=seed, mask_draws=mask_draws, mask_t0=mask_t0,
                                 preset=preset, on_progress=task_progress(progress))
        except Exception as err:  # noqa: BLE001
            raise fail(err) from None
        return task_outputs("diffedit", out)

    # ------------------------------------------------------------------ layout
    brush = gr.Brush(colors=[("#33cc66", 0.6)], default_color=("#33cc66", 0.6), color_mode="fixed", default_size=12)
    img_kw = dict(format="png", buttons=["download", "fullscreen"], elem_classes=["sdimage-result"], height=300)

    def hidden_image(elem_id):
        return guard_uploads(gr.Image(type="filepath", image_mode=None, format="png", visible=False, elem_id=elem_id),
                             "mask" if "mask" in elem_id else "image", fail)

    def results_row(prefix: str):
        with gr.Row(equal_height=True):
            a = gr.Image(label="SDE", type="pil", interactive=False, elem_id=f"{prefix}-sde", **img_kw)
            b = gr.Image(label="ODE", type="pil", interactive=False, elem_id=f"{prefix}-ode", **img_kw)
        return a, b

    def order_radio():
        """The DPM-Solver++ order, advertised to API clients as the strings '1' / '2'; the numbers 1 / 2 (what
        earlier scripts sent) are accepted too."""
        radio = gr.Radio(["1", "2"], value="2", label="DPM-Solver++ order")
        inner = radio.preprocess
        radio.preprocess = lambda v: inner(str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
        return radio

    def editor(label, elem_id):
        return guard_uploads(gr.ImageEditor(label=label, type="pil", image_mode="RGBA", sources=["upload", "clipboard"],
                                            brush=brush, eraser=gr.Eraser(default_size=12), transforms=(),
                                            layers=False, format="png", elem_id=elem_id, height=420), "image", fail)

    common = dict(concurrency_id="pipeline", concurrency_limit=1)  # one edit at a time, whichever tab
    ui = dict(api_visibility="private", show_progress="hidden")  # page helpers: not part of the API
    with gr.Blocks(title="sdimage: SDE vs ODE editor", analytics_enabled=False) as app:
        gr.Markdown(
            "## SDE vs ODE image editing\n"
            f"Model `{model or 'pipeline'}` ({bb.arch}) on `{device}` ({str(bb.dtype).replace('torch.', '')}). "
            "Every tab runs the SDE sampler, the ODE sampler, or both with the same seed (Nie et al., ICLR 2024, "
            "*The Blessing of Randomness: SDE Beats ODE in General Diffusion-based Image Editing*).")
        with gr.Tabs():
            # ---------------------------------------------------------------- drag
            with gr.Tab("Drag", id="drag"):
                with gr.Row():
                    with gr.Column():
                        drag_editor = editor("1. Upload an image; paint the editable region (none = all)",
                                             "drag-editor")
                    with gr.Column():
                        points_view = gr.Image(label="2. Click a handle point, then its target (repeat for more pairs)",
                                               type="pil", interactive=False, elem_id="drag-points", height=420,
                                               format="png", buttons=["fullscreen"])
                        with gr.Row():
                            undo = gr.Button("Undo point", size="sm", elem_id="drag-undo")
                            clear = gr.Button("Clear points", size="sm", elem_id="drag-clear")
                        points = gr.Textbox(label="Points: handle -> target, image pixels (x,y -> x,y per line)",
                                            lines=2, elem_id="drag-points-text", placeholder="click on the image")
                with gr.Row():
                    prompt = gr.Textbox(label="Prompt (describes the image)", elem_id="drag-prompt", scale=3)
                    sampler = gr.Radio(SAMPLER_RADIO, value="both", label="Sampler", elem_id="drag-sampler", scale=3)
                    seed = gr.Number(d["seed"], label="Seed", precision=0, elem_id="drag-seed", scale=1)
                with gr.Accordion("Drag parameters (defaults: the official SDE-Drag DragBench script)", open=False):
                    with gr.Row():
                        steps = gr.Number(d["steps"], label="Steps (full schedule)", precision=0, minimum=2,
                                          maximum=MAX_STEPS, elem_id="drag-steps")
                        t0 = gr.Slider(0.05, 1.0, d["t0"], step=0.01, label="t0 (copy-and-paste time)")
                        step_size = gr.Number(d["step_size"], label="Step size (latent px per operation)", minimum=0.1,
                                              elem_id="drag-step-size")
                        r = gr.Number(d["r"], label="Patch half-size r (latent px)", precision=0, minimum=0)
                    with gr.Row():
                        guidance = gr.Slider(1.0, 15.0, d["guidance_max"], step=0.1, label="CFG at t0")
                        guidance_min = gr.Slider(1.0, 15.0, d["guidance_min"], step=0.1, label="CFG at t -> 0")
                        alpha = gr.Slider(0.0, 3.0, d["alpha"], step=0.05, label="alpha (target = alpha x source)")
                        beta = gr.Slider(0.0, 1.0, d["beta"], step=0.05, label="beta (source noise mix)")
                    with gr.Row():
                        preset = gr.Radio(list(PRESETS), value=d["preset"], label="Preset (docs/drag.md, docs/fast.md)",
                                          elem_id="drag-preset")
                        negative = gr.Textbox(label="Negative prompt", value="")
                    preset_note = gr.Markdown(H.preset_note(d["preset"]), elem_id="drag-preset-note")
                with gr.Accordion("LoRA on the image (cached: a second drag of the same image reuses it)", open=False):
                    with gr.Row():
                        use_lora = gr.Checkbox(value=d["lora_steps"] > 0, label="Train a LoRA first",
                                               elem_id="drag-use-lora")
                        lora_steps = gr.Number(int(d["lora_steps"]) or DragConfig().lora_steps, label="LoRA steps",
                                               precision=0, minimum=1, elem_id="drag-lora-steps")
                        lora_rank = gr.Number(d["lora_rank"], label="LoRA rank", precision=0, minimum=1)
                        lora_lr = gr.Number(d["lora_lr"], label="LoRA learning rate", minimum=0)
                        lora_scale_min = gr.Slider(0.0, 1.0, d["lora_scale_min"], step=0.05, label="LoRA scale at t0")
                preset.change(H.drag_preset_fields, preset, [steps, step_size, use_lora, lora_steps, preset_note],
                              api_visibility="private")
                drag_btn = gr.Button("Drag", variant="primary", elem_id="drag-run")
                drag_status = gr.Markdown(label="status", elem_id="drag-status")
                with gr.Row(equal_height=True):
                    drag_live = gr.Image(label="Latest drag operation", type="pil", interactive=False,
                                         elem_id="drag-live", **img_kw)
                    drag_sde = gr.Image(label="SDE-Drag", type="pil", interactive=False, elem_id="drag-sde", **img_kw)
                    drag_ode = gr.Image(label="ODE-Drag", type="pil", interactive=False, elem_id="drag-ode", **img_kw)
                    drag_gif = gr.Image(label="Trajectory (GIF; SDE left, ODE right)", type="filepath",
                                        interactive=False, elem_id="drag-gif", buttons=["download", "fullscreen"],
                                        elem_classes=["sdimage-result"], height=300)
                drag_files = gr.File(label="Downloads: JSON metadata, results, GIFs", file_count="multiple",
                                     interactive=False, elem_id="drag-files")
                with gr.Accordion("Metadata", open=False):
                    drag_meta = gr.Code(label="Metadata (JSON)", language="json", elem_id="drag-meta")
                drag_image_in, drag_mask_in = hidden_image("drag-image-in"), hidden_image("drag-mask-in")

                status, live = drag_status, drag_live  # the names drag_endpoint streams to
                view_zoom, work = gr.State(1), gr.State(None)
                retry = gr.Timer(1.0, active=False)
                edit_io = ([drag_editor, points, work], [points_view, view_zoom, points, work, retry])
                drag_editor.change(on_edit, *edit_io, **ui)
                retry.tick(on_edit, *edit_io, **ui)
                points.change(render_view, [work, points], [points_view, view_zoom],
                              **ui)
                points_view.select(click_point, [points, view_zoom], points, **ui)
                undo.click(guarded(H.undo_point), points, points, **ui)
                clear.click(lambda: "", None, points, **ui)
                drag_btn.click(prep_editor, [drag_editor, work], [drag_image_in, drag_mask_in],
                               api_visibility="private").success(
                    drag_endpoint,
                    [drag_image_in, drag_mask_in, points, prompt, sampler, steps, t0, guidance, guidance_min,
                     step_size, r, alpha, beta, preset, negative, use_lora, lora_steps, lora_rank, lora_lr,
                     lora_scale_min, seed],
                    [drag_status, drag_live, drag_sde, drag_ode, drag_gif, drag_files, drag_meta],
                    api_name="drag", **common)

            # ---------------------------------------------------------------- inpaint
            with gr.Tab("Inpaint", id="inpaint"):
                with gr.Row():
                    with gr.Column():
                        in_editor = editor("Upload an image and paint the region to inpaint", "inpaint-editor")
                    with gr.Column():
                        in_prompt = gr.Textbox(label="Prompt", elem_id="inpaint-prompt")
                        in_sampler = gr.Radio(SAMPLER_RADIO, value="both", label="Sampler")
                        with gr.Accordion("Parameters", open=False):
                            in_negative = gr.Textbox(label="Negative prompt")
                            in_steps = gr.Number(td["steps"], label="Steps", precision=0, minimum=1, maximum=MAX_STEPS)
                            in_guidance = gr.Slider(0.0, 20.0, cfg, step=0.1, label="CFG")
                            in_solver = gr.Radio(["ddim", "dpmpp"], value="ddim",
                                                 label="Solver (DDIM/DDPM or DPM-Solver++ / SDE-DPM-Solver++)")
                            in_order = order_radio()
                            in_strength = gr.Slider(0.01, 1.0, 1.0, step=0.01, label="Strength")
                            in_seed = gr.Number(0, label="Seed", precision=0)
                        in_btn = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
                in_status = gr.Markdown(label="status")
                in_sde, in_ode = results_row("inpaint")
                in_files = gr.File(label="Downloads", file_count="multiple", interactive=False)
                with gr.Accordion("Metadata", open=False):
                    in_meta = gr.Code(label="Metadata (JSON)", language="json")
                in_image_in, in_mask_in = hidden_image("inpaint-image-in"), hidden_image("inpaint-mask-in")
                in_work = tracked(in_editor)
                in_btn.click(prep_editor, [in_editor, in_work], [in_image_in, in_mask_in],
                             api_visibility="private").success(
                    inpaint_endpoint,
                    [in_image_in, in_mask_in, in_prompt, in_sampler, in_negative, in_steps, in_guidance, in_solver,
                     in_order, in_strength, in_seed],
                    [in_status, in_sde, in_ode, in_files, in_meta], api_name="inpaint", **common)

            # ---------------------------------------------------------------- translate
            with gr.Tab("Translate (SDEdit)", id="translate"):
                with gr.Row():
                    with gr.Column():
                        tr_upload = guard_uploads(gr.Image(label="Image", type="pil", sources=["upload", "clipboard"],
                                                           format="png", elem_id="translate-image"), "image", fail)
                    with gr.Column():
                        tr_prompt = gr.Textbox(label="Prompt (what the result should show)")
                        tr_sampler = gr.Radio(SAMPLER_RADIO, value="both", label="Sampler")
                        tr_t0 = gr.Slider(0.05, 1.0, 0.5, step=0.01, label="t0 (noise level to start from)")
                        with gr.Accordion("Parameters", open=False):
                            tr_negative = gr.Textbox(label="Negative prompt")
                            tr_steps = gr.Number(td["steps"], label="Steps", precision=0, minimum=1, maximum=MAX_STEPS)
                            tr_guidance = gr.Slider(0.0, 20.0, cfg, step=0.1, label="CFG")
                            tr_solver = gr.Radio(["ddim", "dpmpp"], value="ddim", label="Solver")
                            tr_order = order_radio()
                            tr_seed = gr.Number(0, label="Seed", precision=0)
                        tr_btn = gr.Button("Translate", variant="primary", elem_id="translate-run")
                tr_status = gr.Markdown(label="status")
                tr_sde, tr_ode = results_row("translate")
                tr_files = gr.File(label="Downloads", file_count="multiple", interactive=False)
                with gr.Accordion("Metadata", open=False):
                    tr_meta = gr.Code(label="Metadata (JSON)", language="json")
                tr_image_in = hidden_image("translate-image-in")

                @guarded
                def prep_plain(image):
                    if image is None:
                        raise SdImageError("no image: upload an image first")
                    img, _ = H.editor_to_inputs(image, factor, max_side)
                    return img

                tr_btn.click(prep_plain, tr_upload, tr_image_in, api_visibility="private").success(
                    translate_endpoint,
                    [tr_image_in, tr_prompt, tr_sampler, tr_t0, tr_negative, tr_steps, tr_guidance, tr_solver,
                     tr_order, tr_seed],
                    [tr_status, tr_sde, tr_ode, tr_files, tr_meta], api_name="translate", **common)

            # ---------------------------------------------------------------- DiffEdit
            with gr.Tab("DiffEdit", id="diffedit"):
                with gr.Row():
                    with gr.Column():
                        de_editor = editor("Upload an image (optional: paint the edit region; nothing painted = "
                                           "DiffEdit's automatic mask)", "diffedit-editor")
                    with gr.Column():
                        de_source = gr.Textbox(label="Source prompt (what the image shows)")
                        de_target = gr.Textbox(label="Target prompt (what it should show)")
                        de_sampler = gr.Radio(SAMPLER_RADIO, value="both", label="Sampler")
                        de_t0 = gr.Slider(0.05, 1.0, 0.7, step=0.01, label="t0 (encode ratio)")
                        with gr.Accordion("Parameters", open=False):
                            de_steps = gr.Number(td["steps"], label="Steps", precision=0, minimum=2, maximum=MAX_STEPS)
                            de_guidance = gr.Slider(0.0, 20.0, cfg, step=0.1, label="CFG")
                            de_draws = gr.Number(10, label="Mask: noise draws", precision=0, minimum=1,
                                                 maximum=MAX_MASK_DRAWS)
                            de_mask_t0 = gr.Slider(0.05, 1.0, 0.5, step=0.01, label="Mask: noise level")
                            de_preset = gr.Radio(list(PRESETS), value="official", label="Preset (fast: DPM-Solver++ "
                                                 "2M, fewer steps; docs/fast.md)")
                            de_preset.change(H.edit_preset_steps, de_preset, de_steps, api_visibility="private")
                            de_seed = gr.Number(0, label="Seed", precision=0)
                        de_btn = gr.Button("DiffEdit", variant="primary", elem_id="diffedit-run")
                de_status = gr.Markdown(label="status")
                de_sde, de_ode = results_row("diffedit")
                de_mask_out = gr.Image(label="Edit mask used", type="pil", interactive=False, **img_kw)
                de_files = gr.File(label="Downloads", file_count="multiple", interactive=False)
                with gr.Accordion("Metadata", open=False):
                    de_meta = gr.Code(label="Metadata (JSON)", language="json")
                de_image_in, de_mask_in = hidden_image("diffedit-image-in"), hidden_image("diffedit-mask-in")
                de_work = tracked(de_editor)
                de_btn.click(prep_editor, [de_editor, de_work], [de_image_in, de_mask_in],
                             api_visibility="private").success(
                    diffedit_endpoint,
                    [de_image_in, de_mask_in, de_source, de_target, de_sampler, de_t0, de_steps, de_guidance,
                     de_draws, de_mask_t0, de_preset, de_seed],
                    [de_status, de_sde, de_ode, de_files, de_meta, de_mask_out], api_name="diffedit", **common)

    app.queue(default_concurrency_limit=1)
    app.sdimage_workspace = ws
    return app
