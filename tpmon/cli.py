"""tpmon: watch whether the moments that matter to customers work."""

from __future__ import annotations

import importlib
import signal

import click

from . import runtime

#: Each command's module (tpmon.commands.NAME, which defines NAME): imported when the command is run,
#: so that a command does not pay for the others' imports (the dashboards' alone cost a replay 0.1 s).
COMMANDS = (
    "dashboards",
    "demo",
    "forget",
    "kafka",
    "produce",
    "rejects",
    "replay",
    "report",
    "rules",
    "simulate",
    "worker",
)


class _Commands(click.Group):
    """tpmon's commands, each imported only when it is asked for (its help, or running it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module = importlib.import_module(f".commands.{cmd_name}", __package__)
            self.add_command(getattr(module, cmd_name))
        return self.commands.get(cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def run() -> None:
    """The console script."""
    runtime.console(main)


if __name__ == "__main__":
    run()
