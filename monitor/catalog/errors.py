"""Catalog problems: every one names its file, line and field path, and a user sees all of them at once."""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


def format_path(path: tuple[str | int, ...]) -> str:
    """('touchpoints', 2, 'objective') -> 'touchpoints[2].objective'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(file)"


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem is about the file as a whole
    path: str
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity == WARNING else ""
        return f"{prefix}{where}: {self.path}: {self.message}"


class CatalogInvalid(Exception):
    """Raised by load_catalog when the catalog has errors; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == ERROR]
        super().__init__(f"the catalog has {len(errors)} error(s):\n" + "\n".join(str(p) for p in errors))
