"""Option values from config files and the environment, converted through the parser's own
argparse actions so that every option (a locustfile's too) is settable from every source."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .parser import LcoreArgumentParser, OptionsError

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
# Never taken from a config file or the environment.
_CLI_ONLY = frozenset({"help", "version", "config"})


# --- converting a value from a config file or the environment ----------------------------


def _flag(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    return (longs or action.option_strings or [action.dest])[0]


def _settable(action: argparse.Action) -> bool:
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return False
    if action.dest in _CLI_ONLY or action.dest == argparse.SUPPRESS:
        return False
    return bool(action.option_strings) or action.dest == "user_classes"


def _name(action: argparse.Action) -> str:
    """The option's name without dashes, e.g. ``spawn-rate``; keys and variables derive from it."""
    return _flag(action).lstrip("-").replace("_", "-")


def _is_list(action: argparse.Action) -> bool:
    return action.nargs in ("*", "+", argparse.REMAINDER) or (
        isinstance(action.nargs, int) and action.nargs > 1
    )


def _convert(parser: LcoreArgumentParser, action: argparse.Action, text: str, source: str) -> Any:
    try:
        value = parser._get_value(action, text)
        parser._check_value(action, value)
    except argparse.ArgumentError as e:
        raise OptionsError(f"{source}: {_flag(action)}: {e.message}")
    return value


def _apply(
    parser: LcoreArgumentParser, action: argparse.Action, raw: str | list[str], source: str
) -> dict[str, Any]:
    """Run ``action`` on ``raw`` as if it came from the command line; return what it set."""
    namespace = argparse.Namespace()
    option = action.option_strings[0] if action.option_strings else None
    try:
        if action.nargs == 0 and isinstance(action, argparse._CountAction):
            setattr(namespace, action.dest, _convert_int(raw, source, action))
        elif action.nargs == 0:
            if _boolean(raw, source, action):
                action(parser, namespace, [], option)
            elif isinstance(action, argparse.BooleanOptionalAction):
                setattr(namespace, action.dest, False)
            else:
                setattr(namespace, action.dest, action.default)
        elif _is_list(action) or action.nargs == 1:
            items = raw if isinstance(raw, list) else _split(raw)
            if action.nargs == "+" and not items:
                raise OptionsError(f"{source}: {_flag(action)}: expected at least one value")
            if isinstance(action.nargs, int) and len(items) != action.nargs:
                raise OptionsError(f"{source}: {_flag(action)}: expected {action.nargs} values")
            action(parser, namespace, [_convert(parser, action, i, source) for i in items], option)
        elif isinstance(action, argparse._AppendAction):
            if isinstance(raw, str) and getattr(action, "is_multiple", False):
                raw = _split(raw)  # a locustfile's is_multiple option: `a,b` or `[a, b]`
            for item in raw if isinstance(raw, list) else [raw]:
                action(parser, namespace, _convert(parser, action, item, source), option)
        else:
            if isinstance(raw, list):
                raise OptionsError(f"{source}: {_flag(action)}: expected one value, not a list")
            action(parser, namespace, _convert(parser, action, raw, source), option)
    except argparse.ArgumentError as e:
        raise OptionsError(f"{source}: {_flag(action)}: {e.message}")
    return vars(namespace)


def _boolean(raw: str | list[str], source: str, action: argparse.Action) -> bool:
    text = raw.strip().lower() if isinstance(raw, str) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OptionsError(f"{source}: {_flag(action)}: expected true or false, not {raw!r}")


def _convert_int(raw: str | list[str], source: str, action: argparse.Action) -> int:
    try:
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionsError(f"{source}: {_flag(action)}: expected a whole number, not {raw!r}")


def _split(text: str) -> list[str]:
    """A list written in one string: ``[a, "b"]`` as in Locust's config files, or words."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return [_unquote(p.strip()) for p in text[1:-1].split(",") if p.strip()]
        return [str(p) for p in parsed] if isinstance(parsed, list) else [text]
    return [p for p in re.split(r"[\s,]+", text) if p]


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


# --- config files -----------------------------------------------------------------------


def _config_keys(parser: LcoreArgumentParser) -> dict[str, argparse.Action]:
    """Config-file keys: every long option name without dashes (``-`` and ``_`` both work),
    and the short ones (``u = 10``), as configargparse reads them for Locust."""
    keys: dict[str, argparse.Action] = {}
    shorts: dict[str, argparse.Action] = {}
    for action in parser._actions:
        names = [s for s in action.option_strings if s.startswith("--")] or [action.dest]
        for name in names:
            keys[name.lstrip("-").replace("_", "-")] = action
        for name in action.option_strings:
            if not name.startswith("--"):
                shorts[name.lstrip("-")] = action
    for name, action in shorts.items():
        keys.setdefault(name, action)  # a long name of the same spelling wins
    return keys


LOCUST_CONFIG_FILES = frozenset({".locust.conf", "locust.conf"})


def _config_paths(cli_config: str | None, environ: Mapping[str, str]) -> list[tuple[Path, bool]]:
    """The config files, lowest precedence first: Locust's names, then lcore's, for each place
    (a Locust user's ``locust.conf`` keeps working; an ``lcore.conf`` beside it wins)."""
    home = environ.get("HOME") or environ.get("USERPROFILE")
    paths = [(Path(home) / name, False) for name in (".locust.conf", ".lcore.conf")] if home else []
    paths += [(Path("locust.conf"), False), (Path("lcore.conf"), False), (Path("pyproject.toml"), False)]
    if cli_config:
        paths.append((Path(cli_config).expanduser(), True))
    return paths


def _is_locusts(path: Path, where: str) -> bool:
    """A setting from one of Locust's default files ([tool.locust] included): lcore read none
    of them before, so an option lcore lacks there is a notice, not an error."""
    return path.name in LOCUST_CONFIG_FILES or "[tool.locust]" in where


def _read_config(
    parser: LcoreArgumentParser,
    keys: Mapping[str, argparse.Action],
    path: Path,
    must_exist: bool,
    partial: bool,
    notices: list[str] | None = None,
) -> dict[str, Any]:
    try:
        # exists() itself raises for a HOME that cannot be searched or a name too long
        if not must_exist and not path.exists():
            return {}
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise OptionsError(f"Could not read config file {path}: {reason}")
    if path.suffix == ".toml":
        items = _toml_items(text, path)
    else:
        items = _conf_items(text, path)
    values: dict[str, Any] = {}
    for key, raw, where in items:
        action = keys.get(key.lstrip("-").replace("_", "-"))
        if action is None:
            if partial:
                continue  # perhaps the locustfile's own option: the strict parse will tell
            if _is_locusts(path, where):
                if notices is not None:
                    notices.append(f"{where}: {key!r} is not an option of lcore's: ignored")
                continue
            raise OptionsError(f"{where}: unknown option {key!r}")
        if not _settable(action):
            raise OptionsError(f"{where}: {key!r} cannot be set in a config file")
        values.update(_apply(parser, action, raw, where))
    return values


def _conf_items(text: str, path: Path) -> list[tuple[str, str | list[str], str]]:
    """``key = value`` lines (``:`` or a space also separate); ``#``/``;`` comments;
    ``[section]`` headers ignored; a bare key means true; ``[a, b]`` is a list."""
    items: list[tuple[str, str | list[str], str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        found = re.match(r"([^\s:=]+)\s*(?:[:=\s]\s*(.*))?$", line)
        if found is None:
            raise OptionsError(f"{path}, line {number}: cannot read {line!r}")
        key, value = found.group(1), found.group(2)
        if value is None:
            value = "true"  # a bare key switches a flag on
        value = _unquote(re.sub(r"\s+[#;].*$", "", value).strip())
        parsed: str | list[str] = (
            _split(value) if value.startswith("[") and value.endswith("]") else value
        )
        items.append((key, parsed, f"{path}, line {number}"))
    return items


# pyproject.toml's tables, lowest precedence first: Locust's, then lcore's
TOML_TABLES = ("locust", "lcore")


def _toml_items(text: str, path: Path) -> list[tuple[str, str | list[str], str]]:
    items: list[tuple[str, str | list[str], str]] = []
    for tool in TOML_TABLES:
        where = f"{path} [tool.{tool}]"
        for key, value in _toml_section(text, path, tool).items():
            if isinstance(value, list):
                items.append((key, [_toml_scalar(v, key, where) for v in value], where))
            else:
                items.append((key, _toml_scalar(value, key, where), where))
    return items


def _toml_scalar(value: object, key: str, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise OptionsError(f"{where}: {key!r} must be a string, number, boolean or list")


def _toml_section(text: str, path: Path, tool: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return _toml_section_without_tomllib(text, path, tool)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise OptionsError(f"Could not read {path}: {e}")
    table = data.get("tool", {}).get(tool, {})
    if not isinstance(table, dict):
        raise OptionsError(f"{path}: [tool.{tool}] must be a table")
    return table


def _toml_section_without_tomllib(text: str, path: Path, tool: str) -> dict[str, Any]:
    """Just enough TOML for ``[tool.<tool>]`` when neither tomllib nor tomli is there:
    ``key = value`` with strings, numbers, booleans and (possibly multi-line) arrays of those."""
    header = re.compile(rf"\[\s*tool\s*\.\s*{tool}\s*\]")
    table: dict[str, Any] = {}
    inside = False
    pending = ""
    for number, line in enumerate(text.splitlines(), 1):
        line = _strip_toml_comment(line)
        if not pending and line.startswith("["):
            inside = bool(header.fullmatch(line))
            continue
        if not inside or not line:
            continue
        pending = f"{pending} {line}" if pending else line
        key, _, value = pending.partition("=")
        value = value.strip()
        if value.startswith("[") and value.count("[") > value.count("]"):
            continue  # an array spanning lines
        pending = ""
        table[_unquote(key.strip())] = _toml_value(value, f"{path}, line {number}")
    return table


def _strip_toml_comment(line: str) -> str:
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:index].strip()
    return line.strip()


def _toml_value(text: str, where: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    elif text.startswith("[") and text.endswith("]"):
        return [_toml_value(part, where) for part in _toml_array_items(text[1:-1])]
    elif re.fullmatch(r"[+-]?\d[\d_]*", text):
        return int(text.replace("_", ""))
    elif re.fullmatch(r"[+-]?\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?", text):
        return float(text.replace("_", ""))
    raise OptionsError(
        f"{where}: cannot read {text!r} without tomllib (Python 3.10): install tomli, or use lcore.conf"
    )


def _toml_array_items(inner: str) -> list[str]:
    items, quote, start = [], "", 0
    for index, char in enumerate(inner + ","):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            items.append(inner[start:index].strip())
            start = index + 1
    return [item for item in items if item]  # TOML allows a trailing comma


# --- the environment --------------------------------------------------------------------


def env_names(action: argparse.Action) -> list[str]:
    """Variables that set ``action``, strongest first: ``LCORE_X``, its own ``env_var``
    (Locust's name where it differs, or the locustfile's), then ``LOCUST_X``."""
    suffix = _name(action).upper().replace("-", "_")
    names = [f"LCORE_{suffix}", getattr(action, "env_var", None), f"LOCUST_{suffix}"]
    return list(dict.fromkeys(n for n in names if n))


def _read_environ(parser: LcoreArgumentParser, environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for action in parser._actions:
        if not _settable(action):
            continue
        for name in env_names(action):
            raw = environ.get(name, "")
            if raw.strip():  # an empty variable counts as unset, as CI templates leave them
                values.update(_apply(parser, action, raw, f"environment variable {name}"))
                break
    return values
