"""Settings declared once: a dataclass field carries its help, bounds, flag and label, and every interface derives
from it — the argparse flags (:func:`add_arguments`, :func:`from_args`), the checks (:func:`validate`), the
coercion of loosely typed values from a web form or API (:func:`coerce`), the flag names in messages
(:func:`flags`) and the JSON metadata (:func:`to_meta`).

A field is declared with :func:`setting`::

    @dataclass
    class Config:
        steps: int = setting(50, "steps of the full schedule", lo=1, hi=999)
        t0: float = setting(0.6, "copy-and-paste time as a fraction", lo=0.0, hi=1.0, lo_open=True)

The front end that draws widgets (the browser editor) reads the same :class:`Setting` records (:func:`declared`).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Iterable

from .checks import BadInput, _fmt, check_choice, check_int, check_number

__all__ = ["Setting", "setting", "declared", "declared_names", "flags", "check_value", "validate", "coerce",
           "add_arguments", "from_args", "to_meta", "describe_bounds"]

_KINDS = ("int", "float", "str", "bool")


@dataclass(frozen=True)
class Setting:
    """One declared setting: its type and rule (bounds or choices), its text, its command-line flag and label."""

    name: str
    kind: str                       # "int" | "float" | "str" | "bool"
    default: Any
    help: str
    flag: str | None = None         # None: "--" + name with "-" for "_"; "" = no command-line flag
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    allow_inf: bool = False         # +inf is a value too (e.g. a drag step size: one operation)
    optional: bool = False          # None is a value (e.g. "the family's default")
    label: str | None = None        # the web form's label (default: the help text)
    step: float | None = None       # a slider's increment (a float with both bounds is drawn as a slider)
    cli: bool = True                # declared on the command line
    gui: bool = True                # shown in the browser editor

    @property
    def cli_flag(self) -> str:
        return self.flag if self.flag else "--" + self.name.replace("_", "-")

    @property
    def text(self) -> str:
        return self.label or self.help


def setting(default: Any, help: str, *, kind: str | None = None, **rule: Any) -> Any:
    """A dataclass field declaring a :class:`Setting` (``kind`` from the default's type when not given)."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(default))
        if kind is None:
            raise TypeError(f"setting({default!r}): pass kind= (one of {', '.join(_KINDS)})")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if "choices" in rule and rule["choices"] is not None:
        rule["choices"] = tuple(rule["choices"])
    proto = Setting(name="", kind=kind, default=default, help=help, **rule)
    return dataclasses.field(default=default, metadata={"setting": proto})


def declared(cls_or_obj) -> tuple[Setting, ...]:
    """The declared settings of a dataclass (class or instance), in field order, with their names filled in."""
    out = []
    for f in dataclasses.fields(cls_or_obj):
        s = f.metadata.get("setting")
        if s is not None:
            out.append(dataclasses.replace(s, name=f.name))
    return tuple(out)


def declared_names(cls_or_obj, gui: bool | None = None, cli: bool | None = None) -> tuple[str, ...]:
    return tuple(s.name for s in declared(cls_or_obj)
                 if (gui is None or s.gui == gui) and (cli is None or s.cli == cli))


def flags(cls_or_obj) -> dict[str, str]:
    """{field name: its command-line flag} (for messages that name the flag)."""
    return {s.name: s.cli_flag for s in declared(cls_or_obj) if s.cli}


def describe_bounds(s: Setting) -> str:
    """The rule as text: ``[1, 999]``, ``> 0``, ``one of a, b``; empty when there is none."""
    if s.choices is not None:
        return "one of " + ", ".join(map(str, s.choices))
    fmt = _fmt
    if s.lo is not None and s.hi is not None:
        return f"{'(' if s.lo_open else '['}{fmt(s.lo)}, {fmt(s.hi)}{')' if s.hi_open else ']'}"
    if s.lo is not None:
        return f"{'>' if s.lo_open else '>='} {fmt(s.lo)}"
    if s.hi is not None:
        return f"{'<' if s.hi_open else '<='} {fmt(s.hi)}"
    return ""


def check_value(s: Setting, value: Any, name: str | None = None, error: type[Exception] = BadInput) -> None:
    """``value`` obeys ``s``'s rule (its type, bounds or choices); the message names ``name`` (default: the flag)."""
    n = name or s.cli_flag
    if value is None:
        if s.optional:
            return
        raise error(f"{n} must be given")
    if s.choices is not None:
        check_choice(value, n, s.choices, error=error)
        return
    if s.kind == "int":
        check_int(value, n, None if s.lo is None else int(s.lo), None if s.hi is None else int(s.hi), error=error)
    elif s.kind == "float":
        if s.allow_inf and isinstance(value, Real) and not isinstance(value, bool) and math.isinf(value) \
                and value > 0:
            return
        check_number(value, n, s.lo, s.hi, lo_open=s.lo_open, hi_open=s.hi_open, error=error)
    elif s.kind == "bool":
        if not isinstance(value, bool):
            raise error(f"{n} must be true or false, got {value!r}")
    elif not isinstance(value, str):
        raise error(f"{n} must be text, got {value!r}")


def validate(obj, names: dict[str, str] | None = None, error: type[Exception] = BadInput):
    """Check every declared field of ``obj``; a message names a field as ``names[field]`` (or its flag)."""
    for s in declared(obj):
        check_value(s, getattr(obj, s.name), (names or {}).get(s.name, s.cli_flag), error)
    return obj


def coerce(s: Setting, value: Any, name: str | None = None, error: type[Exception] = BadInput) -> Any:
    """A loosely typed value (a web form's or an API client's: ``"2"``, ``10.0``, ``"inf"``, ``""``) as the
    setting's type; None or ``""`` stay None (the caller's default applies).  The rule is checked afterwards by
    :func:`check_value` (this only converts)."""
    n = name or s.cli_flag
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if s.kind == "str":
        return value if isinstance(value, str) else str(value)
    if s.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        if isinstance(value, Integral) and value in (0, 1):
            return bool(value)
        raise error(f"{n} must be true or false, got {value!r}")
    try:
        f = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{n} must be {'an integer' if s.kind == 'int' else 'a number'}, got {value!r}") from None
    if isinstance(value, bool):
        raise error(f"{n} must be {'an integer' if s.kind == 'int' else 'a number'}, got {value!r}")
    if s.kind == "int":
        if isinstance(value, Integral):
            return int(value)
        if math.isfinite(f) and f.is_integer():
            return int(f)
        raise error(f"{n} must be an integer, got {value!r}")
    return f


def _arg_type(s: Setting):
    if s.kind == "int":
        return int
    if s.kind == "float":
        if s.allow_inf:
            def number_or_inf(text: str) -> float:
                try:
                    return float(text)
                except ValueError:
                    raise argparse.ArgumentTypeError(f"must be a number or inf, got {text!r}") from None

            return number_or_inf
        return float
    return str


def add_arguments(parser, cls, defaults: dict[str, Any] | None = None, skip: Iterable[str] = (),
                  default_text: dict[str, str] | None = None) -> None:
    """One argparse flag per declared (``cli``) setting of ``cls``: its type, choices, default (``defaults``
    overrides the declared one; an optional setting defaults to None) and help with the rule and the default
    (``default_text`` replaces the default's wording, e.g. "the preset's")."""
    skip = set(skip)
    for s in declared(cls):
        if not s.cli or s.name in skip:
            continue
        default = (defaults or {}).get(s.name, s.default)
        shown = (default_text or {}).get(s.name)
        if shown is None and default is None and s.optional:
            help_text = s.help + (f"; {describe_bounds(s)}" if s.choices is None and describe_bounds(s) else "")
        elif shown is None:
            shown = "none" if default is None else ("inf" if isinstance(default, float) and math.isinf(default)
                                                     else f"{default:g}" if isinstance(default, float) else str(default))
        if shown is not None:
            rule = describe_bounds(s) if s.choices is None else ""
            help_text = s.help + (f"; {rule}" if rule else "") + f" (default {shown})"
        kw: dict[str, Any] = {"dest": s.name, "default": default, "help": help_text.replace("%", "%%")}
        if s.kind == "bool":
            kw["action"] = "store_true"
        else:
            kw["type"] = _arg_type(s)
            if s.choices is not None:
                kw["choices"] = list(s.choices)
            kw["metavar"] = None if s.choices is not None else s.name.upper().replace("_", "-").split("-")[-1]
        parser.add_argument(s.cli_flag, **kw)


def from_args(cls, args: argparse.Namespace, **extra: Any):
    """An instance of ``cls`` from the parsed flags of :func:`add_arguments` (plus ``extra`` fields)."""
    values = {s.name: getattr(args, s.name) for s in declared(cls) if s.cli and hasattr(args, s.name)}
    return cls(**{**values, **extra})


def to_meta(obj) -> dict[str, Any]:
    """The declared (and other) fields as JSON values: +inf is written ``"inf"`` (JSON has no infinity)."""
    out = dataclasses.asdict(obj)
    for k, v in out.items():
        if isinstance(v, float) and math.isinf(v):
            out[k] = "inf" if v > 0 else "-inf"
    return out
