"""What a story says about an event: a declaration's ``story:`` template (docs/EVENTS.md).

A template is text with fields in braces, ``"bill {bill_id}: {amount:.2f} billed"``: each a field the
type declares or one every event has (``event_id``, ``type``, ``customer_id``, ``occurred_at``,
``source``), optionally with a format after a colon (Python's format mini-language: ``.2f``, ``>8``,
``,``). Only substitution: no attribute, index, conversion or nested field, so a template can say no
more than the event's own declared fields. ``{{`` and ``}}`` are braces. It is checked when the
catalog loads (a field the type does not have, a format its kind cannot take), and rendering never
raises: a value its format does not fit (an integer where a float was sampled, say) is written plainly.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass
from typing import Final

from .kinds import BOOLEAN, NON_NEGATIVE, NUMBER, Kind

#: What a template may name besides the type's declared fields.
CONTRACT_FIELDS: Final = ("event_id", "type", "customer_id", "occurred_at", "source")
ABSENT: Final = "-"  # an optional field the event does not carry
_FORMATTER: Final = string.Formatter()


@dataclass(frozen=True)
class Template:
    """A compiled template: literal text and (field, format) parts, in order."""

    text: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal before, field or None, format)

    def render(self, values: dict) -> str:
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is not None:
                out.append(render_value(values.get(name), spec))
        return "".join(out)


def render_value(value: object, spec: str = "") -> str:
    """A field's value as a story writes it: JSON's words for booleans and null, numbers as they are
    unless the template formats them."""
    if value is None:
        return ABSENT
    if not spec:
        if value is True or value is False:
            return "true" if value else "false"
        if type(value) is float and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return str(value)
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return render_value(value)


def _sample(kind: Kind) -> object:
    if kind is NUMBER or kind is NON_NEGATIVE:
        return 1.5
    if kind is BOOLEAN:
        return True
    return kind.samples[0]


def compile_template(
    text: object, event_type: str, fields: dict[str, Kind], personal: frozenset[str] = frozenset()
) -> Template | str:
    """The template, or why it is none (with a did-you-mean for a misspelt field). ``fields``: every
    field the type may carry, with its kind (the contract's fields included); ``personal``: those
    declared ``personal: true``, which a story never shows."""
    if not isinstance(text, str):
        return f"must be text such as 'bill {{bill_id}}: {{amount:.2f}}', not {text!r}"
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as error:
        return f"is not a valid template ({error}); write a brace as '{{{{' or '}}}}'"
    known = sorted(fields)
    parts = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        if not name:
            return f"has an empty field '{{}}': name a field, such as '{{{known[0] if known else 'event_id'}}}'"
        if conversion is not None:
            return f"'{{{name}!{conversion}}}': a template substitutes fields, without conversions"
        if not name.isidentifier():
            return f"'{{{name}}}' is not a field name: a template substitutes fields, without '.' or '[]'"
        if name not in fields:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; it has {', '.join(known)}"
            return f"'{{{name}}}' is not a field of '{event_type}'{hint}"
        if name in personal:
            return (
                f"'{{{name}}}' is a personal field of '{event_type}' (personal: true): stories are shown on "
                "the walls, in the review and to every reader of the worker's /stories, so they never "
                "show personal data; name another field"
            )
        spec = spec or ""
        if "{" in spec or "}" in spec:
            return f"'{{{name}:{spec}}}': a format cannot hold a field"
        if spec:
            kind = fields[name]
            try:
                format(_sample(kind), spec)
            except (ValueError, TypeError):
                return f"'{{{name}:{spec}}}': '{spec}' is not a format for '{name}' (a {kind.name})"
        parts.append((literal, name, spec))
    return Template(text, tuple(parts))
