"""A real headless Chromium (Debian's, `make deps`) looking at what tpmon writes as HTML."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]


def chromium(page: Path, *args: str) -> None:
    """Run Chromium on ``page`` with ``args`` (a screenshot, a print)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "`make deps` installs Debian's chromium"
    subprocess.run([found, *FLAGS, *args, page.as_uri()], capture_output=True, timeout=120, check=True)


def red_and_ink(page: Path, shot: Path, size: tuple[int, int] = (900, 1300)) -> tuple[int, int]:
    """Screenshot ``page`` into ``shot``; its pixels of the broken state's red (#c0392b) and of text."""
    import numpy
    from PIL import Image

    chromium(page, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}")
    image = Image.open(shot).convert("RGB")
    assert image.size == size
    r, g, b = (numpy.asarray(image)[:, :, channel].astype(int) for channel in range(3))
    return int(((r > 170) & (g < 90) & (b < 80)).sum()), int(((r < 60) & (g < 60) & (b < 70)).sum())
