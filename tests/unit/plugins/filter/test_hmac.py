"""Unit tests of the hmac filter (RFC 4231 test vectors)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.filter.hmac import hmac_hex


def test_rfc4231_case_2():
    assert hmac_hex("what do ya want for nothing?", "Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_another_key_gives_another_name_for_the_same_password():
    assert hmac_hex("lab-redis-gordon", "key-1") != hmac_hex("lab-redis-gordon", "key-2")


def test_an_empty_key_is_refused():
    with pytest.raises(AnsibleFilterError, match="key is empty"):
        hmac_hex("password", "")
