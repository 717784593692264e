"""Commands built on asyncio stop on SIGINT/SIGTERM after their own cleanup has run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from tpmon.runtime import run_until_interrupted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_the_work_and_its_cleanup_runs_whole(signum):
    steps = []

    async def work() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signum)
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.01)  # cleanup may still await (a producer's flush)
            steps.append("cleaned up")

    with pytest.raises(KeyboardInterrupt):
        run_until_interrupted(work())
    assert steps == ["cleaned up"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_work_that_finishes_returns_its_value():
    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    assert run_until_interrupted(work()) == 7


def test_the_commands_are_imported_only_when_one_is_asked_for():
    """A command does not pay for the others' imports at start-up (tpmon.cli, COMMANDS); each is still
    listed, found by its name and run as before."""
    code = (
        "import sys, click, tpmon.cli as cli\n"
        "assert not [m for m in sys.modules if m.startswith('tpmon.commands.')], sys.modules\n"
        "context = click.Context(cli.main)\n"
        "names = cli.main.list_commands(context)\n"
        "assert names == sorted(cli.COMMANDS), names\n"
        "assert all(cli.main.get_command(context, name).name == name for name in names)\n"
        "assert cli.main.get_command(context, 'nothing') is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
