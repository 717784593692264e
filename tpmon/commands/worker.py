"""tpmon worker: a Faust worker of the live pipeline."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from ..output import err, fail
from .catalog import catalog_or_exit


@click.command()
@click.option(
    "--bootstrap", help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT] [env TPMON_BOOTSTRAP; default 127.0.0.1:9092]."
)
@click.option(
    "--web-port", type=int, help="Port of /metrics, /touchpoints and /journeys [env TPMON_WEB_PORT; default 6066]."
)
@click.option(
    "--web-host",
    help="Address the web port listens on [env TPMON_WEB_HOST; default 127.0.0.1]; beyond loopback, with "
    "--web-config (or --insecure-web).",
)
@click.option(
    "--web-url",
    help="The URL the other workers reach this one's web port at, to forward /journeys "
    "[env TPMON_WEB_URL; default the web host and port, this machine's name for 0.0.0.0].",
)
@click.option(
    "--web-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The web port's TLS and basic authentication, in the Prometheus exporters' web configuration format "
    "(docs/SECURITY.md) [env TPMON_WEB_CONFIG].",
)
@click.option(
    "--web-ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With TLS: the CA of the other workers' web certificates, which requests for their customers are "
    "forwarded to [env TPMON_WEB_CA_FILE; default the system's CAs].",
)
@click.option(
    "--insecure-web",
    is_flag=True,
    default=None,
    help="Serve the web port beyond loopback without authentication: anyone who reaches it reads customers' "
    "journeys [env TPMON_INSECURE_WEB=1].",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path),
    help="Catalog file or folder [env TPMON_RULES; default rules/].",
)
@click.option("--app-id", help="Consumer group and table prefix [env TPMON_APP_ID; default tpmon].")
@click.option("--topics", help="Source topics, comma-separated [env TPMON_TOPICS; default orders,bills,calls,tickets].")
@click.option("--partitions", type=int, help="Partitions of tpmon's own topics [env TPMON_PARTITIONS; default 4].")
@click.option("--lateness", help="Override the catalog's lateness [env TPMON_LATENESS].")
@click.option(
    "--max-future",
    help="Override the catalog's max_future: events further ahead of the clock are rejected [env TPMON_MAX_FUTURE].",
)
@click.option("--data-dir", help="The worker's local folder [env TPMON_DATA_DIR; default .tpmon/worker].")
@click.option(
    "--store",
    type=click.Choice(["rocksdb", "memory"]),
    help="Where the customers' state lives on this machine: rocksdb (on disk in the data dir; a restart reads "
    "only the changelog written since its checkpoint) or memory (read whole from the changelog at each start) "
    "[env TPMON_STORE; default rocksdb].",
)
@click.option(
    "--personal-readers",
    metavar="USER,...",
    help="Web users who see personal fields in /journeys (when the catalog keeps them); nobody else does "
    "[env TPMON_PERSONAL_READERS; default nobody].",
)
@click.option(
    "--forget-users",
    help="Web users who may ask, with POST /forget/ID, that a customer be forgotten; nobody else may "
    "[env TPMON_FORGET_USERS; comma-separated].",
)
@click.option(
    "--loglevel",
    envvar="TPMON_LOGLEVEL",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="[env TPMON_LOGLEVEL]",
)
def worker(
    bootstrap: str | None,
    web_port: int | None,
    web_host: str | None,
    web_url: str | None,
    web_config: Path | None,
    web_ca_file: Path | None,
    insecure_web: bool | None,
    rules_path: Path | None,
    app_id: str | None,
    topics: str | None,
    partitions: int | None,
    lateness: str | None,
    max_future: str | None,
    data_dir: str | None,
    store: str | None,
    personal_readers: str | None,
    forget_users: str | None,
    loglevel: str,
) -> None:
    """Run a worker: judge the source topics' events live, serve /metrics, /touchpoints and /journeys/ID.

    Every setting can also come from a TPMON_* environment variable, including security for real
    clusters: TPMON_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), TPMON_SASL_MECHANISM,
    TPMON_SASL_USERNAME, TPMON_SASL_PASSWORD, TPMON_SSL_CAFILE, TPMON_SSL_CERTFILE, TPMON_SSL_KEYFILE.
    Stops cleanly on Ctrl-C or SIGTERM.
    """
    import faust

    _event_loop()
    from streams.app import create_app
    from streams.settings import Settings

    try:
        settings = Settings.load(
            bootstrap=bootstrap,
            web_port=web_port,
            web_host=web_host,
            web_url=web_url,
            web_config=str(web_config) if web_config else None,
            web_ca_file=str(web_ca_file) if web_ca_file else None,
            insecure_web=insecure_web,
            rules=str(rules_path) if rules_path else None,
            app_id=app_id,
            topics=topics,
            partitions=partitions,
            lateness=lateness,
            max_future=max_future,
            data_dir=data_dir,
            store=store,
            personal_readers=personal_readers,
            forget_users=forget_users,
        )
    except ValueError as error:
        fail(str(error))
    web = web_config_or_exit(settings)
    catalog = catalog_or_exit(Path(settings.rules) if settings.rules else None)
    try:
        settings.topics_of(catalog.contract.source_names)
    except ValueError as error:
        fail(str(error))
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    except OSError as error:
        fail(f"cannot use {settings.data_dir} as the worker's folder: {error.strerror}")
    _topics(settings, catalog)
    from streams.store import StoreUnavailable

    try:
        app, _ = create_app(settings, catalog, web)
    except StoreUnavailable as error:
        fail(f"cannot keep the worker's state in {settings.data_dir}: {error}")
    scheme = web.scheme if web is not None else "http"
    err.print(
        f"tpmon worker {settings.app_id}: {len(catalog.touchpoints)} touchpoints, Kafka {settings.bootstrap}, "
        f"metrics on {scheme}://{settings.web_host}:{settings.web_port}/metrics",
        soft_wrap=True,
    )
    from streams.logs import logging_config

    # Quiet: the log is the only output, as plain lines (Faust's start-up spinner wrote terminal codes
    # into it, and the redirection of stdout into the log cut what was printed into one line per word).
    runner = faust.Worker(
        app, loglevel=loglevel, logging_config=logging_config(loglevel), quiet=True, redirect_stdouts=False
    )
    runner.spinner = None
    _quiet_clients(loglevel)
    from ..runtime import collect_seldom

    collect_seldom()
    runner.execute_from_commandline()


def web_config_or_exit(settings):  # type: ignore[no-untyped-def]
    """The web configuration (None without one), its warnings said; every error said, then exit 2. A web
    port beyond loopback that authenticates nobody is refused unless TPMON_INSECURE_WEB says so."""
    from streams.webconfig import WebConfigInvalid, is_loopback, load_web_config

    web = None
    if settings.web_config:
        try:
            web = load_web_config(settings.web_config)
        except WebConfigInvalid as error:
            for problem in error.problems:
                err.print(f"[red]{escape(str(problem))}[/]", soft_wrap=True)
            fail(f"{settings.web_config}: {len(error.problems)} problem(s) in the web configuration")
        for problem in web.warnings:
            err.print(f"[yellow]{escape(str(problem))}[/]", soft_wrap=True)
    from monitor.personal import check_web_users

    # Who sees personal fields in /journeys, and who may ask to forget a customer: users it knows.
    for option, names in (("--personal-readers", settings.readers), ("--forget-users", settings.forgetters)):
        try:
            check_web_users(names, web.users if web is not None else ())
        except ValueError as error:
            fail(f"{option}: {error}")
    if is_loopback(settings.web_host) or (web is not None and web.authenticates):
        return web
    where = settings.web_host or "every address"
    if not settings.insecure_web:
        why = "without a web configuration" if web is None else f"{settings.web_config} authenticates nobody"
        fail(
            f"the web port on {where} would serve customers' journeys to anyone: {why}. Give --web-config FILE "
            "with basic_auth_users (docs/SECURITY.md), listen on 127.0.0.1, or accept it with --insecure-web "
            "(TPMON_INSECURE_WEB=1) on a network you trust"
        )
    err.print(
        f"[yellow]warning:[/] the web port on {escape(where)} serves customers' journeys to anyone who reaches "
        "it, unauthenticated (--insecure-web)",
        soft_wrap=True,
    )
    return web


def _event_loop() -> None:
    """uvloop, where installed: the event loop's own work (tasks, callbacks, sockets) is a large part of
    a worker's time, and uvloop does it in C (docs/PERFORMANCE.md has what it gave)."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _topics(settings, catalog) -> None:  # type: ignore[no-untyped-def]
    """Create the missing topics the worker consumes (the sources and tpmon's events topic), the
    dead-letter topic and the state's changelogs, so it subscribes to them from the start: a consumer
    that starts before its topics exist ignores them until the next rebalance."""
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.app import STATE_TOPIC_CONFIG, TOPIC_CONFIG, customers_changelog
    from streams.erasures import ensure_forget_topic

    from ..publish import ensure_topics

    try:
        sources = list(settings.topics_of(catalog.contract.source_names).values())
        asyncio.run(ensure_topics(settings, sources))
        asyncio.run(ensure_topics(settings, [settings.events_topic, settings.dead_letter_topic], TOPIC_CONFIG))
        # The state's changelogs, compacted soon (those of an earlier version are set so too).
        state = [customers_changelog(settings.app_id), settings.journeys_topic]
        asyncio.run(ensure_topics(settings, state, STATE_TOPIC_CONFIG, configure=True))
        asyncio.run(ensure_forget_topic(settings))  # read whole by every worker (streams.erasures)
    except ConnectionError as error:
        fail(f"{error}; is Kafka running? (`tpmon kafka start` runs one locally)")
    except KafkaError as error:
        err.print(f"[yellow]warning:[/] could not create its topics ({error}); they must exist", soft_wrap=True)


def _quiet_clients(loglevel: str) -> None:
    """Keep the Kafka client's per-message debug logging off unless asked for: formatting a record for
    every message sent costs a tenth of a worker's time."""
    import logging

    level = logging.getLevelName(loglevel.upper())
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(level)
