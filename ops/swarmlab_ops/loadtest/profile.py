"""Where the time goes: wrk along the path host -> edge -> overlay -> web, redis-cli --latency.

The overlay probes run in a probe container on the manager, attached to the stack's (attachable) frontend
overlay network, created through the manager's Engine API, with this machine's wrk and its library
copied into the node (Debian 12 on both sides).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Callable

from ..lab.swarm import Swarm
from ..report import log
from .locust import loadavg

PROBE_DIR = "/opt/loadtest-probe"
RESOLVE = ("import socket,sys; print(' '.join(sorted(set(a[4][0] for a in "
           "socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)))))")
# redis-cli --latency --raw -i S samples for S seconds, prints "min max avg samples" (ms) once.
REDIS_LATENCY = ("REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" "
                 "redis-cli -h {h} --latency --raw -i {s} 2>&1 | tail -n 1")


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The WRK_JSON line our wrk_report.lua prints, with requests/s added."""
    line = next((l for l in stdout.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        return {"error": stdout.strip()[-300:]}
    data = json.loads(line.split(" ", 1)[1])
    data["rps"] = round(data["requests"] / (data["duration_us"] / 1e6), 1)
    return data


def wrk(url: str, connections: int, seconds: int, lua: str,  # pylint: disable=too-many-arguments
        run: Callable[[list[str]], str] | None = None, binary: str = "wrk", method: str = "GET",
        threads: int = 1) -> dict[str, Any]:
    """wrk -t<threads> -c<connections> on this machine, or through `run` (an exec in the probe container)."""
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", lua, url]
    if run is None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False,
                              env={**os.environ, "WRK_METHOD": method})
        return parse_wrk(proc.stdout + proc.stderr)
    return parse_wrk(run(argv))


def _tar_dir(path: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname=arcname)
    return buf.getvalue()


def run_profile(swarm: Swarm, edge_url: str, seconds: int, outdir: Path, lua: Path) -> dict[str, Any]:
    prof: dict[str, Any] = {"load_avg_start": loadavg(), "wrk": {}, "redis": {}}
    log(f"profile: wrk {seconds}s per probe (load average {prof['load_avg_start']})")
    prof["wrk"]["host -> edge, 1 conn"] = wrk(edge_url + "/api/counter", 1, seconds, str(lua))
    prof["wrk"]["host -> edge, 32 conn"] = wrk(edge_url + "/api/counter", 32, seconds, str(lua))
    probe_dir = outdir / "probe"
    probe_dir.mkdir(exist_ok=True)
    shutil.copy2("/usr/bin/wrk", probe_dir / "wrk")
    shutil.copy2(os.path.realpath("/lib/x86_64-linux-gnu/libluajit-5.1.so.2"), probe_dir / "libluajit-5.1.so.2")
    shutil.copy2(lua, probe_dir / "probe.lua")
    node = swarm.lab.host.containers.get(swarm.manager.container)
    node.exec_run(["rm", "-rf", PROBE_DIR])
    node.put_archive(os.path.dirname(PROBE_DIR), _tar_dir(probe_dir, os.path.basename(PROBE_DIR)))
    engine = swarm.manager.client()
    image = swarm.image("web")
    for old in engine.containers.list(all=True, filters={"name": "loadtest-probe"}):
        old.remove(force=True)
    probe = engine.containers.run(image, [str(20 * seconds + 120)], entrypoint=["sleep"], name="loadtest-probe",
                                  network=f"{swarm.stack}_frontend", user="0", detach=True,
                                  volumes={PROBE_DIR: {"bind": PROBE_DIR, "mode": "ro"}},
                                  environment={"LD_LIBRARY_PATH": PROBE_DIR, "WRK_METHOD": "GET"})

    def in_probe(argv: list[str]) -> str:
        return probe.exec_run(argv, environment={"WRK_METHOD": "GET"}).output.decode(errors="replace")

    try:
        web_ips = in_probe(["python3", "-c", RESOLVE, "tasks.web"]).split()
        edge_ips = in_probe(["python3", "-c", RESOLVE, "tasks.edge"]).split()
        lua_in, binary = f"{PROBE_DIR}/probe.lua", f"{PROBE_DIR}/wrk"
        if edge_ips:
            prof["wrk"]["overlay probe -> edge, 1 conn"] = wrk(
                f"http://{edge_ips[0]}:8080/api/counter", 1, seconds, lua_in, in_probe, binary)
        for ip in web_ips:
            prof["wrk"][f"overlay probe -> web {ip} direct, 1 conn"] = wrk(
                f"http://{ip}:8000/api/counter", 1, seconds, lua_in, in_probe, binary)
        if web_ips:
            prof["wrk"][f"overlay probe -> web {web_ips[0]} direct, 32 conn"] = wrk(
                f"http://{web_ips[0]}:8000/api/counter", 32, seconds, lua_in, in_probe, binary)
        if edge_ips:
            prof["wrk"]["overlay probe -> edge, 32 conn"] = wrk(
                f"http://{edge_ips[0]}:8080/api/counter", 32, seconds, lua_in, in_probe, binary)
        prof["web_tasks"] = web_ips
    finally:
        probe.remove(force=True)
    for label, service, host in (("in master container (loopback)", "redis-master", "127.0.0.1"),
                                 ("replica container -> master (overlay)", "redis-replica-1", "redis-master")):
        tasks = swarm.running_tasks(service) if swarm.has_service(service) else []
        if not tasks:
            prof["redis"][label] = "no task found"
            continue
        container = swarm.lab.nodes[tasks[0]["node"]].client().containers.get(tasks[0]["container_id"])
        prof["redis"][label] = container.exec_run(
            ["sh", "-c", REDIS_LATENCY.format(s=seconds, h=host)]).output.decode(errors="replace").strip()
    prof["load_avg_end"] = loadavg()
    (outdir / "profile.json").write_text(json.dumps(prof, indent=2))
    return prof
