"""How the review reads the workers' web views (--worker): with the credentials and the CA a worker's web
configuration asks for (docs/SECURITY.md)."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class WorkerAccess:
    user: str = ""
    password: str = ""
    ca_file: str = ""  # the CA of the workers' certificates (https); empty: the system's CAs

    @cached_property
    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def headers(self) -> dict[str, str]:
        if not self.user:
            return {}
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def json(self, address: str, timeout: float = 10) -> dict:
        request = urllib.request.Request(address, headers=self.headers())
        context = self.context if address.startswith("https:") else None
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read())
