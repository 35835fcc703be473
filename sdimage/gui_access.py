"""Who may use the browser editor: a server on a loopback address (the default, 127.0.0.1) serves this machine
only; one on another address or with a public share link serves the model to others, so it needs a password
(``--auth USER:PASS`` or ``--auth-file``) unless ``--no-auth`` says so explicitly.  Checked before the model loads.
"""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from .errors import SdImageError

__all__ = ["is_loopback", "parse_credentials", "exposure_auth"]


def is_loopback(host: str) -> bool:
    """Every address ``host`` resolves to is a loopback one (127.0.0.0/8, ::1); an unresolvable host is not."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)
    except ValueError:
        return False


def parse_credentials(text: str, where: str) -> tuple[str, str]:
    """``USER:PASS`` (split at the first colon; neither part empty)."""
    user, sep, password = str(text).strip().partition(":")
    if not sep or not user or not password:
        got = "a value without a colon" if not sep else "an empty part"
        raise SdImageError(f"{where} must be USER:PASS (both non-empty), got {got}")
    return user, password


def exposure_auth(host: str, share: bool, auth: str | None, auth_file: str | None, no_auth: bool
                  ) -> tuple[list[tuple[str, str]] | None, str | None]:
    """(credentials for Gradio's ``auth`` or None, a warning line or None) for a ``gui`` command line; a server
    that others can reach without a password and without ``--no-auth`` is refused."""
    creds: list[tuple[str, str]] = []
    if auth is not None:
        creds.append(parse_credentials(auth, "--auth"))
    if auth_file is not None:
        try:
            lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SdImageError(f"--auth-file: cannot read {auth_file!r} ({type(err).__name__})") from None
        for n, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                creds.append(parse_credentials(line, f"--auth-file line {n}"))
        if not creds:
            raise SdImageError(f"--auth-file {auth_file!r} holds no USER:PASS line")
    if creds and no_auth:
        raise SdImageError("--no-auth contradicts --auth / --auth-file: give one of them")
    exposed = share or not is_loopback(host)
    if not exposed:
        return creds or None, None
    who = "a public share link" if share else f"--host {host} (reachable from other machines)"
    if not creds and not no_auth:
        raise SdImageError(f"{who} serves the model to others: pass --auth USER:PASS (or --auth-file FILE), or "
                           "--no-auth to serve it without a password")
    warning = f"{who} serves the model to others" + (" with a password" if creds else " WITHOUT a password (--no-auth)")
    return creds or None, warning
