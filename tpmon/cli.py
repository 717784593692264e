"""tpmon: watch whether the moments that matter to customers work."""

from __future__ import annotations

import signal

import click

from . import runtime
from .commands.dashboards import dashboards
from .commands.demo import demo
from .commands.forget import forget
from .commands.kafka import kafka
from .commands.produce import produce
from .commands.rejects import rejects
from .commands.replay import replay
from .commands.report import report
from .commands.rules import rules
from .commands.simulate import simulate
from .commands.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="touchpoint-monitor", prog_name="tpmon")
def main() -> None:
    """touchpoint-monitor: live reliability of the customer journey's moments of truth.

    Operational events (orders, bills, calls, tickets) are judged against a catalog of touchpoints;
    each touchpoint is broken, reliable or differentiating.
    """


def _stop_on_sigterm() -> None:
    """SIGTERM stops a command as Ctrl-C does: what it started is stopped, what it wrote is whole.
    (The worker installs Faust's own handlers, which do the same for it.)"""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


_stop_on_sigterm()
main.add_command(rules)
main.add_command(replay)
main.add_command(simulate)
main.add_command(kafka)
main.add_command(worker)
main.add_command(produce)
main.add_command(rejects)
main.add_command(dashboards)
main.add_command(report)
main.add_command(demo)
main.add_command(forget)


def run() -> None:
    """The console script."""
    runtime.console(main)


if __name__ == "__main__":
    run()
