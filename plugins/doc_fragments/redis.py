# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the collection's Redis modules."""
from __future__ import annotations


class ModuleDocFragment:
    """Options of plugins/module_utils/_redis_client.py's REDIS_CONNECTION_ARGUMENT_SPEC."""

    DOCUMENTATION = r"""
options:
  login_user:
    description: ACL user name (Redis 6 or later), the same on every instance; without it the C(default) user.
    type: str
  login_password:
    description: Password of the instances (C(requirepass) or the ACL user's password).
    type: str
  tls:
    description: Connect with TLS (to the instances, and to Sentinels where the module uses them).
    type: bool
    default: false
  validate_certs:
    description: Verify the servers' certificates and host names when O(tls=true).
    type: bool
    default: true
  ca_certs:
    description: CA bundle to verify the servers' certificates with.
    type: path
  client_cert_file:
    description: Client certificate for TLS client authentication.
    type: path
  client_key_file:
    description: Key of O(client_cert_file).
    type: path
  connect_timeout:
    description: Seconds to wait for a connection and for each reply.
    type: float
    default: 5
"""

    # swarmlab.cluster.redis.sentinel: how the modules authenticate to Sentinels
    # (plugins/module_utils/_redis_client.py's SENTINEL_AUTH_ARGUMENT_SPEC).
    SENTINEL = r"""
options:
  sentinel_user:
    description:
      - ACL user to authenticate to the Sentinels as (Sentinel 6.2 or later); without it the
        C(default) user.
    type: str
  sentinel_password:
    description:
      - Password of the Sentinels themselves (C(requirepass) in their configuration, or the ACL
        user's password), not the password of the Redis instances.
      - The O(tls), O(validate_certs), O(ca_certs), O(client_cert_file), O(client_key_file) and
        O(connect_timeout) options apply to the Sentinels too.
    type: str
"""
