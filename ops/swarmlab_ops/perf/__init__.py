"""`swarmlab-ops perf` (issue 17): bare vs Swarm and 1 vs 4 replicas with wrk in one run, behind the
quiet-machine guard. run.py runs the cases; figures.py (pure) has the targets, the table and the
docs rewrite; settings.py reads the stack's per-replica gunicorn settings and the image's threads."""
