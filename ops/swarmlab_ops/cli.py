"""swarmlab-ops: the ops tooling's one entry point.

    swarmlab-ops drills [--drills web-kill,registry] [--short]     fault drills (docs/reliability.md)
    swarmlab-ops write-loss [--faults 21] [--wait all|N]            write-loss checker (issue 14)
    swarmlab-ops ha-drill [--stop-mode kill]                        manager (leader) loss drill
    swarmlab-ops loadtest [--bare] [--replicas 1,2,4] [--profile]   load test (docs/performance.md)
    swarmlab-ops perf [--write-docs]                                bare vs Swarm, 1 vs 4 replicas (wrk, issue 17)
    swarmlab-ops bench [--locust]                                   bare app benchmark on loopback
    swarmlab-ops bench-site                                         site.yml on bare nodes, then the re-run

Benchmarks (perf, bench, loadtest, bench-site) first print the quiet-machine guard (quiet.py).
The lab is named by --lab (default: $SWARMLAB_LAB_NAME, else swarmlab). Results go under results/.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _lab_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", default=os.environ.get("SWARMLAB_LAB_NAME") or "swarmlab",
                        help="lab name (default: $SWARMLAB_LAB_NAME, else swarmlab)")
    parser.add_argument("--stack", default="swarmlab", help="stack name")


def parser() -> argparse.ArgumentParser:
    # Imports here stay light: each subcommand loads its own code when it runs.
    from . import drills, writeloss  # pylint: disable=import-outside-toplevel
    from .loadtest import run as loadtest  # pylint: disable=import-outside-toplevel
    from . import bench, benchsite, hadrill  # pylint: disable=import-outside-toplevel
    from .perf import run as perf  # pylint: disable=import-outside-toplevel

    top = argparse.ArgumentParser(prog="swarmlab-ops", description=__doc__.split("\n\n", maxsplit=1)[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog=__doc__.split("\n\n", 1)[1])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cmd = sub.add_parser("drills", help="fault drills under load", description=drills.__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _lab_args(cmd)
    drills.add_arguments(cmd)
    cmd.add_argument("--json", type=Path, help="write the results here (default: results/drills/<time>/drills.json)")
    cmd.set_defaults(func=drills.run)

    cmd = sub.add_parser("write-loss", help="write-loss checker: writers, Redis faults, accounting",
                         description=writeloss.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _lab_args(cmd)
    writeloss.add_arguments(cmd)
    cmd.set_defaults(func=lambda args: 0 if writeloss.run(args) else 1)

    cmd = sub.add_parser("ha-drill", help="manager (leader) loss drill", description=hadrill.__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _lab_args(cmd)
    hadrill.add_arguments(cmd)
    cmd.set_defaults(func=hadrill.run)

    cmd = sub.add_parser("loadtest", help="load test: bare, single, swarm, replica sweep",
                         description=loadtest.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _lab_args(cmd)
    loadtest.add_arguments(cmd)
    cmd.set_defaults(func=loadtest.run)

    cmd = sub.add_parser("perf", help="bare vs Swarm and 1 vs 4 replicas with wrk, quiet-machine guard",
                         description=perf.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _lab_args(cmd)
    perf.add_arguments(cmd)
    cmd.set_defaults(func=perf.run)

    cmd = sub.add_parser("bench", help="bare app benchmark on loopback (wrk, Locust)", description=bench.__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(cmd)
    cmd.set_defaults(func=bench.run)

    cmd = sub.add_parser("bench-site", help="site.yml on bare lab nodes, then the idempotent re-run (own lab)",
                         description=benchsite.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchsite.add_arguments(cmd)
    cmd.set_defaults(func=benchsite.run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
