"""A PEP 503 simple index on loopback over HTTPS, serving wheels it builds, with a request log.

It stands in for a package index a job's setup installs from through the sandbox proxy; the
log shows what was downloaded, so a test can see that a warm cache downloads nothing. HTTPS
because that is what real indexes speak, and pip caches only what it fetched over HTTPS.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import ipaddress
import ssl
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def wheel(name: str, version: str, module_source: str) -> tuple[str, bytes]:
    """A minimal, valid pure-Python wheel: `(filename, bytes)`."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module_source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: pact-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


def self_signed() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for 127.0.0.1; the certificate is its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pact test index")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class SimpleIndex:
    packages: dict[str, tuple[str, bytes]]
    cert_pem: bytes = b""
    log: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/simple/"

    def downloads(self) -> list[str]:
        return [p for p in self.log if p.endswith(".whl")]


@contextmanager
def simple_index(
    packages: Sequence[tuple[str, str, str]], latency: float = 0.0
) -> Iterator[SimpleIndex]:
    """Serve `(name, version, module source)` packages until the block ends; `latency`
    seconds before each answer stand for an index across the internet."""
    cert, key = self_signed()
    index = SimpleIndex({name: wheel(name, ver, src) for name, ver, src in packages}, cert)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            index.log.append(self.path)
            if latency:
                time.sleep(latency)
            parts = [p for p in self.path.split("/") if p]
            body, ctype = b"not found", "text/plain"
            status = 404
            if parts == ["simple"]:
                links = "".join(f'<a href="/simple/{n}/">{n}</a>' for n in index.packages)
                body, ctype, status = (
                    f"<html><body>{links}</body></html>".encode(),
                    "text/html",
                    200,
                )
            elif len(parts) == 2 and parts[0] == "simple" and parts[1] in index.packages:
                fname, data = index.packages[parts[1]]
                sha = hashlib.sha256(data).hexdigest()
                link = f'<a href="/files/{fname}#sha256={sha}">{fname}</a>'
                body, ctype, status = f"<html><body>{link}</body></html>".encode(), "text/html", 200
            elif len(parts) == 2 and parts[0] == "files":
                for fname, data in index.packages.values():
                    if fname == parts[1]:
                        body, ctype, status = data, "application/octet-stream", 200
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=600")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        (cert_file, key_file) = (f"{d}/cert.pem", f"{d}/key.pem")
        with open(cert_file, "wb") as f:
            f.write(cert)
        with open(key_file, "wb") as f:
            f.write(key)
        ctx.load_cert_chain(cert_file, key_file)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    index.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
