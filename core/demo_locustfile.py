"""The locustfile ``lcore --demo`` runs against the embedded target."""

from lcore import HttpUser, between, task


class DemoUser(HttpUser):
    wait_time = between(0.05, 0.2)

    @task(5)
    def index(self) -> None:
        self.client.get("/")

    @task(2)
    def item(self) -> None:
        self.client.get("/json", name="/json")

    @task(1)
    def post(self) -> None:
        self.client.post("/echo", json={"hello": "lcore"})

    @task(1)
    def missing(self) -> None:
        # counted as a success: the demo shows how a failure is reported only on purpose
        with self.client.get("/status/404", catch_response=True) as response:
            if response.status_code == 404:
                response.success()
