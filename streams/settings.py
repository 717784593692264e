"""The worker's settings: command-line flags over environment variables over defaults."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

from monitor.conventions import DEAD_LETTER_TOPIC, FORGET_TOPIC, JOURNEYS_TOPIC
from monitor.durations import parse_duration
from monitor.observe.windows import PROFILES
from monitor.personal import parse_user_names

ENV_PREFIX = "TPMON_"
STORES = ("rocksdb", "memory")  # where a worker keeps its tables' records (``Settings.store``)


@dataclass(frozen=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    app_id: str = "tpmon"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_config: str = ""  # the web configuration file (streams.webconfig): TLS and basic authentication
    web_ca_file: str = ""  # the CA of the other workers' web certificates (requests forwarded to them)
    # The URL the other workers reach this one's web port at (they forward /journeys of the customers
    # this one holds); empty: the web host, or this machine's name when the web host is every address.
    web_url: str = ""
    insecure_web: bool = False  # serve beyond loopback without a web configuration (tpmon worker warns)
    rules: str = ""  # catalog path; empty: the default (see tpmon.paths)
    lateness: str = ""  # empty: the catalog's
    # test: the touchpoints' rolling state windows divided by 60 (1h -> 1m), as `tpmon rules render
    # --profile test` divides the rules' windows: for tests that run an hour in a minute (demo: 120).
    profile: str = "production"
    max_future: str = ""  # empty: the catalog's; events further ahead of the wall clock are future_timestamp
    topics: str = (
        ""  # the source topics: empty, the catalog's sources by name; else one per source, in order, or source=topic
    )
    events_topic: str = "tpmon-events"  # events repartitioned by customer
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    journeys_topic: str = JOURNEYS_TOPIC
    forget_topic: str = FORGET_TOPIC  # requests to forget a customer (tpmon forget), read by every worker
    # The web users (of the web configuration) who see personal fields in /journeys, comma-separated;
    # nobody else does, and without a web configuration nobody (docs/SECURITY.md).
    personal_readers: str = ""
    # The web users who may ask, with POST /forget/{customer_id}, that a customer be forgotten; nobody
    # else may (docs/SECURITY.md).
    forget_users: str = ""
    partitions: int = 4
    dedup_retention: str = "48h"
    # Customers held in memory over the worker's partitions, besides those with something waiting on the
    # watermark or due soon; the others wait in the store until their next event or due time
    # (docs/ARCHITECTURE.md).
    customers_in_memory: int = 50_000
    # Customers' journeys held in memory over the worker's partitions, the most recently used; the others
    # are read back from the journeys table when next needed.
    journeys_in_memory: int = 10_000
    tick_interval: float = 0.2  # seconds between clock ticks of idle partitions
    sweep_interval: float = 60.0  # seconds between retention sweeps (duplicate ids, freed customers, journeys)
    batch_size: int = 2000  # at most this many messages per fetch, handled (and their records written) together
    session_timeout: float = 30.0  # seconds before the group gives a silent worker's partitions to others
    data_dir: str = ".tpmon/worker"
    # Where the tables' records live on this machine: rocksdb (on disk in the data dir, a restart reads
    # only the changelog written since its checkpoint: streams.store) or memory (read whole at each start).
    store: str = "rocksdb"
    # Security, for real clusters.
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **flags: object) -> Settings:
        """Defaults, then TPMON_* environment variables, then flags that were given (not None)."""
        env = os.environ if env is None else env
        settings = cls()
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is not None and raw != "":
                values[field.name] = _convert(field.name, raw, type(getattr(settings, field.name)))
        values.update({name: value for name, value in flags.items() if value is not None})
        settings = replace(settings, **values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(
                f"security protocol {self.security_protocol!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            )
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError("SASL needs TPMON_SASL_USERNAME and TPMON_SASL_PASSWORD")
        parse_duration(self.dedup_retention)
        if self.profile not in PROFILES:
            raise ValueError(f"TPMON_PROFILE must be one of {', '.join(PROFILES)}, not {self.profile!r}")
        if self.customers_in_memory < 1:
            raise ValueError("TPMON_CUSTOMERS_IN_MEMORY must be at least 1")
        if self.journeys_in_memory < 1:
            raise ValueError("TPMON_JOURNEYS_IN_MEMORY must be at least 1")
        if self.store not in STORES:
            raise ValueError(f"TPMON_STORE must be one of {', '.join(STORES)}, not {self.store!r}")
        if self.sweep_interval <= 0:
            raise ValueError("TPMON_SWEEP_INTERVAL must be a number of seconds above 0")
        for name in ("lateness", "max_future"):
            value = getattr(self, name)
            if value:
                try:
                    parse_duration(value)
                except ValueError as error:
                    raise ValueError(f"{ENV_PREFIX}{name.upper()}: {error}") from None

    def topics_of(self, sources: Sequence[str]) -> dict[str, str]:
        """Each declared source's topic: its own name, unless TPMON_TOPICS names another, either one
        topic per source in the order the catalog declares them (``a,b,c,d``) or ``source=topic``
        pairs (the sources not named keep their names)."""
        given = [t.strip() for t in self.topics.split(",") if t.strip()]
        topics = {source: source for source in sources}
        if not given:
            return topics
        if all("=" in entry for entry in given):
            for entry in given:
                source, topic = (part.strip() for part in entry.split("=", 1))
                if source not in topics:
                    raise ValueError(f"TPMON_TOPICS: {source!r} is not a source of the catalog ({', '.join(sources)})")
                topics[source] = topic
            return topics
        if any("=" in entry for entry in given) or len(given) != len(sources):
            raise ValueError(
                f"TPMON_TOPICS names {len(given)} topics for the catalog's {len(sources)} sources "
                f"({', '.join(sources)}): give one per source, in that order, or source=topic pairs"
            )
        return dict(zip(sources, given, strict=True))

    @property
    def readers(self) -> tuple[str, ...]:
        """The personal readers, by name (``personal_readers``)."""
        return parse_user_names(self.personal_readers)

    @property
    def forgetters(self) -> tuple[str, ...]:
        """The web users who may ask to forget a customer, by name (``forget_users``)."""
        return parse_user_names(self.forget_users)

    def advertised_url(self, scheme: str) -> str:
        """Where the other workers reach this one's web port: ``web_url``, else the web host's address,
        or this machine's name when the web host is every address (0.0.0.0 cannot be reached)."""
        if self.web_url:
            return self.web_url
        host = self.web_host
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = socket.getfqdn()
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.web_port}"

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{host.strip()}" for host in self.bootstrap.split(","))

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.security_protocol.endswith("SSL"):
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return context

    def credentials(self):  # type: ignore[no-untyped-def]
        """Faust broker credentials for the configured security protocol (None for PLAINTEXT)."""
        import faust

        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return None

    def client_options(self) -> dict:
        """The same connection settings for plain aiokafka clients (produce, simulate)."""
        options: dict[str, object] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options


def _convert(name: str, raw: str, kind: type) -> object:
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{ENV_PREFIX}{name.upper()} must be 1 or 0, not {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a whole number, not {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a number, not {raw!r}") from None
    return raw
