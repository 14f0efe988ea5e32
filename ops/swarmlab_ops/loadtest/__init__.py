"""Load test of the counter app: bare gunicorn vs single mode vs the Swarm stack, and a replica sweep.

See run.py for the cases; stats.py (pure figures), cpu.py (/proc sampling), locust.py (running
Locust and the bare app), profile.py (wrk and redis-cli along the path), report.py (tables, chart).
"""
