"""CloudEvents 1.0 in Kafka's binary mode: the attributes in ``ce_`` headers, the message value is the
data. Ingest turns such a message into the structured form (one JSON object) before decoding, so that
the events topic, the judge and the journeys see one shape, with every attribute kept."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

PREFIX = "ce_"
CONTENT_TYPE = "content-type"


def attributes(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str] | None:
    """The CloudEvents attributes of a message's headers, or None when it is not in binary mode."""
    found: dict[str, str] = {}
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for name, value in items:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            found[name[len(PREFIX) :]] = text
        elif name.lower() == CONTENT_TYPE:  # the binding carries datacontenttype as content-type
            found.setdefault("datacontenttype", text)
    return found if "specversion" in found else None


def structured(value: bytes | None, found: dict[str, str]) -> bytes:
    """The structured-mode JSON of a binary-mode message: its attributes, and its value as ``data``
    when the value is JSON (else as ``data_base64``, which the decoder refuses as not an object)."""
    event: dict[str, object] = dict(found)
    try:
        event["data"] = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        import base64

        event["data_base64"] = base64.b64encode(value or b"").decode("ascii")
    return orjson.dumps(event)
