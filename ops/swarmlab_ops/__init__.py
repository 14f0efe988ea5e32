"""Ops tooling of the swarmlab.cluster collection, split the way fault-injection tools are.

- client: issues operations and records each outcome (ok / fail / unknown) with timestamps
  (client/http.py through the app, client/redis_writer.py straight at Redis)
- generator: the load schedule (generator.py)
- nemesis: faults on their own schedule (nemesis/)
- checker: reads the history afterwards and decides (checker/)
- report: markdown tables and JSON under results/ (report.py)

The lab is driven through the Docker Engine API (lab/), playbooks through ansible-runner, and the
cluster rules (convergence, task placement) come from the collection's module_utils.
"""
