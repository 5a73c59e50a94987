"""The argparse parser: every option with Locust's names and defaults, and lcore's own.

The parser accepts Locust's extra ``add_argument`` keywords (``env_var``, ``include_in_web_ui``,
``is_secret``, ``is_required``, ``is_multiple``) so that a locustfile's ``init_command_line_parser``
hook works, and the option names of older Locust guides (``--slave``, ``--expect-slaves``,
``--hatch-rate``, ``--step-clients``), each with a one-line notice naming today's option.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from .timespan import parse_timespan

ParserHook = Callable[[argparse.ArgumentParser], None]


class OptionsError(Exception):
    """A mistake in the options; ``str()`` is one line, fit to print after ``lcore: error:``."""

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


def option_getter(options: argparse.Namespace) -> Callable[..., Any]:
    """``get(dest, default=None)``: an option's value, or ``default`` when the parser that
    made ``options`` has no such option (argparse's values are untyped: Any)."""
    values: dict[str, Any] = vars(options)
    return values.get


class CustomOption(NamedTuple):
    """An option a locustfile added, as the status page needs it (``options._custom_options``).

    ``kind`` is how to render it: ``"bool"`` (a flag), ``"int"``, ``"float"`` or ``"str"``
    (the name of its ``type``, ``"str"`` when it has none or another); ``is_multiple`` options
    hold a list (a multiple select when ``choices`` is set). The current value is the namespace's
    attribute ``dest``; mask it when ``is_secret``."""

    dest: str
    flag: str
    default: Any
    help: str | None
    choices: tuple[Any, ...] | None
    include_in_web_ui: bool
    is_secret: bool
    is_required: bool
    is_multiple: bool = False
    kind: str = "str"


# --- the parser -------------------------------------------------------------------------


class _Multiple(argparse._AppendAction):
    """``is_multiple=True``: the option may repeat and holds a list. Given at all, it replaces
    the default rather than adding to it (lcore's parse starts each source from an empty
    namespace, so the append starts from nothing)."""


class _TakesLocustKeywords(argparse._ActionsContainer):
    """``add_argument`` that also takes the keywords Locust's parser takes (``env_var``,
    ``include_in_web_ui`` (default True, as Locust's), ``is_secret``, ``is_required``,
    ``is_multiple``), as locustfiles pass them. A mixin before an argparse container class
    (a parser, a group), which it names as its base so that its ``super()`` calls type-check."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        taken = _taken_by(self, args)
        if taken is not None:
            # A locustfile or plugin declaring an option the parser already has (locust-plugins'
            # -i/--iterations): the parser keeps its own, so the option means one thing.
            return taken
        env_var = kwargs.pop("env_var", None)
        include_in_web_ui = kwargs.pop("include_in_web_ui", True)
        is_secret = kwargs.pop("is_secret", False)
        is_required = kwargs.pop("is_required", False)
        is_multiple = kwargs.pop("is_multiple", False)
        # Locust takes is_multiple for a hint to its web form only, so `--x a --x b` gives "b";
        # here a plain valued option becomes a list, as the web form's value is
        if is_multiple and kwargs.get("action", "store") == "store" and "nargs" not in kwargs:
            kwargs["action"] = _Multiple
            default = kwargs.get("default")
            if default is not None and not isinstance(default, list | tuple):
                kwargs["default"] = [default]
        action: argparse.Action = super().add_argument(*args, **kwargs)  # type: ignore[misc]
        action.env_var = env_var  # type: ignore[attr-defined]
        action.include_in_web_ui = include_in_web_ui  # type: ignore[attr-defined]
        action.is_secret = is_secret  # type: ignore[attr-defined]
        action.is_required = is_required  # type: ignore[attr-defined]
        action.is_multiple = bool(is_multiple)  # type: ignore[attr-defined]
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Group:
        group = _Group(self, *args, **kwargs)  # type: ignore[arg-type]
        self._action_groups.append(group)  # type: ignore[attr-defined]
        return group

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _ExclusiveGroup:
        group = _ExclusiveGroup(self, **kwargs)  # type: ignore[arg-type]
        self._mutually_exclusive_groups.append(group)  # type: ignore[attr-defined]
        return group


def _taken_by(container: Any, args: tuple[Any, ...]) -> argparse.Action | None:
    """The one action that already owns every flag in ``args``, if there is one."""
    flags = [a for a in args if isinstance(a, str) and a[:1] in container.prefix_chars]
    if not flags:
        return None
    owners = {id(o): o for o in (container._option_string_actions.get(f) for f in flags)}
    if len(owners) != 1 or None in owners.values():
        return None
    return next(iter(owners.values()))


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


def _user_config(text: str) -> Any:
    from lcore.user_config import UserConfigError, parse

    try:
        return parse(text)
    except UserConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _threshold(text: str) -> Any:
    from lcore.exporters.thresholds import ThresholdError, parse_threshold

    try:
        return parse_threshold(text)
    except ThresholdError as e:
        raise argparse.ArgumentTypeError(str(e))


def notice(parser: argparse.ArgumentParser, text: str) -> None:
    """Keep a one-line notice for the user (an old option name, say); ``parse_options`` hands
    them over in ``options._notices``, once each."""
    notices: list[str] = parser.__dict__.setdefault("lcore_notices", [])
    if text not in notices:
        notices.append(text)


def _old_name(today: str) -> type[argparse.Action]:
    """An option of older Locust guides that does what ``today`` does (same dest, so the usual
    precedence holds), with a notice naming ``today``."""

    class OldName(argparse.Action):
        def __call__(
            self, parser: Any, namespace: Any, values: Any, option_string: Any = None
        ) -> None:
            old = option_string or self.option_strings[0]
            notice(parser, f"{old} is an old Locust option: today's is {today}")
            setattr(namespace, self.dest, True if self.nargs == 0 else values)

    return OldName


_EPILOG = """\
Every option can also be set in a config file (~/.lcore.conf, ./lcore.conf, [tool.lcore] in
./pyproject.toml, or --config FILE; Locust's ~/.locust.conf, ./locust.conf and [tool.locust]
too, beneath lcore's) as `spawn-rate = 10` (or `r = 10`), or in the environment as
LCORE_SPAWN_RATE=10 (Locust's LOCUST_SPAWN_RATE works too). The command line beats the
environment, which beats config files, which beat the defaults.

Examples:
    lcore -f locustfile.py -H http://localhost:8080
    lcore --headless -u 1000 -r 100 -t 10m --processes -1 --csv results
    lcore -f locustfile.py --worker --master-host 10.0.0.1 --processes -1
"""


def _label(text: str) -> tuple[str, str]:
    from .outputs import OutputError, parse_label

    try:
        return parse_label(text)
    except OutputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where results go besides the console: --out (k6's way to name outputs), the labels they
    carry, the outputs that push (Prometheus remote write, OpenTelemetry over OTLP)."""
    out = parser.add_argument_group(
        "Outputs",
        "--out NAME=TARGET names an output the k6 way (repeatable):\n"
        "  json=FILE           as --json-file FILE\n"
        "  csv=PREFIX          as --csv PREFIX\n"
        "  html=FILE           as --html FILE\n"
        "  junit=FILE          as --junit FILE\n"
        "  prometheus-rw=URL   as --prometheus-remote-write URL\n"
        "  otlp=URL            as --otel, with that OTLP endpoint\n"
        "Locust's --csv, --html and --json keep their meaning.",
    )
    out.add_argument(
        "--out",
        action="append",
        dest="outputs",
        metavar="NAME=TARGET",
        help="An output, e.g. --out csv=results --out prometheus-rw=http://prom:9090/api/v1/write.",
    )
    out.add_argument(
        "--label",
        action="append",
        dest="labels",
        type=_label,
        metavar="KEY=VALUE",
        help="A label of this run (repeatable, e.g. --label env=staging --label build=1234): "
        "pushed metrics carry it beside run_id.",
    )
    out.add_argument(
        "--prometheus-remote-write",
        metavar="URL",
        help="Push the /metrics series to URL (Prometheus remote write 1.0: snappy-compressed "
        "protobuf) every --push-interval and once more at the end, labelled with run_id and the "
        "--label's, e.g. http://prom:9090/api/v1/write (Prometheus started with "
        "--web.enable-remote-write-receiver). Basic auth: user:password@ in the URL or "
        "--prometheus-remote-write-auth.",
    )
    out.add_argument(
        "--prometheus-remote-write-auth",
        metavar="USER:PASSWORD",
        help="Basic auth for --prometheus-remote-write (set LCORE_PROMETHEUS_REMOTE_WRITE_AUTH "
        "rather than the command line, which others can see).",
    )
    out.add_argument(
        "--prometheus-remote-write-token",
        metavar="TOKEN",
        help="'Authorization: Bearer TOKEN' for --prometheus-remote-write (set "
        "LCORE_PROMETHEUS_REMOTE_WRITE_TOKEN rather than the command line).",
    )
    out.add_argument(
        "--otel",
        action="store_true",
        env_var="LOCUST_ENABLE_OPENTELEMETRY",
        help="Push the /metrics series as OpenTelemetry metrics over OTLP (Locust's option; "
        "needs pip install 'lcore[otel]'), configured by the usual OTEL_* variables: "
        "OTEL_EXPORTER_OTLP_ENDPOINT (or _METRICS_ENDPOINT), OTEL_EXPORTER_OTLP_PROTOCOL "
        "(grpc, the default as in Locust, or http/protobuf), OTEL_EXPORTER_OTLP_HEADERS, "
        "OTEL_METRICS_EXPORTER (otlp, console, none), OTEL_SERVICE_NAME. Metrics only.",
    )
    out.add_argument(
        "--push-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="How often the outputs that push send (OTEL_METRIC_EXPORT_INTERVAL, in ms, sets "
        "it for OTLP). Default: 5.",
    )


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
        help="The test: a .py file, a module name without .py, a directory of .py files, an "
        "http(s) URL of a .py file, or a comma-separated list of those. Default: locustfile "
        "(i.e. locustfile.py).",
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
        action=_old_name("--spawn-rate"),
        type=float,
        dest="spawn_rate",
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
        "-i",
        "--iterations",
        type=int,
        default=0,
        metavar="N",
        help="Run exactly N task runs in all, across every worker, then end the test "
        "(locust-plugins' option). Default: no limit.",
    )
    add(
        "-l",
        "--list",
        action="store_true",
        dest="list_commands",
        help="List the User classes and exit.",
    )
    add(
        "--config-users",
        type=_user_config,
        nargs="*",
        metavar="JSON",
        help="Settings for user classes as JSON (inline or a .json file): "
        '{"user_class_name": "MyUser", "fixed_count": 2, "tasks": ["browse"]}, or a list of them.',
    )

    web = parser.add_argument_group("Web UI options")
    web.add_argument(
        "--web-host", default="", metavar="IP", help="Interface of the status page. Default: all."
    )
    web.add_argument(
        "--web-allowed-hosts",
        default="",
        metavar="NAMES",
        help="Without authentication, the status page answers only requests addressed to an "
        "IP address, localhost, this machine's hostname or the --web-host (a defence against "
        "DNS rebinding); add more names here, comma-separated (.example.com: the domain and "
        "its subdomains; *: any).",
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
        help="Serve nothing over HTTP: no status page, no /metrics (a headless master serves "
        "them). With -u, -r or -t and without --autostart it also means --headless, as in "
        "older Locust guides.",
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
        "--web-auth",
        metavar="USER:PASSWORD",
        help="Protect the status page with HTTP basic auth (set LCORE_WEB_AUTH rather than the "
        "command line, which others can see). Failed logins are throttled per address.",
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
        "--metrics-max-series",
        type=int,
        default=300,
        metavar="N",
        help="The most request names (method and name) with series of their own on /metrics, "
        "the most requested first; the others are summed into one 'Other (over N names on "
        "/metrics)' series per method, with a warning and lcore_metrics_folded_names. "
        "Default: 300.",
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
        action=_old_name("--expect-workers"),
        type=int,
        dest="expect_workers",
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
        help="Run workers only, connecting to --master-host. With -f -, each worker takes the "
        "locustfile and its directory from the master.",
    )
    worker.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="Number of local worker processes; -1 means one per usable core. Default: 1.",
    )
    worker.add_argument(
        "--slave",
        action=_old_name("--worker"),
        nargs=0,
        dest="worker",
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
    worker.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="How long a worker waits for the master when it starts (for its welcome, and for "
        "the locustfile with -f -) before giving up with exit code 1. Default: 60.",
    )

    tags = parser.add_argument_group(
        "Tag options",
        "Select tasks by their @tag. A master's tags decide for all its workers, remote ones too.",
    )
    tags.add_argument(
        "-T", "--tags", nargs="*", metavar="TAG", help="Run only tasks with any of these tags."
    )
    tags.add_argument(
        "-E", "--exclude-tags", nargs="*", metavar="TAG", help="Skip tasks with any of these tags."
    )

    step = parser.add_argument_group(
        "Step load options",
        "Locust 1.x's Step Load mode (today's Locust writes a LoadTestShape): start with N users, "
        "add N more every T, up to -u; -r is the spawn rate of each step.",
    )
    step.add_argument(
        "--step-load",
        action="store_true",
        help="Ramp in steps (needs -u, --step-users and --step-time); a LoadTestShape in the "
        "locustfile takes precedence.",
    )
    step.add_argument(
        "--step-users", type=int, metavar="N", help="Users added at each step (with --step-load)."
    )
    step.add_argument(
        "--step-clients",
        action=_old_name("--step-users"),
        type=int,
        dest="step_users",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    step.add_argument(
        "--step-time",
        type=_timespan,
        metavar="TIME",
        help="Time between steps, e.g. 30s, 5m (with --step-load).",
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
    log.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        metavar="FORMAT",
        help="text (Locust's lines, the default) or json: one JSON object a line with time, "
        "level, role (master, worker, launcher, local), worker_id, host, logger, message, "
        "run_id and, when there is one, traceback, for Elasticsearch/Loki shippers. Lines a "
        "worker forwarded keep that worker's id on the master.",
    )

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
    other.add_argument(
        "--profile", metavar="NAME", help="A name grouping test runs together, shown in the HTML report."
    )

    _add_output_options(parser)

    own = parser.add_argument_group("lcore options")
    own.add_argument(
        "--arrival-rate",
        type=float,
        metavar="RATE",
        help="The open model: RATE task runs per second across the whole test, each on a free "
        "user, whatever the response times; -u is then the ceiling of concurrent users, started "
        "as arrivals need them (default 1000). An arrival that finds no free user with the "
        "ceiling reached is counted as dropped.",
    )
    own.add_argument(
        "--max-rps",
        type=float,
        metavar="N",
        help="Never send more than N requests per second across the whole test, all workers "
        "together (HTTP users; either model). Default: no cap.",
    )
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
        "--max-stats-entries",
        type=int,
        default=1000,
        metavar="N",
        help="The most request names the master keeps statistics for; later new "
        "names are counted in one 'Other (over N names)' row per method, with a warning. "
        "Name requests whose URL holds ids with name= to stay under it. Default: 1000.",
    )
    own.add_argument(
        "--bundle-max-mb",
        type=float,
        default=50.0,
        metavar="MB",
        help="Workers started with -f - get the locustfile's whole directory from the master "
        "(helper modules, packages, data files; hidden files, __pycache__ and virtualenvs "
        "left out): the most the master sends and a worker accepts. Default: 50.",
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

    from .results_options import add_results_options

    add_results_options(parser)

    if positionals:
        classes = parser.add_argument_group("User classes")
        classes.add_argument(
            "user_classes",
            nargs="*",
            metavar="UserClass",
            help="Run only these User classes (see --list). Default: all of them.",
        )
    return parser
