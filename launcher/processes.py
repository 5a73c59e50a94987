"""What each forked process runs: load the locustfile, build the Environment, run a runtime."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

from .config import Config
from .supervisor import EXIT_FATAL

log = logging.getLogger("lcore.main")


class StartupError(Exception):
    """A one-line error for the user, raised before any user starts."""


def load_environment(
    config: Config, options_cwd: str | None = None, locustfile: str | None = None
) -> tuple[Any, Any, argparse.Namespace]:
    """Import the locustfile (``locustfile``, else the configuration's), then parse the
    command line again with the locustfile's own options (config files and a relative
    --config read from ``options_cwd`` when given): that namespace is Locust's
    ``environment.parsed_options``, with ``locustfile`` the files loaded. The launcher has
    checked the values already (Config.build): they are not checked a second time here."""
    from lcore import locustfile as lf
    from lcore.event import events
    from lcore.task_tags import apply_tags

    from .options import OptionsError, parse_options

    resolved = locustfile or config.locustfile  # files, comma-separated
    try:
        loaded = lf.load_all([p for p in resolved.split(",") if p])
    except lf.LocustfileError as e:
        raise StartupError(str(e)) from e
    try:
        with _working_directory(options_cwd):
            options = parse_options(
                list(config.argv),
                extra_parser_hook=lambda parser: events.init_command_line_parser.fire(parser=parser),
                checked=True,
                locustfile=resolved,
            )
    except OptionsError as e:
        raise StartupError(str(e)) from e

    if getattr(options, "config_users", None):
        from lcore import user_config

        try:
            user_config.apply(loaded.user_classes, [c for value in options.config_users for c in value])
        except user_config.UserConfigError as e:
            raise StartupError(str(e)) from e
    user_classes = list(loaded.user_classes.values())
    if options.user_classes:
        missing = [n for n in options.user_classes if n not in loaded.user_classes]
        if missing:
            raise StartupError(
                f"Unknown User class(es): {', '.join(missing)} (available: {', '.join(loaded.user_classes)})"
            )
        user_classes = [loaded.user_classes[n] for n in options.user_classes]
    without_tasks = [cls.__name__ for cls in user_classes if not cls.tasks]
    if without_tasks and (options.user_classes or len(without_tasks) == len(user_classes)):
        from lcore.users import no_tasks_message

        raise StartupError(
            " ".join(no_tasks_message(cls) for cls in user_classes if not cls.tasks)
        )
    if without_tasks:
        # as Locust runs the others: a base class left without tasks is not an error
        log.warning("Not running %s: no tasks defined", ", ".join(without_tasks))
        user_classes = [cls for cls in user_classes if cls.tasks]
    # a worker filters again with the master's tags when it is welcomed (core/task_tags.py)
    apply_tags(user_classes, options.tags, options.exclude_tags)
    shape = next(iter(loaded.shape_classes.values()), None)
    try:
        env = _environment(loaded, options, user_classes, shape, events)
    except ValueError as e:  # Locust's checks (duplicate class names ...): one line
        raise StartupError(str(e)) from e
    env.profile = getattr(options, "profile", None)
    if getattr(options, "equal_weights", False):
        env.assign_equal_weights()
    env.assign_host()
    return env, loaded, options


def _environment(loaded: Any, options: argparse.Namespace, user_classes: list[Any], shape: Any, events: Any) -> Any:
    from lcore import step_load
    from lcore.env import Environment

    return Environment(
        user_classes=user_classes,
        # --step-load is a built-in shape; a shape in the locustfile takes precedence
        shape_class=shape() if shape is not None else step_load.from_options(options),
        tags=options.tags,
        exclude_tags=options.exclude_tags,
        events=events,
        host=options.host,
        reset_stats=options.reset_stats,
        stop_timeout=options.stop_timeout,
        parsed_options=options,
        available_user_classes=dict(loaded.user_classes),
        available_shape_classes=dict(loaded.shape_classes),
        locustfile=loaded.path,
    )


def locustfile_paths(options: argparse.Namespace) -> list[str]:
    """The locustfiles of the test: ``-f`` as the launcher resolved it (comma-separated)."""
    return [p for p in str(options.locustfile).split(",") if p]


# what parse_options adds to the parser's options (launcher/options.py)
_LAUNCHER_STATE = frozenset({"locustfiles"})


def custom_options(options: argparse.Namespace) -> dict[str, Any]:
    """Options a locustfile added, and the master's --tags/--exclude-tags (the master decides
    which tasks run, Locust #1392): the master sends them to every worker, remote ones too."""
    from .options import build_parser

    # the launcher's own bookkeeping (the resolved locustfile paths, how many workers this
    # master waits for) is no option of the locustfile: it stays here, as any local path does
    known = set(vars(build_parser(add_help=False).parse_args([]))) | _LAUNCHER_STATE
    simple = (str, int, float, bool, type(None), list)
    sent = {
        k: v
        for k, v in vars(options).items()
        if k not in known and not k.startswith("_") and isinstance(v, simple)
    }
    sent["tags"] = getattr(options, "tags", None)
    sent["exclude_tags"] = getattr(options, "exclude_tags", None)
    if getattr(options, "config_users", None):
        sent["config_users"] = options.config_users
    sent["iterations"] = getattr(options, "iterations", 0)
    return sent


def run_master(config: Config, endpoints: list[str], run_uid: str | None = None) -> int:
    """The master process: ``run_uid`` is the run id the launcher made (its lines carry it)."""
    # the locustfile's code on the master gets the patching Locust gives it (its greenlets and
    # handlers block cooperatively); the master's own asyncio loop runs on the hub beside them
    from .patching import patch_all

    patch_all()
    c = config
    c.setup_logging("master")
    try:
        env, loaded, options = load_environment(c)
    except StartupError as e:
        log.error("%s", e)
        return 1
    for notice in options._config_notices:  # Locust's config files' settings lcore lacks
        log.warning("%s", notice)
    from lcore import hub_loop
    from lcore.bundle import Source
    from lcore.locustfile import digest_all
    from lcore.master import MasterRuntime

    from .master_main import master_async

    runtime = MasterRuntime(
        env,
        endpoints=endpoints,
        digest=digest_all(c.locustfiles),
        options_for_workers=custom_options(options),
        heartbeat_interval=c.heartbeat_interval,
        heartbeat_timeout=c.heartbeat_timeout,
        run_time=c.run_time,
        # --autostart keeps the page up after the test, unless --autoquit says when to leave
        quit_when_stopped=c.headless,
        curve=c.master_keys,
        iterations=c.iterations,
        max_stats_entries=c.max_stats_entries,
        arrival_rate=c.arrival_rate,
        # a shape decides, -u is ignored (Locust's rule) unless it uses the common options
        arrival_ceiling=c.num_users
        if env.shape_class is None or getattr(env.shape_class, "use_common_options", False)
        else None,
        max_rps=c.max_rps,
        run_uid=run_uid,
        # for remote workers started with -f -, packed when the first one asks; a local run
        # has its own workers, and keeps its files to itself
        bundle_source=Source(tuple(c.locustfiles), os.getcwd(), c.bundle_max_bytes) if c.master else None,
    )
    if not c.no_web:  # before init: its listeners add routes to environment.web_ui.app
        from lcore.exporters.web_flask import app_templates, login_page
        from lcore.web_ui import WebUI

        WebUI(
            env,
            web_login=c.web_login,
            base_path=c.web_base_path,
            login_page=login_page,
            templates=app_templates(c.web_base_path),
        )
    try:
        if not fire_init(env, runtime):
            return 1
        code = hub_loop.run(master_async(runtime, options, c.worker_count_expected))
        # The test is over and reported; the loop that handled SIGTERM is gone. A SIGTERM from
        # now on (docker compose stops every container once the workers have quit) would only
        # replace lcore's exit code with 143: ignore it. A second Ctrl-C still kills (launcher).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        env.events.quit.fire(exit_code=code)
        return code
    except StartupError as e:
        log.error("%s", e)
        return 1


def run_worker(config: Config, endpoint: str, remote: bool, index: int) -> int:
    # before anything else is imported: the locustfile and its libraries must see patched modules
    from .patching import patch_all

    patch_all()
    config.setup_logging(f"worker-{index}")
    if remote:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not config.fetched:
        return _serve_worker(config, endpoint, remote)
    from lcore.bundle import BundleError

    from .fetch import fetch

    # SIGTERM until the worker runtime takes it over (fetching, importing the locustfile):
    # exit through the finally below, which removes the directory
    signal.signal(signal.SIGTERM, _exit_on_signal)
    fetched = None
    try:
        fetched = fetch(
            endpoint,
            timeout=config.connect_timeout,
            max_bytes=config.bundle_max_bytes,
            curve=config.worker_keys,
        )
        # relative paths in the locustfile (a CSV feeder) resolve as on the master; the
        # worker's own options (lcore.conf, --config) are still read where it was started
        started_in = os.getcwd()
        os.chdir(fetched.manifest.workdir)
        return _serve_worker(
            config, endpoint, remote, locustfile=fetched.locustfile, options_cwd=started_in
        )
    except BundleError as e:
        log.error("%s", e)
        return 1
    finally:
        if fetched is not None:
            fetched.remove()


@contextlib.contextmanager
def _working_directory(path: str | None) -> Iterator[None]:
    if path is None:
        yield
        return
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve_worker(
    config: Config,
    endpoint: str,
    remote: bool,
    locustfile: str | None = None,
    options_cwd: str | None = None,
) -> int:
    c = config
    try:
        env, loaded, options = load_environment(c, options_cwd, locustfile)
    except StartupError as e:
        log.error("%s", e)
        return 1
    from lcore.locustfile import digest_all
    from lcore.worker import WorkerRuntime

    runtime = WorkerRuntime(
        env,
        endpoint=endpoint,
        digest=digest_all(locustfile_paths(options)),
        remote=remote,
        stats_interval=c.stats_interval,
        heartbeat_interval=c.heartbeat_interval,
        heartbeat_timeout=c.heartbeat_timeout,
        first_connect_timeout=c.connect_timeout,
        curve=c.worker_keys,
    )
    if not remote and not c.no_web:
        # a local worker stands where Locust's single process stands: a locustfile that
        # asserts environment.web_ui in init (Locust's bottlenecked_server.py) runs; the
        # routes it adds here are served by the master, which imported the same file
        from lcore.web_ui import WebUI

        WebUI(env, web_login=c.web_login, base_path=c.web_base_path)
    # init fires once the master has welcomed this worker, as in Locust: worker_index and the
    # options the master passes on are known by then
    def on_connected() -> None:
        if not fire_init(env, runtime):
            runtime.fail(EXIT_FATAL)

    code = runtime.run(on_connected=on_connected)
    env.events.quit.fire(exit_code=code)
    return code


def fire_init(env: Any, runtime: Any) -> bool:
    """events.init; a listener that raises is fatal, as in Locust: logged (once, by the hook),
    then this process exits 1 before any user starts."""
    hook = env.events.init
    before = hook.errors
    try:
        hook.fire(environment=env, runner=runtime, web_ui=getattr(env, "web_ui", None))
    except Exception as e:  # StopTest/StopUser from an init listener: the same
        log.error("An init event listener raised %s: %s", type(e).__name__, e)
        return False
    if hook.errors != before:
        log.error("An init event listener failed (see above): exiting before any user starts")
        return False
    return True
