"""Option types shared by commands."""

from __future__ import annotations

import click

from monitor.durations import parse_duration


class Duration(click.ParamType):
    """'30s', '2m', '48h' -> microseconds."""

    name = "DURATION"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, int):
            return value
        try:
            return parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


DURATION = Duration()
