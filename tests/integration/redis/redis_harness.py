"""Harness for the Redis module tests: real redis-server and redis-sentinel processes.

Every test gets its own master, two replicas (and, when asked, three sentinels) on 127.0.0.1 with
free ports, a password, and temp dirs; all are stopped afterwards. The modules run the way a user
runs them: ``ansible-playbook`` on a generated one-task playbook, from the checkout so ansible.cfg
applies, with the json callback; the task result is returned as a dict.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[3]
REDIS_SERVER = shutil.which('redis-server') or '/usr/bin/redis-server'
PASSWORD = 's3cret-pw'
PYTHON = str(REPO / '.venv' / 'bin' / 'python')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    """One redis-server process (plain or --sentinel) with its own dir and config file."""

    def __init__(self, base: Path, name: str, conf: str, sentinel: bool = False) -> None:
        self.name = name
        self.port = free_port()
        self.dir = base / name
        self.dir.mkdir()
        self.conf = self.dir / ('sentinel.conf' if sentinel else 'redis.conf')
        self.conf.write_text('port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n%s\n'
                             % (self.port, self.dir, self.dir / 'log', conf))
        self.sentinel = sentinel
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        return '127.0.0.1:%d' % self.port

    def client(self, **kw) -> redis.Redis:
        password = None if self.sentinel else PASSWORD
        return redis.Redis(host='127.0.0.1', port=self.port, password=password, decode_responses=True,
                           socket_timeout=5, **kw)

    def start(self) -> None:
        cmd = [REDIS_SERVER, str(self.conf)] + (['--sentinel'] if self.sentinel else [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError('%s did not start: %s' % (self.name, (self.dir / 'log').read_text()))
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


REDIS_CONF = '''requirepass {pw}
masterauth {pw}
save ""
appendonly no
repl-diskless-sync yes
repl-diskless-sync-delay 0
repl-ping-replica-period 1
'''


class Topology:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.master = Server(base, 'r1', REDIS_CONF.format(pw=PASSWORD))
        self.replicas = [Server(base, 'r%d' % i, REDIS_CONF.format(pw=PASSWORD)) for i in (2, 3)]
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

    def wait_synced(self, master: Server | None = None, timeout: float = 15) -> None:
        master = master or self.master
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [r.client().info('replication') for r in self.servers if r is not master]
            if all(i['role'] == 'slave' and i['master_link_status'] == 'up' and i['master_port'] == master.port
                   for i in infos):
                return
            time.sleep(0.1)
        raise RuntimeError('replicas did not sync to %s' % master.addr)

    def start_sentinels(self) -> None:
        conf = ('sentinel monitor mymaster 127.0.0.1 {port} 2\n'
                'sentinel auth-pass mymaster {pw}\n'
                'sentinel down-after-milliseconds mymaster 2000\n'
                'sentinel failover-timeout mymaster 20000\n').format(port=self.master.port, pw=PASSWORD)
        self.sentinels = [Server(self.base, 's%d' % i, conf, sentinel=True) for i in (1, 2, 3)]
        for s in self.sentinels:
            s.start()
        # Sentinels must know the replicas and each other before a failover can be authorized.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ok = True
            for s in self.sentinels:
                m = s.client().sentinel_master('mymaster')
                if m.get('num-slaves') != 2 or m.get('num-other-sentinels') != 2:
                    ok = False
            if ok:
                return
            time.sleep(0.2)
        raise RuntimeError('sentinels did not discover the topology')

    def stop(self) -> None:
        for s in self.sentinels + self.servers:
            s.stop()


def run_module(module: str, args: dict, check: bool = False, diff: bool = False, timeout: int = 120) -> dict:
    """Run swarmlab.cluster.<module> in a one-task playbook; return the task's result for localhost."""
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
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_NOCOLOR='1',
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
    env = dict(os.environ, ANSIBLE_NOCOLOR='1')
    try:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        vars_file.unlink()
