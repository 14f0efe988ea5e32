# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter image_ref: an image reference pinned to a digest when one is given, checked first."""
from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: image_ref
short_description: An image reference, pinned to a digest (C(name@sha256:...)) when one is given
version_added: 2.0.0
author: swarmlab maintainers
description:
  - Returns O(_input) with O(digest) appended as C(<image>@<digest>), or O(_input) as it is when neither it nor
    O(digest) names a digest.
  - O(_input) may carry a digest itself (C(redis:7@sha256:...)); it is checked the same way, and must equal O(digest)
    when both are given.
  - A digest is C(sha256:) and 64 lowercase hex digits, or C(sha512:) and 128; anything else fails with a message
    that names O(name), so a role can refuse a wrong digest before it changes anything.
  - The stack and monitoring roles render their images through it (issue 15, images by digest).
options:
  _input:
    description: The image reference (C([registry/]repository[:tag][@digest])).
    type: str
    required: true
  digest:
    description: The digest to pin to; empty for none.
    type: str
    default: ""
  name:
    description: The variable the image comes from, for the error messages.
    type: str
    default: image
"""

EXAMPLES = r"""
- name: Redis by digest
  ansible.builtin.set_fact:
    # redis:7@sha256:0123...
    redis_ref: "{{ 'redis:7' | swarmlab.cluster.image_ref('sha256:' ~ '0123456789abcdef' * 4, name='stack_redis_image') }}"
"""

RETURN = r"""
_value:
  description: The reference to deploy, C(<image>@<digest>) when a digest was given.
  type: str
"""

DIGEST = re.compile(r'^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$')
FORMAT = 'sha256:<64 lowercase hex digits> (or sha512:<128>)'


def _check_digest(digest: str, where: str) -> None:
    if not DIGEST.match(digest):
        raise AnsibleFilterError('%s: %r is not an image digest; expected %s, as docker images --digests '
                                 'or the registry prints it' % (where, digest, FORMAT))


def image_ref(image: str, digest: str = '', name: str = 'image') -> str:
    if not isinstance(image, str) or not image or re.search(r'\s', image):
        raise AnsibleFilterError('%s: %r is not an image reference' % (name, image))
    digest = digest or ''
    base, sep, embedded = image.partition('@')
    if sep:
        if not base or '@' in embedded:
            raise AnsibleFilterError('%s: %r is not an image reference' % (name, image))
        _check_digest(embedded, name)
    if digest:
        _check_digest(digest, '%s_digest' % name)
        if embedded and embedded != digest:
            raise AnsibleFilterError('%s carries the digest %s, %s_digest is %s: give one, or the same' % (
                name, embedded, name, digest))
    pinned = digest or embedded
    return '%s@%s' % (base, pinned) if pinned else image


class FilterModule:
    """Image references."""

    def filters(self) -> dict:
        return {"image_ref": image_ref}
