"""Redis for the bare app: a lone redis-server (the strict baseline), or Redis as the stack runs
it (a master with replicas, AOF, TLS for clients and replication, the app WAITing for replicas).

The second separates what the stack's Redis guarantees cost from what the Swarm costs (the edge,
the overlay, the containers): `swarmlab-ops perf`'s `bare-replicated` case (issue 17). No Sentinel:
it finds the master, it is not on a request's path. Everything on 127.0.0.1, in one temp dir.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "loadtest-pw"


@dataclass(frozen=True)
class RedisLayout:
    replicas: int = 0   # replicas of the master, each with its own redis-server
    wait: int = 0       # REDIS_WAIT_REPLICAS of the app
    tls: bool = False   # TLS only, for clients and replication (as roles/stack/files/redis-boot.sh)
    aof: bool = False   # appendonly yes on every server (stack_redis_appendonly)

    def check(self) -> None:
        if not 0 <= self.wait <= self.replicas <= 4:
            raise SystemExit(f"bare Redis: need 0 <= wait ({self.wait}) <= replicas ({self.replicas}) <= 4")

    def describe(self) -> str:
        if not self.replicas:
            return "a lone redis-server"
        return (f"redis-server master + {self.replicas} replica(s), WAIT {self.wait}, "
                f"TLS {'on' if self.tls else 'off'}, AOF {'on' if self.aof else 'off'}")


def make_tls(workdir: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 (openssl CLI; ECC
    secp384r1 as roles/pki makes them)."""
    files = {k: workdir / f"{k}.pem" for k in ("ca", "ca_key", "cert", "key")}
    csr, ext = workdir / "server.csr", workdir / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes"]
    for cmd in (
            ["req", "-x509", *key, "-keyout", files["ca_key"], "-out", files["ca"], "-days", "1",
             "-subj", "/CN=swarmlab perf bare CA"],
            ["req", *key, "-keyout", files["key"], "-out", csr, "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", files["ca_key"],
             "-CAcreateserial", "-out", files["cert"], "-days", "1", "-extfile", ext]):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True, timeout=30)
    return files


def server_args(layout: RedisLayout, port: int, workdir: Path, tls: dict[str, Path] | None,
                master_port: int | None = None) -> list[str]:
    args = ["redis-server", "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
            "--appendonly", "yes" if layout.aof else "no", "--requirepass", PASSWORD,
            "--logfile", str(workdir / "redis.log")]
    if tls:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls["cert"]),
                 "--tls-key-file", str(tls["key"]), "--tls-ca-cert-file", str(tls["ca"]),
                 "--tls-auth-clients", "no", "--tls-replication", "yes"]
    else:
        args += ["--port", str(port)]
    if master_port is not None:
        args += ["--replicaof", "127.0.0.1", str(master_port), "--masterauth", PASSWORD,
                 "--replica-read-only", "yes"]
    return args


def app_env(layout: RedisLayout, master: int, replicas: list[int],
            tls: dict[str, Path] | None) -> dict[str, str]:
    """The app's Redis variables (app/README.md); with TLS the name is `localhost`, the
    certificate's, as the stack's servers are reached by service names in their certificates."""
    host = "localhost" if tls else "127.0.0.1"
    env = {"REDIS_URL": f"{'rediss' if tls else 'redis'}://:{PASSWORD}@{host}:{master}/0",
           "REDIS_WAIT_REPLICAS": str(layout.wait)}
    if replicas:
        env["REDIS_REPLICAS"] = ",".join(f"{host}:{p}" for p in replicas)
    if tls:
        env.update(REDIS_TLS="1", REDIS_TLS_CA_FILE=str(tls["ca"]))
    return env


def online_replicas(info: str) -> int:
    """Replicas in state online in the text of INFO replication."""
    return sum(1 for line in info.splitlines()
               if line.startswith("slave") and ":" in line and "state=online" in line.split(":", 1)[1])


def wait_online(master: int, replicas: int, tls: dict[str, Path] | None, timeout: float = 30) -> None:
    """Until the master sees every replica online (synced), else RuntimeError (redis-cli, which
    comes with redis-server)."""
    cli = ["redis-cli", "-h", "localhost" if tls else "127.0.0.1", "-p", str(master),
           "--no-auth-warning", "-a", PASSWORD]
    if tls:
        cli += ["--tls", "--cacert", str(tls["ca"])]
    deadline = time.monotonic() + timeout
    online = 0
    while time.monotonic() < deadline:
        done = subprocess.run([*cli, "INFO", "replication"], capture_output=True, text=True,
                              timeout=5, check=False)
        online = online_replicas(done.stdout) if done.returncode == 0 else 0
        if online >= replicas:
            return
        time.sleep(0.2)
    raise RuntimeError(f"bare Redis: {online} of {replicas} replica(s) online after {timeout:.0f} s")
