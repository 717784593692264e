"""Writing outputs safely and talking to the terminal."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rich.console import Console

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
if not out.is_terminal:
    out.width = 120  # tables in files and pipes keep their columns whole


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Write to a temporary file beside ``path`` and move it into place only when all went well, so an
    interrupted run never leaves a half-written file where a complete one is expected."""
    target = Path(path)
    if str(target) == "-":
        yield sys.stdout.buffer
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fail(message: str, code: int = 2) -> None:
    """Say what is wrong, plainly, and exit."""
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise SystemExit(code)
