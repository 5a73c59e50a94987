"""An example locustfile for deploy/: what docker-compose.yml and the Kubernetes ConfigMap mount.

It exercises the embedded target (``python -m lcore.target``); point -H at your system and
replace the tasks with your own.
"""

from locust import HttpUser, between, task


class WebsiteUser(HttpUser):
    wait_time = between(0.5, 1.5)

    @task(3)
    def index(self):
        self.client.get("/")

    @task(1)
    def item(self):
        self.client.get("/json", name="/json")
