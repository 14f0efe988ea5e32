"""Test certificates for servers on loopback, shared by the app tests (tests/app) and the Redis
module tests (tests/integration/redis). Import it as
``ansible_collections.swarmlab.cluster.tests.integration.support.tls`` (tests/conftest.py puts the checkout
on that path)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

# cryptography is a dependency of ansible-core, so it is in the venv.
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TlsFiles:
    """A CA and one server certificate for localhost/127.0.0.1 in ``base`` (ca.crt, server.crt,
    server.key 0600): what the stack role issues, on loopback. Every server uses the certificate;
    clients verify with the CA (its key usage is set, as Python's strict verification wants)."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(_name('test CA')).issuer_name(_name('test CA'))
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(valid[0]).not_valid_after(valid[1])
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name('localhost')).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(x509.SubjectAlternativeName([x509.DNSName('localhost'),
                                                            x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca = base / 'ca.crt'
        self.cert = base / 'server.crt'
        self.key = base / 'server.key'
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.key.chmod(0o600)

    def server_conf(self, port: int) -> str:
        """Redis/Sentinel settings: TLS only (port 0: no plaintext port), for clients and for the
        outgoing replication and Sentinel connections too."""
        return ('port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n'
                'tls-auth-clients no\ntls-replication yes\n' % (port, self.cert, self.key, self.ca))

    def client_kwargs(self) -> dict:
        """redis-py's arguments for a client that verifies the servers with the CA."""
        return {'ssl': True, 'ssl_ca_certs': str(self.ca)}
