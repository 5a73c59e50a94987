"""The status page's start form, as Locust's web UI has it: run time, the locustfile's own
options (``include_in_web_ui``; ``is_secret`` ones masked) and, with ``--class-picker``, the
user classes and the shape.

``describe`` tells the page what to show (``GET /api/start-form``); ``read`` turns the fields
of a ``POST /swarm`` (Locust's names: ``user_count``, ``spawn_rate``, ``host``, ``run_time``,
``user_classes``, ``shape_class``, and each option's dest) into a ``StartRequest``, checking
everything before anything changes.

Where the options' metadata comes from (the parsed options namespace, in this order):
``_web_ui_options`` (a list, or a dict by dest, of objects or dicts with Locust's fields),
else ``_custom_options`` (the launcher's ``CustomOption`` list, filtered on
``include_in_web_ui``). A namespace with neither has no options on the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiDict

from lcore.runners import STATE_RUNNING, STATE_SPAWNING, STATE_STOPPING

DEFAULT_SHAPE = "Default"
"""The shape choice that means no shape: users and spawn rate from the form (Locust's name)."""
MAX_USERS = 10_000_000
_ACTIVE = (STATE_SPAWNING, STATE_RUNNING, STATE_STOPPING)
_TRUE = frozenset({"true", "on", "1", "yes"})

Fields = MultiDict[str]


@dataclass(frozen=True)
class UiOption:
    """One of the locustfile's options as the page shows it."""

    dest: str
    flag: str
    help: str
    choices: tuple[str, ...] | None
    is_secret: bool
    is_required: bool
    is_multiple: bool
    kind: str = "str"  # "bool", "int", "float" or "str": how to read a value from the form


@dataclass
class StartRequest:
    """What a POST to /swarm asks for, checked."""

    user_count: int | None = None
    spawn_rate: float | None = None
    host: str = ""
    run_time: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    picked_classes: list[str] | None = None  # with --class-picker: None = all
    shape: Any = None  # with --class-picker: the shape instance, or None
    pick: bool = False  # --class-picker is on: apply picked_classes and shape


# -- metadata ---------------------------------------------------------------------------------


def _get(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def ui_options(options: Any) -> list[UiOption]:
    """The locustfile's options to show on the page (see the module docstring for sources)."""
    raw = getattr(options, "_web_ui_options", None)
    if raw is None:
        raw = getattr(options, "_custom_options", None) or []
    if isinstance(raw, Mapping):  # {dest: metadata}, as Locust's ui_extra_args_dict
        raw = [{"dest": dest, **dict(_as_dict(meta))} for dest, meta in raw.items()]
    found = []
    for item in raw:
        dest = _get(item, "dest")
        if not dest or not _get(item, "include_in_web_ui", True):
            continue
        choices = _get(item, "choices")
        found.append(
            UiOption(
                dest=str(dest),
                flag=str(_get(item, "flag") or "--" + str(dest).replace("_", "-")),
                help=str(_get(item, "help") or _get(item, "help_text") or ""),
                choices=tuple(str(c) for c in choices) if choices else None,
                is_secret=bool(_get(item, "is_secret", False)),
                is_required=bool(_get(item, "is_required", False)),
                is_multiple=bool(_get(item, "is_multiple", False))
                or isinstance(getattr(options, str(dest), None), list),
                kind=str(_get(item, "kind", "") or _kind(getattr(options, str(dest), None))),
            )
        )
    return found


def _kind(value: Any) -> str:
    for kind in (bool, int, float):
        if isinstance(value, kind):
            return kind.__name__
    return "str"


def settable(options: Any) -> set[str]:
    """What a POST may set: the locustfile's own options (shown on the page or not, as Locust's
    /swarm takes any of them), never lcore's (--tags, -i, ... reach workers another way)."""
    dests = {o.dest for o in ui_options(options)}
    dests.update(str(_get(c, "dest")) for c in getattr(options, "_custom_options", None) or [])
    return dests


def _as_dict(meta: Any) -> Mapping[str, Any]:
    if isinstance(meta, Mapping):
        return meta
    if hasattr(meta, "_asdict"):
        return meta._asdict()
    return {k: v for k, v in vars(meta).items() if not k.startswith("_")}


def _shown_value(value: Any) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def pickable_shapes(environment: Any) -> dict[str, Any]:
    return dict(getattr(environment, "available_shape_classes", None) or {})


def _shape_names(runtime: Any) -> set[str]:
    names = set(pickable_shapes(runtime.environment))
    if runtime.shape is not None:  # e.g. --step-load's shape, not among the locustfile's
        names.add(type(runtime.shape).__name__)
    return names


def describe(
    runtime: Any, options: Any, class_picker: bool, pickable: list[type]
) -> dict[str, Any]:
    """``GET /api/start-form``: what the start form shows. Secret values are never sent."""
    extra = {}
    for opt in ui_options(options):
        value = getattr(options, opt.dest, None)
        extra[opt.dest] = {
            "flag": opt.flag,
            "default_value": None if opt.is_secret else _shown_value(value),
            "has_value": value not in (None, ""),
            "help_text": opt.help,
            "choices": list(opt.choices) if opt.choices else None,
            "is_secret": opt.is_secret,
            "is_required": opt.is_required,
            "is_multiple": opt.is_multiple,
            "is_bool": opt.kind == "bool" or isinstance(value, bool),
            "kind": opt.kind,
        }
    shape = runtime.shape
    picked = runtime.picked_classes
    names = [c.__name__ for c in pickable]
    return {
        "run_time": getattr(options, "run_time", None) or None,
        "extra_options": extra,
        "class_picker": class_picker,
        "available_user_classes": names if class_picker else [],
        "selected_user_classes": list(picked) if picked is not None else names,
        "available_shape_classes": (
            [DEFAULT_SHAPE, *sorted(_shape_names(runtime))] if class_picker else []
        ),
        "shape_class": type(shape).__name__ if shape is not None else DEFAULT_SHAPE,
        "shape": shape is not None,
        "hide_common_options": shape is not None
        and not (class_picker or getattr(shape, "use_common_options", False)),
    }


# -- reading a POST ---------------------------------------------------------------------------


def read(
    fields: Fields,
    runtime: Any,
    options: Any,
    custom: Mapping[str, Any],
    class_picker: bool,
    pickable: list[type],
) -> StartRequest:
    """Check a POST to /swarm; ValueError (one line, for the page) on any bad field.
    ``custom`` is every option the locustfile added, with its current value."""
    from urllib.parse import urlsplit

    request = StartRequest()
    host = fields.get("host", "").replace("<", "").replace(">", "").strip()
    if host and urlsplit(host).scheme not in ("http", "https"):
        raise ValueError("host must be an http:// or https:// URL")
    request.host = host
    request.run_time = _run_time(fields.get("run_time", ""))
    request.options = _options(fields, options, custom)
    shape = runtime.shape
    if class_picker:
        request.pick = True
        names = [n for n in fields.getall("user_classes", []) if n]
        known = {c.__name__ for c in pickable}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(
                f"Unknown user class(es): {', '.join(unknown)} (available: {', '.join(sorted(known))})"
            )
        if names:
            request.picked_classes = sorted(set(names))
        elif runtime.state in _ACTIVE:
            request.picked_classes = (
                list(runtime.picked_classes) if runtime.picked_classes is not None else None
            )
        shape = _shape(fields.get("shape_class", DEFAULT_SHAPE) or DEFAULT_SHAPE, runtime)
        request.shape = shape
    # a shape sets users and rate itself; one with use_common_options reads them from the
    # parsed options, so they are checked (and kept) when given
    if shape is None or fields.get("user_count", "").strip():
        request.user_count = _int(fields, "user_count", 0, MAX_USERS)
    if shape is None or fields.get("spawn_rate", "").strip():
        request.spawn_rate = _positive(fields, "spawn_rate")
    return request


def _shape(name: str, runtime: Any) -> Any:
    if name == DEFAULT_SHAPE:
        return None
    current = runtime.shape
    if current is not None and type(current).__name__ == name:
        return current
    shapes = pickable_shapes(runtime.environment)
    if name not in shapes:
        raise ValueError(
            f"Unknown shape class {name!r} (available: {', '.join([DEFAULT_SHAPE, *sorted(shapes)])})"
        )
    chosen = shapes[name]
    return chosen() if isinstance(chosen, type) else chosen


def _run_time(raw: str) -> int | None:
    if not raw.strip():
        return None
    from lcore.launcher.timespan import parse_timespan

    try:
        seconds = parse_timespan(raw)
    except ValueError:
        raise ValueError("run_time: valid forms are 20, 20s, 3m, 2h, 1h20m, 3h30m10s") from None
    if seconds <= 0:
        raise ValueError("run_time must be longer than 0 s")
    return seconds


def _options(fields: Fields, options: Any, custom: Mapping[str, Any]) -> dict[str, Any]:
    """The locustfile's options in the form, converted to the type of their current value
    (as Locust's /swarm does). A secret left empty keeps its value."""
    described = {o.dest: o for o in ui_options(options)}
    values: dict[str, Any] = {}
    for dest in sorted(settable(options)):
        if dest not in fields:
            continue
        raw = fields.getall(dest)
        opt = described.get(dest)
        if opt is not None and opt.is_secret and raw == [""]:
            continue
        current = custom.get(dest, getattr(options, dest, None))
        flag = opt.flag if opt else dest
        if current is None and opt is not None and opt.kind in ("int", "float", "bool"):
            current = {"int": 0, "float": 0.0, "bool": False}[opt.kind]  # the type to read
        value = _convert(raw, current, flag)
        if opt is not None and opt.choices and not isinstance(value, list):
            if str(value) not in opt.choices:
                raise ValueError(f"{flag} must be one of {', '.join(opt.choices)}")
        values[dest] = value
    return values


def _convert(raw: list[str], current: Any, flag: str) -> Any:
    text = raw[-1]
    if isinstance(current, bool):
        return text.strip().lower() in _TRUE
    if isinstance(current, list):
        items = text.split(",") if len(raw) == 1 else raw
        items = [i.strip() for i in items if i.strip()]
        if current and all(isinstance(x, int) for x in current):
            try:
                return [int(i) for i in items]
            except ValueError:
                raise ValueError(f"{flag} must be whole numbers separated by commas") from None
        return items
    if current is None or isinstance(current, str):
        return text
    if isinstance(current, (int, float)):
        try:
            value = type(current)(text.strip())
        except ValueError:
            kind = "a whole number" if isinstance(current, int) else "a number"
            raise ValueError(f"{flag} must be {kind}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number")
        return value
    return text


def _int(fields: Fields, name: str, lowest: int, highest: int) -> int:
    raw = fields.get(name, "").strip()
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lowest <= value <= highest:
        raise ValueError(f"{name} must be a whole number from {lowest} to {highest}")
    return value


def _positive(fields: Fields, name: str) -> float:
    raw = fields.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number greater than 0") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a number greater than 0")
    return value
