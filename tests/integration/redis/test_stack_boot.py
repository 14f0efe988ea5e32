"""The stack's Redis and Sentinel start script (roles/stack/files/redis-boot.sh) with real
redis-server and redis-sentinel processes on loopback, as the stack runs them: TLS only, the
passwords from secret files, authenticated Sentinels that know everyone by name (`localhost` here,
the service names in the stack), state on the "volume", the servers run as the `redis` user when
the tests run as root. The Swarm around them (tasks, overlay addresses, restarts) is what the lab
adds; the decisions are all in the script, and tested here.

Run from the checkout:  .venv/bin/pytest tests/integration/redis/test_stack_boot.py -q
"""

from __future__ import annotations

import os
import re
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from ansible_collections.swarmlab.cluster.tests.integration.support.tls import TlsFiles
from redis_harness import PASSWORD, PYTHON, REDIS_SERVER, REPO, SENTINEL_PASSWORD, free_port, run_module, run_playbook, server_base
from test_redis_guards import assert_no_acknowledged_write_lost, wait_for

pytestmark = pytest.mark.integration

BOOT = REPO / 'roles' / 'stack' / 'files' / 'redis-boot.sh'
NAME = 'localhost'


def run_as() -> str:
    """The servers drop to `redis` as in the stack, when the tests can (root, and the user exists)."""
    if os.geteuid() != 0:
        return ''
    try:
        pwd.getpwnam('redis')
    except KeyError:
        return ''
    return 'redis'


class Boot:
    """One server or Sentinel started through redis-boot.sh; its data directory outlives it (the
    volume), its BOOT_RUN directory does not (the tmpfs)."""

    def __init__(self, cluster: Cluster, name: str, kind: str, default_master: str = '') -> None:
        self.cluster = cluster
        self.name = name
        self.kind = kind
        self.port = free_port()
        self.default_master = default_master
        self.data = cluster.base / name / 'data'
        self.log = cluster.base / name / 'boot.log'
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        return '%s:%d' % (NAME, self.port)

    def env(self) -> dict[str, str]:
        c = self.cluster
        env = {
            'PATH': os.environ['PATH'], 'BOOT_NAME': NAME, 'BOOT_PORT': str(self.port), 'BOOT_DATA': str(self.data),
            # A fresh in-memory directory at every start, as the task's tmpfs is.
            'BOOT_RUN': str(self.cluster.run / ('%s-%d' % (self.name, time.monotonic_ns()))),
            'BOOT_USER': c.user, 'BOOT_PASSWORD_FILE': str(c.secrets / 'redis_password'),
            'BOOT_SENTINEL_PASSWORD_FILE': str(c.secrets / 'sentinel_password'),
            'BOOT_TLS': 'yes', 'BOOT_TLS_CERT': str(c.tls.cert), 'BOOT_TLS_KEY': str(c.tls.key),
            'BOOT_TLS_CA': str(c.tls.ca), 'BOOT_MASTER_NAME': 'mymaster', 'BOOT_WAIT': str(c.wait),
        }
        if self.kind == 'server':
            env['BOOT_DEFAULT_MASTER'] = self.default_master
            env['BOOT_SENTINELS'] = ' '.join(s.addr for s in c.sentinels) if c.with_sentinel else ''
        return env

    def start(self, wait: bool = True) -> Boot:
        args = ['--bind', '127.0.0.1', '-::1']
        if self.kind == 'server':
            args += ['--appendonly', 'yes', '--repl-diskless-sync-delay', '0', '--repl-ping-replica-period', '1']
        with open(self.log, 'a') as log:
            self.proc = subprocess.Popen(['sh', str(BOOT), self.kind] + args, env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT)
        if wait:
            wait_for(self.answers, 20)
        return self

    def client(self, **kw) -> redis.Redis:
        kw.setdefault('password', SENTINEL_PASSWORD if self.kind == 'sentinel' else PASSWORD)
        kw.setdefault('ssl', True)
        # One attempt: the tests poll on their own (redis-py 8 retries 3 times by default).
        kw.setdefault('retry', Retry(NoBackoff(), 0))
        if kw['ssl']:
            kw.setdefault('ssl_ca_certs', str(self.cluster.tls.ca))
        kw.setdefault('socket_timeout', 3)
        return redis.Redis(host=NAME, port=self.port, decode_responses=True, socket_connect_timeout=2, **kw)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.exceptions.RedisError:
            return False

    def get_quietly(self, key: str) -> str | None:
        try:
            return self.client().get(key)
        except redis.exceptions.RedisError:
            return None

    def role(self) -> str:
        return self.client().execute_command('ROLE')[0]

    def stop(self) -> None:
        """SIGTERM, as Swarm stops a task (the server writes its files and exits)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def boot_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ''


class Cluster:
    """redis-master, redis-replica-1, redis-replica-2 and three Sentinels, as the stack has them."""

    def __init__(self, base: Path, with_sentinel: bool = True, wait: int = 20) -> None:
        self.base = base
        self.with_sentinel = with_sentinel
        self.wait = wait
        self.user = run_as()
        # The redis user must reach its directories and the certificate (the key is copied).
        base.chmod(0o755)
        # BOOT_RUN lives in memory, under a directory the modules know is volatile (/dev/shm).
        self.run = Path(tempfile.mkdtemp(prefix='swarmlab-boot-', dir='/dev/shm'))
        self.run.chmod(0o755)
        self.tls = TlsFiles(base / 'tls')
        (base / 'tls').chmod(0o755)
        self.secrets = base / 'secrets'
        self.secrets.mkdir(mode=0o700)
        (self.secrets / 'redis_password').write_text(PASSWORD)
        (self.secrets / 'sentinel_password').write_text(SENTINEL_PASSWORD)
        for f in self.secrets.iterdir():
            f.chmod(0o400)
        self.sentinels = [Boot(self, 'redis-sentinel-%d' % i, 'sentinel') for i in (1, 2, 3)] if with_sentinel else []
        self.master = Boot(self, 'redis-master', 'server')
        self.replicas = [Boot(self, 'redis-replica-%d' % i, 'server', '%s %d' % (NAME, self.master.port))
                         for i in (1, 2)]
        self.servers = [self.master] + self.replicas

    @property
    def instances(self) -> list[dict]:
        return [{'host': NAME, 'port': s.port} for s in self.servers]

    def tls_args(self) -> dict:
        return {'tls': True, 'ca_certs': str(self.tls.ca), 'login_password': PASSWORD}

    def sentinel_args(self) -> dict:
        return {'sentinels': [{'host': NAME, 'port': s.port} for s in self.sentinels],
                'sentinel_password': SENTINEL_PASSWORD}

    def configure_sentinels(self) -> dict:
        """What the stack role does after a deploy: swarmlab.cluster.redis_sentinel by name."""
        return run_module('redis_sentinel', {
            'instances': self.instances, 'master_name': 'mymaster', 'quorum': 2, 'down_after_milliseconds': 3000,
            'failover_timeout': 15000, 'parallel_syncs': 1, 'timeout': 60, **self.tls_args(), **self.sentinel_args()})

    def stack_vars(self, **extra) -> dict:
        """Extra vars of playbooks/redis_failover.yml on the stack, with what the stack role's
        redis_endpoints.yml would find, and the inventory's passwords."""
        return {'redis_failover_runner': 'localhost', 'ansible_become': False,
                'stack_redis_endpoints': {
                    'instances': self.instances, 'sentinels': self.sentinel_args()['sentinels'] if self.sentinels else [],
                    'master_name': 'mymaster', 'tls': True, 'ca_certs': str(self.tls.ca), 'python': PYTHON},
                'stack_redis_password': PASSWORD, 'stack_sentinel_password': SENTINEL_PASSWORD, **extra}

    def topology(self) -> dict:
        return run_module('redis_topology_info', {'instances': self.instances, **self.tls_args()})

    def start(self) -> None:
        for s in self.sentinels + self.servers:
            s.start()
        self.wait_healthy(self.master)

    def wait_healthy(self, master: Boot, timeout: float = 40) -> None:
        def healthy() -> bool:
            try:
                return all(r.client().info('replication').get('master_link_status') == 'up'
                           and r.client().info('replication').get('master_port') == master.port
                           for r in self.servers if r is not master) and master.role() == 'master'
            except redis.exceptions.RedisError:
                return False
        wait_for(healthy, timeout, 0.3)

    def stop(self) -> None:
        for s in self.servers + self.sentinels:
            s.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.run, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def logs(self) -> str:
        return '\n'.join('== %s\n%s' % (s.name, s.boot_log()[-1500:]) for s in self.sentinels + self.servers)


@pytest.fixture
def cluster():
    c = Cluster(server_base('boot-'))
    try:
        yield c
    finally:
        c.remove()


@pytest.fixture(scope='module')
def configured():
    """A first start, then the Sentinels configured as the role does; shared by the tests that
    only look."""
    c = Cluster(server_base('boot-'))
    try:
        c.start()
        c.first_configuration = c.configure_sentinels()
        yield c
    finally:
        c.remove()


def test_first_start_then_configured_sentinels_are_authenticated_and_tls_only(configured):
    cluster = configured
    # A first start: the Sentinels monitor nothing yet, every server takes the stack's role.
    assert 'no Sentinel monitors mymaster yet' in cluster.master.boot_log()
    first = cluster.first_configuration
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['master'] == cluster.master.addr
    again = cluster.configure_sentinels()
    assert again['changed'] is False, again['changes']
    # Everyone is known by name: replicas and peers.
    sentinel = cluster.sentinels[0].client()
    assert {r['name'] for r in sentinel.sentinel_slaves('mymaster')} == {r.addr for r in cluster.replicas}
    assert {s['ip'] for s in sentinel.sentinel_sentinels('mymaster')} == {NAME}

    # No Sentinel command without the Sentinels' password.
    anonymous = cluster.sentinels[1].client(password=None)
    for command in (('SENTINEL', 'MONITOR', 'evil', '127.0.0.1', '6399', '1'),
                    ('SENTINEL', 'SET', 'mymaster', 'down-after-milliseconds', '1'),
                    ('SENTINEL', 'FAILOVER', 'mymaster')):
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.execute_command(*command)
    # TLS only: a plaintext client gets nothing, a TLS client without the CA fails verification.
    for target in (cluster.master, cluster.sentinels[0]):
        with pytest.raises(redis.exceptions.ConnectionError):
            target.client(ssl=False, socket_timeout=1).ping()
        with pytest.raises(redis.exceptions.ConnectionError, match='certificate verify failed'):
            target.client(ssl_ca_certs=None).ping()


def test_no_password_in_argv_environment_or_readable_files_and_not_root(configured):
    cluster = configured
    for boot in cluster.sentinels + cluster.servers:
        pid = boot.proc.pid  # the script exec'd the server: same process
        cmdline = Path('/proc/%d/cmdline' % pid).read_bytes().decode(errors='replace')
        environ = Path('/proc/%d/environ' % pid).read_bytes().decode(errors='replace')
        assert 'redis-server' in cmdline, cmdline
        for secret in (PASSWORD, SENTINEL_PASSWORD):
            assert secret not in cmdline and secret not in environ, boot.name
        status = dict(line.split(':', 1) for line in Path('/proc/%d/status' % pid).read_text().splitlines())
        uids = status['Uid'].split()
        if cluster.user:
            assert set(uids) == {str(pwd.getpwnam('redis').pw_uid)}, (boot.name, uids)
        for path in boot.data.rglob('*'):
            mode = path.stat().st_mode
            assert not mode & 0o007, '%s is open to others (%o)' % (path, mode)
            if cluster.user:
                assert path.owner() == 'redis', path
        conf = boot.data / ('sentinel.conf' if boot.kind == 'sentinel' else 'redis.conf')
        assert (SENTINEL_PASSWORD if boot.kind == 'sentinel' else PASSWORD) in conf.read_text()
        assert oct(conf.stat().st_mode & 0o777) == '0o600'


def test_whole_restart_after_a_failover_keeps_the_new_master_and_every_write(cluster):
    # Issue 14, defect 6: after a failover and a restart of everything, redis-master came back as
    # a master with its old data (the lab's reproduction is in docs/redis.md, "The stack").
    cluster.start()
    cluster.configure_sentinels()
    master, new = cluster.master, cluster.replicas[0]
    client = master.client()
    values = [client.incr('counter') for _incr in range(200)]
    # playbooks/redis_failover.yml as on the stack: what the stack role finds is handed in.
    switched = run_playbook('playbooks/redis_failover.yml', cluster.stack_vars(redis_target={'host': NAME, 'port': new.port}))
    assert switched.returncode == 0, switched.stdout + switched.stderr
    assert 'sentinel: %s -> %s' % (cluster.master.addr, new.addr) in switched.stdout
    assert PASSWORD not in switched.stdout and SENTINEL_PASSWORD not in switched.stdout
    cluster.wait_healthy(new)
    client = new.client()
    values += [client.incr('counter') for _incr in range(200)]
    assert client.wait(2, 5000) == 2
    # Sentinel gave every server its role by name and wrote it into the servers' config files.
    assert 'replicaof %s %d' % (NAME, new.port) in (master.data / 'redis.conf').read_text()

    cluster.stop()
    # The old master first, while no Sentinel answers: it must not start as a master.
    master.start(wait=False)
    time.sleep(4)
    assert not master.answers(), cluster.logs()
    for s in cluster.sentinels:
        s.start()
    for r in cluster.replicas:
        r.start(wait=False)
    cluster.wait_healthy(new, timeout=60)
    assert 'starting as replica of %s %d' % (NAME, new.port) in master.boot_log()
    assert 'majority of the Sentinels names this instance the master' in new.boot_log()
    seen = cluster.topology()
    assert seen['healthy'] is True and seen['master'] == new.addr, seen['summary']
    assert_no_acknowledged_write_lost(values, int(new.client().get('counter')))
    assert int(master.client().get('counter')) == values[-1]


def test_a_sentinel_starts_from_the_state_redis_7_0_corrupts_when_names_do_not_resolve(cluster):
    # On the lab, Docker restarted on every node at once: the Sentinels rewrote their files while no
    # name resolved, Redis 7.0 compared the empty addresses as equal and wrote every known replica
    # as the master's name; then each Sentinel refused its own file ("Duplicate hostname and port
    # for replica") and the master, with no Sentinel to confirm it, never started.
    cluster.start()
    cluster.configure_sentinels()
    sentinel = cluster.sentinels[0]
    sentinel.stop()
    conf = sentinel.data / 'sentinel.conf'
    text = conf.read_text()
    master = 'sentinel known-replica mymaster %s %d' % (NAME, cluster.master.port)
    lines = [line for line in text.splitlines() if not line.startswith('sentinel known-replica')]
    conf.write_text('\n'.join(lines + [master, master]) + '\n')
    # Sentinel itself refuses that file.
    refused = subprocess.run([REDIS_SERVER, str(conf), '--sentinel', '--port', '0'], capture_output=True, text=True,
                             timeout=20, check=False)
    assert refused.returncode != 0 and 'Duplicate hostname and port for replica' in refused.stdout + refused.stderr
    conf.write_text('\n'.join(lines + [master, master]) + '\n')
    # Through the start script it starts, without the entries that name the master, and finds the
    # replicas again through the master.
    sentinel.start()
    assert 'dropped from the saved state: %s' % master in sentinel.boot_log()
    wait_for(lambda: {r['name'] for r in sentinel.client().sentinel_slaves('mymaster')}
             == {r.addr for r in cluster.replicas}, 30, 0.5)


def test_a_former_master_exits_when_no_sentinel_can_confirm_it():
    c = Cluster(server_base('boot-'), wait=3)
    try:
        c.start()
        c.configure_sentinels()
        c.stop()
        # The master's file says master; no Sentinel answers: it gives up (Swarm restarts it).
        c.master.start(wait=False)
        assert c.master.proc.wait(30) == 1
        assert 'no majority of the Sentinels confirmed this instance as the master' in c.master.boot_log()
        # A replica starts in its saved role after the wait: it takes no writes.
        c.replicas[0].start()
        assert c.replicas[0].role() == 'slave'
        assert 'no usable answer from a majority of the Sentinels' in c.replicas[0].boot_log()
    finally:
        c.remove()


def test_an_empty_volume_never_becomes_the_master_the_sentinels_name():
    c = Cluster(server_base('boot-'), wait=60)
    try:
        c.start()
        c.configure_sentinels()
        c.master.client().set('kept', 'yes')
        assert c.master.client().wait(2, 5000) == 2
        c.master.stop()
        # The master's volume is lost (a new node, a removed volume): it comes back empty.
        shutil.rmtree(c.master.data)
        c.master.start(wait=False)
        # It does not serve as an empty master: the Sentinels find it down and promote a replica,
        # which it then follows, with the data.
        wait_for(lambda: c.master.answers() and c.master.role() == 'slave', 60, 0.5)
        assert 'not starting as an empty master' in c.master.boot_log()
        wait_for(lambda: c.master.get_quietly('kept') == 'yes', 15)
    finally:
        c.remove()


def test_without_sentinel_the_role_is_fixed_and_persist_is_refused():
    c = Cluster(server_base('boot-'), with_sentinel=False)
    try:
        c.start()
        seen = c.topology()
        assert seen['healthy'] is True and seen['master'] == c.master.addr, seen['summary']
        # The playbook refuses on a stack without Sentinel, saying why, before any change.
        proc = run_playbook('playbooks/redis_failover.yml', c.stack_vars())
        assert proc.returncode != 0 and 'runs without Sentinel' in proc.stdout, proc.stdout
        assert 'Nothing was changed' in proc.stdout and c.master.role() == 'master'
        # And the module, given the servers directly, refuses persist: true there.
        refused = run_module('redis_failover', {
            'instances': c.instances, 'target': {'host': NAME, 'port': c.replicas[0].port}, 'master_auth': PASSWORD,
            'persist': True, **c.tls_args()})
        assert refused.get('failed') is True and 'in a temporary directory' in refused['msg'], refused
        assert c.master.role() == 'master'
        assert not (c.master.data / 'redis.conf').exists()
    finally:
        c.remove()


def test_health_check_and_cli(configured, tmp_path):
    for boot in (configured.master, configured.sentinels[0]):
        ok = subprocess.run(['sh', str(BOOT), 'health', boot.kind], env=boot.env(), capture_output=True, check=False)
        assert ok.returncode == 0, ok
    info = subprocess.run(['sh', str(BOOT), 'cli', 'server', 'INFO', 'replication'], env=configured.master.env(),
                          capture_output=True, text=True, check=False)
    assert info.returncode == 0 and 'role:master' in info.stdout and not info.stdout.startswith('OK'), info
    named = subprocess.run(['sh', str(BOOT), 'cli', 'sentinel', 'SENTINEL', 'get-master-addr-by-name', 'mymaster'],
                           env=configured.sentinels[0].env(), capture_output=True, text=True, check=False)
    assert named.stdout.split() == [NAME, str(configured.master.port)], named
    wrong = tmp_path / 'wrong'
    wrong.write_text('not-the-password')
    env = dict(configured.master.env(), BOOT_PASSWORD_FILE=str(wrong))
    refused = subprocess.run(['sh', str(BOOT), 'health', 'server'], env=env, capture_output=True, check=False)
    assert refused.returncode == 1
    denied = subprocess.run(['sh', str(BOOT), 'cli', 'server', 'PING'], env=env, capture_output=True, text=True,
                            check=False)
    assert denied.returncode == 1 and 'cannot authenticate' in denied.stderr


# --- the compose file the stack role renders ------------------------------------------------------

def render(tmp: Path, **extra) -> dict:
    out = tmp / ('compose-%d.yml' % time.monotonic_ns())
    proc = run_playbook('tests/integration/redis/playbooks/render_compose.yml', {'compose_out': str(out), **extra})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    assert 'render-test-pw' not in text
    if shutil.which('docker'):
        # The compose schema docker stack deploy applies (no daemon needed).
        check = subprocess.run(['docker', 'stack', 'config', '-c', str(out)], capture_output=True, text=True,
                               check=False)
        assert check.returncode == 0, check.stderr
    return yaml.safe_load(text)


@pytest.mark.parametrize('tls,sentinel', [(True, True), (False, True), (False, False)])
def test_rendered_redis_services(server_dir, tls, sentinel):
    compose = render(server_dir, stack_redis_tls=tls, stack_sentinel_enabled=sentinel)
    services = compose['services']
    redis_services = [n for n in services if n.startswith('redis-')]
    assert redis_services == ['redis-master', 'redis-replica-1', 'redis-replica-2'] + (
        ['redis-sentinel-1', 'redis-sentinel-2', 'redis-sentinel-3'] if sentinel else [])
    for name in redis_services:
        svc = services[name]
        env = svc['environment']
        # Started by the script, as root only until the server runs as redis; the role comes from
        # the Sentinels (or the compose file without them), never from a --replicaof argument.
        assert svc['entrypoint'] == ['sh', '/usr/local/lib/swarmlab/redis-boot.sh']
        assert svc['command'][0] == ('sentinel' if 'sentinel' in name else 'server')
        assert not any('replicaof' in arg for arg in svc['command'])
        assert env['BOOT_NAME'] == name and env['BOOT_USER'] == 'redis'
        assert env['BOOT_TLS'] == ('yes' if tls else 'no')
        if 'sentinel' not in name:
            assert env.get('BOOT_SENTINELS', '') == (
                'redis-sentinel-1:26379 redis-sentinel-2:26379 redis-sentinel-3:26379' if sentinel else '')
        secrets = {s['source']: s for s in svc['secrets']}
        assert secrets['redis_password']['mode'] == 0o400
        assert ('sentinel_password' in secrets) == sentinel
        assert ('redis_tls_key' in secrets) == tls
        assert svc['healthcheck']['test'][-2:] == ['health', 'sentinel' if 'sentinel' in name else 'server']
        assert {'type': 'tmpfs', 'target': '/run/redis'} in svc['volumes']
        assert '%s-data:/data' % name in svc['volumes']
    web = services['web']['environment']
    assert web['REDIS_URL'].startswith('rediss://' if tls else 'redis://')
    assert ('REDIS_TLS_CA_FILE' in web) == tls
    assert ('REDIS_SENTINEL_PASSWORD_FILE' in web) == sentinel and 'REDIS_SENTINEL_PASSWORD' not in web
    web_secrets = {s['source']: s for s in services['web']['secrets']}
    assert web_secrets['redis_password']['uid'] == '10001' and web_secrets['redis_password']['mode'] == 0o400
    if sentinel:
        assert set(compose['volumes']) >= {'redis-sentinel-1-data', 'redis-sentinel-2-data', 'redis-sentinel-3-data'}


def test_the_roles_certificates_serve_every_name_and_are_made_once(server_dir):
    # stack_dir owned by root and 0700 below, as on a manager.
    stack_dir = server_dir / 'stack'
    stack_dir.mkdir()
    runs = [run_playbook('tests/integration/redis/playbooks/stack_tls.yml', {'stack_dir': str(stack_dir)})
            for _run in range(2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    changed = [int(re.search(r'localhost\s+: ok=\d+\s+changed=(\d+)', p.stdout).group(1)) for p in runs]
    assert changed[0] > 0 and changed[1] == 0, changed
    tls = stack_dir / 'tls'
    assert oct(tls.stat().st_mode & 0o777) == '0o700'
    assert oct((tls / 'redis.key').stat().st_mode & 0o777) == '0o600'
    assert oct((tls / 'ca' / 'ca.key').stat().st_mode & 0o777) == '0o600'

    from cryptography import x509
    cert = x509.load_pem_x509_certificate((tls / 'redis.crt').read_bytes())
    names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName))
    for service in ('redis-master', 'redis-replica-1', 'redis-replica-2', 'redis-sentinel-1', 'redis-sentinel-3'):
        assert {service, 'swarmlab_' + service} <= names, names

    # A real TLS-only server with that certificate: clients verify it with the CA, by name.
    port = free_port()
    proc = subprocess.Popen(['redis-server', '--port', '0', '--tls-port', str(port), '--bind', '127.0.0.1',
                             '--tls-cert-file', str(tls / 'redis.crt'), '--tls-key-file', str(tls / 'redis.key'),
                             '--tls-ca-cert-file', str(tls / 'ca' / 'ca.crt'), '--tls-auth-clients', 'no',
                             '--save', '', '--dir', str(server_dir)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(host='localhost', port=port, ssl=True, ssl_ca_certs=str(tls / 'ca' / 'ca.crt'),
                             ssl_check_hostname=True, socket_timeout=2)
        assert wait_for(lambda: quietly(client.ping), 10)
        with pytest.raises(redis.exceptions.ConnectionError, match='certificate verify failed'):
            redis.Redis(host='localhost', port=port, ssl=True, socket_timeout=2).ping()
    finally:
        proc.kill()
        proc.wait()


def quietly(call):
    try:
        return call()
    except redis.exceptions.RedisError:
        return None
