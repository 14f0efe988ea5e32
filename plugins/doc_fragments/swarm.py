# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options, attribute support and notes shared by the collection's Swarm maintenance modules."""
from __future__ import annotations


class ModuleDocFragment:
    """Options of plugins/module_utils/_swarm_api.py's SWARM_API_ARGUMENT_SPEC."""

    DOCUMENTATION = r"""
options:
  poll_interval:
    description:
      - Seconds between two looks at the Swarm while waiting. Each look is a few reads of the
        manager's API; a longer interval only adds to every wait.
    type: float
    default: 0.5
  docker_host:
    description:
      - The Docker daemon's Unix socket, as a C(unix://) URL. Other schemes are not supported.
    type: str
    default: unix:///var/run/docker.sock
  api_timeout:
    description:
      - Seconds allowed for one Docker API call.
    type: int
    default: 60
attributes:
  # Each module says what check mode does for it (its description); they all support it fully and
  # show no diff.
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Runs on a Swarm manager. It talks to the Docker Engine API over the daemon's Unix socket with
    Python's standard library, so it needs no third-party library on the manager; it does not use
    the Docker SDK (Debian 12 ships 5.0.3) nor community.docker's module_utils, which are private to
    that collection and may change.
"""
