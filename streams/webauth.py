"""Basic authentication and TLS on the worker's web port, from its web configuration (streams.webconfig),
wired through Faust's documented settings: an aiohttp middleware (web_application_options), the server's
TLS (web_ssl_context), and the HTTP client Faust forwards requests to other workers with (HttpClient).

Every path answers 401 without valid credentials, Faust's own pages and unknown paths included: the
middleware runs before routing. A check takes the same time whatever the user name (an unknown user's
password is checked against a decoy hash of the same cost) and runs in a thread, so that bcrypt's
tenths of a second never stop the worker's event loop. A successful check is remembered for a few
minutes under the SHA-256 of the Authorization header (never the password), so that Prometheus's
scrapes do not each cost a bcrypt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

import bcrypt
from aiohttp import web

from .webconfig import BCRYPT, REALM, USER_KEY, WebConfig

REMEMBER_SECONDS = 300.0  # how long a successful check is remembered
REMEMBERED = 1024  # at most this many Authorization headers remembered (the oldest forgotten first)
CHECKS_AT_ONCE = 2  # bcrypt checks running together: a flood of guesses takes two threads, not the worker
MAX_PASSWORD = 72  # bytes bcrypt reads
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Authenticator:
    """Who an Authorization header proves to be, against the configuration's users and bcrypt hashes."""

    def __init__(
        self,
        users: Mapping[str, bytes],
        clock: Callable[[], float] = time.monotonic,
        remember: float = REMEMBER_SECONDS,
        checks_at_once: int = CHECKS_AT_ONCE,
    ) -> None:
        self.users = [(name.encode(), hashed) for name, hashed in users.items()]
        cost = max((int(BCRYPT.match(h.decode()).group(1)) for _, h in self.users), default=10)  # type: ignore[union-attr]
        self.decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        self.clock = clock
        self.remember = remember
        self.remembered: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self.checks = asyncio.Semaphore(checks_at_once)

    def recall(self, header: str) -> str | None:
        """The user of a header checked successfully in the last REMEMBER_SECONDS, else None."""
        key = hashlib.sha256(header.encode()).digest()
        hit = self.remembered.get(key)
        if hit is None:
            return None
        user, until = hit
        if self.clock() >= until:
            del self.remembered[key]
            return None
        return user

    def keep(self, header: str, user: str) -> None:
        self.remembered[hashlib.sha256(header.encode()).digest()] = (user, self.clock() + self.remember)
        while len(self.remembered) > REMEMBERED:
            self.remembered.popitem(last=False)

    def verify(self, header: str) -> str | None:
        """The user whose password the header carries (slow: a bcrypt check), else None."""
        given = _basic(header)
        if given is None:
            return None
        name, password = given
        found = None
        for user, hashed in self.users:  # every name compared, in constant time
            if hmac.compare_digest(user, name):
                found = (user, hashed)
        hashed = found[1] if found is not None else self.decoy
        matches = bcrypt.checkpw(password[:MAX_PASSWORD], hashed)
        if found is None or not matches or len(password) > MAX_PASSWORD:
            return None
        return found[0].decode()

    async def user(self, header: str | None) -> str | None:
        """The user the header proves, remembered or checked (off the event loop)."""
        if not header:
            return None
        user = self.recall(header)
        if user is not None:
            return user
        async with self.checks:
            user = await asyncio.to_thread(self.verify, header)
        if user is not None:
            self.keep(header, user)
        return user


def _basic(header: str) -> tuple[bytes, bytes] | None:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    name, colon, password = decoded.partition(b":")
    return (name, password) if colon else None


def authentication(authenticator: Authenticator) -> Callable:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = await authenticator.user(request.headers.get("Authorization"))
        if user is None:
            return web.Response(status=401, text="401 Unauthorized\n", headers=CHALLENGE)
        request[USER_KEY] = user
        return await handler(request)

    return authenticate


def response_headers(headers: Mapping[str, str]) -> Callable:
    """The configuration's headers on every response, errors included."""

    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            error.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    return add_headers


def web_server_options(config: WebConfig | None, peer_ca_file: str = "") -> dict:
    """The Faust settings that serve ``config``: none without one."""
    if config is None:
        return {}
    middlewares = []
    if config.headers:
        middlewares.append(response_headers(config.headers))
    if config.users:
        middlewares.append(authentication(Authenticator(config.users)))
    options: dict[str, object] = {"web_application_options": {"middlewares": middlewares}}
    if config.tls is not None:
        options["web_ssl_context"] = config.tls.server_context()
        options["HttpClient"] = peer_client(config.tls.peer_context(peer_ca_file))
    return options


def peer_client(context: object) -> Callable:
    """Faust's HttpClient setting: the session it forwards a request with (app.table_route, to the worker
    owning the key), trusting the workers' CA. Faust passes the request's headers on, the Authorization
    header with them; made when first used, inside the worker's event loop."""

    def session() -> object:
        import aiohttp

        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    return session
