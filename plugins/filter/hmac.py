# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter hmac: a keyed digest (RFC 2104) of a value, for names that must not tell their content."""
from __future__ import annotations

import hashlib
import hmac as _hmac

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes

DOCUMENTATION = r"""
name: hmac
short_description: HMAC of a string with a secret key, as hex digits
version_added: 2.0.0
author: swarmlab maintainers
description:
  - Returns the hexadecimal HMAC (RFC 2104) of the input under O(key).
  - The stack and monitoring roles name Docker secrets after the HMAC of their content under a random key kept on
    the manager, so a secret's name tells nothing about a password to someone without the key (an unkeyed hash
    would allow an offline guess check).
options:
  _input:
    description: The value (a string; encoded as UTF-8).
    type: str
    required: true
  key:
    description: The secret key. Must not be empty.
    type: str
    required: true
  algorithm:
    description: A hash of Python's C(hashlib).
    type: str
    default: sha256
"""

EXAMPLES = r"""
- name: A name that tells nothing about the password
  ansible.builtin.set_fact:
    secret_name: "redis_password_{{ (redis_password | swarmlab.cluster.hmac(name_key))[:12] }}"
"""

RETURN = r"""
_value:
  description: The HMAC, lowercase hex digits.
  type: str
"""


def hmac_hex(value: str, key: str, algorithm: str = "sha256") -> str:
    if not key:
        raise AnsibleFilterError("hmac: the key is empty")
    if algorithm not in hashlib.algorithms_available:
        raise AnsibleFilterError(f"hmac: unknown algorithm {algorithm!r}")
    return _hmac.new(to_bytes(key), to_bytes(value), algorithm).hexdigest()


class FilterModule:
    """Keyed digests."""

    def filters(self) -> dict:
        return {"hmac": hmac_hex}
