"""The browser editor's page (Gradio Blocks), built by one tab builder from one table of tabs (:data:`TABS`).

Each tab is an image input, its prompts, the ODE / SDE / both switch, its settings — one input per field of the
task's settings declaration (:mod:`sdimage.settings`: label, bounds, default; the API parameter is the CLI flag's
name) — Run and Stop buttons and the results.  Every run goes through one runner (:func:`_endpoint`): the handler
(:mod:`sdimage.gui_run`) runs in a worker thread while the endpoint streams its status; Stop, a closed tab or a
gone API client stops it before the next model evaluation, and what it finished stays downloadable.  All tabs share
one queue on the model (one run at a time; ``max_queue`` waiting, beyond that a "busy" message).
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
import queue
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from . import gui_inputs as I  # noqa: N812
from . import gui_run as R  # noqa: N812
from .errors import SdImageError

__all__ = ["TabSpec", "TABS", "api_inputs", "build_app", "DRAG_API_INPUTS", "MAX_QUEUE"]

log = logging.getLogger(__name__)

MAX_QUEUE = 8
"""Default most runs waiting for the model (``gui --max-queue``); one more gets the busy message."""
DELETE_CACHE = (600, 3600)
"""Gradio's temporary copies (uploads, results it serves) older than an hour are deleted every 10 minutes."""
SAMPLER_RADIO = [("SDE", "sde"), ("ODE", "ode"), ("Both: SDE and ODE side by side (same seed)", "both")]
OUTPUT_ORDER = ("status", "live", "sde", "ode", "gif", "files", "meta", "mask_out")  # what an endpoint returns
ONE_OPERATION = 1000.0  # the drag tab's step size for "one operation" (larger than any drag)
# small results (e.g. 64x64) are shown scaled up, without smoothing (the points view is zoomed on the server:
# Gradio maps clicks assuming an image is never scaled up)
CSS = """
.sdimage-result img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""


@dataclass(frozen=True)
class TabSpec:
    """One tab: its task, title, settings declaration, handler and what its page has."""

    task: str                                   # "drag" | "inpaint" | ... (the endpoint is /<task>)
    title: str
    settings: type                              # the task's settings dataclass (sdimage.settings)
    run: Callable                               # the handler (sdimage.gui_run.run_<task>)
    image_label: str
    editor: bool = True                         # an image editor (paint a mask) or a plain image
    texts: tuple[tuple[str, str], ...] = ()     # (parameter, label) of the prompt boxes
    main: tuple[str, ...] = ()                  # settings shown next to the prompts (the rest in the accordions)
    groups: tuple[tuple[str, tuple[str, ...]], ...] = (("Parameters", ()),)  # accordion title, its settings ((): rest)
    negative: bool = True                       # a negative-prompt box
    mask_out: bool = False                      # DiffEdit: the mask it used
    hidden: tuple[str, ...] = ()                # declared settings the page leaves to their defaults
    lead_inputs: tuple[str, ...] = ()           # inputs of the tab's own builder right after the image (points)
    extra_inputs: tuple[str, ...] = ()          # inputs of the tab's own builder at the end (use_lora)


def _settings_of(spec: TabSpec):
    from cliutil.settings import declared

    return [s for s in declared(spec.settings) if s.gui and s.name not in spec.hidden]


def api_inputs(spec: TabSpec) -> tuple[str, ...]:
    """The endpoint's parameters, in order: image (and mask), prompts, sampler, every shown setting (by its API
    name), the negative prompt and the tab's own inputs."""
    from .settings import api_name

    head = ("image", "mask") if spec.editor else ("image",)
    names = head + spec.lead_inputs + tuple(p for p, _ in spec.texts) + ("sampler",) + tuple(api_name(s) for s in _settings_of(spec))
    return names + (("negative_prompt",) if spec.negative else ()) + spec.extra_inputs


def _tabs() -> tuple[TabSpec, ...]:
    from .settings import DiffEditSettings, DragConfig, InpaintSettings, TranslateSettings

    lora = ("lora_steps", "lora_rank", "lora_lr", "lora_scale_min")
    return (
        TabSpec("drag", "Drag", DragConfig, R.run_drag,
                "1. Upload an image; paint the editable region (none = all)", texts=(("prompt", "Prompt (describes "
                "the image)"),), main=("seed",),
                groups=(("Drag parameters (defaults: the official SDE-Drag DragBench script)", ()),
                        ("LoRA on the image (cached: a second drag of the same image reuses it)", lora)),
                lead_inputs=("points",), extra_inputs=("use_lora",)),
        TabSpec("inpaint", "Inpaint", InpaintSettings, R.run_inpaint,
                "Upload an image and paint the region to inpaint", texts=(("prompt", "Prompt"),)),
        TabSpec("translate", "Translate (SDEdit)", TranslateSettings, R.run_translate, "Image", editor=False,
                texts=(("prompt", "Prompt (what the result should show)"),), main=("t0",), hidden=("preset",)),
        TabSpec("diffedit", "DiffEdit", DiffEditSettings, R.run_diffedit,
                "Upload an image (optional: paint the edit region; nothing painted = DiffEdit's automatic mask)",
                texts=(("source_prompt", "Source prompt (what the image shows)"),
                       ("target_prompt", "Target prompt (what it should show)")), main=("t0",), negative=False,
                mask_out=True, hidden=("solver", "order")),
    )


TABS = _tabs()
DRAG_API_INPUTS = api_inputs(TABS[0])
"""The /drag endpoint's parameters, in order (gradio_client: ``client.predict(*values, api_name="/drag")``)."""


# ------------------------------------------------------------------------------------------------ page widgets
def _shown(value):
    """A default as a form shows it (inf, a drag step of one operation: :data:`ONE_OPERATION`)."""
    return ONE_OPERATION if isinstance(value, float) and math.isinf(value) else value


def setting_input(gr, s, value, elem_id: str):
    """The widget of one declared setting: a radio for choices (and small integer ranges), a slider for a bounded
    float with a step, a number box otherwise; bounds and label from the declaration.  A value an API client sends
    as text ("2") is read as the declared type."""
    from cliutil.settings import coerce

    label = s.text
    if s.choices is not None:
        w = gr.Radio(list(s.choices), value=value, label=label, elem_id=elem_id)
    elif s.kind == "int" and s.lo is not None and s.hi is not None and s.hi - s.lo <= 3:
        w = gr.Radio(list(range(int(s.lo), int(s.hi) + 1)), value=value, label=label, elem_id=elem_id)
    elif s.kind == "float" and s.lo is not None and s.hi is not None and s.step:
        lo = s.lo + s.step if s.lo_open else s.lo
        w = gr.Slider(lo, s.hi, value, step=s.step, label=label, elem_id=elem_id)
    elif s.kind in ("int", "float"):
        lo = None if s.lo is None else (s.lo if not s.lo_open else None)
        w = gr.Number(_shown(value), label=label, precision=0 if s.kind == "int" else None, minimum=lo,
                      maximum=s.hi, elem_id=elem_id)
    else:
        w = gr.Textbox(value=value or "", label=label, elem_id=elem_id)
    inner = w.preprocess

    def loose(v, inner=inner):  # API clients: "2" for 2, 10.0 for 10
        if isinstance(v, str) and s.kind in ("int", "float"):
            try:
                v = coerce(s, v, error=SdImageError)
            except SdImageError:
                pass  # the handler's check says it in one line
        return inner(v)

    w.preprocess = loose
    return w


@dataclass
class _Page:
    """What every tab shares while the page is built."""

    gr: Any
    ws: R.Workspace
    factor: int
    max_side: int | None
    fail: Callable
    defaults: dict[str, dict] = field(default_factory=dict)


def _message(err: BaseException) -> str:
    if isinstance(err, SdImageError):
        return str(err)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def finish_status(task: str, out) -> str:
    """The status line of a finished (or stopped) run: NFE and time per sampler, LoRA, the folder, the notes."""
    parts = []
    for k, info in out.metadata.get("runs", {}).items():
        wall = info.get("wall_s")
        took = f", {wall:.1f} s" if isinstance(wall, (int, float)) else ""
        parts.append(f"{k.upper()}: NFE {info.get('nfe')}{took}")
        lora = info.get("lora")
        if isinstance(lora, dict):
            trained = f"trained ({lora.get('train_s', 0):.1f} s)"
            parts[-1] += ", LoRA " + ("from cache" if lora.get("cached") else trained)
    head = "**Stopped**" if out.stopped else "**Done**"
    s = f"{head} ({task}): " + ("; ".join(parts) or "nothing finished") + f". Files in `{out.folder}`."
    if out.notes:
        s += "\n\n" + "\n".join(f"- {n}" for n in out.notes)
    return s


# ------------------------------------------------------------------------------------------------- the runner
def _endpoint(page: _Page, spec: TabSpec, outputs: dict[str, Any]):
    """The tab's endpoint: runs the handler in a thread and streams its status (every half second, so a gone
    client is noticed), the drag's latest operation, then the results.  Stop (this session's Stop button), a
    closed tab or a cancelled API job sets the run's stop flag: the handler stops before its next model
    evaluation and returns what it finished."""
    gr, ws = page.gr, page.ws
    names = api_inputs(spec)
    status = outputs["status"]

    def run(*values):
        request = values[-1] if values and isinstance(values[-1], gr.Request) else None
        values = values[:-1] if request is not None else values
        args = dict(zip(names, values))
        stop = threading.Event()
        session = getattr(request, "session_hash", None) or f"anonymous-{id(stop)}"
        ws.stops[session] = stop
        events: queue.Queue = queue.Queue()
        calls = [0]

        def should_stop() -> bool:
            calls[0] += 1
            return stop.is_set()

        def on_progress(what, done, total):
            events.put(("progress", f"{what} {done}/{total}"))

        extra = {}
        if spec.task == "drag":
            extra["on_intermediate"] = lambda name, i, m, frame: events.put(
                ("frame", f"{name.upper()}-Drag: operation {i + 1} of {m} done", frame))
        image = args.pop("image")
        if spec.task == "drag":
            args["use_lora"] = bool(args.get("use_lora"))

        def work():
            try:
                out = spec.run(ws, image, on_progress=on_progress, should_stop=should_stop, **args, **extra)
                events.put(("done", out))
            except BaseException as err:  # noqa: BLE001 - reported in the page
                events.put(("error", err))

        worker = threading.Thread(target=work, name=f"sdimage-gui-{spec.task}", daemon=True)
        worker.start()
        text = "starting"
        try:
            while True:
                try:
                    kind, *rest = events.get(timeout=0.5)
                except queue.Empty:
                    yield {status: f"{text} ({calls[0]} model calls)"}
                    continue
                if kind == "progress":
                    text = rest[0]
                    yield {status: f"{text} ({calls[0]} model calls)"}
                elif kind == "frame":
                    text = rest[0]
                    yield {status: text, outputs["live"]: rest[1]}
                elif kind == "error":
                    raise page.fail(rest[0])
                else:
                    out = rest[0]
                    for n in out.notes:
                        gr.Warning(n)
                    yield _results(spec, outputs, out)
                    return
        finally:
            stop.set()  # a gone client (the generator is closed) or an error: the worker stops too
            if ws.stops.get(session) is stop:
                ws.stops.pop(session, None)

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))
    run.__signature__ = inspect.Signature(params)  # the API's parameter names
    run.__annotations__ = {"request": gr.Request}
    run.__name__ = f"{spec.task}_endpoint"
    return run


def _results(spec: TabSpec, outputs: dict[str, Any], out) -> dict:
    res = {outputs["status"]: finish_status(spec.task, out), outputs["sde"]: out.images.get("sde"),
           outputs["ode"]: out.images.get("ode"), outputs["files"]: out.files,
           outputs["meta"]: R.metadata_text(out.metadata)}
    if "live" in outputs:
        last = out.metadata.get("samplers", ["sde"])[-1]
        res[outputs["live"]] = out.images.get(last) or next(iter(out.images.values()), None)
        res[outputs["gif"]] = out.gif
    if "mask_out" in outputs:
        masks = out.extra_images
        res[outputs["mask_out"]] = masks.get("sde") if "sde" in masks else masks.get("ode")
    return res


# ------------------------------------------------------------------------------------------------ the builder
def _image_inputs(page: _Page, spec: TabSpec):
    """The tab's image input (an editor or a plain image) and what the Run button hands to the endpoint: hidden
    file inputs filled from it (the upload checks run on them), with the last complete value as the fallback."""
    from .gui_limits import guard_uploads

    gr = page.gr
    eid = f"{spec.task}-{'editor' if spec.editor else 'image'}"
    if spec.editor:
        brush = gr.Brush(colors=[("#33cc66", 0.6)], default_color=("#33cc66", 0.6), color_mode="fixed",
                         default_size=12)
        comp = gr.ImageEditor(label=spec.image_label, type="pil", image_mode="RGBA", sources=["upload", "clipboard"],
                              brush=brush, eraser=gr.Eraser(default_size=12), transforms=(), layers=False,
                              format="png", elem_id=eid, height=420)
    else:
        comp = gr.Image(label=spec.image_label, type="pil", sources=["upload", "clipboard"], format="png",
                        elem_id=eid)
    return guard_uploads(comp, "image", page.fail)


def _hidden_image(page: _Page, elem_id: str):
    from .gui_limits import guard_uploads

    gr = page.gr
    return guard_uploads(gr.Image(type="filepath", image_mode=None, format="png", visible=False, elem_id=elem_id),
                         "mask" if "mask" in elem_id else "image", page.fail)


def _incomplete(value) -> bool:
    return value is None or (isinstance(value, dict) and value.get("background") is None
                             and value.get("composite") is None)


def build_tab(page: _Page, spec: TabSpec) -> None:
    """One tab of :data:`TABS`: inputs from the settings declaration, Run / Stop, the results, the endpoint."""
    from .settings import api_name

    gr, ws = page.gr, page.ws
    ui = dict(api_visibility="private", show_progress="hidden")  # page helpers: not part of the API
    img_kw = dict(format="png", buttons=["download", "fullscreen"], elem_classes=["sdimage-result"], height=300)
    defaults = page.defaults.get(spec.task, {})
    base = spec.settings()
    widgets: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    def value_of(s):
        return defaults.get(api_name(s), defaults.get(s.name, getattr(base, s.name)))

    def add(s):
        widgets[api_name(s)] = setting_input(gr, s, value_of(s), f"{spec.task}-{api_name(s).replace('_', '-')}")

    settings = _settings_of(spec)
    grouped = {n for _, names in spec.groups for n in names}
    rest = [s for s in settings if s.name not in spec.main and s.name not in grouped]
    with gr.Tab(spec.title, id=spec.task):
        with gr.Row():
            with gr.Column():
                image_in = _image_inputs(page, spec)
            with gr.Column():
                if spec.task == "drag":
                    extra.update(_drag_points(page, image_in))
                for p, label in spec.texts:
                    widgets[p] = gr.Textbox("", label=label, elem_id=f"{spec.task}-{p.replace('_', '-')}")
                widgets["sampler"] = gr.Radio(SAMPLER_RADIO, value="both", label="Sampler",
                                              elem_id=f"{spec.task}-sampler")
                for s in settings:
                    if s.name in spec.main:
                        add(s)
                for title, names in spec.groups:
                    with gr.Accordion(title, open=False):
                        members = rest if not names else [s for s in settings if s.name in names]
                        if spec.task == "drag" and names:
                            extra["use_lora"] = gr.Checkbox(value=value_of(_setting(settings, "lora_steps")) > 0,
                                                            label="Train a LoRA first", elem_id="drag-use-lora")
                        for s in members:
                            add(s)
                        if not names and spec.negative:
                            widgets["negative_prompt"] = gr.Textbox("", label="Negative prompt",
                                                                    elem_id=f"{spec.task}-negative")
                        if not names and "preset" in widgets:
                            extra["note"] = gr.Markdown(R.preset_note(value_of(_setting(settings, "preset")))
                                                        if spec.task == "drag" else "",
                                                        elem_id=f"{spec.task}-preset-note")
                if "preset" in widgets:
                    _wire_preset(page, spec, widgets, extra, extra.pop("note"))
                with gr.Row():
                    run_btn = gr.Button(spec.title.split(" ")[0], variant="primary", elem_id=f"{spec.task}-run")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id=f"{spec.task}-stop")
        outputs: dict[str, Any] = {"status": gr.Markdown(label="status", elem_id=f"{spec.task}-status")}
        with gr.Row(equal_height=True):
            if spec.task == "drag":
                outputs["live"] = gr.Image(label="Latest drag operation", type="pil", interactive=False,
                                           elem_id="drag-live", **img_kw)
            outputs["sde"] = gr.Image(label="SDE", type="pil", interactive=False, elem_id=f"{spec.task}-sde",
                                      **img_kw)
            outputs["ode"] = gr.Image(label="ODE", type="pil", interactive=False, elem_id=f"{spec.task}-ode",
                                      **img_kw)
            if spec.task == "drag":
                outputs["gif"] = gr.Image(label="Trajectory (GIF; SDE left, ODE right)", type="filepath",
                                          interactive=False, elem_id="drag-gif", buttons=["download", "fullscreen"],
                                          elem_classes=["sdimage-result"], height=300)
        if spec.mask_out:
            outputs["mask_out"] = gr.Image(label="Edit mask used", type="pil", interactive=False,
                                           elem_id=f"{spec.task}-mask-out", **img_kw)
        outputs["files"] = gr.File(label="Downloads: JSON metadata, results" + (", GIFs" if spec.task == "drag"
                                                                                 else ""),
                                   file_count="multiple", interactive=False, elem_id=f"{spec.task}-files")
        with gr.Accordion("Metadata", open=False):
            outputs["meta"] = gr.Code(label="Metadata (JSON)", language="json", elem_id=f"{spec.task}-meta")

        hidden_in = [_hidden_image(page, f"{spec.task}-image-in")]
        if spec.editor:
            hidden_in.append(_hidden_image(page, f"{spec.task}-mask-in"))
        work = extra.pop("work", None) if spec.task == "drag" else (_tracked(page, image_in) if spec.editor else None)
        widgets.update(extra)

        def prep(value, work=None):
            """The image input's value → the hidden file inputs (image, mask); an editor that hands over an
            incomplete value falls back on its last complete one (``work``)."""
            try:
                if _incomplete(value):
                    if isinstance(work, dict):
                        img, msk = work["image"], work["mask"]
                    else:
                        raise SdImageError("no image: upload an image first")
                else:
                    img, msk = I.editor_to_inputs(value, page.factor, page.max_side)
            except Exception as err:  # noqa: BLE001
                raise page.fail(err) from None
            return (img, msk) if spec.editor else img

        names = api_inputs(spec)
        inputs = hidden_in + [widgets[n] for n in names[len(hidden_in):]]
        endpoint = _endpoint(page, spec, outputs)
        prep_in = [image_in] + ([work] if work is not None else [])
        run_btn.click(prep, prep_in, hidden_in if spec.editor else hidden_in[0], api_visibility="private").success(
            endpoint, inputs, [outputs[k] for k in OUTPUT_ORDER if k in outputs], api_name=spec.task, concurrency_id="pipeline",
            concurrency_limit=1)

        def stop_run(request: gr.Request):
            ev = ws.stops.get(getattr(request, "session_hash", None))
            if ev is not None:
                ev.set()
                return "**Stopping** after the current step ..."
            return gr.skip()

        stop_run.__annotations__["request"] = gr.Request
        stop_btn.click(stop_run, None, outputs["status"], queue=False, **ui)


def _setting(settings, name: str):
    return next(s for s in settings if s.name == name)


def _wire_preset(page: _Page, spec: TabSpec, widgets: dict, extra: dict, note) -> None:
    """The preset switch fills the fields its preset sets (steps, and for drag the step size, LoRA and solver)."""
    ui = dict(api_visibility="private")
    if spec.task == "drag":
        targets = [widgets["steps"], widgets["step_size"], extra["use_lora"], widgets["lora_steps"], note]
        if "solver" in widgets:
            targets += [widgets["solver"], widgets["order"]]

        def fill(preset):
            steps, step, use_lora, lora_steps, text = R.drag_preset_fields(preset)
            out = [steps, step, use_lora, lora_steps, text]
            if "solver" in widgets:
                from diffsamplers import PRESETS

                from .settings import DragConfig

                d = DragConfig(preset=preset if preset in PRESETS else "official")
                out += [d.solver, d.order]
            return out

        widgets["preset"].change(fill, widgets["preset"], targets, **ui)
    else:
        widgets["preset"].change(R.edit_preset_steps, widgets["preset"], widgets["steps"], **ui)


def _tracked(page: _Page, editor):
    """Inpaint / DiffEdit editors: the last complete value (image, mask), the fallback of their Run button when
    the editor hands over an incomplete one."""
    gr = page.gr
    ui = dict(api_visibility="private", show_progress="hidden")
    state, timer = gr.State(None), gr.Timer(1.0, active=False)

    def track(value, work):
        if value is None:
            return None, gr.Timer(active=False)
        if _incomplete(value):
            return gr.skip(), gr.Timer(active=True)
        try:
            image, mask = I.editor_to_inputs(value, page.factor, page.max_side)
        except Exception as err:  # noqa: BLE001
            raise page.fail(err) from None
        return {"image": image, "mask": mask}, gr.Timer(active=False)

    editor.change(track, [editor, state], [state, timer], **ui)
    timer.tick(track, [editor, state], [state, timer], **ui)
    return state


def _drag_points(page: _Page, editor) -> dict[str, Any]:
    """The drag tab's points view (click a handle, then its target), undo / clear and the points text."""
    gr = page.gr
    ui = dict(api_visibility="private", show_progress="hidden")
    points_view = gr.Image(label="2. Click a handle point, then its target (repeat for more pairs)", type="pil",
                           interactive=False, elem_id="drag-points", height=420, format="png", buttons=["fullscreen"])
    with gr.Row():
        undo = gr.Button("Undo point", size="sm", elem_id="drag-undo")
        clear = gr.Button("Clear points", size="sm", elem_id="drag-clear")
    points = gr.Textbox(label="Points: handle -> target, image pixels (x,y -> x,y per line)", lines=2,
                        elem_id="drag-points-text", placeholder="click on the image")
    view_zoom, work = gr.State(1), gr.State(None)
    retry = gr.Timer(1.0, active=False)

    def on_edit(value, pts, work):
        """An upload or a stroke: the working image and mask, kept server-side for the points view; the points are
        cleared when the image is a new one.  Gradio 6's editor can announce an upload before its canvas holds the
        image: keep what is shown and ask again in a moment (the retry timer)."""
        if value is None:
            return None, 1, "", None, gr.Timer(active=False)
        if _incomplete(value):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=True)
        try:
            image, mask = I.editor_to_inputs(value, page.factor, page.max_side)
        except Exception as err:  # noqa: BLE001
            raise page.fail(err) from None
        key = hashlib.sha1(image.tobytes()).hexdigest()
        same = isinstance(work, dict) and work.get("key") == key
        scale = I.view_scale(*image.size)
        view = I.draw_points(image, pts if same else "", mask, scale)
        return view, scale, gr.skip() if same else "", {"key": key, "image": image, "mask": mask}, \
            gr.Timer(active=False)

    def render_view(work, pts):
        if not isinstance(work, dict):
            return None, 1
        scale = I.view_scale(*work["image"].size)
        return I.draw_points(work["image"], pts, work["mask"], scale), scale

    def click_point(pts, scale, evt: gr.SelectData):
        if evt is None or evt.index is None:
            return pts
        x, y = evt.index[:2]
        s = max(1, int(scale or 1))
        try:
            return I.add_point(pts, int(x) // s, int(y) // s)
        except SdImageError as err:
            raise page.fail(err) from None

    click_point.__annotations__["evt"] = gr.SelectData  # a real class (this module has postponed annotations)

    def undo_point(pts):
        try:
            return I.undo_point(pts)
        except SdImageError as err:
            raise page.fail(err) from None

    edit_io = ([editor, points, work], [points_view, view_zoom, points, work, retry])
    editor.change(on_edit, *edit_io, **ui)
    retry.tick(on_edit, *edit_io, **ui)
    points.change(render_view, [work, points], [points_view, view_zoom], **ui)
    points_view.select(click_point, [points, view_zoom], points, **ui)
    undo.click(undo_point, points, points, **ui)
    clear.click(lambda: "", None, points, **ui)
    return {"points": points, "work": work}


def build_app(pipe, model: str = "", out_dir: str | None = None, lora_cache: str | None = None,
              max_side: int | None = 512, drag_defaults: dict[str, Any] | None = None,
              task_defaults: dict[str, Any] | None = None, max_queue: int | None = MAX_QUEUE,
              delete_cache: tuple[int, int] | None = DELETE_CACHE):
    """The Gradio Blocks app on a loaded pipeline.  ``drag_defaults`` / ``task_defaults`` override the shown
    defaults of the drag settings (e.g. ``{"steps": 10}``) and of the other tabs (``{"steps": 5}``): demos and
    tests; the page otherwise starts at the official defaults.  ``max_queue`` runs may wait (None: no limit).
    ``delete_cache`` = (every, age) seconds: Gradio's copies of uploads and results older than ``age`` are deleted
    every ``every`` seconds (the results stay in ``out_dir``)."""
    from .backbones import backbone, execution_device
    from .gui import _import_gradio

    gr = _import_gradio()
    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="sdimage-gui-")
    os.makedirs(out_dir, exist_ok=True)
    ws = R.Workspace(pipe, model=model, out_dir=str(out_dir), lora_cache=lora_cache, max_side=max_side)
    bb = backbone(pipe)

    def fail(err: BaseException):
        if not isinstance(err, SdImageError):
            log.exception("sdimage gui: unexpected error", exc_info=err)
        # plain text: an API client reads it as written; the page's toast sanitises what it renders (Gradio)
        return gr.Error(_message(err), print_exception=False)

    task_d = {"steps": 50, "guidance": float(bb.default_guidance), **(task_defaults or {})}
    page = _Page(gr, ws, ws.factor(), max_side, fail,
                 {"drag": dict(drag_defaults or {}), **{t.task: task_d for t in TABS if t.task != "drag"}})
    with gr.Blocks(title="sdimage: SDE vs ODE editor", analytics_enabled=False, delete_cache=delete_cache) as app:
        gr.Markdown(
            "## SDE vs ODE image editing\n"
            f"Model `{model or 'pipeline'}` ({bb.arch}) on `{execution_device(pipe)}` "
            f"({str(bb.dtype).replace('torch.', '')}). Every tab runs the SDE sampler, the ODE sampler, or both with "
            "the same seed (Nie et al., ICLR 2024, *The Blessing of Randomness: SDE Beats ODE in General "
            "Diffusion-based Image Editing*). One run at a time; Stop ends a run after its current step.")
        with gr.Tabs():
            for spec in TABS:
                build_tab(page, spec)
    app.queue(default_concurrency_limit=1, max_size=max_queue)
    app.sdimage_workspace = ws
    return app
