"""The registry with a certificate of the user's own, and back to the role's, as docs/registry.md
("Using an existing certificate") tells a user to do it.

After test_07_registry_users.py (file order). A CA and a server certificate for the registry's
address are made here with `cryptography`, as another PKI would; playbooks/registry.yml runs with
registry_tls_cert_src, registry_tls_key_src and registry_tls_ca_src (at -v), once more, then with the
three empty again. The certificate the registry serves is read from the controller, and a worker
reaches the registry through the CA the role wrote to its certs.d, as its docker pulls do.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab_checks import lab_node, recap, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def own_pki(directory, ip: str) -> dict[str, str]:
    """A CA and a server certificate for `ip`, written as PEM files; their paths, and the server
    certificate's PEM."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("own test CA")).issuer_name(_name("own test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name(ip)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=20))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "cert": cert.public_bytes(serialization.Encoding.PEM),
        "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()),
    }
    paths = {}
    for kind, data in files.items():
        path = directory / ("%s.pem" % kind)
        path.write_bytes(data)
        paths[kind] = str(path)
    paths["cert_pem"] = files["cert"].decode()
    paths["key_pem"] = files["key"].decode()
    return paths


def served(address: str) -> x509.Certificate:
    host, port = address.split(":")
    return x509.load_pem_x509_certificate(ssl.get_server_certificate((host, int(port))).encode())


def worker_status(address: str) -> str:
    """GET /v2/ from worker1 with the lab's credentials, verified with the CA in its certs.d."""
    return lab_node(LAB, "worker1").check_output(
        "curl -s -o /dev/null -w '%%{http_code}' -u moby:gordon --cacert /etc/docker/certs.d/%s/ca.crt "
        "https://%s/v2/" % (address, address))


@pytest.fixture(scope="module")
def own(manager, address, tmp_path_factory):
    pki = own_pki(tmp_path_factory.mktemp("own-pki"), address.split(":")[0])
    supplied = ("-e", "registry_tls_cert_src=%s" % pki["cert"], "-e", "registry_tls_key_src=%s" % pki["key"],
                "-e", "registry_tls_ca_src=%s" % pki["ca"])
    seen: dict = {"pki": pki}
    seen["first"] = run_playbook(LAB, "playbooks/registry.yml", "-v", "--diff", *supplied, show=False)
    seen["served_own"] = served(address)
    seen["worker_own"] = worker_status(address)
    key = manager.file("/etc/swarmlab-registry/registry/server.key")
    seen["key"] = (key.mode, key.user, key.content_string.strip())
    seen["again"] = run_playbook(LAB, "playbooks/registry.yml", *supplied, show=False)
    seen["back"] = run_playbook(LAB, "playbooks/registry.yml")
    seen["served_back"] = served(address)
    seen["worker_back"] = worker_status(address)
    return seen


def test_the_registry_serves_the_supplied_certificate_and_workers_trust_it(own):
    assert own["first"].returncode == 0, own["first"].stdout[-3000:]
    assert own["served_own"] == x509.load_pem_x509_certificate(own["pki"]["cert_pem"].encode())
    assert own["worker_own"] == "200"


def test_the_supplied_key_is_0600_and_never_printed(own):
    assert own["key"] == (0o600, "root", own["pki"]["key_pem"].strip())
    body = own["pki"]["key_pem"].splitlines()[1]  # the first line of the key's base64
    for name in ("first", "again"):
        assert body not in own[name].stdout + own[name].stderr, name


def test_a_second_run_with_the_same_files_changes_nothing(own):
    again = own["again"]
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), recap(again.stdout)


def test_back_to_the_roles_certificate_workers_still_verify_the_registry(own):
    assert own["back"].returncode == 0, own["back"].stdout[-3000:]
    issuer = own["served_back"].issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert issuer == "swarmlab registry CA"
    assert own["worker_back"] == "200"
