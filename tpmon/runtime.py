"""Process settings for commands: garbage collection for batches, signals for asyncio commands, a quick
end for commands that leave a large state behind."""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Exit:
    quickly = False  # set by ``console``: a command may then leave its state to the process's end
    left: list[object] = []


def keep_until_exit(*state: object) -> None:
    """Keep a command's large state alive until the process ends, and end it without freeing that state.

    Freeing a replay's millions of objects one by one takes seconds (two of nine for a million events)
    and serves nobody once the output is written. Only the console script ends this way (see
    ``console``); a command invoked otherwise (tests through ``main``) frees its state as usual. What
    exists then is left out of the collector's passes (``gc.freeze``): a pass would walk all of it (a
    replay's young objects when its thresholds are put back: 55 ms of the 20 days) to free nothing.
    """
    if _Exit.quickly:
        _Exit.left.extend(state)
        gc.freeze()


def console(main: Callable[[], object]) -> None:
    """Run the console script's ``main``. When the command kept its state for the end, the process ends
    as soon as its output is flushed, without tearing that state down."""
    _Exit.quickly = True
    try:
        main()
    except SystemExit as done:
        if not _Exit.left or not (done.code is None or isinstance(done.code, int)):
            raise  # (a message as the exit code is printed by the usual exit)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code or 0)


# The collector's thresholds while customers' state is held: a replay, a worker. That state has no
# reference cycles, so collecting rarely loses nothing; with the default thresholds the collector walks
# the growing state again and again (a fifth of a replay's time on a million events, a quarter of a
# worker's CPU in bench.pipeline).
SELDOM = (100_000, 50, 100)


def collect_seldom() -> None:
    """For a process that holds state for its whole life (the worker): what it built at start-up is
    left out of every collection from now on (``gc.freeze``), and collections come seldom."""
    gc.freeze()
    gc.set_threshold(*SELDOM)


@contextmanager
def batch_collection() -> Iterator[None]:
    """Collect garbage seldom while a batch runs (``SELDOM``)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*SELDOM)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def run_until_interrupted(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` in a new event loop; SIGINT or SIGTERM cancels it, and once its own cleanup
    (``finally`` blocks: flushing, closing) has run, KeyboardInterrupt is raised.

    A signal handler that raised at an arbitrary point could interrupt a client library's internal
    task (a producer's sender, say) and leave the cleanup waiting for it forever; cancelling the one
    task we own lets every ``finally`` run in order.
    """
    import asyncio  # (here: the commands without asyncio start without importing it)

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        signalled: list[int] = []

        def stop(signum: int) -> None:
            signalled.append(signum)
            task.cancel()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await work
        except asyncio.CancelledError:
            if signalled:
                raise KeyboardInterrupt from None
            raise
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    return asyncio.run(main())
