"""Issue 15 (secure by default) where it can be tested without a lab: the compose file the stack
role renders (two overlays, the backend internal and not attachable, encryption), the preflight
that refuses encrypted overlays on a kernel without ESP/GCM (this machine's: docs/security.md), and
passwords with quotes, backslashes and spaces through the stack's real start script and
redis-server. What the lab shows (the edge cannot reach Redis, workers hold no registry
credentials, no token in `site.yml -vvv`) is in molecule/default/tests/test_security.py.

Run from the checkout:  .venv/bin/pytest tests/integration/redis/test_stack_security.py -q
"""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_harness import free_port, run_playbook, server_base
from test_redis_guards import wait_for
from test_stack_boot import BOOT, NAME, Boot, Cluster, render

pytestmark = pytest.mark.integration


@pytest.mark.parametrize('lb_mode', ['edge', 'ingress'])
def test_two_overlays_and_only_web_on_both(server_dir, lb_mode):
    compose = render(server_dir, stack_lb_mode=lb_mode)
    nets = compose['networks']
    assert set(nets) == {'frontend', 'backend'}
    # The backend: no route out, no plain container joins; both encrypted by default.
    assert nets['backend']['internal'] is True and nets['backend']['attachable'] is False
    assert nets['frontend'].get('internal', False) is False and nets['frontend']['attachable'] is True
    for net in nets.values():
        assert net['driver'] == 'overlay' and net['driver_opts'] == {'encrypted': ''}
    services = compose['services']
    assert services['web']['networks'] == ['frontend', 'backend']
    for name, svc in services.items():
        if name.startswith('redis-'):
            assert svc['networks'] == ['backend'], name
    if lb_mode == 'edge':
        # The edge never shares a network with Redis or the Sentinels.
        assert services['edge']['networks'] == ['frontend']
    else:
        assert 'edge' not in services


def test_encryption_and_attachable_follow_the_inventory(server_dir):
    compose = render(server_dir, stack_lb_mode='edge', stack_network_encrypted=False, stack_network_attachable=True,
                     stack_frontend_network='public', stack_network='private')
    nets = compose['networks']
    assert set(nets) == {'public', 'private'}
    assert 'driver_opts' not in nets['public'] and 'driver_opts' not in nets['private']
    assert nets['private']['attachable'] is True and nets['private']['internal'] is True
    assert compose['services']['edge']['networks'] == ['public']
    assert compose['services']['redis-master']['networks'] == ['private']


def kernel_has_esp_gcm() -> bool:
    """What the preflight asks the kernel, asked directly (an ESP state with rfc4106(gcm(aes)))."""
    probe = subprocess.run(
        ['unshare', '--net', 'ip', 'xfrm', 'state', 'add', 'src', '192.0.2.1', 'dst', '192.0.2.2', 'proto', 'esp',
         'spi', '0x5157', 'reqid', '1', 'mode', 'transport', 'aead', 'rfc4106(gcm(aes))',
         '0x0102030405060708090a0b0c0d0e0f1011121314', '64'], capture_output=True, text=True, check=False)
    return probe.returncode == 0


PREFLIGHT = 'tests/integration/redis/playbooks/stack_preflight.yml'


def test_preflight_refuses_encrypted_overlays_on_a_kernel_without_esp_and_names_the_fix():
    proc = run_playbook(PREFLIGHT, {})
    if kernel_has_esp_gcm():
        assert proc.returncode == 0, proc.stdout
        pytest.skip('this kernel has ESP and GCM: the preflight passed; the refusal needs a kernel without them')
    # This machine's kernel (docs/security.md): Docker would create the network and drop every packet.
    assert proc.returncode != 0, proc.stdout
    out = ' '.join(proc.stdout.split())
    assert 'cannot carry encrypted overlay traffic' in out
    for needed in ('esp4', 'xfrm_user', 'gcm', 'ESP (IP protocol 50)', 'udp 4789', '7946', 'stack_network_encrypted: false'):
        assert needed in out, needed


def test_preflight_is_skipped_when_encryption_is_off():
    proc = run_playbook(PREFLIGHT, {'stack_network_encrypted': False})
    assert proc.returncode == 0, proc.stdout
    assert 'skipping' in proc.stdout and 'cannot carry' not in proc.stdout


# Quotes, backslashes, spaces, a '#', '$' and a backslash escape: what a config file line or a
# shell could misread.
NASTY = 'a "quoted" pa\\ss \'word\' #1 $HOME \\x41'
NASTY_SENTINEL = 'sentinel \\"pw\\" with spaces \''


def test_passwords_with_quotes_backslashes_and_spaces_work_through_the_start_script():
    c = Cluster(server_base('boot-'), with_sentinel=False)
    try:
        for name, value in (('redis_password', NASTY), ('sentinel_password', NASTY_SENTINEL)):
            path = c.secrets / name
            path.chmod(0o600)
            path.write_text(value)
            path.chmod(0o400)
        for s in c.servers:
            s.start(wait=False)
        sentinel = Boot(c, 'redis-sentinel-1', 'sentinel').start(wait=False)

        def client(boot: Boot, password: str) -> redis.Redis:
            return redis.Redis(host=NAME, port=boot.port, password=password, ssl=True,
                               ssl_ca_certs=str(c.tls.ca), socket_timeout=3, socket_connect_timeout=2,
                               retry=Retry(NoBackoff(), 0), decode_responses=True)

        def linked() -> bool:
            try:
                return all(client(r, NASTY).info('replication').get('master_link_status') == 'up' for r in c.replicas)
            except redis.exceptions.RedisError:
                return False
        # requirepass and masterauth: the replicas authenticate to the master with it.
        wait_for(linked, 30, 0.3)
        assert client(c.master, NASTY).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            client(c.master, 'a').ping()
        wait_for(lambda: _pings(client(sentinel, NASTY_SENTINEL)), 20, 0.3)
        # The health check and the cli go through redis-cli's input with the same quoting.
        for boot in (c.master, sentinel):
            ok = subprocess.run(['sh', str(BOOT), 'health', boot.kind], env=boot.env(), capture_output=True, check=False)
            assert ok.returncode == 0, (boot.name, ok)
        sentinel.stop()
    finally:
        c.remove()


def _pings(cl: redis.Redis) -> bool:
    try:
        return bool(cl.ping())
    except redis.exceptions.RedisError:
        time.sleep(0.1)
        return False


# --- the edge: a real HAProxy on loopback with the rendered configuration -----------------------

class _App(http.server.BaseHTTPRequestHandler):
    """Stands in for web (the edge's checks need a /readyz that answers); counts what reaches it."""
    seen: list[str] = []
    lock = threading.Lock()
    in_flight = 0
    most_in_flight = 0  # requests to /slow at the same time, at most

    def _answer(self) -> None:
        length = int(self.headers.get('Content-Length') or 0)
        if length:
            self.rfile.read(length)
        if self.path != '/readyz':
            _App.seen.append(self.command + ' ' + self.path)
        if self.path in ('/slow', '/stall'):
            with _App.lock:
                _App.in_flight += 1
                _App.most_in_flight = max(_App.most_in_flight, _App.in_flight)
            # /stall: longer than the edge's connect time-out (2 s), as web's writes are held while
            # Sentinel fails the Redis master over.
            time.sleep(0.3 if self.path == '/slow' else 2.5)
            with _App.lock:
                _App.in_flight -= 1
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope='module')
def app_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@pytest.fixture(scope='module')
def cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (the CA clients trust) and the PEM HAProxy reads."""
    d = tmp_path_factory.mktemp('edge-tls')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-subj', '/CN=edge test', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2',
                    '-keyout', str(d / 'edge.key'), '-out', str(d / 'edge.crt')], check=True, capture_output=True)
    (d / 'edge.pem').write_text((d / 'edge.crt').read_text() + (d / 'edge.key').read_text())
    return d


class Edge:
    def __init__(self, tmp: Path, cert: Path, app_port: int, threads: int = 0, **extra) -> None:
        out = tmp / ('haproxy-%d.cfg' % time.monotonic_ns())
        proc = run_playbook('tests/integration/redis/playbooks/render_haproxy.yml', {'haproxy_out': str(out), **extra})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.http, self.https, metrics, dns = free_port(), free_port(), free_port(), free_port()
        config = out.read_text()
        self.rendered = config
        tls_bind = '    bind :8443 ssl crt /run/secrets/edge_tls.pem'
        server = '    server-template web 8 tasks.web:8000 check resolvers docker init-addr none\n'
        assert '    bind :8080\n' in config and server in config
        if threads:
            config = config.replace('\nglobal\n', '\nglobal\n    nbthread %d\n' % threads, 1)
        config = (config.replace('    bind :8080\n', '    bind 127.0.0.1:%d\n' % self.http)
                  .replace(tls_bind, '    bind 127.0.0.1:%d ssl crt %s' % (self.https, cert / 'edge.pem'))
                  .replace('    bind :8405\n', '    bind 127.0.0.1:%d\n' % metrics)
                  .replace('127.0.0.11:53', '127.0.0.1:%d' % dns)
                  .replace(server, '    server web1 127.0.0.1:%d check\n' % app_port))
        path = tmp / ('edge-%d.cfg' % time.monotonic_ns())
        path.write_text(config)
        check = subprocess.run(['haproxy', '-c', '-f', str(path)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen(['haproxy', '-db', '-f', str(path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.ca = str(cert / 'edge.crt')

        def up() -> bool:
            # A TCP connect only: an HTTP request would count against the rate limit.
            with socket.socket() as sock:
                return sock.connect_ex(('127.0.0.1', self.http)) == 0
        wait_for(up, 15, 0.1)
        # The backend's first check must pass before the edge sends anything to it.
        time.sleep(2.5)

    def connection(self, port: int, timeout: float = 5, **tls) -> http.client.HTTPConnection:
        if port == self.https:
            ctx = ssl.create_default_context(cafile=self.ca)
            if tls.get('minimum_version') == ssl.TLSVersion.TLSv1:
                ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
            for key, value in tls.items():
                setattr(ctx, key, value)
            return http.client.HTTPSConnection('127.0.0.1', port, context=ctx, timeout=timeout)
        return http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)

    def get(self, port: int, path: str, method: str = 'GET', body: bytes | None = None, headers: dict | None = None,
            timeout: float = 5, **tls) -> tuple[int, dict, bytes]:
        conn = self.connection(port, timeout, **tls)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def edge(tmp_path, cert, app_server):
    made = []

    def make(threads: int = 0, **extra) -> Edge:
        e = Edge(tmp_path, cert, app_server, threads, **extra)
        made.append(e)
        return e
    try:
        yield make
    finally:
        for e in made:
            e.stop()


def test_https_with_the_ca_hsts_and_http_redirects(edge):
    e = edge()
    status, headers, _body = e.get(e.https, '/api/counter')
    assert status == 200 and headers['strict-transport-security'] == 'max-age=31536000'
    status, headers, _body = e.get(e.http, '/api/counter?x=1', headers={'Host': '127.0.0.1:%d' % e.http})
    # To the same host and path on stack_https_port, and never served in clear; no HSTS over HTTP.
    assert status == 301 and headers['location'] == 'https://127.0.0.1:8443/api/counter?x=1'
    assert 'strict-transport-security' not in headers
    status, headers, _body = e.get(e.http, '/api/counter/increment', method='POST', body=b'{}',
                                   headers={'Content-Type': 'application/json'})
    assert status == 301


@pytest.mark.filterwarnings('ignore:ssl.TLSVersion.TLSv1:DeprecationWarning')
def test_tls_below_the_minimum_is_refused(edge):
    e = edge()
    assert 'ssl-min-ver TLSv1.2' in e.rendered
    # The client offers TLS 1.0-1.1 only, with every cipher allowed: the server refuses.
    with pytest.raises(ssl.SSLError):
        e.get(e.https, '/api/counter', minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    assert e.get(e.https, '/api/counter', maximum_version=ssl.TLSVersion.TLSv1_2)[0] == 200
    # The minimum follows the inventory: with TLSv1.3, a TLS 1.2 client is refused.
    strict = edge(stack_edge_tls_min_version='TLSv1.3')
    with pytest.raises(ssl.SSLError):
        strict.get(strict.https, '/api/counter', maximum_version=ssl.TLSVersion.TLSv1_2)
    assert strict.get(strict.https, '/api/counter')[0] == 200
    # And a client that does not know the CA does not get through.
    with pytest.raises(ssl.SSLError):
        conn = http.client.HTTPSConnection('127.0.0.1', e.https, context=ssl.create_default_context(), timeout=5)
        conn.request('GET', '/')


def test_a_body_over_the_limit_gets_413_from_the_edge_without_reaching_web(edge):
    e = edge(stack_edge_max_body_bytes=1024)
    _App.seen.clear()
    status, _headers, _body = e.get(e.https, '/api/counter/increment', method='POST', body=b'x' * 1025,
                                    headers={'Content-Type': 'application/json'})
    assert status == 413 and _App.seen == []
    assert e.get(e.https, '/api/counter/increment', method='POST', body=b'{}',
                 headers={'Content-Type': 'application/json'})[0] == 200
    assert _App.seen == ['POST /api/counter/increment']


def test_a_source_over_the_rate_gets_429_and_web_sees_only_the_allowed(edge):
    e = edge(stack_edge_rate_limit=20, stack_edge_rate_period='30s', stack_edge_tls=False)
    _App.seen.clear()
    statuses = [e.get(e.http, '/api/counter')[0] for _request in range(25)]
    assert statuses == [200] * 20 + [429] * 5, statuses
    assert len(_App.seen) == 20


@pytest.mark.parametrize('maxconn, most', [(0, 4), (1, 1)])
def test_the_edge_sends_a_task_at_most_maxconn_requests_and_queues_the_rest(edge, maxconn, most):
    """stack_edge_server_maxconn: 0 passes every request on at once; N keeps the rest in the edge's
    queue until the task answers one (none is refused).

    One HAProxy thread: with several, HAProxy 2.4-3.1 may let one more through when threads dequeue at
    once (haproxy/haproxy#2744; seen once in CI, most 2 for maxconn 1); the test is of our setting."""
    e = edge(threads=1, stack_edge_tls=False, stack_edge_server_maxconn=maxconn)
    assert ('maxconn %d' % maxconn in e.rendered) == (maxconn > 0)
    _App.most_in_flight = 0
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _request: e.get(e.http, '/slow')[0], range(4)))
    assert statuses == [200] * 4 and _App.most_in_flight == most


def test_a_request_queued_at_the_edge_waits_for_a_slow_task_instead_of_a_503(edge):
    """With stack_edge_server_maxconn, a request that waits in the edge's queue longer than the
    connect time-out (HAProxy's default for `timeout queue`) is still served: as long as it would
    have waited inside the task without the cap, not a 503 after 2 s."""
    e = edge(threads=1, stack_edge_tls=False, stack_edge_server_maxconn=1)
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda _request: e.get(e.http, '/stall', timeout=15)[0], range(2)))
    assert statuses == [200, 200]


def test_without_tls_or_redirect_http_is_served_and_nothing_names_a_certificate(edge):
    e = edge(stack_edge_tls=False)
    assert 'ssl' not in e.rendered and 'Strict-Transport-Security' not in e.rendered
    assert e.get(e.http, '/api/counter')[0] == 200
    e2 = edge(stack_edge_http_redirect=False)
    assert e2.get(e2.http, '/api/counter')[0] == 200 and e2.get(e2.https, '/api/counter')[0] == 200


def test_the_roles_edge_certificate_names_the_manager_and_haproxy_serves_it(server_dir):
    """tasks/edge_tls.yml for real (the pki role, community.crypto): its subject alternative names
    failed to parse on the lab before ("IP:\\1"), and a second run changes nothing."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    stack_dir = server_dir / 'stack'
    stack_dir.mkdir()
    first = run_playbook('tests/integration/redis/playbooks/stack_edge_tls.yml', {'stack_dir': str(stack_dir)})
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_playbook('tests/integration/redis/playbooks/stack_edge_tls.yml', {'stack_dir': str(stack_dir)})
    assert second.returncode == 0 and ' changed=0 ' in second.stdout, second.stdout
    tls = stack_dir / 'edge-tls'
    cert = x509.load_pem_x509_certificate((tls / 'edge.crt').read_bytes())
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert socket.gethostname() in names and 'edge.example.org' in names
    assert '192.0.2.10' in addresses and addresses - {'192.0.2.10'}, addresses  # and this host's address
    pem = tls / 'edge.pem'
    assert pem.stat().st_mode & 0o777 == 0o600
    assert 'BEGIN CERTIFICATE' in pem.read_text() and 'PRIVATE KEY' in pem.read_text()
    # HAProxy takes the PEM as it is, and a client with the role's CA verifies the server by name.
    port = free_port()
    cfg = server_dir / 'tls-only.cfg'
    cfg.write_text('defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n'
                   'frontend https\n    bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.2\n'
                   '    http-request return status 200 content-type text/plain string ok\n' % (port, pem))
    proc = subprocess.Popen(['haproxy', '-db', '-f', str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(('127.0.0.1', port)) == 0
        wait_for(up, 15, 0.1)
        ctx = ssl.create_default_context(cafile=str(tls / 'ca' / 'ca.crt'))
        with socket.create_connection(('127.0.0.1', port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname='edge.example.org') as conn:
                assert conn.version() in ('TLSv1.2', 'TLSv1.3')
    finally:
        proc.terminate()
        proc.wait(10)


# --- images by digest (supply chain) ---------------------------------------------------------------

DIGEST = 'sha256:' + '0123456789abcdef' * 4


def test_images_are_rendered_by_digest_where_the_inventory_gives_one(server_dir):
    plain = render(server_dir, stack_lb_mode='edge')['services']
    assert plain['web']['image'] == 'registry.example.org/web:1.0.0'
    assert plain['redis-master']['image'] == 'redis:7' and plain['edge']['image'] == 'haproxy:2.6'
    # A digest variable, or the digest in the image variable itself.
    pinned = render(server_dir, stack_lb_mode='edge', stack_web_image_digest=DIGEST, stack_redis_image_digest=DIGEST,
                    stack_edge_image='haproxy:2.6@' + DIGEST)['services']
    assert pinned['web']['image'] == 'registry.example.org/web:1.0.0@' + DIGEST
    assert pinned['edge']['image'] == 'haproxy:2.6@' + DIGEST
    redis_images = {svc['image'] for name, svc in pinned.items() if name.startswith('redis-')}
    assert redis_images == {'redis:7@' + DIGEST}


@pytest.mark.parametrize('extra,message', [
    ({'stack_redis_image_digest': 'sha256:abc'}, ['stack_redis_image_digest:', 'sha256:abc', 'is not an image digest']),
    ({'stack_edge_image': 'haproxy:2.6@' + DIGEST.upper()}, ['stack_edge_image:', 'is not an image digest']),
    ({'stack_web_image': 'registry.example.org/web@' + DIGEST, 'stack_web_image_digest': 'sha256:' + 'f' * 64},
     ['stack_web_image carries the digest', 'give one, or the same']),
])
def test_a_wrong_digest_fails_before_anything_changes(server_dir, extra, message):
    stack_dir = server_dir / 'stack'
    settings = {'stack_dir': str(stack_dir), 'stack_web_image': 'registry.example.org/web:1.0.0',
                'stack_redis_password': 'render-test-pw', **extra}
    proc = run_playbook('tests/integration/redis/playbooks/stack_role.yml', settings)
    # The YAML callback may fold a long message over lines.
    out = ' '.join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, out
    assert 'Check the image references' in out and all(part in out for part in message), out[-3000:]
    assert ' changed=0 ' in out and not stack_dir.exists(), out[-3000:]
