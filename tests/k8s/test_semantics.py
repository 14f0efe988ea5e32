"""What the manifests mean, beyond the schema: replicas, probes, selectors, storage classes,
no password in plain text, and that the Swarm stack's variables drive the output."""
from __future__ import annotations

import base64
import stat
import urllib.parse
from typing import Any

import pytest

from k8stest_support import (CHECKED_IN, PLACEHOLDER_REDIS_PASSWORD,
                             PLACEHOLDER_REGISTRY_PASSWORD, Rendering, load_docs, pod_templates)


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _b64(data: dict[str, str], key: str) -> str:
    return base64.b64decode(data[key]).decode()


# --- the web Deployment ---------------------------------------------------------------------

def test_web_has_four_replicas_by_default(default_rendering: Rendering) -> None:
    assert default_rendering.get("Deployment", "web")["spec"]["replicas"] == 4


def test_web_replicas_follow_stack_web_replicas(stack_rendering: Rendering) -> None:
    assert stack_rendering.get("Deployment", "web")["spec"]["replicas"] == 6


def test_checked_in_web_has_four_replicas() -> None:
    web = [d for d in load_docs(CHECKED_IN) if d["kind"] == "Deployment"]
    assert [d["spec"]["replicas"] for d in web] == [4]


@pytest.mark.parametrize("which", ["default", "stack"])
def test_web_probes_hit_readyz_and_healthz_on_the_app_port(renderings: dict[str, Rendering],
                                                           which: str) -> None:
    web = _container(renderings[which].get("Deployment", "web"), "web")
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"http": 8000}
    service = renderings[which].get("Service", "web")["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in service] == [(8080, "http")]  # stack_http_port
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_web_rolls_without_losing_capacity_and_spreads_over_nodes(
        default_rendering: Rendering) -> None:
    spec = default_rendering.get("Deployment", "web")["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] >= 1
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert [s["topologyKey"] for s in spread] == ["kubernetes.io/hostname"]
    assert spread[0]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_web_resources_come_from_the_stack_in_kubernetes_units(
        renderings: dict[str, Rendering]) -> None:
    default = _container(renderings["default"].get("Deployment", "web"), "web")["resources"]
    assert default["limits"] == {"cpu": "500m", "memory": "256Mi"}  # stack 0.50 / 256M
    assert set(default["requests"]) == {"cpu", "memory"}
    stack = _container(renderings["stack"].get("Deployment", "web"), "web")["resources"]
    assert stack["limits"] == {"cpu": "750m", "memory": "512Mi"}    # stack 0.75 / 512M


def test_web_settings_come_from_the_configmap_and_the_secret(stack_rendering: Rendering) -> None:
    web = _container(stack_rendering.get("Deployment", "web"), "web")
    assert web["image"] == "registry.lab.test:5443/swarmlab/counter:2.1.0"
    config_name = web["envFrom"][0]["configMapRef"]["name"]
    config = stack_rendering.get("ConfigMap", config_name)["data"]
    assert config["GUNICORN_WORKERS"] == "5"
    assert config["REDIS_REPLICAS"].split(",") == [
        f"redis-replica-{i}.redis-headless:6379" for i in range(3)]
    assert config["REDIS_SENTINELS"].split(",") == [
        f"redis-sentinel-{i}.redis-sentinel:26379" for i in range(3)]
    assert config["REDIS_SENTINEL_MASTER"] == "mymaster"
    ref = _env(web)["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    secret = stack_rendering.get("Secret", ref["name"])
    url = urllib.parse.urlsplit(_b64(secret["data"], ref["key"]))
    assert (url.scheme, url.hostname, url.port, url.path) == ("redis", "redis-master", 6379, "/0")
    assert urllib.parse.unquote(url.password) == stack_rendering.extra_vars["stack_redis_password"]


def test_default_has_no_sentinel(default_rendering: Rendering) -> None:
    names = {d["metadata"]["name"] for d in default_rendering.all_docs()}
    assert "redis-sentinel" not in names
    assert "REDIS_SENTINELS" not in default_rendering.get("ConfigMap", "web-config")["data"]


def test_pdb_covers_the_web_pods(default_rendering: Rendering) -> None:
    pdb = default_rendering.get("PodDisruptionBudget", "web")
    web = default_rendering.get("Deployment", "web")
    assert pdb["spec"]["selector"] == web["spec"]["selector"]
    assert 0 < pdb["spec"]["maxUnavailable"] < web["spec"]["replicas"]


def test_web_pulls_with_the_registry_secret(stack_rendering: Rendering) -> None:
    pod = stack_rendering.get("Deployment", "web")["spec"]["template"]["spec"]
    [pull] = pod["imagePullSecrets"]
    secret = stack_rendering.get("Secret", pull["name"])
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    import json
    auths = json.loads(_b64(secret["data"], ".dockerconfigjson"))["auths"]
    entry = auths["registry.lab.test:5443"]
    assert base64.b64decode(entry["auth"]).decode() == f"deployer:{PLACEHOLDER_REGISTRY_PASSWORD}"


# --- selectors and references ---------------------------------------------------------------

@pytest.mark.parametrize("which", ["default", "stack"])
def test_workload_selectors_match_their_pod_labels(renderings: dict[str, Rendering],
                                                   which: str) -> None:
    templates = pod_templates(renderings[which].all_docs())
    assert len(templates) >= 3
    for workload, template in templates:
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = template["metadata"]["labels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]


@pytest.mark.parametrize("which", ["default", "stack"])
def test_no_two_workloads_select_the_same_pods(renderings: dict[str, Rendering],
                                               which: str) -> None:
    templates = pod_templates(renderings[which].all_docs())
    for workload, _template in templates:
        selector = workload["spec"]["selector"]["matchLabels"]
        owners = [w["metadata"]["name"] for w, t in templates
                  if selector.items() <= t["metadata"]["labels"].items()]
        assert owners == [workload["metadata"]["name"]]


@pytest.mark.parametrize("which", ["default", "stack"])
def test_every_service_selects_pods_and_named_ports(renderings: dict[str, Rendering],
                                                    which: str) -> None:
    docs = renderings[which].all_docs()
    templates = pod_templates(docs)
    for service in [d for d in docs if d["kind"] == "Service"]:
        selector = service["spec"]["selector"]
        pods = [t for _workload, t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for pod in pods:
                names = {p.get("name") for c in pod["spec"]["containers"] for p in c["ports"]}
                assert port["targetPort"] in names, service["metadata"]["name"]


@pytest.mark.parametrize("which", ["default", "stack"])
def test_statefulsets_use_an_existing_headless_service(renderings: dict[str, Rendering],
                                                       which: str) -> None:
    docs = renderings[which].all_docs()
    for sts in [d for d in docs if d["kind"] == "StatefulSet"]:
        service = renderings[which].get("Service", sts["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
        selector = service["spec"]["selector"]
        assert selector.items() <= sts["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("which", ["default", "stack"])
def test_every_referenced_secret_configmap_and_key_is_rendered(renderings: dict[str, Rendering],
                                                               which: str) -> None:
    rendering = renderings[which]
    for workload, template in pod_templates(rendering.all_docs()):
        spec = template["spec"]
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in rendering.get("Secret", ref["name"])["data"]
            for source in container.get("envFrom", []):
                rendering.get("ConfigMap", source["configMapRef"]["name"])
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                rendering.get("ConfigMap", volume["configMap"]["name"])
        namespace = workload["metadata"]["namespace"]
        rendering.get("Namespace", namespace)
    for doc in rendering.all_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == rendering.get(
                "Namespace", doc["metadata"]["namespace"])["metadata"]["name"]


# --- Redis and its storage -------------------------------------------------------------------

@pytest.mark.parametrize("which, replicas", [("default", 2), ("stack", 3)])
def test_redis_master_and_replicas_are_statefulsets_with_pvcs(renderings: dict[str, Rendering],
                                                              which: str, replicas: int) -> None:
    master = renderings[which].get("StatefulSet", "redis-master")
    replica = renderings[which].get("StatefulSet", "redis-replica")
    assert master["spec"]["replicas"] == 1
    assert replica["spec"]["replicas"] == replicas
    for sts in (master, replica):
        [claim] = sts["spec"]["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in _container(sts, "redis")["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == "/data"
        assert _container(sts, "redis")["image"] == renderings[which].extra_vars.get(
            "stack_redis_image", "redis:7")


@pytest.mark.parametrize("which", ["default", "stack"])
def test_every_pvc_has_the_storage_class_variable(renderings: dict[str, Rendering],
                                                  which: str) -> None:
    expected = renderings[which].extra_vars.get("k8s_app_redis_storage_class", "local-path")
    claims = [c for d in renderings[which].all_docs() if d["kind"] == "StatefulSet"
              for c in d["spec"].get("volumeClaimTemplates", [])]
    claims += renderings[which].of_kind("PersistentVolumeClaim")
    assert len(claims) >= 2
    assert {c["spec"].get("storageClassName") for c in claims} == {expected}


# --- no secret in plain text -----------------------------------------------------------------

def _encodings(secret: str) -> set[str]:
    return {secret, base64.b64encode(secret.encode()).decode(),
            urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}


def test_checked_in_manifests_hold_no_secret() -> None:
    text = CHECKED_IN.read_text(encoding="utf-8")
    docs = load_docs(CHECKED_IN)
    assert "Secret" not in {d["kind"] for d in docs}
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for key, value in doc["data"].items():
                assert "PASSWORD" not in key.upper() and "://:" not in value, key
    for workload, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            for env in container.get("env", []):
                if any(word in env["name"] for word in ("PASSWORD", "AUTH", "REDIS_URL")):
                    assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
    assert PLACEHOLDER_REDIS_PASSWORD not in text


@pytest.mark.parametrize("which", ["default", "stack"])
def test_passwords_only_reach_the_secrets_file(renderings: dict[str, Rendering],
                                               which: str) -> None:
    rendering = renderings[which]
    manifests = rendering.deployment_file.read_text(encoding="utf-8")
    for secret in (rendering.extra_vars["stack_redis_password"], PLACEHOLDER_REGISTRY_PASSWORD):
        for encoded in _encodings(secret):
            assert encoded not in manifests
    assert {d["kind"] for d in rendering.secret_docs} == {"Secret"}
    assert stat.S_IMODE(rendering.secrets_file.stat().st_mode) == 0o600
    assert rendering.get("Secret", "redis-auth")["data"]["password"] == base64.b64encode(
        rendering.extra_vars["stack_redis_password"].encode()).decode()
    # The role's output does not print them either.
    for secret in (rendering.extra_vars["stack_redis_password"], PLACEHOLDER_REGISTRY_PASSWORD):
        assert secret not in rendering.run.output


def test_checked_in_manifests_match_the_default_rendering(default_rendering: Rendering) -> None:
    """Placeholder passwords change nothing in k8s-deployment.yaml: it is the checked-in file."""
    assert default_rendering.deployment_file.read_text(encoding="utf-8") == \
        CHECKED_IN.read_text(encoding="utf-8")
