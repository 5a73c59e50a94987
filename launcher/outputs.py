"""Outputs named on the command line, in one place: ``--out NAME=TARGET`` (k6's way) resolved
onto the options that do the work, ``--label KEY=VALUE``, and the checks of the push outputs.

    --out json=FILE           --json-file FILE      (Locust's --json still prints to stdout)
    --out csv=PREFIX          --csv PREFIX
    --out html=FILE           --html FILE
    --out junit=FILE          --junit FILE
    --out prometheus-rw=URL   --prometheus-remote-write URL  (k6's experimental-prometheus-rw too)
    --out otlp=URL            --otel, OTLP endpoint URL       (k6's opentelemetry too)

A name given both ways must name the same target; anything else is a one-line error.
"""

from __future__ import annotations

import argparse
import importlib.util
import urllib.parse

from .parser import OptionsError

OutputError = OptionsError

# --out name -> (option dest, the option's flag for messages)
OUTPUTS: dict[str, tuple[str, str]] = {
    "json": ("json_file", "--json-file"),
    "csv": ("csv_prefix", "--csv"),
    "html": ("html_file", "--html"),
    "junit": ("junit_file", "--junit"),
    "prometheus-rw": ("prometheus_remote_write", "--prometheus-remote-write"),
    "otlp": ("_otlp_endpoint", "--otel"),  # not sent to workers (no locustfile option)
}
ALIASES = {
    "experimental-prometheus-rw": "prometheus-rw",
    "prometheus-remote-write": "prometheus-rw",
    "opentelemetry": "otlp",
    "otel": "otlp",
}


def parse_label(text: str) -> tuple[str, str]:
    """``"env=staging"`` -> ``("env", "staging")``, by the results store's rule (any key: the
    outputs that need label names, Prometheus and OTLP, make one of it with
    ``exporters.push.label_name``)."""
    from lcore.exporters.results_record import parse_label as parse

    try:
        return parse(text)
    except ValueError as e:
        raise OutputError(str(e)) from None


def resolve_outputs(options: argparse.Namespace) -> None:
    """Apply ``options.outputs`` (``--out``) onto the options that do the work and check the
    push outputs; raises OptionsError. Safe to call twice."""
    for text in getattr(options, "outputs", None) or []:
        name, sep, target = text.partition("=")
        name = ALIASES.get(name.strip().lower(), name.strip().lower())
        if name not in OUTPUTS:
            known = ", ".join(OUTPUTS)
            raise OutputError(f"--out {text}: unknown output {name!r} (known: {known})")
        if not sep or not target:
            raise OutputError(f"--out {name} needs a target: --out {name}=...")
        dest, flag = OUTPUTS[name]
        given = getattr(options, dest, None)
        if given and given != target:
            raise OutputError(f"--out {name}={target} and {flag} {given} name two targets: keep one")
        setattr(options, dest, target)
        if name == "otlp":
            options.otel = True
    labels = getattr(options, "labels", None) or []
    seen: dict[str, str] = {}
    for key, value in labels:
        if key in seen and seen[key] != value:
            raise OutputError(f"--label {key} is given twice, as {seen[key]!r} and {value!r}")
        seen[key] = value
    url = getattr(options, "prometheus_remote_write", None)
    if url:
        check_remote_write_url(url)
        if options.prometheus_remote_write_auth and options.prometheus_remote_write_token:
            raise OutputError(
                "--prometheus-remote-write-auth and --prometheus-remote-write-token: choose one"
            )
        if options.prometheus_remote_write_auth and ":" not in options.prometheus_remote_write_auth:
            raise OutputError("--prometheus-remote-write-auth is USER:PASSWORD")
    endpoint = getattr(options, "_otlp_endpoint", None)
    if endpoint:
        check_http_url(endpoint, "--out otlp")
    if getattr(options, "push_interval", 5.0) <= 0:
        raise OutputError(f"--push-interval must be greater than 0, not {options.push_interval}")
    if getattr(options, "otel", False) and importlib.util.find_spec("opentelemetry") is None:
        raise OutputError("--otel needs the OpenTelemetry SDK: pip install 'lcore[otel]'")
    pushes = url or getattr(options, "otel", False)
    if pushes and getattr(options, "worker", False):
        raise OutputError("outputs that push (--prometheus-remote-write, --otel) belong on the master")


def check_http_url(url: str, flag: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputError(f"{flag} needs an http:// or https:// URL with a host")
    return parts


def check_remote_write_url(url: str) -> None:
    check_http_url(url, "--prometheus-remote-write")
