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
