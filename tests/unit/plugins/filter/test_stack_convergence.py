"""Unit tests of the stack_convergence filter."""
from __future__ import annotations

from ansible_collections.swarmlab.cluster.plugins.filter.stack_convergence import stack_convergence

SERVICES = [
    {"Name": "app_web", "Mode": "Replicated", "Replicas": 4},
    {"Name": "app_edge", "Mode": "Global", "Replicas": None},
    {"Name": "other_web", "Mode": "Replicated", "Replicas": 9},
]


def task(name, node, current="Running 3 seconds ago", desired="Running", error=""):
    return {"Name": name, "Node": node, "CurrentState": current, "DesiredState": desired, "Error": error}


def test_converged_when_every_service_runs_its_tasks():
    tasks = [task(f"app_web.{i}", f"n{i % 2}") for i in range(1, 5)] + [task("app_edge.abc", "n0")]
    r = stack_convergence(tasks, SERVICES, "app")
    assert r["converged"] is True
    assert r["short"] == []
    assert r["services"]["web"]["nodes"] == {"n0": 2, "n1": 2}
    assert r["services"]["edge"]["desired"] == 1
    assert "other_web" not in r["services"] and "web" in r["services"]


def test_starting_and_shutdown_tasks_do_not_count():
    tasks = [task(f"app_web.{i}", "n1") for i in range(1, 4)]
    tasks.append(task("app_web.4", "n2", current="Starting 1 second ago"))
    tasks.append(task("app_web.4", "n2", current="Running 1 minute ago", desired="Shutdown"))
    tasks.append(task("app_edge.x", "n1"))
    r = stack_convergence(tasks, SERVICES, "app")
    assert r["converged"] is False
    assert r["short"] == ["web"]
    assert r["services"]["web"]["running"] == 3


def test_errors_of_pending_tasks_are_reported():
    tasks = [task("app_web.1", "", current="Pending 5 seconds ago", error="no suitable node")]
    r = stack_convergence(tasks, SERVICES, "app")
    assert r["short"] == ["web"]
    assert any("no suitable node" in e for e in r["services"]["web"]["errors"])


def test_no_service_of_the_stack_is_not_converged():
    assert stack_convergence([], SERVICES, "missing")["converged"] is False


def test_tasks_on_nodes_that_are_not_ready_do_not_count():
    tasks = [task(f"app_web.{i}", "n1" if i < 4 else "n2") for i in range(1, 5)] + [task("app_edge.abc", "n1")]
    nodes = [{"Hostname": "n1", "Status": "ready"}, {"Hostname": "n2", "Status": "down"}]
    r = stack_convergence(tasks, SERVICES, "app", nodes)
    assert r["short"] == ["web"]
    assert r["services"]["web"]["running"] == 3
    assert stack_convergence(tasks, SERVICES, "app")["converged"] is True


# docker_swarm_info with verbose_output: the Engine API's objects, services matched by ID.
API_SERVICES = [dict(s, ID="id-" + s["Name"]) for s in SERVICES]


def api_task(service, node, state="running", desired="running", err=None):
    status = {"State": state}
    if err:
        status["Err"] = err
    return {"ID": f"t-{service}-{node}-{state}", "ServiceID": "id-" + service, "NodeID": node,
            "DesiredState": desired, "Status": status}


def api_node(node_id, state):
    return {"ID": node_id, "Description": {"Hostname": "host-" + node_id}, "Status": {"State": state}}


def test_engine_api_objects_with_their_nodes():
    tasks = ([api_task("app_web", "a"), api_task("app_web", "a"), api_task("app_web", "b"), api_task("app_web", "b"),
              api_task("app_edge", "a"), api_task("other_web", "a")])
    ready = [api_node("a", "ready"), api_node("b", "ready")]
    r = stack_convergence(tasks, API_SERVICES, "app", ready)
    assert r["converged"] is True
    assert r["services"]["web"]["nodes"] == {"host-a": 2, "host-b": 2}
    assert "other_web" not in r["services"]


def test_engine_api_a_node_back_from_down_counts_again():
    """The bug this shape fixes: a node list read once, while the engine restarted, said down forever."""
    tasks = [api_task("app_web", "a"), api_task("app_web", "a"), api_task("app_web", "b"), api_task("app_web", "b"),
             api_task("app_edge", "a")]
    down = stack_convergence(tasks, API_SERVICES, "app", [api_node("a", "ready"), api_node("b", "down")])
    assert down["short"] == ["web"] and down["services"]["web"]["running"] == 2
    back = stack_convergence(tasks, API_SERVICES, "app", [api_node("a", "ready"), api_node("b", "ready")])
    assert back["converged"] is True


def test_engine_api_errors_and_shutdown_tasks():
    tasks = [api_task("app_web", "a"), api_task("app_web", "a"), api_task("app_web", "a"),
             api_task("app_web", "a", state="rejected", err="no such image"),
             api_task("app_web", "a", desired="shutdown"), api_task("app_edge", "a")]
    r = stack_convergence(tasks, API_SERVICES, "app", [api_node("a", "ready")])
    assert r["short"] == ["web"] and r["services"]["web"]["running"] == 3
    assert any("no such image" in e for e in r["services"]["web"]["errors"])
