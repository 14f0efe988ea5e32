"""The registry container removed and recreated by its playbook: every pushed image still pullable."""
from __future__ import annotations

import tempfile
import time

import requests
from docker.errors import DockerException

from ..lab.ansible import run_playbook
from ..report import fmt_seconds, log
from .common import Ctx, met
from .web import registry_auth

MANIFESTS = ",".join(["application/vnd.docker.distribution.manifest.v2+json",
                      "application/vnd.oci.image.manifest.v1+json"])


class Registry:
    """The lab registry's HTTP API, with the CA the nodes trust and the inventory's credentials."""

    def __init__(self, ctx: Ctx, port: int = 5000):
        self.addr = f"{ctx.swarm.manager.address}:{port}"
        auth = registry_auth(ctx)
        self.auth = (auth["username"], auth["password"])
        self.docker_auth = auth
        ca = ctx.lab.read_file(ctx.swarm.manager.name, f"/etc/docker/certs.d/{self.addr}/ca.crt")
        with tempfile.NamedTemporaryFile("wb", suffix=".crt", prefix="swarmlab-ops-ca-", delete=False) as handle:
            handle.write(ca)
            self.ca = handle.name

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"https://{self.addr}/v2/{path}", auth=self.auth, verify=self.ca, timeout=10, **kwargs)

    def refs(self) -> list[str]:
        refs = []
        for repo in self.get("_catalog").json()["repositories"]:
            refs += [f"{self.addr}/{repo}:{tag}" for tag in self.get(f"{repo}/tags/list").json().get("tags") or []]
        return refs

    def missing_blobs(self, ref: str) -> list[str]:
        repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
        man = self.get(f"{repo}/manifests/{tag}", headers={"Accept": MANIFESTS})
        man.raise_for_status()
        body = man.json()
        digests = [body["config"]["digest"]] + [layer["digest"] for layer in body["layers"]]
        return [d for d in digests if requests.head(f"https://{self.addr}/v2/{repo}/blobs/{d}", auth=self.auth,
                                                    verify=self.ca, timeout=10).status_code != 200]


def registry(ctx: Ctx) -> dict:
    reg = Registry(ctx)
    refs = reg.refs()
    log("registry: %d pushed image tags; removing the registry container" % len(refs))
    t0 = time.time()
    ctx.swarm.manager.client().containers.get("registry").remove(force=True)
    run = run_playbook("playbooks/registry.yml", ctx.lab.name)
    if not run.ok:
        raise RuntimeError("registry.yml failed: " + " | ".join(run.failures()))
    recreated = round(time.time() - t0, 2)
    refs_after = reg.refs()
    worker = ctx.lab.group("swarm_workers")[0]
    results = {}
    for ref in refs:
        try:
            missing = reg.missing_blobs(ref)
            if missing:
                results[ref] = "missing blobs: " + ", ".join(missing)
                continue
            repo, tag = ref.rsplit(":", 1)
            worker.client().images.pull(repo, tag=tag, auth_config=reg.docker_auth)
            results[ref] = "ok"
        except (requests.RequestException, DockerException, KeyError, ValueError) as exc:
            results[ref] = "error: %s" % exc
    ok = sum(1 for v in results.values() if v == "ok")
    pct = round(100.0 * ok / len(refs), 1) if refs else 0.0
    return met({"drill": "registry", "recover": recreated,
                "recover_text": "recreated (playbook) in %s; %d/%d pullable (%.0f %%)" % (
                    fmt_seconds(recreated), ok, len(refs), pct),
                "load": None, "accounting": None,
                "detail": {"images": results, "pullable_pct": pct, "listed_after": len(refs_after)}},
               bool(refs) and ok == len(refs) and set(refs) <= set(refs_after))
