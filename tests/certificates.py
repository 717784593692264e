"""A throwaway CA and certificates it signs, for tests of TLS (made with the openssl command: the venv
has no cryptography package)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

# Tests do not need bcrypt's cost 10: the lowest keeps each check a millisecond.
TEST_COST = 4


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ThrowawayCA:
    folder: Path
    cert: Path
    key: Path

    def issue(self, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), client: bool = False) -> Issued:
        """A certificate for ``hosts`` (IP addresses or DNS names), signed by this CA."""
        key, request, cert = (self.folder / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        names = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
        usage = "clientAuth" if client else "serverAuth"
        extensions = self.folder / f"{name}.ext"
        extensions.write_text(f"subjectAltName={names}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", request, "-subj", f"/CN={name}")  # fmt: skip
        _openssl("x509", "-req", "-in", request, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                 "-days", "2", "-out", cert, "-extfile", extensions)  # fmt: skip
        return Issued(cert, key)


def make_ca(folder: Path, name: str = "tpmon-test-ca") -> ThrowawayCA:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-keyout", key, "-out", cert, "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return ThrowawayCA(folder, cert, key)


def bcrypt_hash(password: str, cost: int = TEST_COST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def _openssl(*args: object) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the tests of TLS need the openssl command"
    subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)
