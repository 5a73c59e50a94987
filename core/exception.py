"""Exceptions a locustfile raises or catches, with Locust's names.

LocustError
├── InterruptTaskSet           leave the current TaskSet (reschedule or not)
├── MissingWaitTimeError
└── RunnerError                the engine refuses something (e.g. a message type)
    └── RunnerAlreadyExistsError  a second runner for one Environment
StopUser                       stop this user (on_stop runs); Exception, as Locust's
└── StopTest                   stop the whole test (headless: quit)
RescheduleTask                 skip the wait, pick the next task now
RescheduleTaskImmediately      same, kept for Locust compatibility
CatchResponseError             raised inside ``catch_response`` blocks, a failure
ResponseError                  raised by ``Response.raise_for_status``
"""

from __future__ import annotations


class LocustError(Exception):
    pass


class ResponseError(Exception):
    pass


class CatchResponseError(Exception):
    pass


class MissingWaitTimeError(LocustError):
    pass


class InterruptTaskSet(LocustError):
    def __init__(self, reschedule: bool = True) -> None:
        super().__init__()
        self.reschedule = reschedule


class StopUser(Exception):
    pass


class StopTest(StopUser):
    """Ends the whole test: the user that raises it stops (its ``on_stop`` runs), the master
    stops the test, and a headless run quits. A subclass of StopUser, so that every place a
    user's loop ends on StopUser ends on it too."""


class RescheduleTask(Exception):
    pass


class RescheduleTaskImmediately(Exception):
    pass


class RunnerError(LocustError):
    pass


class RunnerAlreadyExistsError(RunnerError):
    """``create_local_runner()`` on an Environment that has a runner already."""


# Locust's names for a few rarely used ones, so `from locust.exception import X` works.
RPCError = RunnerError
RPCReceiveError = RunnerError
RPCSendError = RunnerError
