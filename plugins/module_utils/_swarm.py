# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure decision logic of the swarmlab.cluster Swarm maintenance modules.

Everything here works on the plain dictionaries the Docker Engine API returns for
``GET /nodes``, ``GET /services`` and ``GET /tasks``; nothing talks to a daemon, so all of it is
unit-tested without one. Private to this collection: the names may change without notice.
"""

from __future__ import annotations

import copy
import datetime
import math
import typing as t

Node = t.Dict[str, t.Any]
Service = t.Dict[str, t.Any]
Task = t.Dict[str, t.Any]

# Task states in which a task holds (or is about to hold) a slot on its node.
LIVE_TASK_STATES = frozenset((
    'new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running',
))


class SwarmLogicError(Exception):
    """A condition the caller reports to the user as is."""


# Nodes

def node_hostname(node: Node) -> str:
    return str(node.get('Description', {}).get('Hostname') or node.get('ID', ''))


def node_availability(node: Node) -> str:
    return str(node.get('Spec', {}).get('Availability', ''))


def node_state(node: Node) -> str:
    return str(node.get('Status', {}).get('State', ''))


def is_schedulable(node: Node) -> bool:
    """True when the scheduler may place new tasks on the node (active and ready)."""
    return node_availability(node) == 'active' and node_state(node) == 'ready'


def find_node(nodes: t.Iterable[Node], ref: str) -> Node:
    """The node whose ID or hostname is ``ref``.

    An exact ID wins; then a unique hostname; among several nodes with that hostname (a stale,
    down entry next to the live one) the only one that is not down.
    """
    nodes = list(nodes)
    for node in nodes:
        if node.get('ID') == ref:
            return node
    named = [node for node in nodes if node_hostname(node) == ref]
    if len(named) > 1:
        named = [node for node in named if node_state(node) != 'down']
    if not named:
        known = ', '.join(sorted(node_hostname(node) for node in nodes)) or 'none'
        raise SwarmLogicError('No Swarm node has the hostname or ID %r (nodes: %s).' % (ref, known))
    if len(named) > 1:
        raise SwarmLogicError(
            'Several Swarm nodes have the hostname %r (%s); give the node ID instead.'
            % (ref, ', '.join(sorted(node['ID'] for node in named))))
    return named[0]


def quorum_loss(managers: t.Iterable[tuple[str, bool]], leaving: str) -> str:
    """Why the manager ``leaving`` going down would cost the Raft quorum, or '' when it would not.

    ``managers``: (hostname, reachable by Raft) of every manager of the Swarm. Only with 3 or more:
    1 manager is the whole Raft, and 2 have no majority without each other, so there is no quorum to
    keep. A manager Raft does not reach counts as down (also 'unknown', seen briefly after a join).
    """
    managers = list(managers)
    if len(managers) < 3:
        return ''
    reachable = [name for name, up in managers if up]
    left = len(reachable) - (1 if leaving in reachable else 0)
    quorum = len(managers) // 2 + 1
    if left >= quorum:
        return ''
    return ('with %s down, %d of the %d managers would be reachable, fewer than the %d a Raft quorum needs '
            '(unreachable: %s): the Swarm could not be managed until it came back, and not at all if it did not'
            % (leaving, left, len(managers), quorum, ', '.join(sorted(name for name, up in managers if not up))))


def manager_reachability(nodes: t.Iterable[Node]) -> list[tuple[str, bool]]:
    """(hostname, reachable by Raft) of each manager among the API's nodes."""
    return [(node_hostname(node), str((node.get('ManagerStatus') or {}).get('Reachability', '')) == 'reachable')
            for node in nodes if node.get('Spec', {}).get('Role') == 'manager']


# Services

def service_name(service: Service) -> str:
    return str(service.get('Spec', {}).get('Name') or service.get('ID', ''))


def is_replicated(service: Service) -> bool:
    return 'Replicated' in service.get('Spec', {}).get('Mode', {})


def desired_replicas(service: Service) -> int:
    return int(service.get('Spec', {}).get('Mode', {}).get('Replicated', {}).get('Replicas', 0) or 0)


def placement(service: Service) -> dict[str, t.Any]:
    return service.get('Spec', {}).get('TaskTemplate', {}).get('Placement', {}) or {}


def max_replicas_per_node(service: Service) -> int:
    """0 means no limit (the API's own convention)."""
    return int(placement(service).get('MaxReplicas', 0) or 0)


def parse_constraint(expression: str) -> tuple[str, str, str]:
    """Split ``node.labels.zone == a`` into (key, operator, value)."""
    for operator in ('==', '!='):
        if operator in expression:
            key, value = expression.split(operator, 1)
            return key.strip(), operator, value.strip()
    raise SwarmLogicError('Cannot read the placement constraint %r.' % expression)


def _constraint_subject(node: Node, key: str) -> str | None:
    """The node's value for a constraint key; None when the node has no such attribute."""
    spec = node.get('Spec', {})
    description = node.get('Description', {})
    lowered = key.lower()
    if lowered == 'node.id':
        return node.get('ID')
    if lowered == 'node.hostname':
        return description.get('Hostname')
    if lowered == 'node.role':
        return spec.get('Role')
    if lowered == 'node.platform.os':
        return description.get('Platform', {}).get('OS')
    if lowered == 'node.platform.arch':
        return description.get('Platform', {}).get('Architecture')
    if lowered.startswith('node.labels.'):
        return (spec.get('Labels') or {}).get(key[len('node.labels.'):])
    if lowered.startswith('engine.labels.'):
        return (description.get('Engine', {}).get('Labels') or {}).get(key[len('engine.labels.'):])
    raise SwarmLogicError('Unknown placement constraint key %r.' % key)


def node_satisfies(node: Node, constraints: t.Iterable[str]) -> bool:
    """Whether the node satisfies every constraint (compared case-insensitively, as swarmkit does)."""
    for expression in constraints:
        key, operator, value = parse_constraint(expression)
        subject = _constraint_subject(node, key)
        equal = subject is not None and str(subject).lower() == value.lower()
        if (operator == '==') != equal:
            return False
    return True


def eligible_nodes(service: Service, nodes: t.Iterable[Node]) -> list[Node]:
    """Schedulable nodes that satisfy the service's placement constraints."""
    constraints = placement(service).get('Constraints') or []
    return [node for node in nodes if is_schedulable(node) and node_satisfies(node, constraints)]


# Tasks
#
# The convergence rule, used by the modules, the stack_convergence filter and the ops tooling alike:
# a task counts as running for its service when Swarm wants it running (DesiredState running), it is
# in state running (with a health check Swarm reports running only once the task is healthy), and its
# node is ready. A task that a down or unknown node last reported as running is stale: nothing serves
# there until Swarm reschedules it. A replicated service wants Spec.Mode.Replicated.Replicas tasks; a
# global one the tasks Swarm wants running on ready nodes. A service short of its desired count is
# not converged.

def is_running(task: Task) -> bool:
    """A task that runs and is meant to keep running (its node's state aside)."""
    return task.get('DesiredState') == 'running' and task.get('Status', {}).get('State') == 'running'


def is_live(task: Task) -> bool:
    """A task that occupies its node: running, or on its way to run."""
    return task.get('Status', {}).get('State') in LIVE_TASK_STATES


def ready_node_ids(nodes: t.Iterable[Node] | None) -> set[str] | None:
    """IDs of the ready nodes; None (no node list given) counts every node as ready."""
    if nodes is None:
        return None
    return {node['ID'] for node in nodes if node_state(node) == 'ready'}


def counts_as_running(task: Task, ready: set[str] | None) -> bool:
    """The convergence rule for one task (see above); ``ready`` from ready_node_ids()."""
    return is_running(task) and (ready is None or task.get('NodeID') in ready)


def running_count(service: Service, tasks: t.Iterable[Task], nodes: t.Iterable[Node] | None = None) -> int:
    ready = ready_node_ids(nodes)
    return sum(1 for task in tasks if task.get('ServiceID') == service['ID'] and counts_as_running(task, ready))


def desired_count(service: Service, tasks: t.Iterable[Task], nodes: t.Iterable[Node] | None = None) -> int | None:
    """Tasks the service should run: its replicas, or for a global service the tasks Swarm wants
    running on ready nodes; None for jobs (they complete rather than converge)."""
    mode = service.get('Spec', {}).get('Mode', {})
    if 'Replicated' in mode:
        return desired_replicas(service)
    if 'Global' in mode:
        ready = ready_node_ids(nodes)
        return sum(1 for task in tasks if task.get('ServiceID') == service['ID']
                   and task.get('DesiredState') == 'running' and (ready is None or task.get('NodeID') in ready))
    return None


def convergence(services: t.Iterable[Service], tasks: t.Iterable[Task],
                nodes: t.Iterable[Node] | None = None) -> dict[str, t.Any]:
    """How far services are from running their desired tasks, by the rule above.

    Returns {converged, short (names), services: {name: {desired, running, nodes (running tasks per
    node hostname), errors (of wanted tasks that do not run)}}}; converged is False without services.
    """
    tasks = list(tasks)
    nodes = None if nodes is None else list(nodes)
    ready = ready_node_ids(nodes)
    hostnames = {node['ID']: node_hostname(node) for node in nodes or []}
    report: dict[str, dict[str, t.Any]] = {}
    for service in services:
        desired = desired_count(service, tasks, nodes)
        if desired is None:
            continue
        entry: dict[str, t.Any] = {'desired': desired, 'running': 0, 'nodes': {}, 'errors': []}
        for task in tasks:
            if task.get('ServiceID') != service['ID'] or task.get('DesiredState') != 'running':
                continue
            node = hostnames.get(task.get('NodeID', ''), task.get('NodeID') or '?')
            if counts_as_running(task, ready):
                entry['running'] += 1
                entry['nodes'][node] = entry['nodes'].get(node, 0) + 1
            elif task.get('Status', {}).get('Err'):
                entry['errors'].append('%s on %s: %s' % (task.get('Name') or task.get('ID', '?'), node,
                                                         task['Status']['Err']))
        report[service_name(service)] = entry
    short = sorted(name for name, entry in report.items() if entry['running'] < entry['desired'])
    return {'converged': bool(report) and not short, 'short': short, 'services': report}


def service_counts(service: Service, tasks: t.Iterable[Task], nodes: t.Iterable[Node]) -> dict[str, int]:
    """Running tasks of one service per node hostname; every node appears, with 0 if none."""
    names = {node['ID']: node_hostname(node) for node in nodes}
    counts = {name: 0 for name in names.values()}
    for task in tasks:
        if task.get('ServiceID') == service['ID'] and is_running(task):
            name = names.get(task.get('NodeID', ''), task.get('NodeID', '?'))
            counts[name] = counts.get(name, 0) + 1
    return counts


def node_totals(services: t.Iterable[Service], tasks: t.Iterable[Task], nodes: t.Iterable[Node]) -> dict[str, int]:
    """Running tasks of replicated services per node hostname; every node appears."""
    nodes = list(nodes)
    replicated = {service['ID'] for service in services if is_replicated(service)}
    names = {node['ID']: node_hostname(node) for node in nodes}
    totals = {name: 0 for name in names.values()}
    for task in tasks:
        if task.get('ServiceID') in replicated and is_running(task):
            name = names.get(task.get('NodeID', ''), task.get('NodeID', '?'))
            totals[name] = totals.get(name, 0) + 1
    return totals


def live_tasks_on_node(node_id: str, services: t.Iterable[Service], tasks: t.Iterable[Task]) -> list[Task]:
    """Tasks of replicated services that still occupy the node."""
    replicated = {service['ID'] for service in services if is_replicated(service)}
    return [task for task in tasks
            if task.get('NodeID') == node_id and task.get('ServiceID') in replicated and is_live(task)]


def short_services(services: t.Iterable[Service], tasks: t.Iterable[Task],
                   nodes: t.Iterable[Node] | None = None) -> list[dict[str, t.Any]]:
    """Replicated services with fewer running tasks than replicas, as {name, replicas, running}.

    With ``nodes``, tasks on nodes that are not ready do not count (the convergence rule above)."""
    tasks = list(tasks)
    nodes = None if nodes is None else list(nodes)
    short = []
    for service in services:
        if not is_replicated(service):
            continue
        replicas = desired_replicas(service)
        running = running_count(service, tasks, nodes)
        if running < replicas:
            short.append({'name': service_name(service), 'replicas': replicas, 'running': running})
    return sorted(short, key=lambda item: item['name'])


def service_report(services: t.Iterable[Service], tasks: t.Iterable[Task],
                   nodes: t.Iterable[Node] | None = None) -> list[dict[str, t.Any]]:
    """Every replicated service as {name, id, replicas, running}."""
    tasks = list(tasks)
    nodes = None if nodes is None else list(nodes)
    return sorted(
        ({'name': service_name(service), 'id': service['ID'], 'replicas': desired_replicas(service),
          'running': running_count(service, tasks, nodes)}
         for service in services if is_replicated(service)),
        key=lambda item: item['name'])


def running_tasks(service: Service, tasks: t.Iterable[Task], nodes: t.Iterable[Node]) -> list[dict[str, t.Any]]:
    """Where a service's running tasks are (task placement), by the rule above: [{id, node (hostname),
    node_id, container_id, addresses (overlay IPs without prefix length)}], sorted by node."""
    nodes = list(nodes)
    ready = ready_node_ids(nodes)
    names = {node['ID']: node_hostname(node) for node in nodes}
    found = []
    for task in tasks:
        if task.get('ServiceID') != service['ID'] or not counts_as_running(task, ready):
            continue
        addresses = [address.split('/')[0] for attachment in task.get('NetworksAttachments') or []
                     for address in attachment.get('Addresses') or []]
        found.append({'id': task['ID'], 'node': names.get(task.get('NodeID', ''), '?'),
                      'node_id': task.get('NodeID', ''), 'addresses': addresses,
                      'container_id': task.get('Status', {}).get('ContainerStatus', {}).get('ContainerID', '')})
    return sorted(found, key=lambda item: (item['node'], item['id']))


# Decisions

def drain_plan(target: Node, nodes: t.Iterable[Node], services: t.Iterable[Service],
               tasks: t.Iterable[Task], primaries: t.Iterable[str] | None = None) -> dict[str, t.Any]:
    """What draining the target node does to each service it concerns, and whether to refuse.

    A replicated service concerns the drain when it has a live task on the target or the target
    satisfies its placement constraints (it could run there); a global one when it has a live task
    there. Each such service falls in one of three groups:

    - ``move``: every replica fits on the other active nodes (those satisfying its constraints, and
      with max_replicas_per_node enough room for all replicas); listed when it has live tasks on the
      target, with their count (``tasks``) and the service's own update order.
    - ``reduced``: it cannot place all its tasks elsewhere, but keeps ``keeps`` >= 1 of them running on
      other nodes, which still serve (one service of spread Sentinels with max_replicas_per_node 1, a
      global service's task on this node). Accepted: reported, and waited for only down to ``keeps``.
    - ``stranded``: nothing of it would run anywhere while the target is drained (a service pinned
      to it with ``node.hostname == <target>``, the only task of a global service, every service of
      the last active node): its work would be lost. A drain that strands a service is refused
      unless forced.

    A service that would be stranded but belongs to a redundancy group (service labels
    ``org.swarmlab.redundancy.group`` and ``org.swarmlab.redundancy.min``, default 1) is ``reduced``
    with ``keeps`` 0 when at least ``min`` services of its group keep running elsewhere: separate
    services, each pinned to its own node with its data there (the stack's Redis replicas and
    Sentinels), whose redundancy is across services rather than across one service's tasks.

    The *primary* of a redundancy group is the one member the others depend on (the stack's Redis
    master: the replicas copy it, the app writes to it). ``primaries`` names the services that hold
    that role now (by name or ID; the caller asks Redis or Sentinel); None takes the services whose
    label ``org.swarmlab.redundancy.role`` is ``primary`` (the role as deployed). A primary with a
    task on the target is stranded, whatever could run elsewhere: its role must be handed over first
    (node_maintenance.yml does, with a Redis switchover). A primary never counts among the services
    that keep its group running (a group of replicas keeps running replicas).

    ``problems`` are the reasons of a refusal: the last active node, each stranded service, and a
    manager whose maintenance would cost the Raft quorum (another manager already unreachable).
    Not checked: CPU and memory reservations, and placement preferences (they spread tasks, they
    never forbid a node). Pure: the caller's snapshot of the API's nodes, services and tasks.
    """
    nodes = list(nodes)
    services = list(services)
    tasks = list(tasks)
    name = node_hostname(target)
    remaining = [node for node in nodes if node['ID'] != target['ID'] and is_schedulable(node)]
    ready = ready_node_ids(nodes)
    primary_ids = primary_services(services, primaries)
    plan: dict[str, t.Any] = {'move': [], 'reduced': [], 'stranded': [], 'problems': [],
                              'primaries': sorted(service_name(svc) for svc in services if svc['ID'] in primary_ids)}
    if not remaining:
        plan['problems'].append(
            '%s is the last active node: no other node is active and ready to take its tasks.' % name)
    # A manager is drained to be taken down (a reboot, an engine restart): not when that costs the quorum.
    if target.get('Spec', {}).get('Role') == 'manager':
        lost = quorum_loss(manager_reachability(nodes), name)
        if lost:
            plan['problems'].append('%s is a manager: %s.' % (name, lost))
    for service in sorted(services, key=service_name):
        sid = service['ID']
        on_target = sum(1 for task in tasks if task.get('ServiceID') == sid
                        and task.get('NodeID') == target['ID'] and is_live(task))
        elsewhere = sum(1 for task in tasks if task.get('ServiceID') == sid and task.get('NodeID') != target['ID']
                        and counts_as_running(task, ready))
        constraints = placement(service).get('Constraints') or []
        if sid in primary_ids and on_target:
            group = redundancy_group(service)
            why = 'it holds the primary role%s (on the stack: the Redis master); hand the role to a member on ' \
                  'another node first' % (' of redundancy group %s' % group[0] if group else '')
            plan['stranded'].append({'name': service_name(service), 'reason': why})
            if remaining:
                plan['problems'].append('service %s would stop: %s.' % (service_name(service), why))
            continue
        if is_replicated(service):
            replicas = desired_replicas(service)
            if replicas == 0 or (not on_target and not node_satisfies(target, constraints)):
                continue
            eligible = eligible_nodes(service, remaining)
            limit = max_replicas_per_node(service)
            capacity = min(replicas, limit * len(eligible)) if limit else (replicas if eligible else 0)
            if capacity >= replicas:
                if on_target:
                    plan['move'].append({'name': service_name(service), 'id': sid, 'tasks': on_target,
                                         'replicas': replicas, 'order': update_order(service)})
                continue
            if not remaining:
                why = '%s is the last active node' % name
            elif not eligible:
                why = 'no node but %s satisfies its placement constraints %s' % (name, constraints or '(none)')
            else:
                why = 'max_replicas_per_node %d on %d other eligible node(s) (%s) holds %d of %d replicas' % (
                    limit, len(eligible), ', '.join(sorted(node_hostname(node) for node in eligible)), capacity,
                    replicas)
            keeps = capacity
        elif 'Global' in service.get('Spec', {}).get('Mode', {}):
            if not on_target:
                continue
            replicas = on_target + elsewhere
            keeps = elsewhere
            why = 'a global service runs one task per node; its other tasks run on the other nodes'
            if not keeps:
                why = 'a global service whose only running task is on %s' % name
        else:
            continue
        if keeps > 0:
            plan['reduced'].append({'name': service_name(service), 'id': sid, 'replicas': replicas, 'keeps': keeps,
                                    'reason': '%s; %d of %d keep running' % (why, keeps, replicas)})
            continue
        group = redundancy_group(service)
        if group and remaining:
            members = [other for other in services
                       if (redundancy_group(other) or ('', 0))[0] == group[0] and other['ID'] != sid]
            alive = sorted(service_name(other) for other in members
                           if other['ID'] not in primary_ids and _keeps_running(other, target, tasks, ready))
            besides = sorted(service_name(other) for other in members if other['ID'] in primary_ids)
            besides_text = ' besides its primary %s' % ', '.join(besides) if besides else ''
            if len(alive) >= group[1]:
                plan['reduced'].append({
                    'name': service_name(service), 'id': sid, 'replicas': replicas, 'keeps': 0,
                    'reason': '%s; redundancy group %s keeps %d service(s) running%s (%s), at least %d needed' % (
                        why, group[0], len(alive), besides_text, ', '.join(alive), group[1])})
                continue
            why += '; redundancy group %s would keep %d service(s) running%s, %d needed' % (
                group[0], len(alive), besides_text, group[1])
        plan['stranded'].append({'name': service_name(service), 'reason': why})
        if remaining:
            plan['problems'].append('service %s would stop: %s.' % (service_name(service), why))
    return plan


REDUNDANCY_GROUP_LABEL = 'org.swarmlab.redundancy.group'
REDUNDANCY_MIN_LABEL = 'org.swarmlab.redundancy.min'
# The member of its group that holds the primary role as deployed (the stack's redis-master); the
# caller of drain_plan names the primaries of now instead when it knows them.
REDUNDANCY_ROLE_LABEL = 'org.swarmlab.redundancy.role'


def primary_services(services: t.Iterable[Service], primaries: t.Iterable[str] | None) -> set[str]:
    """IDs of the services that hold the primary role: those named (by name or ID), or with None
    those labelled primary. A name that is no service is an error (a typo must not drop the guard)."""
    services = list(services)
    if primaries is None:
        return {svc['ID'] for svc in services
                if (svc.get('Spec', {}).get('Labels') or {}).get(REDUNDANCY_ROLE_LABEL) == 'primary'}
    names = [ref for ref in primaries if ref]
    return {svc['ID'] for svc in select_services(services, names)} if names else set()


def redundancy_group(service: Service) -> tuple[str, int] | None:
    """The service's redundancy group and the least number of its services that must keep running."""
    labels = service.get('Spec', {}).get('Labels') or {}
    group = labels.get(REDUNDANCY_GROUP_LABEL, '')
    if not group:
        return None
    try:
        least = max(1, int(labels.get(REDUNDANCY_MIN_LABEL, '1')))
    except ValueError:
        least = 1
    return group, least


def _keeps_running(service: Service, target: Node, tasks: list[Task], ready: set[str] | None) -> bool:
    """Whether the service has a running task on a node other than the target."""
    return any(task.get('ServiceID') == service['ID'] and task.get('NodeID') != target['ID']
               and counts_as_running(task, ready) for task in tasks)


def drain_wait_targets(short: t.Iterable[dict[str, t.Any]], plan: dict[str, t.Any],
                       force: bool) -> list[dict[str, t.Any]]:
    """The short services a drain still waits for.

    A reduced service is waited for until it runs the tasks it keeps, not its replicas; a stranded
    one is left out with force (without force such a drain is refused before it starts).
    """
    keeps = {item['name']: item['keeps'] for item in plan['reduced']}
    stranded = {item['name'] for item in plan['stranded']}
    waited = []
    for item in short:
        if item['name'] in stranded and force:
            continue
        if item['name'] in keeps and item['running'] >= keeps[item['name']]:
            continue
        waited.append(item)
    return waited


def update_order(service: Service) -> str:
    """The service's update order: 'start-first' or 'stop-first' (Swarm's default)."""
    return str((service.get('Spec', {}).get('UpdateConfig') or {}).get('Order') or 'stop-first')


# The constraint a drain adds to move a service's tasks off a node before the node is drained, and
# the service label that records it, so that activating the node removes exactly what was added.
EXCLUDED_NODES_LABEL = 'org.swarmlab.maintenance.excluded-nodes'


def exclusion_constraint(node_id: str) -> str:
    return 'node.id!=%s' % node_id


def excluded_nodes(spec: dict[str, t.Any]) -> list[str]:
    """Node IDs a drain keeps the service's tasks off (from the service spec's label)."""
    value = (spec.get('Labels') or {}).get(EXCLUDED_NODES_LABEL, '')
    return [item for item in value.split(',') if item]


def spec_excluding(spec: dict[str, t.Any], node_id: str) -> dict[str, t.Any] | None:
    """A copy of a service spec with its tasks kept off the node, recorded in the label; None when
    the spec already does so."""
    if node_id in excluded_nodes(spec):
        return None
    new = copy.deepcopy(spec)
    template = new.setdefault('TaskTemplate', {})
    placement_spec = template.get('Placement') or {}
    template['Placement'] = placement_spec
    constraints = list(placement_spec.get('Constraints') or [])
    constraints.append(exclusion_constraint(node_id))
    placement_spec['Constraints'] = constraints
    labels = dict(new.get('Labels') or {})
    labels[EXCLUDED_NODES_LABEL] = ','.join(excluded_nodes(spec) + [node_id])
    new['Labels'] = labels
    return new


def spec_including(spec: dict[str, t.Any], node_id: str) -> dict[str, t.Any] | None:
    """A copy of a service spec without the exclusion of the node that a drain added; None when
    there is none. Constraints the service had of its own are kept."""
    if node_id not in excluded_nodes(spec):
        return None
    new = copy.deepcopy(spec)
    placement_spec = new.get('TaskTemplate', {}).get('Placement') or {}
    constraints = list(placement_spec.get('Constraints') or [])
    if exclusion_constraint(node_id) in constraints:
        constraints.remove(exclusion_constraint(node_id))
        placement_spec['Constraints'] = constraints
    left = [item for item in excluded_nodes(spec) if item != node_id]
    labels = dict(new.get('Labels') or {})
    if left:
        labels[EXCLUDED_NODES_LABEL] = ','.join(left)
    else:
        labels.pop(EXCLUDED_NODES_LABEL, None)
    new['Labels'] = labels
    return new


def imbalance(service: Service, nodes: t.Iterable[Node], tasks: t.Iterable[Task]) -> dict[str, t.Any] | None:
    """How the service's running tasks are spread unevenly over its eligible nodes, or None.

    Eligible nodes are the schedulable nodes that satisfy its constraints. The spread is uneven
    when the busiest eligible node runs more than one task more than the idlest (an even spread
    of R tasks over N nodes gives every node floor(R/N) or ceil(R/N)), or when one node runs more
    than ceil(R/N). Tasks on nodes that are not eligible (drained, paused, down) are not counted.
    Services that are not replicated, or have fewer than two eligible nodes, are never uneven.
    """
    if not is_replicated(service):
        return None
    nodes = list(nodes)
    eligible = eligible_nodes(service, nodes)
    replicas = desired_replicas(service)
    if len(eligible) < 2 or replicas == 0:
        return None
    counts = service_counts(service, tasks, nodes)
    eligible_counts = {node_hostname(node): counts.get(node_hostname(node), 0) for node in eligible}
    busiest = max(eligible_counts.values())
    idlest = min(eligible_counts.values())
    ideal_max = math.ceil(replicas / len(eligible))
    if busiest - idlest <= 1 and busiest <= ideal_max:
        return None
    return {
        'name': service_name(service),
        'id': service['ID'],
        'replicas': replicas,
        'counts': eligible_counts,
        'reason': 'busiest eligible node runs %d task(s), idlest %d (even spread: at most %d per node)'
                  % (busiest, idlest, ideal_max),
    }


def select_services(services: t.Iterable[Service], names: t.Iterable[str]) -> list[Service]:
    """The services named (by name or ID); all of them when ``names`` is empty."""
    services = list(services)
    names = list(names)
    if not names:
        return services
    chosen = []
    for ref in names:
        match = [service for service in services if service['ID'] == ref or service_name(service) == ref]
        if not match:
            raise SwarmLogicError('No Swarm service has the name or ID %r.' % ref)
        chosen.extend(service for service in match if service not in chosen)
    return chosen


def update_outcome(service: Service, started_before: str | None) -> str:
    """State of the update we started: 'pending', 'updating', 'completed' or 'failed'.

    ``started_before`` is UpdateStatus.StartedAt as it was before our update, so an earlier,
    completed update is not mistaken for ours.
    """
    status = service.get('UpdateStatus') or {}
    if not status or status.get('StartedAt') == started_before:
        return 'pending'
    state = status.get('State', '')
    if state == 'completed':
        return 'completed'
    if state in ('paused', 'rollback_started', 'rollback_paused', 'rollback_completed'):
        return 'failed'
    return 'updating'


# Rollouts: how the rolling update a deploy started ended (swarm_rollout).

# UpdateStatus.State -> the rollout's outcome (any other state: 'updating').
UPDATE_OUTCOMES = {'completed': 'completed', 'rollback_started': 'rolling_back',
                   'rollback_completed': 'rolled_back', 'rollback_paused': 'paused', 'paused': 'paused'}
ROLLOUT_FAILED = frozenset(('rolled_back', 'paused'))
ROLLOUT_RUNNING = frozenset(('pending', 'updating', 'rolling_back'))


def api_time(value: str | None) -> float:
    """Seconds since the epoch of an Engine API time (RFC 3339, nanoseconds, UTC); 0.0 when absent or
    unreadable."""
    if not value or value.startswith('0001-'):
        return 0.0
    text = value.rstrip('Z')
    offset = 0.0
    for sign in ('+', '-'):
        position = text.rfind(sign)
        if position > 10:
            hours, _sep, minutes = text[position + 1:].partition(':')
            if not (hours.isdigit() and (minutes or '0').isdigit()):
                return 0.0
            offset = (1 if sign == '+' else -1) * (int(hours) * 3600 + int(minutes or 0) * 60)
            text = text[:position]
    whole, _dot, fraction = text.partition('.')
    try:
        stamp = datetime.datetime.strptime(whole, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)
        return stamp.timestamp() + float('0.' + (fraction or '0')) - offset
    except ValueError:
        return 0.0


def service_image(spec: dict[str, t.Any]) -> str:
    """The image of a service's (or a task's) spec."""
    template = spec.get('TaskTemplate', spec)
    return str((template.get('ContainerSpec') or {}).get('Image', ''))


def update_snapshot(service: Service) -> dict[str, t.Any]:
    """What swarm_rollout remembers of a service before a deploy, to tell its update from earlier ones."""
    status = service.get('UpdateStatus') or {}
    return {'version': int((service.get('Version') or {}).get('Index', 0)),
            'image': service_image(service.get('Spec', {})),
            'update_started_at': status.get('StartedAt') or None,
            'update_state': status.get('State') or None}


def _task_spec_key(spec: dict[str, t.Any]) -> dict[str, t.Any]:
    # A change of placement alone does not replace tasks that still satisfy it (swarmkit).
    return dict((key, value) for key, value in spec.items() if key != 'Placement')


def outdated_tasks(service: Service, tasks: t.Iterable[Task]) -> list[Task]:
    """Tasks Swarm wants running whose spec is not the service's (a rolling update has them to replace)."""
    wanted = _task_spec_key(service.get('Spec', {}).get('TaskTemplate', {}))
    return [task for task in tasks if task.get('ServiceID') == service['ID'] and task.get('DesiredState') == 'running'
            and _task_spec_key(task.get('Spec', {})) != wanted]


def rollout_outcome(service: Service, before: dict[str, t.Any] | None, tasks: t.Iterable[Task]) -> str:
    """How a service's rollout stands against the snapshot taken before the deploy.

    'unchanged' (the deploy did not update its spec), 'created' (new service), 'pending' (Swarm has
    outdated tasks to replace and reports no update yet), 'updating', 'completed',
    'rolling_back' and then 'rolled_back' (Swarm's failure_action rollback), 'paused'
    (failure_action pause), or 'no_update' (the spec changed in a way that replaces no task).
    """
    if before is None:
        return 'created'
    if int((service.get('Version') or {}).get('Index', 0)) == before['version']:
        return 'unchanged'
    status = service.get('UpdateStatus') or {}
    if status and status.get('StartedAt') != before.get('update_started_at'):
        return UPDATE_OUTCOMES.get(status.get('State', ''), 'updating')
    return 'pending' if outdated_tasks(service, tasks) else 'no_update'


def rollout_task_errors(service: Service, tasks: t.Iterable[Task], nodes: t.Iterable[Node],
                        since: float) -> list[str]:
    """Why tasks created since the update began did not run: '<image> on <node>: <state>: <error>',
    oldest first, one line per distinct message."""
    hostnames = {node['ID']: node_hostname(node) for node in nodes}
    found = []
    for task in tasks:
        status = task.get('Status') or {}
        if task.get('ServiceID') != service['ID'] or api_time(task.get('CreatedAt')) < since:
            continue
        if status.get('State') not in ('failed', 'rejected') and not status.get('Err'):
            continue
        found.append((api_time(status.get('Timestamp') or task.get('CreatedAt')), '%s on %s: %s: %s' % (
            service_image(task.get('Spec', {})), hostnames.get(task.get('NodeID', ''), task.get('NodeID') or '(no node)'),
            status.get('State', '?'), status.get('Err') or status.get('Message') or '(no error given)')))
    lines = []
    for _when, line in sorted(found):
        if line not in lines:
            lines.append(line)
    return lines
