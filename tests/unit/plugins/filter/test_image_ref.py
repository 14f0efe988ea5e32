"""Unit tests of the image_ref filter: images by digest, refused before anything changes when wrong."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.filter.image_ref import image_ref

SHA = "sha256:" + "0123456789abcdef" * 4
OTHER = "sha256:" + "f" * 64


def test_a_tag_without_digest_is_left_as_it_is():
    assert image_ref("registry.example.org:5000/swarmlab/counter:1.0.0-abc") == (
        "registry.example.org:5000/swarmlab/counter:1.0.0-abc")


def test_the_digest_is_appended_and_the_tag_kept():
    assert image_ref("redis:7", SHA) == "redis:7@" + SHA
    assert image_ref("10.0.0.2:5000/web", SHA) == "10.0.0.2:5000/web@" + SHA


def test_a_digest_in_the_image_is_kept_and_may_be_repeated():
    assert image_ref("haproxy:2.6@" + SHA) == "haproxy:2.6@" + SHA
    assert image_ref("haproxy:2.6@" + SHA, SHA) == "haproxy:2.6@" + SHA


def test_sha512_is_accepted():
    digest = "sha512:" + "a" * 128
    assert image_ref("redis", digest) == "redis@" + digest


@pytest.mark.parametrize("digest", [
    "0123456789abcdef" * 4,                 # no algorithm
    "sha256:" + "0123456789ABCDEF" * 4,     # upper case
    "sha256:" + "0" * 63,                   # short
    "sha256:" + "0" * 65,                   # long
    "md5:" + "0" * 32,
    "sha256:" + "g" * 64,
])
def test_a_malformed_digest_variable_is_refused_naming_it(digest):
    with pytest.raises(AnsibleFilterError, match=r"stack_redis_image_digest: .* is not an image digest; expected sha256:"):
        image_ref("redis:7", digest, name="stack_redis_image")


def test_a_malformed_digest_in_the_image_is_refused_naming_the_variable():
    with pytest.raises(AnsibleFilterError, match=r"^stack_edge_image: .* is not an image digest"):
        image_ref("haproxy:2.6@sha256:abc", name="stack_edge_image")


def test_two_different_digests_are_refused():
    with pytest.raises(AnsibleFilterError, match="give one, or the same"):
        image_ref("redis:7@" + SHA, OTHER, name="stack_redis_image")


@pytest.mark.parametrize("image", ["", "redis :7", "@" + SHA, "redis@@" + SHA, None])
def test_what_is_no_reference_is_refused(image):
    with pytest.raises(AnsibleFilterError, match="is not an image reference"):
        image_ref(image, name="stack_web_image")
