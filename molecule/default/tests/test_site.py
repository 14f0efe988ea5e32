"""site.yml on the lab, as a user of the service sees it: services, the edge, Redis, the registry."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-default")
STACK = "swarmlab"
testinfra_hosts = [f"docker://{LAB}-manager1"]


def edge_url(host) -> str:
    """The edge publishes on the manager's address only (swarm_publish_address, issue 15)."""
    return "http://" + host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip() + ":8080"


def services(host) -> dict[str, str]:
    out = host.check_output("docker service ls --format '{{.Name}} {{.Replicas}}'")
    return dict(line.split(" ", 1) for line in out.splitlines())


def curl_json(host, method: str, path: str) -> tuple[dict, dict]:
    cmd = host.run(f"curl -sS -i -X {method} -m 5 {edge_url(host)}{path}")
    assert cmd.rc == 0, cmd.stderr
    head, _sep, body = cmd.stdout.replace("\r\n", "\n").partition("\n\n")
    headers = dict(
        (k.strip().lower(), v.strip()) for k, _sep, v in (line.partition(":") for line in head.splitlines()[1:])
    )
    assert head.split()[1] == "200", cmd.stdout
    return json.loads(body), headers


def test_every_service_runs_its_replicas(host):
    svc = services(host)
    assert svc[f"{STACK}_web"] == "4/4"
    assert svc[f"{STACK}_redis-master"] == "1/1"
    assert svc[f"{STACK}_redis-replica-1"] == "1/1"
    assert svc[f"{STACK}_redis-replica-2"] == "1/1"
    running, desired = svc[f"{STACK}_edge"].split("/")
    assert int(running) >= 1 and running == desired


def test_web_tasks_spread_over_nodes(host):
    out = host.check_output(
        f"docker service ps {STACK}_web --filter desired-state=running --format '{{{{.Node}}}}'"
    )
    assert len(set(out.split())) >= 2, out


def test_increments_through_the_edge_are_exact(host):
    before, _headers = curl_json(host, "GET", "/api/counter")
    for _attempt in range(20):
        curl_json(host, "POST", "/api/counter/increment")
    after, _headers = curl_json(host, "GET", "/api/counter")
    assert after["value"] - before["value"] == 20


def test_the_edge_spreads_requests_over_all_replicas(host):
    served = set()
    for _attempt in range(100):
        _body, headers = curl_json(host, "GET", "/api/counter")
        served.add(headers["x-served-by"])
    assert len(served) == 4, served


# The lab's own credentials (inventories/lab/group_vars/swarm/credentials.yml; in inventories/lab-ssh's vault).
REDIS_PASSWORD = "lab-redis-gordon"
SENTINEL_PASSWORD = "lab-sentinel-gordon"
BOOT = "/usr/local/lib/swarmlab/redis-boot.sh"
REDIS_SERVICES = ["redis-master", "redis-replica-1", "redis-replica-2",
                  "redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3"]


def task_container(host, service: str):
    """(node host, container id) of the service's running task, on whichever node it runs."""
    node = host.check_output(
        f"docker service ps {STACK}_{service} --filter desired-state=running --format '{{{{.Node}}}}'"
    ).split()[0]
    node_host = host.get_host(f"docker://{LAB}-{node}")
    cid = node_host.check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={STACK}_{service}")
    return node_host, cid


def redis_cli(host, service: str, command: str) -> str:
    """One authenticated command in the service's own container, through its start script (TLS,
    the password from the secret file, never on a command line)."""
    node_host, cid = task_container(host, service)
    kind = "sentinel" if "sentinel" in service else "server"
    return node_host.check_output(f"docker exec {cid} sh {BOOT} cli {kind} {command}")


def redis_info(host, service: str) -> str:
    return redis_cli(host, service, "INFO replication")


@pytest.mark.parametrize("replica", ["redis-replica-1", "redis-replica-2"])
def test_redis_replicas_follow_the_master(host, replica):
    info = redis_info(host, replica)
    assert "role:slave" in info
    assert "master_link_status:up" in info
    # By service name: as deployed, or as the Sentinels name the master after a failover.
    named = redis_cli(host, "redis-sentinel-1", "SENTINEL get-master-addr-by-name mymaster").split()[0]
    master_host = re.search(r"master_host:(\S+)", info).group(1)
    assert master_host == named == "redis-master", info


def test_redis_replicas_and_sentinels_spread_over_the_nodes(host):
    def node_of(service):
        return host.check_output(
            f"docker service ps {STACK}_{service} --filter desired-state=running --format '{{{{.Node}}}}'").split()
    master = node_of("redis-master")
    replicas = node_of("redis-replica-1") + node_of("redis-replica-2")
    sentinels = node_of("redis-sentinel-1") + node_of("redis-sentinel-2") + node_of("redis-sentinel-3")
    # Each replica on a node of its own, never the master's; one Sentinel per node.
    assert len(master) == 1 and len(replicas) == 2 and len(set(replicas)) == 2 and master[0] not in replicas
    assert len(set(sentinels)) == 3


def node_maintenance(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """playbooks/node_maintenance.yml on this lab; the run and its JSON report."""
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "SWARMLAB_LAB_NAME": LAB, "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "json"}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/node_maintenance.yml", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    return run, json.loads(run.stdout)


def task_results(report: dict, name: str) -> list[dict]:
    return [hostres for play in report["plays"] for task in play["tasks"] if task["task"]["name"] == name
            for hostres in task["hosts"].values()]


def test_draining_a_worker_is_accepted_in_check_mode():
    # Before, each Sentinel was pinned without a group: draining any worker stranded one and was
    # refused. Now the worker's replica and Sentinel are reduced (their groups keep running). Check
    # mode plans without changing the node.
    run, report = node_maintenance("-e", "node=worker1", "-e", "maintenance=drain", "--check")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # The drain's own result (the plan before it, for the silences, reports the same).
    results = [hostres for hostres in task_results(report, "Drain the node and wait until its work runs elsewhere")
               if "reduced" in hostres]
    assert len(results) == 1 and results[0]["stranded"] == [], results
    reduced = {item["name"] for item in results[0]["reduced"]}
    assert {f"{STACK}_redis-sentinel-2", f"{STACK}_redis-replica-1"} <= reduced, results[0]["reduced"]


def test_draining_the_masters_node_when_the_drain_would_strand_work_is_refused_before_the_handover(host):
    # manager1 runs the Redis master and the edge, which runs on managers only: the drain would
    # strand the edge even once the master is handed over. Refused at the plan, before the handover:
    # the master stays, nothing is silenced, the node stays active. (With the plan's refusal made
    # non-fatal, the master moved to a worker for a drain the drain task then refused.)
    def master_node() -> str:
        named = redis_cli(host, "redis-sentinel-1", "SENTINEL get-master-addr-by-name mymaster").split()[0]
        return host.check_output(f"docker service ps {STACK}_{named} --filter desired-state=running "
                                 "--format '{{.Node}}'").strip()

    assert master_node() == "manager1"
    run, report = node_maintenance("-e", "node=manager1", "-e", "maintenance=drain")
    assert run.returncode != 0, run.stdout[-3000:]
    plan = task_results(report, "Plan the drain")
    assert len(plan) == 1 and plan[0].get("failed"), plan
    assert plan[0]["msg"].startswith("Refusing to drain manager1:"), plan[0]["msg"]
    assert f"{STACK}_edge" in [item["name"] for item in plan[0]["stranded"]], plan[0]["stranded"]
    ran = {task["task"]["name"] for play in report["plays"] for task in play["tasks"]}
    assert not {n for n in ran if n.startswith(("Switch the master over", "Silence the alerts"))}, ran
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), report["stats"]
    assert master_node() == "manager1"
    assert host.check_output("docker node inspect manager1 --format '{{.Spec.Availability}}'").strip() == "active"


def test_redis_master_sees_two_replicas(host):
    info = redis_info(host, "redis-master")
    assert "role:master" in info
    assert "connected_slaves:2" in info


def test_sentinels_agree_and_know_everyone_by_name(host):
    for i in (1, 2, 3):
        assert redis_cli(host, f"redis-sentinel-{i}", "SENTINEL ckquorum mymaster").startswith("OK 3 usable")
    replicas = redis_cli(host, "redis-sentinel-2", "SENTINEL replicas mymaster")
    assert "redis-replica-1:6379" in replicas and "redis-replica-2:6379" in replicas


def test_redis_and_sentinel_run_as_redis_on_every_node_with_no_password_in_argv_or_environment(host):
    seen = 0
    for node in ("manager1", "worker1", "worker2"):
        node_host = host.get_host(f"docker://{LAB}-{node}")
        for line in node_host.check_output("ps -C redis-server -o pid=,uid=,args=").splitlines():
            pid, uid, args = line.split(None, 2)
            assert uid != "0", (node, line)
            # Read here, compared on the controller: the passwords go to no command line.
            environ = node_host.check_output(f"cat /proc/{pid}/environ | tr '\\0' '\\n'")
            for secret in (REDIS_PASSWORD, SENTINEL_PASSWORD):
                assert secret not in args and secret not in environ, (node, args)
            seen += 1
    assert seen == 6


def test_the_data_volumes_belong_to_redis(host):
    node_host, cid = task_container(host, "redis-master")
    mount = node_host.check_output(
        f"docker inspect --format '{{{{range .Mounts}}}}{{{{if eq .Destination \"/data\"}}}}{{{{.Source}}}}{{{{end}}}}{{{{end}}}}' {cid}")
    owner, mode = node_host.check_output(f"stat -c '%u %a' {mount}").split()
    assert owner != "0" and mode == "700", (mount, owner, mode)
    conf = node_host.check_output(f"stat -c '%u %a' {mount}/redis.conf").split()
    assert conf == [owner, "600"]


# A throwaway client on the stack's network: the Redis image, the stack's CA and the password file
# from the manager (the password reaches redis-cli through a pipe only).
CLIENT_CHECKS = r"""
pw=$(cat /pw)
echo "plain: $(redis-cli -h redis-master -p 6379 PING 2>&1 | head -n 1)"
echo "no-ca: $(redis-cli --tls -h redis-master -p 6379 PING 2>&1 | head -n 1)"
echo "ca: $(printf 'AUTH "%s"
PING
' "$pw" | redis-cli --tls --cacert /ca.crt -h redis-master -p 6379 2>&1 | tail -n 1)"
for c in "SENTINEL MONITOR evil 10.0.0.1 6379 1" "SENTINEL SET mymaster quorum 1" "SENTINEL FAILOVER mymaster"; do
  echo "sentinel $c: $(redis-cli --tls --cacert /ca.crt -h redis-sentinel-1 -p 26379 $c 2>&1 | head -n 1)"
done
"""


def test_clients_need_tls_the_ca_and_the_sentinel_password(host):
    image = host.check_output(f"docker service inspect {STACK}_redis-master --format "
                              "'{{.Spec.TaskTemplate.ContainerSpec.Image}}'").split("@")[0]
    # The backend is not attachable (issue 15): the client shares the network namespace of the
    # master's task (on this manager) instead.
    master = host.check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={STACK}_redis-master").split()[0]
    out = host.check_output(
        f"docker run --rm --network container:{master} -v /opt/swarmlab/stack/tls/ca/ca.crt:/ca.crt:ro "
        f"-v /opt/swarmlab/stack/secrets/redis_password:/pw:ro {image} sh -c %s", CLIENT_CHECKS)
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert "PONG" not in lines["plain"], out          # no plaintext port
    assert "certificate verify failed" in lines["no-ca"], out
    assert lines["ca"] == "PONG", out
    for command in ("MONITOR", "SET", "FAILOVER"):
        reply = next(v for k, v in lines.items() if k.startswith(f"sentinel SENTINEL {command}"))
        assert reply.startswith("NOAUTH"), out


def test_the_pushed_image_is_in_the_registry_catalog(host):
    image = host.check_output(f"docker service inspect {STACK}_web --format '{{{{.Spec.TaskTemplate.ContainerSpec.Image}}}}'")
    registry, _sep, ref = image.partition("/")
    repo, _sep, tag = ref.split("@")[0].partition(":")
    ca = f"/etc/docker/certs.d/{registry}/ca.crt"
    catalog = json.loads(host.check_output(f"curl -sS --cacert {ca} -u moby:gordon https://{registry}/v2/_catalog"))
    assert repo in catalog["repositories"]
    tags = json.loads(host.check_output(f"curl -sS --cacert {ca} -u moby:gordon https://{registry}/v2/{repo}/tags/list"))
    assert tag in tags["tags"]


CONNECT = ("import socket, sys\n"
           "s = socket.socket(); s.settimeout(2.5)\n"
           "try:\n    s.connect((sys.argv[1], 8080)); print('connected')\n"
           "except ConnectionRefusedError:\n    print('refused')\n"
           "except OSError as exc:\n    print('held back' if isinstance(exc, TimeoutError) else repr(exc))\n")


@pytest.mark.parametrize("name, guarded", [("manager1", True), ("worker1", False), ("worker2", False)])
def test_the_nodes_the_edge_may_run_on_guard_its_ports_and_only_they(host, name, guarded):
    # stack_edge_constraints: managers. The guard comes back at boot through its unit.
    import testinfra  # pylint: disable=import-outside-toplevel

    node = testinfra.get_host(f"docker://{LAB}-{name}")
    rules = node.run("iptables -S").stdout
    assert (node.run("/usr/local/sbin/swarmlab-edge-port-guard check").rc == 0) is guarded, rules
    assert ("swarmlab-edge-port-guard" in rules) is guarded, rules
    assert node.service("swarmlab-edge-port-guard").is_enabled is guarded


def test_the_guard_holds_back_no_connection_that_an_edge_or_another_node_answers(host):
    # The guard drops only what would otherwise be refused where an edge may run: the edge on a
    # manager answers; a worker (no edge may run there) still refuses at once. Its effect, a
    # connection held back between two edge tasks, is the edge-renewal drill's (0 failed).
    worker = host.check_output("docker node inspect worker1 --format '{{.Status.Addr}}'").strip()
    assert host.check_output(f"python3 -c \"{CONNECT}\" {worker}") == "refused"
    manager = host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()
    assert host.check_output(f"python3 -c \"{CONNECT}\" {manager}") == "connected"
