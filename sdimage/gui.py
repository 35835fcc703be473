"""``python -m sdimage gui``: a browser editor (Gradio) for drag, inpaint, translate and DiffEdit, each with an
ODE / SDE / both switch showing the two samplers side by side (same seed).

This module is the command: its flags, the checks before the model loads (port, exposure and password, upload
bounds, output folder), and serving.  The page is :mod:`sdimage.gui_app` (one tab builder over the settings
declarations); what a run does is :mod:`sdimage.gui_run`.  Scriptable endpoints (``gradio_client``): ``/drag``,
``/inpaint``, ``/translate``, ``/diffedit``.  Gradio is imported only when the app is built
(``pip install -e '.[gui]'``), so the rest of the package and the CLI work without it.
"""
from __future__ import annotations

import os

from .errors import SdImageError

__all__ = ["add_parser", "build_app", "launch", "DRAG_API_INPUTS"]  # noqa: F822 (DRAG_API_INPUTS: lazily)


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
    q.add_argument("--max-queue", type=int, default=None,
                   help="most runs waiting for the model (default 8); one more gets a busy message")
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
    from .gui_app import MAX_QUEUE

    max_queue = MAX_QUEUE if args.max_queue is None else args.max_queue
    if not 1 <= max_queue <= 1000:
        raise SdImageError(f"--max-queue must be in [1, 1000], got {max_queue}")
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
                    max_side=args.max_side or None, max_queue=max_queue)
    where = "a public share link and " if args.share else ""
    try:  # serve until Ctrl-C (also during start-up), which exits 130 as every CLI does (cliutil.run_cli)
        try:
            served = launch(app, host=args.host, port=args.port, share=args.share, max_upload_mb=args.max_upload_mb,
                            block=False, auth=auth)
        except OSError as err:  # the port was taken meanwhile, or the host is not an address of this machine
            raise SdImageError(f"cannot serve on {args.host}:{args.port}: {str(err).splitlines()[0]}") from None
        print(f"sdimage gui: model {args.model} on {args.device}; serving {where}http://{args.host}:{args.port} "
              "(Ctrl+C to stop)", flush=True)  # once it does serve
        if args.share and isinstance(served, tuple) and len(served) > 2 and served[2]:
            print(f"sdimage gui: public link {served[2]}", flush=True)
        import signal
        import time

        # Ctrl-C stops the server whatever the process inherited (an ignored SIGINT from a parent) or a library
        # installed meanwhile: this is the command's main loop, and the one place that decides what SIGINT does
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
    from .gui_app import CSS
    from .gui_limits import MAX_UPLOAD_MB

    out_dir = app.sdimage_workspace.out_dir
    mb = MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb
    return app.launch(server_name=host, server_port=port, share=bool(share), prevent_thread_lock=not block,
                      allowed_paths=[out_dir], show_error=False, quiet=not block, css=CSS,
                      max_file_size=f"{mb:g}mb", **kw)


def build_app(*args, **kwargs):
    """:func:`sdimage.gui_app.build_app` (the page)."""
    from .gui_app import build_app as build

    return build(*args, **kwargs)


def __getattr__(name: str):
    if name == "DRAG_API_INPUTS":  # derived from the settings declaration (sdimage.gui_app)
        from .gui_app import DRAG_API_INPUTS

        return DRAG_API_INPUTS
    raise AttributeError(name)
