"""Commands that run in the launcher's own process: --run-single-user, --list, --show-task-ratio."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("lcore.main")


def task_ratios(holder: Any, ratio: float = 1.0) -> dict[str, Any]:
    """Each task's share of its holder's picks, nested for task sets (Locust's layout)."""
    tasks = holder.tasks
    counts: dict[Any, int] = {}
    for t in tasks:
        counts[t] = counts.get(t, 0) + 1
    result: dict[str, Any] = {}
    for t, n in counts.items():
        share = ratio * n / len(tasks)
        entry: dict[str, Any] = {"ratio": share}
        if isinstance(t, type) and hasattr(t, "tasks"):
            entry["tasks"] = task_ratios(t, share)
        result[getattr(t, "__name__", repr(t))] = entry
    return result


def run_inspection(config: Config) -> int:
    from .patching import patch_all

    patch_all()
    from .processes import StartupError, load_environment

    try:
        env, _loaded, options = load_environment(config)
    except StartupError as e:
        sys.stderr.write(f"lcore: error: {e}\n")
        return 1
    if options.list_commands:
        print("Available Users:")
        for name in env.available_user_classes:
            print(f"    {name}")
        return 0
    if options.show_task_ratio or options.show_task_ratio_json:
        total_weight = sum(getattr(c, "weight", 1) for c in env.user_classes) or 1
        ratios = {
            c.__name__: {"ratio": getattr(c, "weight", 1) / total_weight, "tasks": task_ratios(c)} for c in env.user_classes
        }
        if options.show_task_ratio_json:
            print(json.dumps({"per_class": ratios}, indent=4))
        else:
            _print_ratios(ratios, 0)
        return 0
    from lcore.single import run_single_user

    user_class = env.user_classes[0]
    runner = run_single_user(user_class, environment=env, loglevel=None, run_time=config.run_time)
    return 1 if runner.merged.total.num_failures or runner.merged.exceptions else 0


def _print_ratios(ratios: dict[str, Any], depth: int) -> None:
    for name, entry in ratios.items():
        print(f"{'    ' * depth}{entry['ratio'] * 100:5.1f}% {name}")
        if "tasks" in entry:
            _print_ratios(entry["tasks"], depth + 1)
