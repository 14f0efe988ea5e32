"""Registry garbage collection as a user runs it: playbooks/registry_gc.yml against the scenario's lab.

After test_05_registry.py (file order), before the Swarm tests restart the manager's engine. On the
registry that side_effect.yml and test_05 left (their tags, deletion not enabled): the playbook
refuses and changes nothing; deletion is enabled through playbooks/registry.yml; five tags are
pushed, the first two named by a service (0 replicas, nothing to run: the second is its image, the
first its previous one, where a rollback goes); then a dry run, a run keeping the last 2 tags, a
run in check mode keeping 1, and a second run keeping 2. Every outcome is read back through the
registry's API with the lab's credentials, as a client sees it.
"""

from __future__ import annotations

import json
import re
import os
import time

import pytest

from lab_checks import push_tiny, recap, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
REPO = "swarmlab/tiny"
TAGS = ["gc-0", "gc-1", "gc-2", "gc-3", "gc-4"]  # pushed here, in this order
IN_USE = "gc-1"  # named by a service: kept although older than the last two
PREVIOUS = "gc-0"  # the service's image before (`docker service rollback` goes back to it): kept
KEPT = {PREVIOUS, IN_USE, "gc-3", "gc-4"}
SERVICE = "gc-in-use"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def api(manager, address: str, path: str, method: str = "GET") -> tuple[int, str]:
    """A request to the registry's API on manager1, with the lab's credentials and the role's CA."""
    # -I for HEAD: the headers are the answer.
    option = "-I" if method == "HEAD" else "-X " + method
    out = manager.check_output(
        "curl -s %s -u moby:gordon -H 'Accept: %s' --cacert /etc/docker/certs.d/%s/ca.crt "
        "-w '\\n%%{http_code}' https://%s/v2/%s" % (option, MANIFEST_TYPES, address, address, path))
    body, status = out.rsplit("\n", 1)
    return int(status), body


def manifest_status(manager, address: str, reference: str) -> int:
    return api(manager, address, "%s/manifests/%s" % (REPO, reference), "HEAD")[0]


def said(done) -> str:
    """The playbook's output with every run of white space as one space: the callback folds long
    messages over lines."""
    return " ".join(done.stdout.split())


def started_at(manager) -> str:
    return manager.check_output("docker inspect -f '{{.State.StartedAt}}' registry").strip()


def data_bytes(manager) -> int:
    return int(manager.check_output("du -sb /srv/registry-data | cut -f1"))


@pytest.fixture(scope="module")
def gc(manager, address):
    """Runs the whole sequence once; each test below checks one part of what it left."""
    seen: dict = {}
    before = started_at(manager)
    seen["refused"] = run_playbook(LAB, "playbooks/registry_gc.yml")
    seen["restarted_by_refusal"] = started_at(manager) != before

    # With -e, not in the inventory: the playbook's own restarts must keep deletion on.
    enable = run_playbook(LAB, "playbooks/registry.yml", "-e", '{"registry_storage_delete_enabled": true}')
    assert enable.returncode == 0, enable.stdout[-3000:]
    for tag in TAGS:
        time.sleep(1.1)  # push times are the tags' order: one apart
        pushed = push_tiny(manager, address, REPO, tag, "garbage-collection")
        assert pushed.rc == 0, pushed.stderr
    seen["digests"] = {}
    seen["blobs"] = {}
    # The scenario's own tags (side_effect.yml's, test_05's), all older than these.
    listed = json.loads(api(manager, address, "%s/tags/list" % REPO)[1]).get("tags") or []
    seen["tags"] = sorted(set(listed) - set(TAGS)) + TAGS
    for tag in seen["tags"]:
        status, body = api(manager, address, "%s/manifests/%s" % (REPO, tag))
        assert status == 200, (tag, status, body)
        manifest = json.loads(body)
        seen["blobs"][tag] = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
        headers = api(manager, address, "%s/manifests/%s" % (REPO, tag), "HEAD")[1]
        seen["digests"][tag] = re.search(r"^docker-content-digest: *(\S+)", headers, re.I | re.M).group(1)
    manager.run("docker service rm %s" % SERVICE)
    manager.check_output("docker service create --detach --quiet --name %s --replicas 0 --with-registry-auth "
                         "%s/%s:%s /hello.txt" % (SERVICE, address, REPO, PREVIOUS))
    manager.check_output("docker service update --detach --quiet --with-registry-auth --image %s/%s:%s %s"
                         % (address, REPO, IN_USE, SERVICE))

    before = started_at(manager)
    seen["dry"] = run_playbook(LAB, "playbooks/registry_gc.yml", "-e", "registry_gc_keep=2",
                               "-e", "registry_gc_dry_run=true")
    seen["restarted_by_dry_run"] = started_at(manager) != before
    seen["after_dry"] = {tag: manifest_status(manager, address, tag) for tag in seen["tags"]}

    seen["bytes_before"] = data_bytes(manager)
    before = started_at(manager)
    seen["run"] = run_playbook(LAB, "playbooks/registry_gc.yml", "-e", "registry_gc_keep=2")
    seen["restarted_by_run"] = started_at(manager) != before
    seen["bytes_after"] = data_bytes(manager)
    seen["after_run"] = {tag: manifest_status(manager, address, tag) for tag in seen["tags"]}
    seen["by_digest"] = {tag: manifest_status(manager, address, digest) for tag, digest in seen["digests"].items()}
    seen["blob_status"] = {tag: [api(manager, address, "%s/blobs/%s" % (REPO, blob), "HEAD")[0] for blob in blobs]
                           for tag, blobs in seen["blobs"].items()}
    # A push after it: the registry is writable again.
    seen["push_after"] = manager.run("docker push %s/%s:%s" % (address, REPO, TAGS[-1]))

    before = started_at(manager)
    seen["check"] = run_playbook(LAB, "playbooks/registry_gc.yml", "-e", "registry_gc_keep=1", "--check")
    seen["restarted_by_check"] = started_at(manager) != before
    seen["after_check"] = {tag: manifest_status(manager, address, tag) for tag in sorted(KEPT)}

    before = started_at(manager)
    seen["again"] = run_playbook(LAB, "playbooks/registry_gc.yml", "-e", "registry_gc_keep=2")
    seen["restarted_by_again"] = started_at(manager) != before
    yield seen
    manager.run("docker service rm %s" % SERVICE)


def test_without_deletion_enabled_it_refuses_before_any_change(gc):
    refused = gc["refused"]
    assert refused.returncode != 0
    assert "runs without storage.delete.enabled" in refused.stdout and "Nothing was changed" in refused.stdout
    assert not gc["restarted_by_refusal"]


def test_a_dry_run_names_what_would_go_and_changes_nothing(gc):
    dry = gc["dry"]
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in recap(dry.stdout).values()), recap(dry.stdout)
    named = re.search(r"Would delete \d+ manifest\(s\): ([^']*)'", said(dry))
    gone = sorted("%s:%s" % (REPO, tag) for tag in gc["tags"] if tag not in KEPT)
    assert named and sorted(named.group(1).split(", ")) == gone, dry.stdout[-3000:]
    assert gc["after_dry"] == {tag: 200 for tag in gc["tags"]}
    assert not gc["restarted_by_dry_run"]


def test_the_last_tags_and_the_tag_in_use_are_kept_the_others_deleted(gc):
    assert gc["run"].returncode == 0, gc["run"].stdout[-3000:]
    expected = {tag: 200 if tag in KEPT else 404 for tag in gc["tags"]}
    assert gc["after_run"] == expected
    assert gc["by_digest"] == expected


def test_the_deleted_images_blobs_are_collected_and_the_kept_ones_still_served(gc):
    for tag, status in gc["blob_status"].items():
        assert status == [200 if tag in KEPT else 404] * len(status), (tag, status)
    assert gc["bytes_after"] < gc["bytes_before"]
    assert gc["restarted_by_run"]
    collected = re.search(r"Blobs collected: (\d+)", said(gc["run"]))
    # The deleted images' configs, layers and manifests (blobs too), each once (tags may share a
    # digest), none that a kept image names.
    gone = {blob for tag, blobs in gc["blobs"].items() if tag not in KEPT for blob in blobs + [gc["digests"][tag]]}
    kept = {blob for tag, blobs in gc["blobs"].items() if tag in KEPT for blob in blobs + [gc["digests"][tag]]}
    assert collected and int(collected.group(1)) == len(gone - kept)


def test_pushes_work_after_it(gc):
    assert gc["push_after"].rc == 0, gc["push_after"].stderr


def test_check_mode_names_what_would_go_and_changes_nothing(gc):
    check = gc["check"]
    assert check.returncode == 0, check.stdout[-3000:]
    # The last tag, and the one in use, stay.
    assert "Would delete 1 manifest(s): %s:gc-3'" % REPO in said(check), check.stdout[-3000:]
    assert gc["after_check"] == {tag: 200 for tag in KEPT}
    assert not gc["restarted_by_check"]


def test_a_second_run_with_nothing_to_collect_changes_nothing(gc):
    again = gc["again"]
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), recap(again.stdout)
    assert not gc["restarted_by_again"]
    assert "Blobs collected: 0'" in said(again)
