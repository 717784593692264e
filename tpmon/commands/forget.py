"""tpmon forget: ask every worker to erase customers (GDPR art. 17; docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import time
from pathlib import Path

import click

from ..output import err, fail

#: Seconds the whole command may take with Kafka away before it says so (never a hang).
WITHIN = 15.0


@click.command()
@click.argument("customer_ids", nargs=-1, metavar="CUSTOMER_ID...")
@click.option(
    "--file",
    "ids_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Customer ids to forget, one a line (blank lines and # comments skipped); besides any given.",
)
@click.option("--by", help="Who asks (recorded with the request and in the workers' logs) [default: your user name].")
@click.option("--bootstrap", help="Kafka bootstrap servers [env TPMON_BOOTSTRAP; default 127.0.0.1:9092].")
def forget(customer_ids: tuple[str, ...], ids_file: Path | None, by: str | None, bootstrap: str | None) -> None:
    """Ask every worker to forget each CUSTOMER_ID: its state, its journey and its stories are erased.

    One request per customer goes to the forget topic (TPMON_FORGET_TOPIC, default tpmon-forget,
    compacted; created if missing): its id, who asked and when, nothing else. Every worker reads the
    whole topic, now and after any restart, and erases the customer from the partitions it owns within
    seconds; counts already made stay. This command cannot know what the workers hold: each worker's
    log says, per request, "erased from partition P" or "held nothing here" (an id no worker knows is
    recorded all the same, and erased nowhere). Security settings come from TPMON_* environment
    variables, as for `tpmon worker`.
    """
    from monitor.erasures import id_problem
    from streams.settings import Settings

    from ..runtime import run_until_interrupted

    ids = list(customer_ids)
    for given in ids:
        problem = id_problem(given)
        if problem is not None:
            fail(f"{problem}: nothing was sent")
    if ids_file is not None:
        ids += ids_or_exit(ids_file)
    if not ids:
        fail("give the customer ids to forget, or --file FILE of them (one a line)")
    ids = list(dict.fromkeys(given.strip() for given in ids))
    asker = (by if by is not None else _user()).strip()
    if not asker:
        fail("--by: say who asks")
    try:
        settings = Settings.load(bootstrap=bootstrap)
    except ValueError as error:
        fail(str(error))
    recorded: list[str] = []  # the ids whose request Kafka has taken, in order
    try:
        run_until_interrupted(asyncio.wait_for(_send(settings, ids, asker, recorded), WITHIN))
    except (ConnectionError, TimeoutError) as error:
        reason = str(error) or f"Kafka at {settings.bootstrap} did not answer within {WITHIN:.0f} s"
        if not recorded:
            fail(f"{reason}; no request recorded (is Kafka running? `tpmon kafka start` runs one locally)", 1)
        fail(
            f"{reason}; {_requests(len(recorded))} of {len(ids)} recorded ({', '.join(recorded)}), the others not: "
            "run it again (a request twice is harmless)",
            1,
        )
    except KeyboardInterrupt:
        err.print("interrupted; the requests may not all be recorded: run it again (a request twice is harmless)")
        raise SystemExit(130) from None
    err.print(
        f"recorded {_requests(len(ids))} to forget, by {asker}, in {settings.forget_topic}: {', '.join(ids)}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    err.print(
        "each worker erases what it holds of them within seconds, and its log says so per request: "
        "'erased from partition P', or 'held nothing here' for a customer it does not hold (an id no "
        "worker knows is erased nowhere; this command cannot tell). Events still in the source topics are "
        "the source systems' to erase.",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


def ids_or_exit(path: Path, option: str = "") -> list[str]:
    """The customer ids of a file, one a line (monitor.erasures.read_ids), for `tpmon forget --file` and
    replay's and report's --forget; an unreadable file, or a bad id in it, is said and exits 2."""
    from monitor.erasures import read_ids

    try:
        return read_ids(path.read_text(encoding="utf-8").splitlines(), str(path))
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{option}{path}: cannot read it ({error.strerror if isinstance(error, OSError) else error})")
    except ValueError as error:
        fail(f"{option}{error}")
    raise AssertionError  # (fail exits)


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"


def _user() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return ""


async def _send(settings, ids: list[str], by: str, recorded: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Send one request per id; each id whose request Kafka has taken goes into ``recorded``."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from monitor.erasures import Request
    from streams.erasures import ensure_forget_topic
    from streams.logs import quiet_client_logs

    with quiet_client_logs():
        await ensure_forget_topic(settings)
        producer = AIOKafkaProducer(**settings.client_options(), acks="all", enable_idempotence=True)
        try:
            await producer.start()
        except KafkaError:
            raise ConnectionError(f"cannot reach Kafka at {settings.bootstrap}") from None
        try:
            now = time.time_ns() // 1000
            sent, failure = [], None
            try:
                for customer in ids:
                    value = Request(customer, by, now).value()
                    sent.append((customer, await producer.send(settings.forget_topic, value, customer.encode(), 0)))
            except KafkaError as error:
                failure = error
            for customer, future in sent:  # each one Kafka took, whatever became of the others
                try:
                    await future
                except KafkaError as error:
                    failure = failure or error
                else:
                    recorded.append(customer)
            if failure is not None:
                raise ConnectionError(f"Kafka at {settings.bootstrap} did not take a request ({failure})")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
