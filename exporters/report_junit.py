"""``--junit FILE``: the threshold results as a JUnit XML report, one test case per threshold.

The layout is the one CI systems read (GitLab, Jenkins, GitHub test reporters)::

    <testsuites name tests failures errors time>
      <testsuite name tests failures errors skipped time timestamp hostname id package>
        <properties/>
        <testcase name classname time>
          <failure message type>details</failure>      only for a failed threshold
        </testcase>
        <system-out/> <system-err/>
"""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from .thresholds import Result

__all__ = ["junit_tree", "write_junit"]

CLASSNAME = "lcore.thresholds"


def junit_tree(
    results: Iterable[Result],
    suite_name: str = "lcore thresholds",
    *,
    duration: float = 0.0,
    timestamp: datetime | None = None,
    properties: Mapping[str, str] | None = None,
) -> ET.ElementTree:
    """The report as an element tree. ``duration`` (s) is the test's, shown as the suite's
    time; ``properties`` (e.g. host, users) are listed in the suite."""
    results = list(results)
    failures = sum(not r.passed for r in results)
    when = (timestamp or datetime.now(timezone.utc)).replace(microsecond=0)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0"}
    time_text = f"{max(duration, 0.0):.3f}"

    root = ET.Element("testsuites", {"name": suite_name, **counts, "time": time_text})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": suite_name,
            **counts,
            "skipped": "0",
            "time": time_text,
            # the common schema wants a local timestamp without a zone
            "timestamp": when.astimezone().replace(tzinfo=None).isoformat(),
            "hostname": socket.gethostname() or "localhost",
            "id": "0",
            "package": CLASSNAME,
        },
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (properties or {}).items():
        ET.SubElement(props, "property", {"name": str(key), "value": str(value)})
    for result in results:
        case = ET.SubElement(
            suite, "testcase", {"name": result.threshold.text, "classname": CLASSNAME, "time": "0"}
        )
        if not result.passed:
            failure = ET.SubElement(
                case, "failure", {"message": result.message(), "type": "ThresholdFailed"}
            )
            failure.text = result.line()
    ET.SubElement(suite, "system-out")
    ET.SubElement(suite, "system-err")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(
    results: Iterable[Result],
    path: str | os.PathLike[str],
    suite_name: str = "lcore thresholds",
    *,
    duration: float = 0.0,
    timestamp: datetime | None = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Write the report to ``path`` (UTF-8, with an XML declaration); raises OSError."""
    tree = junit_tree(
        results, suite_name, duration=duration, timestamp=timestamp, properties=properties
    )
    tree.write(path, encoding="utf-8", xml_declaration=True)
