"""Load profile for the counter app: mostly reads, some writes, like people watching a counter.

Headless, several processes so Locust itself is not the bottleneck, e.g.:
  locust -f app/locustfile.py --headless -H http://127.0.0.1:8000 -u 64 -r 16 -t 20s --processes 2
"""
from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task


class CounterUser(FastHttpUser):
    # Zero think time by default (a load test); set LOCUST_WAIT_MAX for a gentler crowd.
    wait_time = between(0, float(os.environ.get("LOCUST_WAIT_MAX", "0")))

    @task(16)
    def read(self) -> None:
        self.client.get("/api/counter", name="GET /api/counter")

    @task(3)
    def increment(self) -> None:
        body = {"by": random.randint(1, 5)} if random.random() < 0.3 else None
        self.client.post("/api/counter/increment", json=body, name="POST /api/counter/increment")

    @task(2)
    def decrement(self) -> None:
        self.client.post("/api/counter/decrement", name="POST /api/counter/decrement")

    @task(1)
    def reset(self) -> None:
        with self.client.post("/api/counter/reset", name="POST /api/counter/reset",
                              catch_response=True) as resp:
            if resp.status_code == 200 and resp.json().get("value") != 0:
                resp.failure(f"reset returned {resp.text}")
