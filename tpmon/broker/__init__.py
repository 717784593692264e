"""A local single-node Apache Kafka (KRaft) for development, tests and the demo.

The broker's jars come from Maven Central through ``pom.xml`` beside this file: Maven copies them, with
their dependencies, into a cache folder once (``$XDG_CACHE_HOME/tpmon`` or ``~/.cache/tpmon``); later
starts reuse them. The broker keeps its data, configuration, log and pid file in a data folder
(default ``.tpmon/kafka``), formats its storage on first start and listens on loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOGGING = HERE / "log4j2.xml"
DEFAULT_PORT = 9092
DEFAULT_DATA = Path(".tpmon") / "kafka"


class BrokerError(RuntimeError):
    """Something a person has to fix; the message says what."""


def _kafka_version() -> str:
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tpmon" / f"kafka-{_kafka_version()}"


def check_java() -> str:
    """The java command, or a BrokerError saying how to get Java 17."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java is not installed: the local Kafka needs Java 17 or newer (e.g. apt-get install openjdk-17-jre)"
        )
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    digits = version.split('"')[1] if '"' in version else "0"
    major = int(digits.split(".")[0]) if digits.split(".")[0].isdigit() else 0
    if major < 17:
        raise BrokerError(f"Kafka 4 needs Java 17 or newer; `java -version` says {digits}")
    return java


def fetch_jars(quiet: bool = True) -> Path:
    """Resolve the broker's jars with Maven into the cache, once; return the folder holding them.
    Processes starting brokers at once on a new machine fetch them once: the others wait for it."""
    libs = cache_dir() / "libs"
    done = cache_dir() / ".complete"
    if done.exists():
        return libs
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():  # fetched by another process meanwhile
            return libs
        return _fetch(libs, done, quiet)


def _fetch(libs: Path, done: Path, quiet: bool) -> Path:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven is not installed: it fetches the Kafka jars once (e.g. apt-get install maven)")
    libs.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    if quiet:
        command.insert(2, "-q")
    result = subprocess.run(command, capture_output=quiet, text=True)
    if result.returncode != 0:
        detail = (result.stdout or "")[-2000:] if quiet else ""
        raise BrokerError(f"Maven could not fetch the Kafka jars (is Maven Central reachable?)\n{detail}")
    done.write_text(_kafka_version())
    return libs


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
BELOW_EPHEMERAL = 10_000  # ports to choose from, just below the range the system gives outgoing connections


def free_port() -> int:
    """A port free on loopback now, below the range the system hands out to outgoing connections. A port
    in that range can be taken from a stopped server by a client retrying it: the kernel may give the
    client that very port as its own, and the connection reaches itself (a TCP simultaneous open), which
    held a stopped test broker's port for minutes."""
    try:
        low = int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    for _ in range(100):
        port = random.randrange(max(1024, low - BELOW_EPHEMERAL), low)
        if port_free(port) and port_free(port + 1):  # (a broker's controller takes the next one)
            return port
    with socket.socket() as probe:  # all taken: any port the system gives
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


SERVER_PROPERTIES = """\
# Written by tpmon: a single-node KRaft broker and controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={logs}
num.partitions={partitions}
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Large enough for a 2 MB message to reach tpmon, which then rejects it whole to the dead letters.
message.max.bytes=8388608
replica.fetch.max.bytes=8388608
log.retention.hours=168
"""


@dataclass
class LocalKafka:
    """One local broker: ``start()`` returns once it accepts connections; ``stop()`` ends it."""

    data: Path = DEFAULT_DATA
    port: int = DEFAULT_PORT
    partitions: int = 4
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.data / "server.log"

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def _configure(self) -> Path:
        self.data = self.data.resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        controller_port = self.port + 1 if port_free(self.port + 1) else free_port()
        properties = self.data / "server.properties"
        properties.write_text(
            SERVER_PROPERTIES.format(
                port=self.port, controller_port=controller_port, logs=self.data / "logs", partitions=self.partitions
            )
        )
        return properties

    def _java(self, java: str, libs: Path, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={LOGGING}",
            f"-Dtpmon.kafka.log={self.log_file}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker in the background (formatting storage on first start); return its address."""
        if self.running_pid() is not None:
            raise BrokerError(
                f"a broker from {self.data} is already running (pid {self.running_pid()}); `tpmon kafka stop` ends it"
            )
        if not port_free(self.port):
            raise BrokerError(f"port {self.port} is in use; choose another with --port")
        java = check_java()
        libs = fetch_jars()
        properties = self._configure()
        if not (self.data / "logs" / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            # "--cluster-id=" keeps an id that starts with "-" from reading as an option.
            command = self._java(
                java, libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster}", "-c", str(properties)
            )
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise BrokerError(f"formatting the broker's storage failed:\n{result.stdout}{result.stderr}")
        console = (self.data / "console.log").open("ab")
        process = subprocess.Popen(
            self._java(java, libs, "kafka.Kafka", str(properties)),
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the caller does not reach it; stop() does
        )
        self.pid_file.write_text(f"{process.pid} {self.port}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                tail = (self.data / "console.log").read_text(errors="replace")[-3000:]
                raise BrokerError(f"the broker exited during start-up (code {process.returncode}):\n{tail}")
            if _listening(self.port):
                return self.bootstrap
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not accept connections within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL); return whether one was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    """Collect a child that has exited, so it does not linger as a zombie when we started it."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
