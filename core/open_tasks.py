"""What one arrival of the open model runs: exactly one task function of a user (gevent side).

The schedule decides when a user's next task starts, so ``wait_time`` is never slept. A user's
tasks are picked as in the closed model (``schedule_task``'s queue first, else by weight). A
TaskSet picked as a task is *entered* — its ``on_start`` runs — and the same arrival goes on
to its first task; the user stays inside it, one task per arrival, nested sets alike, until a
task calls ``interrupt()`` (the set's ``on_stop`` runs; the next arrival picks from the parent
again). A TaskSet that overrides ``run`` or ``wait`` drives its own loop: one arrival then runs
that loop to its end, waits included.
"""

from __future__ import annotations

import random
from typing import Any

from gevent import GreenletExit

from .exception import InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopUser
from .users import TaskSet, User, _is_taskset_class


def run_one_task(user: User) -> None:
    """One arrival on ``user``. Raises StopUser (the user ends) and GreenletExit (a kill); the
    TaskSets it is inside have run their ``on_stop`` by then."""
    stack: list[TaskSet] = user.__dict__.setdefault("_open_stack", [])
    try:
        while True:  # until a task function has run
            holder: Any = stack[-1] if stack else user
            if user._lifecycle.stop_requested:
                raise StopUser()
            t = _pick(holder)
            if _is_taskset_class(t):
                taskset = t(holder)
                if not taskset._drivable():
                    _run_whole(user, taskset)
                    return
                try:
                    taskset.on_start()
                except InterruptTaskSet:
                    continue  # left at once: pick again from the parent
                except (StopUser, GreenletExit):
                    raise
                except Exception as e:
                    user._task_failed(e)
                stack.append(taskset)
                continue
            try:
                if holder is user:
                    t(user)
                else:
                    holder.execute_task(t)
            except InterruptTaskSet:
                if holder is not user:
                    stack.pop()
                    holder._run_on_stop()
            except (RescheduleTask, RescheduleTaskImmediately):
                pass
            except (StopUser, GreenletExit):
                raise
            except Exception as e:
                user._task_failed(e)
            return
    except (StopUser, GreenletExit):
        while stack:
            stack.pop()._run_on_stop()
        raise


def _pick(holder: Any) -> Any:
    queue = holder._task_queue
    if queue:
        return queue.pop(0)
    if isinstance(holder, User):
        return random.choice(holder.tasks)
    return holder.get_next_task()


def _run_whole(user: User, taskset: TaskSet) -> None:
    try:
        taskset.run()
    except (RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet):
        pass
    except (StopUser, GreenletExit):
        raise
    except Exception as e:
        user._task_failed(e)
