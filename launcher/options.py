"""lcore's options: Locust's names and defaults, gathered from these sources, later ones winning:

    defaults < ~/.locust.conf < ~/.lcore.conf < ./locust.conf < ./lcore.conf
             < [tool.locust], then [tool.lcore], in ./pyproject.toml < --config FILE
             < environment (LCORE_<OPTION>, then Locust's LOCUST_<OPTION>) < command line

The command line is parsed once with argparse into a namespace that records only what it set;
config files and the environment are converted through the same argparse actions, so a
locustfile's own options (added by ``extra_parser_hook``) are settable everywhere, as in Locust.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .outputs import resolve_outputs
from .parser import (
    CustomOption,
    LcoreArgumentParser,
    OptionsError,
    ParserHook,
    _build,
    build_parser,
    option_getter,
)
from .preflight import check_world
from .remote_locustfile import fetch_locustfile, is_url
from .sources import (
    _config_keys,
    _config_paths,
    _convert,
    _flag,
    _read_config,
    _read_environ,
    env_names,
)
from .timespan import parse_timespan

__all__ = [
    "CustomOption",
    "OptionsError",
    "build_parser",
    "env_names",
    "find_locustfile",
    "find_locustfiles",
    "parse_options",
    "parse_timespan",
    "resolve_processes",
    "validate",
    "web_ui_options",
]

# --- parsing ----------------------------------------------------------------------------


def parse_options(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    extra_parser_hook: ParserHook | None = None,
    partial: bool = False,
    checked: bool = False,
    locustfile: str | None = None,
    locate: bool = True,
) -> argparse.Namespace:
    """Options from all sources. ``partial=True`` tolerates options nobody declared (a
    locustfile's, before it is imported): they are kept in ``_unknown``, abbreviations are not
    expanded, and a bare word right after an unknown option is taken for its value.
    Raises OptionsError; ``--help`` prints the help and exits 0; ``--version`` sets ``version``.

    ``options._custom_options`` describes the locustfile's own options (CustomOption, for the
    status page); ``options._notices`` holds one-line notices (an old option name was used).
    The partial parse is the launcher's, once per command line: it prints the notices.

    ``checked=True``: the values were checked already, by the launcher's parse of the same
    sources (a forked process parsing again with its locustfile's options); ``locustfile``:
    the files the launcher found for ``-f`` (comma-separated), which ``locustfile`` and
    ``locustfiles`` then say instead of ``-f`` as given; ``locate=False``: ``-f`` is not looked
    for (Locust's parse_options, called by a script that runs no locustfile)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    # Partial: no abbreviations, or a locustfile's --user would be read as our --users.
    parser = _build(add_help=True, positionals=not partial, allow_abbrev=not partial)
    builtin = set(map(id, parser._actions))
    if extra_parser_hook is not None:
        extra_parser_hook(parser)
    custom = [a for a in parser._actions if id(a) not in builtin]

    required = [a for a in parser._actions if a.required and a.option_strings]
    for action in required:  # a config file or the environment may provide them
        action.required = False
    cli, unknown = _parse_command_line(parser, argv, partial)

    values = _defaults(parser)
    config_notices: list[str] = []
    if not cli.get("version"):  # `lcore --version` must work even with a broken config
        keys = _config_keys(parser)
        for path, must_exist in _config_paths(cli.get("config"), environ):
            values.update(_read_config(parser, keys, path, must_exist, partial, config_notices))
        values.update(_read_environ(parser, environ))
    values.update(cli)
    options = argparse.Namespace(**values)
    options._unknown = unknown
    options._custom_options = [_describe(a) for a in custom if a.option_strings]
    options._notices = list(parser.__dict__.get("lcore_notices", []))
    # settings of Locust's config files that lcore lacks (the strict parse skips them)
    options._config_notices = config_notices
    if options.headful:
        options.headless = False
    elif (
        options.no_web and not (options.headless or options.autostart) and _asks_for_a_test(options)
    ):
        # older Locust guides' --no-web (always with -c/-u, -r, -t) is today's --headless;
        # alone it keeps lcore's meaning, no HTTP (a master a locustfile drives, say)
        options.headless = True
        options._notices.append(
            "--no-web is an old Locust option: today's is --headless "
            "(lcore's --no-web also turns off the status page and /metrics)"
        )
    if partial:
        for text in options._notices:
            sys.stderr.write(f"lcore: notice: {text}\n")

    options.locustfiles = []
    if options.version:
        return options
    missing = [_flag(a) for a in required if getattr(options, a.dest, None) is None]
    if missing:
        raise OptionsError(f"the following arguments are required: {', '.join(missing)}")
    if checked:
        resolve_outputs(options)  # --out csv=... is --csv here too (checked by the launcher)
    else:
        validate(options)
    if locustfile is not None:
        options.locustfile = locustfile
        options.locustfiles = [p for p in locustfile.split(",") if p]
    elif locate and not options.demo and options.locustfile != "-":  # '-': fetched from the master
        options.locustfiles = find_locustfiles(options.locustfile or "")
    return options


def _asks_for_a_test(options: argparse.Namespace) -> bool:
    return any(getattr(options, d) is not None for d in ("num_users", "spawn_rate", "run_time"))


def _parse_command_line(
    parser: LcoreArgumentParser, argv: list[str], partial: bool
) -> tuple[dict[str, Any], list[str]]:
    """What the command line itself set (no defaults), and what it did not understand."""
    dests = frozenset(a.dest for a in parser._actions)

    class Seen(argparse.Namespace):
        # Answering for every dest keeps argparse from writing defaults into the namespace.
        def __getattr__(self, name: str) -> Any:
            if name in dests:
                return None
            raise AttributeError(name)

    namespace, extras = parser.parse_known_args(argv, Seen())
    cli = dict(vars(namespace))
    if not cli.get("user_classes"):
        cli.pop("user_classes", None)  # an empty positional must not hide LCORE_USER_CLASSES
    if not partial:
        if extras:
            raise OptionsError(f"unrecognized arguments: {' '.join(extras)}{_hint(parser, extras)}")
        return cli, []
    unknown, classes = [], []
    after_option = False
    for token in extras:
        if token.startswith("-") and len(token) > 1:
            unknown.append(token)
            after_option = "=" not in token
        elif after_option:
            unknown.append(token)
            after_option = False
        else:
            classes.append(token)
    if classes:
        cli["user_classes"] = classes
    return cli, unknown


def _hint(parser: LcoreArgumentParser, extras: list[str]) -> str:
    """Locust's "Did you mean" for the first unknown option, on the same line."""
    import difflib

    first = next((e.split("=", 1)[0] for e in extras if e.startswith("--")), None)
    if first is None:
        return ""
    names = [s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings]
    close = difflib.get_close_matches(first, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _defaults(parser: LcoreArgumentParser) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest == argparse.SUPPRESS or action.default == argparse.SUPPRESS:
            continue
        default = action.default
        if isinstance(default, str) and action.type is not None:
            default = _convert(parser, action, default, "default")
        values.setdefault(action.dest, default)
    for dest, default in parser._defaults.items():
        values.setdefault(dest, default)
    if values.get("user_classes") is None:
        values["user_classes"] = []
    return values


def _describe(action: argparse.Action) -> CustomOption:
    if action.nargs == 0:
        kind = "bool"
    else:
        kind = getattr(action.type, "__name__", "str")
        kind = kind if kind in ("int", "float") else "str"
    return CustomOption(
        dest=action.dest,
        flag=_flag(action),
        default=action.default,
        help=action.help,
        choices=tuple(action.choices) if action.choices is not None else None,
        include_in_web_ui=getattr(action, "include_in_web_ui", True),
        is_secret=getattr(action, "is_secret", False),
        is_required=getattr(action, "is_required", False),
        is_multiple=getattr(action, "is_multiple", False),
        kind=kind,
    )


def web_ui_options(options: argparse.Namespace) -> list[CustomOption]:
    """The locustfile's options the status page shows (``include_in_web_ui``, Locust's default
    True), in the order the locustfile added them; their values are ``options.<dest>``."""
    return [c for c in getattr(options, "_custom_options", []) if c.include_in_web_ui]


# --- locustfiles, processes, cross-option rules -----------------------------------------


def find_locustfile(value: str) -> str:
    """The absolute path of one locustfile, given as a path or as a name without ``.py``."""
    name = os.path.expanduser(value.strip())
    shown = name if name.endswith(".py") else f"{name}.py"
    if not os.path.isfile(shown):
        raise OptionsError(
            f"Could not find '{shown}'. Pass -f/--locustfile with a .py file, a module name or a "
            "directory; see --help."
        )
    return os.path.abspath(shown)


def find_locustfiles(value: str) -> list[str]:
    """All locustfiles ``-f`` names: comma-separated entries, each a file, a name without
    ``.py``, a directory (its .py files, recursively, except ``_*.py``) or an http(s) URL
    (fetched once, as Locust does)."""
    paths: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        if is_url(entry):
            paths.append(fetch_locustfile(entry))
            continue
        expanded = os.path.expanduser(entry)
        if os.path.isdir(expanded) and not os.path.isfile(f"{expanded}.py"):
            found = sorted(_python_files(expanded))
            if not found:
                raise OptionsError(f"Could not find any locustfile in directory '{entry}'.")
            paths += found
        else:
            paths.append(find_locustfile(entry))
    if not paths:
        raise OptionsError("No locustfile given: pass -f/--locustfile FILE.")
    return list(dict.fromkeys(paths))


def _python_files(directory: str) -> Iterable[str]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for file in files:
            if file.endswith(".py") and not file.startswith("_"):
                yield os.path.abspath(os.path.join(root, file))


def resolve_processes(n: int | None) -> int:
    """How many local worker processes: ``None`` means 1, ``-1`` one per usable core."""
    if n is None:
        return 1
    if n == -1:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1
    if n < 1:
        raise OptionsError(f"--processes must be a positive number or -1 (one per core), not {n}")
    return n


def validate(options: argparse.Namespace) -> None:
    """Rules that involve more than one option, or a range argparse cannot express."""
    resolve_outputs(options)  # first: --out csv=... is --csv for every rule below
    get = option_getter(options)
    if get("master") and get("worker"):
        raise OptionsError("--master cannot be combined with --worker")
    processes = get("processes")
    if processes is not None and (processes == 0 or processes < -1):
        raise OptionsError(
            f"--processes must be a positive number or -1 (one per core), not {processes}"
        )
    if get("num_users") is not None and get("num_users") < 0:
        raise OptionsError(f"--users must not be negative, not {get('num_users')}")
    if get("spawn_rate") is not None and not get("spawn_rate") > 0:
        raise OptionsError(f"--spawn-rate must be greater than 0, not {get('spawn_rate')}")
    if get("expect_workers", 1) < 1:
        raise OptionsError(f"--expect-workers must be at least 1, not {get('expect_workers')}")
    if get("expect_workers_max_wait", 0) < 0:
        raise OptionsError("--expect-workers-max-wait must not be negative")
    for dest, flag, lowest in (
        ("web_port", "--web-port", 0),
        ("master_bind_port", "--master-bind-port", 0),
        ("master_port", "--master-port", 1),
    ):
        port = get(dest)
        if port is not None and not lowest <= port <= 65535:
            raise OptionsError(f"{flag} must be between {lowest} and 65535, not {port}")
    for dest, flag in (
        ("stats_interval", "--stats-interval"),
        ("heartbeat_interval", "--heartbeat-interval"),
        ("connect_timeout", "--connect-timeout"),
        ("bundle_max_mb", "--bundle-max-mb"),
        ("max_stats_entries", "--max-stats-entries"),
        ("metrics_max_series", "--metrics-max-series"),
    ):
        if dest in options.__dict__ and not get(dest) > 0:
            raise OptionsError(f"{flag} must be greater than 0, not {get(dest)}")
    if get("heartbeat_timeout", 3.0) <= get("heartbeat_interval", 1.0):
        raise OptionsError(
            f"--heartbeat-timeout ({get('heartbeat_timeout')}) must be longer than "
            f"--heartbeat-interval ({get('heartbeat_interval')})"
        )
    if get("thresholds") and get("worker"):
        raise OptionsError("--threshold belongs on the master, not on workers")
    for dest, flag in (("threshold_abort", "--threshold-abort"), ("junit_file", "--junit")):
        if get(dest) and not get("thresholds"):
            raise OptionsError(f"{flag} needs at least one --threshold")
    from .results_options import validate_results_options

    results_problem = validate_results_options(options)
    if results_problem:
        raise OptionsError(results_problem)
    if get("stats_history_enabled") and not get("csv_prefix"):
        raise OptionsError("--csv-full-history requires --csv")
    if get("iterations", 0) < 0:
        raise OptionsError(f"--iterations must be 0 (no limit) or more, not {get('iterations')}")
    # -t with the web UI fills the start form's run time (the page's start then applies it),
    # and a worker leaves it to its master: both as Locust (a shared conf file or LOCUST_RUN_TIME
    # reaches every role)
    _validate_step_load(options)
    _validate_open_model(options)
    if get("locustfile") == "-" and not get("worker"):
        raise OptionsError("-f - (fetch the locustfile from the master) needs --worker")
    if get("run_single_user") and (get("master") or get("worker")):
        raise OptionsError(
            "--run-single-user runs in this process; it cannot be combined with --master or --worker"
        )
    check_world(options)


def _validate_open_model(options: argparse.Namespace) -> None:
    """--arrival-rate and --max-rps: rates the master splits over the workers."""
    get = options.__dict__.get
    for dest, flag in (("arrival_rate", "--arrival-rate"), ("max_rps", "--max-rps")):
        value = get(dest)
        if value is None:
            continue
        if not 0 < value < float("inf"):
            raise OptionsError(f"{flag} must be a number greater than 0, not {value:g}")
        if get("worker"):
            raise OptionsError(f"{flag} belongs on the master, not on workers")
    if get("arrival_rate") is None:
        return
    if get("iterations"):
        raise OptionsError("--arrival-rate cannot be combined with -i/--iterations")
    if get("step_load"):
        raise OptionsError("--arrival-rate cannot be combined with --step-load")
    if get("num_users") == 0:
        raise OptionsError("--arrival-rate needs a ceiling of at least one user (-u)")


def _validate_step_load(options: argparse.Namespace) -> None:
    """Locust 1.x's Step Load mode: N more users every T up to -u, from the master."""
    get = option_getter(options)
    step_users, step_time = get("step_users"), get("step_time")
    if not get("step_load"):
        if step_users is not None or step_time is not None:
            raise OptionsError(
                "--step-users and --step-time can only be used together with --step-load"
            )
        return
    if get("worker"):
        raise OptionsError("--step-load belongs on the master, not on workers")
    if step_users is None or step_time is None:
        raise OptionsError("--step-load needs --step-users N and --step-time T")
    if step_users < 1:
        raise OptionsError(f"--step-users must be at least 1, not {step_users}")
    if step_time < 1:
        raise OptionsError(f"--step-time must be at least 1 second, not {step_time}")
    users = get("num_users")
    if users is None:
        raise OptionsError("--step-load needs -u/--users: the number of users of the last step")
    if step_users > users:
        raise OptionsError(
            f"--step-users ({step_users}) must not be more than -u/--users ({users})"
        )
