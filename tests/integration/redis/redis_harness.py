"""Harness for the Redis module tests: real redis-server and redis-sentinel processes.

Every test gets its own master, two replicas (and, when asked, three sentinels) on 127.0.0.1 with
free ports, a password, and their own directory; all are stopped afterwards. The directories are
under /var/lib/swarmlab-tests/redis by default (SWARMLAB_REDIS_TEST_DIR), not /tmp nor the checkout:
redis_failover and redis_replication refuse ``persist: true`` for a config file in a temporary
directory (it would not survive a reboot), and the redis user must reach them. The modules run the way a user
runs them: ``ansible-playbook`` on a generated one-task playbook, from the checkout so ansible.cfg
applies, with the json callback; the task result is returned as a dict.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import LOCAL_RUN_ENV
from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from ansible_collections.swarmlab.cluster.tests.integration.support.tcplink import relay
from ansible_collections.swarmlab.cluster.tests.integration.support.tls import TlsFiles

REPO = Path(__file__).resolve().parents[3]
REDIS_SERVER = shutil.which('redis-server') or '/usr/bin/redis-server'
PASSWORD = 's3cret-pw'
SENTINEL_PASSWORD = 'sentinel-pw-9'
# The interpreter the modules run with (SWARMLAB_MODULE_PYTHON: e.g. one with Debian's redis-py 4.3,
# as on the lab nodes).
PYTHON = os.environ.get('SWARMLAB_MODULE_PYTHON', str(REPO / '.venv' / 'bin' / 'python'))
# Outside the temporary directories (the modules refuse persist for a config file there) and
# reachable by the redis user (redis-boot.sh runs the servers as redis). Not the checkout: a clone
# made in a mktemp directory (as CI does) is under /tmp and closed to other users (0700).
SERVER_DIRS = Path(os.environ.get('SWARMLAB_REDIS_TEST_DIR', '/var/lib/swarmlab-tests/redis'))


def server_base(prefix: str = 'set-') -> Path:
    """A fresh directory for one test's servers (outside /tmp; see the module docstring)."""
    SERVER_DIRS.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=SERVER_DIRS))


class Server:
    """One redis-server process (plain or --sentinel) with its own dir and config file."""

    def __init__(self, base: Path, name: str, conf: str, sentinel: bool = False, password: str | None = None,
                 config_file: bool = True, tls: TlsFiles | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.dir = base / name
        self.dir.mkdir()
        self.tls = tls
        self.conf = self.dir / ('sentinel.conf' if sentinel else 'redis.conf')
        self.conf.write_text('port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n%s%s\n'
                             % (self.port, self.dir, self.dir / 'log', tls.server_conf(self.port) if tls else '',
                                conf))
        self.sentinel = sentinel
        # Password clients use: Redis' requirepass, or a Sentinel's own requirepass (None: open).
        self.password = password if sentinel else (password or PASSWORD)
        # Without a config file the same settings go on the command line (redis-server reads stdin
        # with "-", but then CONFIG REWRITE has no file either).
        self.config_file = config_file
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        return '127.0.0.1:%d' % self.port

    def client(self, **kw) -> redis.Redis:
        kw.setdefault('password', self.password)
        if self.tls:
            for key, value in self.tls.client_kwargs().items():
                kw.setdefault(key, value)
        kw.setdefault('socket_timeout', 5)
        return redis.Redis(host='127.0.0.1', port=self.port, decode_responses=True, **kw)

    def command_line(self) -> list[str]:
        if self.config_file:
            return [REDIS_SERVER, str(self.conf)] + (['--sentinel'] if self.sentinel else [])
        args = [REDIS_SERVER]
        for line in self.conf.read_text().splitlines():
            if line.strip():
                name, value = (line.split(' ', 1) + [''])[:2]
                args += ['--' + name] + ([value.strip('"')] if value else [])
        return args

    def start(self) -> None:
        cmd = self.command_line()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                pid = self.client().info('server')['process_id']
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError('%s did not start: %s' % (self.name, (self.dir / 'log').read_text()))
                time.sleep(0.05)
        # Another test's server on this port answers the same password; say so rather than let the
        # test run on it.
        if pid != self.proc.pid:
            self.stop()
            raise RuntimeError('%s: port %d is served by process %s, not ours' % (self.name, self.port, pid))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


# enable-debug-command local: tests freeze a server with DEBUG SLEEP to reproduce slow replicas.
REDIS_CONF = '''requirepass {pw}
masterauth {pw}
save ""
appendonly no
repl-diskless-sync yes
repl-diskless-sync-delay 0
repl-ping-replica-period 1
enable-debug-command local
'''


class Topology:
    def __init__(self, base: Path, config_file: bool = True, tls: TlsFiles | None = None) -> None:
        self.base = base
        self.tls = tls
        self.master = Server(base, 'r1', REDIS_CONF.format(pw=PASSWORD), config_file=config_file, tls=tls)
        self.replicas = [Server(base, 'r%d' % i, REDIS_CONF.format(pw=PASSWORD), config_file=config_file, tls=tls)
                         for i in (2, 3)]
        self.sentinels: list[Server] = []
        self.servers = [self.master] + self.replicas

    @property
    def instances(self) -> list[dict]:
        return [{'host': '127.0.0.1', 'port': s.port} for s in self.servers]

    def by_port(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    def start(self, replicate: bool = True) -> None:
        for s in self.servers:
            s.start()
        if replicate:
            for r in self.replicas:
                r.client().replicaof('127.0.0.1', self.master.port)
            self.wait_synced()

    def wait_synced(self, master: Server | None = None, timeout: float = 30) -> None:
        master = master or self.master
        deadline = time.monotonic() + timeout
        while True:
            infos = {r.addr: r.client().info('replication') for r in self.servers if r is not master}
            if all(i['role'] == 'slave' and i['master_link_status'] == 'up' and i['master_port'] == master.port
                   for i in infos.values()):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # What each one reports, to tell a slow sync from a server something else reconfigured.
        seen = {addr: {k: i.get(k) for k in ('role', 'master_port', 'master_link_status', 'master_sync_in_progress')}
                for addr, i in infos.items()}
        raise RuntimeError('replicas did not sync to %s in %ss: %s' % (master.addr, timeout, seen))

    def new_sentinel(self, name: str, monitor: bool = True, password: str | None = None) -> Server:
        """A Sentinel (not started). monitor=False: a bare one that monitors nothing yet."""
        conf = ''
        if monitor:
            conf = ('sentinel monitor mymaster 127.0.0.1 {port} 2\n'
                    'sentinel auth-pass mymaster {pw}\n'
                    'sentinel down-after-milliseconds mymaster 2000\n'
                    'sentinel failover-timeout mymaster 20000\n').format(port=self.master.port, pw=PASSWORD)
        if password:
            # Sentinel's own password; Sentinels authenticate to their peers with the same one.
            conf += 'requirepass %s\n' % password
        return Server(self.base, name, conf, sentinel=True, password=password, tls=self.tls)

    def start_sentinels(self, monitor: bool = True, password: str | None = None, count: int = 3) -> None:
        self.sentinels = [self.new_sentinel('s%d' % i, monitor, password) for i in range(1, count + 1)]
        for s in self.sentinels:
            s.start()
        if monitor:
            self.wait_sentinels_discovered()

    def wait_sentinels_discovered(self, timeout: float = 30) -> None:
        """Sentinels must know the replicas and each other before a failover can be authorized."""
        deadline = time.monotonic() + timeout
        seen: dict[str, tuple] = {}
        while time.monotonic() < deadline:
            for s in self.sentinels:
                m = s.client().sentinel_master('mymaster')
                seen[s.addr] = (m.get('num-slaves'), m.get('num-other-sentinels'), m.get('flags'))
            if all(v[:2] == (len(self.replicas), len(self.sentinels) - 1) for v in seen.values()):
                return
            time.sleep(0.2)
        # What each Sentinel saw, to tell a slow discovery from a wrong one when this fails under load.
        raise RuntimeError('sentinels did not discover the topology in %ss (replicas, other sentinels, flags): %s'
                           % (timeout, seen))

    def stop(self) -> None:
        for s in self.sentinels + self.servers:
            s.stop()


class SlowLink:
    """A TCP relay in front of one server that holds every client chunk containing `pattern` for
    `delay` seconds before passing it on: a slow network to that server. It stands in for what
    cannot be made on this shared machine (netem on lo would slow every other test); the servers
    behind it are real."""

    def __init__(self, upstream_port: int, pattern: bytes, delay: float) -> None:
        self.upstream_port = upstream_port
        self.pattern = pattern
        self.delay = delay
        self.delayed = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            try:
                upstream = socket.create_connection(('127.0.0.1', self.upstream_port))
            except OSError:
                # the server behind it is stopped (a failover test): refuse this client as it would
                client.close()
                continue
            threading.Thread(target=relay, args=(client, upstream, self._hold), daemon=True).start()
            threading.Thread(target=relay, args=(upstream, client), daemon=True).start()

    def _hold(self, data: bytes) -> None:
        if self.pattern in data.upper():
            self.delayed += 1
            time.sleep(self.delay)

    def close(self) -> None:
        self.closed = True
        self.listener.close()


class StalledLink:
    """The master's replication stream to one replica, stalled: the kernel drops what the master
    sends on that replica's link (an iptables rule on lo for that one connection). The link stays
    up (the replica's repl-timeout is raised for it) and the replica answers every other client,
    the Sentinels included, while it applies nothing: a network that stalls between the two. A
    CLIENT PAUSE on the replica held the Sentinels' hello messages too, and their PINGs behind
    them, so they flagged it down after about twice down-after-milliseconds, and what a test saw
    depended on the machine's speed. Needs root and iptables (docker.io depends on it); the rule
    goes on close."""

    def __init__(self, replica: Server, master: Server) -> None:
        if os.geteuid() != 0 or not shutil.which('iptables'):
            raise RuntimeError('StalledLink needs root and iptables')
        self.replica = replica
        self.repl_timeout = replica.client().config_get('repl-timeout')['repl-timeout']
        replica.client().config_set('repl-timeout', 3600)
        self.rule = ['INPUT', '-i', 'lo', '-p', 'tcp', '-s', '127.0.0.1', '--sport', str(master.port),
                     '-d', '127.0.0.1', '--dport', str(link_port(replica, master)), '-j', 'DROP',
                     '-m', 'comment', '--comment', 'swarmlab-tests stalled replication link']
        # -w: dockerd (a lab beside the tests) takes the same xtables lock.
        subprocess.run(['iptables', '-w', '30', '-I'] + self.rule, check=True)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            subprocess.run(['iptables', '-w', '30', '-D'] + self.rule, check=True)
            self.replica.client().config_set('repl-timeout', self.repl_timeout)


def link_port(replica: Server, master: Server) -> int:
    """The local port of the replica's connection to the master (its redis-server's socket whose
    peer is the master's port), from /proc: neither CLIENT LIST on the replica (it leaves out its
    master's client) nor the master's INFO (listening ports only) tells it."""
    inodes = set()
    for fd in Path('/proc/%d/fd' % replica.proc.pid).iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    for line in Path('/proc/net/tcp').read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        # state 01: ESTABLISHED
        if inode in inodes and state == '01' and int(remote.split(':')[1], 16) == master.port:
            return int(local.split(':')[1], 16)
    raise RuntimeError('%s has no connection to %s' % (replica.addr, master.addr))


def run_module(module: str, args: dict, check: bool = False, diff: bool = False, timeout: int = 300) -> dict:
    """Run swarmlab.cluster.<module> in a one-task playbook; return the task's result for localhost.

    timeout only bounds a run that hangs: our CI machines are VMs whose kernel has logged stalls of
    up to 84 s under load (workqueue lockups), and two runs of 120 s were cut in one."""
    with_dir = Path(os.environ.get('TMPDIR', '/tmp'))
    play = [{
        'name': 'module under test',
        'hosts': 'localhost',
        'gather_facts': False,
        'tasks': [{'name': module, 'swarmlab.cluster.%s' % module: args}],
    }]
    fd_path = with_dir / ('play-%d-%d.yml' % (os.getpid(), time.monotonic_ns()))
    fd_path.write_text(json.dumps(play))
    cmd = [str(REPO / '.venv' / 'bin' / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % PYTHON, str(fd_path)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    env = dict(os.environ, **LOCAL_RUN_ENV, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_NOCOLOR='1',
               ANSIBLE_DEPRECATION_WARNINGS='0')
    env['PATH'] = str(REPO / '.venv' / 'bin') + os.pathsep + env.get('PATH', '')
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        fd_path.unlink()
    try:
        out = json.loads(proc.stdout)
        return out['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError('no task result (rc %s)\nstdout:\n%s\nstderr:\n%s'
                             % (proc.returncode, proc.stdout, proc.stderr)) from exc


def conn(port: int, **extra) -> dict:
    """Module connection arguments for a test instance."""
    args = {'login_host': '127.0.0.1', 'login_port': port, 'login_password': PASSWORD}
    args.update(extra)
    return args


def run_playbook(playbook: str, extra_vars: dict, timeout: int = 180) -> subprocess.CompletedProcess:
    """Run a playbook of the checkout against localhost with the given extra vars (as a JSON file)."""
    vars_file = Path(os.environ.get('TMPDIR', '/tmp')) / ('vars-%d-%d.json' % (os.getpid(), time.monotonic_ns()))
    vars_file.write_text(json.dumps(extra_vars))
    cmd = [str(REPO / '.venv' / 'bin' / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % PYTHON, '-e', '@%s' % vars_file, str(REPO / playbook)]
    env = dict(os.environ, **LOCAL_RUN_ENV, ANSIBLE_NOCOLOR='1')
    try:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        vars_file.unlink()
