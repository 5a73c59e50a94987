"""The open model in code: a ramping arrival rate, whatever the target's response times.

    lcore -f examples/open_model.py -H http://127.0.0.1:8080 --headless --processes 2

(start a target first: ``python -m lcore.target --port 8080``). The shape ramps from 0 to 200
task runs per second over 10 s, holds 200/s for 20 s, goes up to 500/s over 10 s, then back down
to 0 over 10 s and ends; at most 300 users run at once. Without the shape, the same users at a
fixed rate: ``--arrival-rate 200 -u 300 -t 1m``.
"""

from lcore import HttpUser, RampingArrivalRate, TaskSet, task


class Browse(TaskSet):
    # with an arrival rate, each arrival runs one task: the first arrival on a user that
    # enters this TaskSet runs on_start, then `index`; its next arrivals run `item`, `item`
    # ... until `leave` (weight 1 in 5) calls interrupt() and the next arrival picks again
    # from the user's own tasks
    def on_start(self):
        self.client.get("/")

    @task(4)
    def item(self):
        self.client.get("/item?id=7", name="/item")

    @task(1)
    def leave(self):
        self.interrupt()


class Shopper(HttpUser):
    # on_start runs once per user, when the pool creates it for an arrival that finds no free
    # user; the user is then reused by later arrivals (wait_time is not used: the schedule is)
    def on_start(self):
        self.client.get("/login")

    tasks = {Browse: 3}

    @task(1)
    def home(self):
        self.client.get("/")


class Ramp(RampingArrivalRate):
    # (seconds, rate at the end of the stage): linear from the previous stage's rate
    stages = [(10, 200), (20, 200), (10, 500), (10, 0)]
    users = 300  # the ceiling of concurrent users (default 1000)
