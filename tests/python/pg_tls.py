"""A PostgreSQL server that takes only TLS connections, for the TLS tests: a CA, a server
certificate (for 127.0.0.1 and ``db.internal``, not for ``localhost``), a client
certificate for the role ``certuser``, and an unrelated CA, all made here with
``cryptography``. ``pg_hba.conf`` has ``hostssl`` lines only: ``postgres`` logs in with a
password, ``certuser`` with its certificate. Needs the Debian ``postgresql`` package."""

from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def available() -> bool:
    return _bindir() is not None


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(folder: Path) -> None:
    """ca.pem, server.pem/server.key, client.pem/client.key (CN certuser), other-ca.pem."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("taskito test CA", ca_key, None, ca=True)
    _write_cert(folder / "ca.pem", ca)
    other_key = ec.generate_private_key(ec.SECP256R1())
    _write_cert(folder / "other-ca.pem", _cert("some other CA", other_key, None, ca=True))
    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName("db.internal"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    _write_cert(folder / "server.pem", _cert("db.internal", server_key, (ca.subject, ca_key), sans=sans))
    _write_key(folder / "server.key", server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    _write_cert(folder / "client.pem", _cert("certuser", client_key, (ca.subject, ca_key)))
    _write_key(folder / "client.key", client_key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsServer:
    folder: Path
    port: int
    password: str

    def url(
        self, host: str = "127.0.0.1", user: str = "postgres", db: str = "postgres", **params: str
    ) -> str:
        auth = f"{user}:{self.password}@" if user == "postgres" else f"{user}@"
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{auth}{host}:{self.port}/{db}" + (f"?{query}" if query else "")

    def file(self, name: str) -> str:
        return str(self.folder / name)

    def psql(self, sql: str) -> str:
        """SQL as the superuser over the server's Unix socket (trusted, no TLS)."""
        bindir = _bindir()
        assert bindir is not None
        out = subprocess.run(
            _as_owner(
                [f"{bindir}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
                + ["-h", str(self.folder), "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
                + ["-c", sql]
            ),
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def stop(self) -> None:
        bindir = _bindir()
        subprocess.run(
            _as_owner([f"{bindir}/pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> TlsServer:
    bindir = _bindir()
    assert bindir is not None
    folder = Path(tempfile.mkdtemp(prefix="taskito-pg-tls."))
    folder.chmod(0o755)
    make_pki(folder)
    password = f"tls-{secrets.token_hex(6)}/?@"
    (folder / "pwfile").write_text(password + "\n")
    if os.getuid() == 0:
        shutil.chown(folder, "postgres")
        for f in folder.iterdir():
            shutil.chown(f, "postgres")
    subprocess.run(
        _as_owner(
            [f"{bindir}/initdb", "-D", str(folder / "data"), "-U", "postgres", "--auth-local=trust"]
            + ["--auth-host=scram-sha-256", f"--pwfile={folder / 'pwfile'}", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    hba = folder / "data" / "pg_hba.conf"
    hba.write_text(
        "local all all trust\n"
        "hostssl all certuser 127.0.0.1/32 cert\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
    )
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c ssl=on"
        f" -c ssl_cert_file={folder / 'server.pem'} -c ssl_key_file={folder / 'server.key'}"
        f" -c ssl_ca_file={folder / 'ca.pem'}"
    )
    subprocess.run(
        _as_owner([f"{bindir}/pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "server.log")])
        + ["-w", "-t", "30", "start", "-o", options],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    server = TlsServer(folder, port, password)
    server.psql("CREATE ROLE certuser LOGIN SUPERUSER")
    return server
