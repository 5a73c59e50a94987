"""lcore's options: Locust's names and defaults, gathered from these sources, later ones winning:

    defaults < ~/.lcore.conf < ./lcore.conf < [tool.lcore] in ./pyproject.toml < --config FILE
             < environment (LCORE_<OPTION>, then Locust's LOCUST_<OPTION>) < command line

The command line is parsed once with argparse into a namespace that records only what it set;
config files and the environment are converted through the same argparse actions, so a
locustfile's own options (added by ``extra_parser_hook``) are settable everywhere, as in Locust.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from .timespan import parse_timespan

ParserHook = Callable[[argparse.ArgumentParser], None]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
# Never taken from a config file or the environment.
_CLI_ONLY = frozenset({"help", "version", "config"})


class OptionsError(Exception):
    """A mistake in the options; ``str()`` is one line, fit to print after ``lcore: error:``."""

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


class CustomOption(NamedTuple):
    """An option a locustfile added, as the status page needs it."""

    dest: str
    flag: str
    default: Any
    help: str | None
    choices: tuple[Any, ...] | None
    include_in_web_ui: bool
    is_secret: bool
    is_required: bool


# --- the parser -------------------------------------------------------------------------


class _TakesLocustKeywords:
    """``add_argument`` that also takes the keywords Locust's parser takes (``env_var``,
    ``include_in_web_ui``, ``is_secret``, ``is_required``), as locustfiles pass them."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        env_var = kwargs.pop("env_var", None)
        include_in_web_ui = kwargs.pop("include_in_web_ui", True)
        is_secret = kwargs.pop("is_secret", False)
        is_required = kwargs.pop("is_required", False)
        action: argparse.Action = super().add_argument(*args, **kwargs)  # type: ignore[misc]
        action.env_var = env_var  # type: ignore[attr-defined]
        action.include_in_web_ui = include_in_web_ui  # type: ignore[attr-defined]
        action.is_secret = is_secret  # type: ignore[attr-defined]
        action.is_required = is_required  # type: ignore[attr-defined]
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Group:
        group = _Group(self, *args, **kwargs)  # type: ignore[arg-type]
        self._action_groups.append(group)  # type: ignore[attr-defined]
        return group

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _ExclusiveGroup:
        group = _ExclusiveGroup(self, **kwargs)  # type: ignore[arg-type]
        self._mutually_exclusive_groups.append(group)  # type: ignore[attr-defined]
        return group


class _Group(_TakesLocustKeywords, argparse._ArgumentGroup):
    pass


class _ExclusiveGroup(_TakesLocustKeywords, argparse._MutuallyExclusiveGroup):
    pass


class LcoreArgumentParser(_TakesLocustKeywords, argparse.ArgumentParser):
    """An ArgumentParser whose errors raise OptionsError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise OptionsError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status == 0:  # --help
            super().exit(status, message)
        raise OptionsError(message or f"exit status {status}")


def _timespan(text: str) -> int:
    try:
        return parse_timespan(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _threshold(text: str) -> Any:
    from lcore.exporters.thresholds import ThresholdError, parse_threshold

    try:
        return parse_threshold(text)
    except ThresholdError as e:
        raise argparse.ArgumentTypeError(str(e))


def _renamed(new_name: str) -> type[argparse.Action]:
    """An action refusing an option Locust renamed, naming the new one."""

    class Renamed(argparse.Action):
        def __call__(
            self, parser: Any, namespace: Any, values: Any, option_string: Any = None
        ) -> None:
            raise argparse.ArgumentError(self, f"this option was renamed {new_name}")

    return Renamed


_IGNORED = "Accepted for Locust compatibility; lcore ignores it."

_EPILOG = """\
Every option can also be set in a config file (~/.lcore.conf, ./lcore.conf, [tool.lcore] in
./pyproject.toml, or --config FILE) as `spawn-rate = 10`, or in the environment as
LCORE_SPAWN_RATE=10 (Locust's LOCUST_SPAWN_RATE works too). The command line beats the
environment, which beats config files, which beat the defaults.

Examples:
    lcore -f locustfile.py -H http://localhost:8080
    lcore --headless -u 1000 -r 100 -t 10m --processes -1 --csv results
    lcore -f locustfile.py --worker --master-host 10.0.0.1 --processes -1
"""


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The full parser: Locust's options with Locust's defaults, then lcore's own."""
    return _build(add_help=add_help, positionals=True, allow_abbrev=True)


def _build(*, add_help: bool, positionals: bool, allow_abbrev: bool) -> LcoreArgumentParser:
    parser = LcoreArgumentParser(
        prog="lcore",
        usage="lcore [options] [UserClass ...]",
        description="A Locust-compatible, multiprocess-first load-testing engine.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=add_help,
        allow_abbrev=allow_abbrev,
    )
    parser._optionals.title = "Common options"
    add = parser.add_argument
    add(
        "-f",
        "--locustfile",
        default="locustfile",
        metavar="FILE",
        help="The test: a .py file, a module name without .py, a directory of .py files or a "
        "comma-separated list of files. Default: locustfile (i.e. locustfile.py).",
    )
    add("--config", metavar="FILE", help="Read more options from FILE (after the default files).")
    add(
        "-H",
        "--host",
        metavar="URL",
        help="Base URL of the system under test, e.g. https://example.com.",
    )
    add(
        "-u",
        "--users",
        type=int,
        dest="num_users",
        metavar="N",
        help="Peak number of concurrent users (with --headless or --autostart).",
    )
    add(
        "-r",
        "--spawn-rate",
        type=float,
        metavar="RATE",
        help="Users started per second (with --headless or --autostart).",
    )
    add(
        "--hatch-rate",
        action=_renamed("--spawn-rate"),
        nargs=0,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    add(
        "-t",
        "--run-time",
        type=_timespan,
        metavar="TIME",
        help="Stop after this long, e.g. 300s, 20m, 3h, 1h30m (with --headless or --autostart). "
        "Default: run until stopped.",
    )
    add(
        "-l",
        "--list",
        action="store_true",
        dest="list_commands",
        help="List the User classes and exit.",
    )
    add("--config-users", nargs="*", metavar="JSON", help=_IGNORED)

    web = parser.add_argument_group("Web UI options")
    web.add_argument(
        "--web-host", default="", metavar="IP", help="Interface of the status page. Default: all."
    )
    web.add_argument(
        "--web-port",
        "-P",
        type=int,
        default=8089,
        metavar="PORT",
        help="Port of the status page. Default: 8089.",
    )
    web.add_argument(
        "--headless",
        action="store_true",
        help="No status page controls: start the test at once (use -u, -r and -t).",
    )
    web.add_argument(
        "--no-web",
        action="store_true",
        help="Serve nothing over HTTP: no status page, no /metrics (a headless master serves them).",
    )
    # Undoes a `headless = true` from a config file, as in Locust.
    web.add_argument("--headful", action="store_true", help=argparse.SUPPRESS)
    web.add_argument(
        "--autostart", action="store_true", help="Start the test at once but keep the status page."
    )
    web.add_argument(
        "--autoquit",
        type=int,
        default=-1,
        metavar="SECONDS",
        help="With --autostart: exit this many seconds after the test ends. Default: keep running.",
    )
    web.add_argument(
        "--web-login", action="store_true", help="Protect the status page with a login page."
    )
    web.add_argument(
        "--web-auth", metavar="USER:PASSWORD", help="Protect the status page with HTTP basic auth."
    )
    web.add_argument(
        "--web-token",
        metavar="TOKEN",
        help="Protect the status page, its API and /metrics with 'Authorization: Bearer TOKEN' "
        "(set LCORE_WEB_TOKEN rather than the command line, which others can see).",
    )
    web.add_argument(
        "--metrics-buckets",
        metavar="SECONDS,...",
        help="Bucket bounds of the lcore_response_time_seconds histogram on /metrics, e.g. "
        "0.01,0.1,1. Default: 0.001 to 60.",
    )
    web.add_argument(
        "--tls-cert", default="", metavar="FILE", help="TLS certificate to serve HTTPS."
    )
    web.add_argument(
        "--tls-key", default="", metavar="FILE", help="TLS private key to serve HTTPS."
    )
    web.add_argument(
        "--class-picker",
        action="store_true",
        env_var="LOCUST_USERCLASS_PICKER",
        help="Let the status page choose User and shape classes.",
    )
    web.add_argument(
        "--web-base-path", default="", metavar="PATH", help="URL prefix of the status page."
    )
    web.add_argument("--web-host-display-name", help=argparse.SUPPRESS)
    web.add_argument("--legacy-ui", action="store_true", help=argparse.SUPPRESS)
    web.add_argument("--modern-ui", action="store_true", help=argparse.SUPPRESS)

    master = parser.add_argument_group(
        "Master options", "Running distributed: the master dispatches users and merges statistics."
    )
    master.add_argument(
        "--master",
        action="store_true",
        env_var="LOCUST_MODE_MASTER",
        help="Run as master only; workers connect to it.",
    )
    master.add_argument(
        "--master-bind-host",
        default="*",
        metavar="IP",
        help="Interface the master listens on. Default: * (all).",
    )
    master.add_argument(
        "--master-bind-port",
        type=int,
        default=5557,
        metavar="PORT",
        help="Port the master listens on. Default: 5557.",
    )
    master.add_argument(
        "--expect-workers",
        type=int,
        default=1,
        metavar="N",
        help="With --headless or --autostart: wait for this many workers before starting. Default: 1.",
    )
    master.add_argument(
        "--expect-workers-max-wait",
        type=int,
        default=0,
        metavar="SECONDS",
        help="Give up waiting for workers after this long. Default: 0 (wait forever).",
    )
    master.add_argument(
        "--enable-rebalancing",
        action="store_true",
        help="Accepted for Locust compatibility; lcore always rebalances users when workers come or go.",
    )
    master.add_argument(
        "--expect-slaves",
        action=_renamed("--expect-workers"),
        nargs=0,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )

    worker = parser.add_argument_group(
        "Worker options", "Running distributed: workers run the users and report to the master."
    )
    worker.add_argument(
        "--worker",
        action="store_true",
        env_var="LOCUST_MODE_WORKER",
        help="Run workers only, connecting to --master-host.",
    )
    worker.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="Number of local worker processes; -1 means one per usable core. Default: 1.",
    )
    worker.add_argument(
        "--slave",
        action=_renamed("--worker"),
        nargs=0,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    worker.add_argument(
        "--master-host",
        default="127.0.0.1",
        env_var="LOCUST_MASTER_NODE_HOST",
        metavar="HOST",
        help="Master to connect to. Default: 127.0.0.1.",
    )
    worker.add_argument(
        "--master-port",
        type=int,
        default=5557,
        env_var="LOCUST_MASTER_NODE_PORT",
        metavar="PORT",
        help="Master port to connect to. Default: 5557.",
    )

    tags = parser.add_argument_group("Tag options", "Select tasks by their @tag.")
    tags.add_argument(
        "-T", "--tags", nargs="*", metavar="TAG", help="Run only tasks with any of these tags."
    )
    tags.add_argument(
        "-E", "--exclude-tags", nargs="*", metavar="TAG", help="Skip tasks with any of these tags."
    )

    stats = parser.add_argument_group("Request statistics options")
    stats.add_argument(
        "--csv",
        dest="csv_prefix",
        metavar="PREFIX",
        help="Write PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv and "
        "PREFIX_exceptions.csv.",
    )
    stats.add_argument(
        "--csv-full-history",
        action="store_true",
        dest="stats_history_enabled",
        help="Append every entry, not only the aggregate, to PREFIX_stats_history.csv (needs --csv).",
    )
    stats.add_argument(
        "--print-stats", action="store_true", help="Print statistics periodically in UI runs."
    )
    stats.add_argument(
        "--only-summary",
        action="store_true",
        help="In headless runs, print only the final summary.",
    )
    stats.add_argument(
        "--reset-stats",
        action="store_true",
        help="Reset statistics once all users have been started.",
    )
    stats.add_argument(
        "--html", dest="html_file", metavar="FILE", help="Write an HTML report to FILE."
    )
    stats.add_argument(
        "--json", action="store_true", help="Print the final statistics as JSON on stdout."
    )
    stats.add_argument(
        "--json-file", metavar="FILE", help="Write the final statistics as JSON to FILE."
    )

    log = parser.add_argument_group("Logging options")
    log.add_argument(
        "--skip-log-setup",
        action="store_true",
        help="Leave logging configuration to the locustfile.",
    )
    log.add_argument(
        "--loglevel",
        "-L",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL. Default: INFO.",
    )
    log.add_argument("--logfile", metavar="FILE", help="Log to FILE instead of stderr.")

    other = parser.add_argument_group("Other options")
    other.add_argument(
        "--show-task-ratio",
        action="store_true",
        help="Print the task execution ratio of each User class.",
    )
    other.add_argument(
        "--show-task-ratio-json",
        action="store_true",
        help="Print the task execution ratio as JSON.",
    )
    other.add_argument(
        "--version", "-V", action="store_true", help="Print lcore's version and exit."
    )
    other.add_argument(
        "--exit-code-on-error",
        type=int,
        default=1,
        metavar="CODE",
        help="Exit status when any request failed or any task raised. Default: 1.",
    )
    other.add_argument(
        "-s",
        "--stop-timeout",
        type=_timespan,
        default=0,
        metavar="TIME",
        help="How long users may finish their current task when the test stops. Default: 0.",
    )
    other.add_argument(
        "--equal-weights", action="store_true", help="Give every task the same weight."
    )
    other.add_argument("--profile", metavar="NAME", help=_IGNORED)

    own = parser.add_argument_group("lcore options")
    own.add_argument(
        "--stats-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="How often workers send statistics to the master. Default: 1.0.",
    )
    own.add_argument(
        "--heartbeat-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="How often master and workers exchange heartbeats. Default: 1.0.",
    )
    own.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="A worker silent this long is considered lost. Default: 3.0.",
    )
    own.add_argument(
        "--curve-keys",
        metavar="DIR",
        help="Encrypt master-worker TCP traffic with the CurveZMQ keys in DIR.",
    )
    own.add_argument(
        "--threshold",
        action="append",
        type=_threshold,
        dest="thresholds",
        metavar="EXPR",
        help="Fail the run (exit code 4) unless EXPR holds on the final statistics, e.g. "
        "'p95<300ms', 'GET /api p99<1s', 'fail_ratio<0.01', 'rps>500', 'failures==0'. "
        "Repeatable.",
    )
    own.add_argument(
        "--threshold-abort",
        action="store_true",
        help="Check the thresholds every second during the run too, and stop the test at the "
        "first breach of an upper bound (p95<..., fail_ratio<..., failures==0).",
    )
    own.add_argument(
        "--junit",
        dest="junit_file",
        metavar="FILE",
        help="Write the threshold results to FILE as a JUnit XML report (needs --threshold).",
    )
    own.add_argument(
        "--run-single-user",
        action="store_true",
        help="Debug mode: run one user in this process, with no master and no workers.",
    )
    own.add_argument(
        "--demo", action="store_true", help="Run the built-in demo (no locustfile needed)."
    )

    if positionals:
        classes = parser.add_argument_group("User classes")
        classes.add_argument(
            "user_classes",
            nargs="*",
            metavar="UserClass",
            help="Run only these User classes (see --list). Default: all of them.",
        )
    return parser


# --- parsing ----------------------------------------------------------------------------


def parse_options(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    extra_parser_hook: ParserHook | None = None,
    partial: bool = False,
) -> argparse.Namespace:
    """Options from all sources. ``partial=True`` tolerates options nobody declared (a
    locustfile's, before it is imported): they are kept in ``_unknown``, abbreviations are not
    expanded, and a bare word right after an unknown option is taken for its value.
    Raises OptionsError; ``--help`` prints the help and exits 0; ``--version`` sets ``version``."""
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
    if not cli.get("version"):  # `lcore --version` must work even with a broken config
        keys = _config_keys(parser)
        for path, must_exist in _config_paths(cli.get("config"), environ):
            values.update(_read_config(parser, keys, path, must_exist, partial))
        values.update(_read_environ(parser, environ))
    values.update(cli)
    options = argparse.Namespace(**values)
    options._unknown = unknown
    options._custom_options = [_describe(a) for a in custom if a.option_strings]
    if options.headful:
        options.headless = False

    options.locustfiles = []
    if options.version:
        return options
    missing = [_flag(a) for a in required if getattr(options, a.dest, None) is None]
    if missing:
        raise OptionsError(f"the following arguments are required: {', '.join(missing)}")
    validate(options)
    if not options.demo and options.locustfile != "-":  # '-': a worker fetches it from the master
        options.locustfiles = find_locustfiles(options.locustfile or "")
    return options


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
            raise OptionsError(f"unrecognized arguments: {' '.join(extras)}")
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
    return CustomOption(
        dest=action.dest,
        flag=_flag(action),
        default=action.default,
        help=action.help,
        choices=tuple(action.choices) if action.choices is not None else None,
        include_in_web_ui=getattr(action, "include_in_web_ui", True),
        is_secret=getattr(action, "is_secret", False),
        is_required=getattr(action, "is_required", False),
    )


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
    """Config-file keys: every long option name without dashes; ``-`` and ``_`` both work."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:
        names = [s for s in action.option_strings if s.startswith("--")] or [action.dest]
        for name in names:
            keys[name.lstrip("-").replace("_", "-")] = action
    return keys


def _config_paths(cli_config: str | None, environ: Mapping[str, str]) -> list[tuple[Path, bool]]:
    home = environ.get("HOME") or environ.get("USERPROFILE")
    paths = [(Path(home) / ".lcore.conf", False)] if home else []
    paths += [(Path("lcore.conf"), False), (Path("pyproject.toml"), False)]
    if cli_config:
        paths.append((Path(cli_config).expanduser(), True))
    return paths


def _read_config(
    parser: LcoreArgumentParser,
    keys: Mapping[str, argparse.Action],
    path: Path,
    must_exist: bool,
    partial: bool,
) -> dict[str, Any]:
    if not must_exist and not path.exists():
        return {}
    try:
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


def _toml_items(text: str, path: Path) -> list[tuple[str, str | list[str], str]]:
    table = _toml_section(text, path)
    where = f"{path} [tool.lcore]"
    items: list[tuple[str, str | list[str], str]] = []
    for key, value in table.items():
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


def _toml_section(text: str, path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return _toml_section_without_tomllib(text, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise OptionsError(f"Could not read {path}: {e}")
    table = data.get("tool", {}).get("lcore", {})
    if not isinstance(table, dict):
        raise OptionsError(f"{path}: [tool.lcore] must be a table")
    return table


_TOML_HEADER = re.compile(r"\[\s*tool\s*\.\s*lcore\s*\]")


def _toml_section_without_tomllib(text: str, path: Path) -> dict[str, Any]:
    """Just enough TOML for ``[tool.lcore]`` when neither tomllib nor tomli is there:
    ``key = value`` with strings, numbers, booleans and (possibly multi-line) arrays of those."""
    table: dict[str, Any] = {}
    inside = False
    pending = ""
    for number, line in enumerate(text.splitlines(), 1):
        line = _strip_toml_comment(line)
        if not pending and line.startswith("["):
            inside = bool(_TOML_HEADER.fullmatch(line))
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


# --- locustfiles, processes, cross-option rules -----------------------------------------


def find_locustfile(value: str) -> str:
    """The absolute path of one locustfile, given as a path or as a name without ``.py``."""
    name = os.path.expanduser(value.strip())
    shown = name if name.endswith(".py") else f"{name}.py"
    if os.path.basename(shown) == "locust.py":
        raise OptionsError(
            "A locustfile must not be named locust.py (it would hide the locust module); rename it."
        )
    if not os.path.isfile(shown):
        raise OptionsError(
            f"Could not find '{shown}'. Pass -f/--locustfile with a .py file, a module name or a "
            "directory; see --help."
        )
    return os.path.abspath(shown)


def find_locustfiles(value: str) -> list[str]:
    """All locustfiles ``-f`` names: comma-separated entries, each a file, a name without
    ``.py`` or a directory (its .py files, recursively, except ``_*.py``)."""
    paths: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
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
            if file.endswith(".py") and not file.startswith("_") and file != "locust.py":
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
    get = options.__dict__.get
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
    if get("stats_history_enabled") and not get("csv_prefix"):
        raise OptionsError("--csv-full-history requires --csv")
    if get("run_time"):
        if get("worker"):
            raise OptionsError("--run-time belongs on the master, not on workers")
        if not (get("headless") or get("autostart")):
            raise OptionsError(
                "--run-time can only be used together with --headless or --autostart"
            )
    if get("locustfile") == "-" and not get("worker"):
        raise OptionsError("-f - (fetch the locustfile from the master) needs --worker")
    if get("run_single_user") and (get("master") or get("worker")):
        raise OptionsError(
            "--run-single-user runs in this process; it cannot be combined with --master or --worker"
        )
