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
requirements:
  - redis (redis-py) >= 4.0
notes:
  - Connects with redis-py using an explicit retry policy (3 retries, exponential backoff) for
    connection errors and timeouts.
"""

    # swarmlab.cluster.redis.instances: the list of instances (_redis_module.py's
    # endpoints_spec(REDIS_PORT)). A module that names the option again in its own options, with
    # its own description or required, gets those over these (Ansible merges a fragment that way).
    INSTANCES = r"""
options:
  instances:
    description: The Redis instances that make up the replication set, as reachable from the module host.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Address of the instance.
        type: str
        required: true
      port:
        description: Port of the instance.
        type: int
        default: 6379
"""

    # swarmlab.cluster.redis.sentinel: the Sentinels a module works with and how it authenticates to
    # them (_redis_module.py's redis_module(sentinels=...): endpoints_spec(SENTINEL_PORT) and
    # _redis_client.py's SENTINEL_AUTH_ARGUMENT_SPEC). A module overrides the list's description or
    # required as with INSTANCES.
    SENTINEL = r"""
options:
  sentinels:
    description: Every Sentinel of the group, as reachable from the module host.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Address of the Sentinel.
        type: str
        required: true
      port:
        description: Port of the Sentinel.
        type: int
        default: 26379
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
