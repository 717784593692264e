"""Personal fields: the declared fields written ``personal: true`` (a name, an e-mail, free text), and
the pure steps that take them out of what tpmon keeps and shows (docs/SECURITY.md).

They never reach logs, metrics, stories or the review: a story template cannot name one, a touchpoint
cannot key on one (both catalog errors), and a story without a template skips them. Journeys keep them
only when the catalog says ``journeys: {personal: keep}``; by default (``drop``) ``without_personal``
takes them out of every entry as it is made (``monitor.journeys.entry``, live and in replay alike):
from the contract's view (``fields``) and from the message as sent (``raw``), wherever the decoder may
have read them (the declared pointer, and the field's name at the top level or under ``data`` for a
message in the other format). A ``raw`` that is not a JSON object cannot be looked into, so it goes
whole (``null``). Kept, they are shown on the worker's ``/journeys`` only to its personal readers
(``for_reader``); ``check_web_users`` checks those names against the web configuration's users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .contract import Contract
from .contract.model import CLOUDEVENTS, FLAT, Field, Pointer, default_pointer

Personal = Mapping[str, tuple[Field, ...]]  # by event type, its personal fields (Contract.personal)


def pointers_of(field: Field) -> tuple[Pointer, ...]:
    """Everywhere in a message the decoder may have read the field from."""
    found = [field.pointer] if field.pointer else []
    for written in (FLAT, CLOUDEVENTS):
        pointer = default_pointer(field.name, written)
        if pointer not in found:
            found.append(pointer)
    return tuple(found)


def remove_at(document: object, pointer: Pointer) -> None:
    """Take out what is at the JSON Pointer (its reference tokens) of the document, if anything is."""
    if not pointer:
        return
    parent = document
    for token in pointer[:-1]:
        if type(parent) is dict:
            parent = parent.get(token)
        elif type(parent) is list and token.isdigit() and int(token) < len(parent):
            parent = parent[int(token)]
        else:
            return
    last = pointer[-1]
    if type(parent) is dict:
        parent.pop(last, None)
    elif type(parent) is list and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]


def without_personal(view: dict, fields: Iterable[Field]) -> dict:
    """A journey entry (the contract's view, ``raw`` parsed) without these personal fields: out of its
    ``fields`` and out of its ``raw`` (changed in place, and returned). A ``raw`` that is not an object
    cannot be looked into, so it is dropped whole (``None``)."""
    fields = tuple(fields)
    if not fields:
        return view
    declared = view.get("fields")
    if type(declared) is dict:
        for field in fields:
            declared.pop(field.name, None)
    raw = view.get("raw")
    if type(raw) is dict:
        for field in fields:
            for pointer in pointers_of(field):
                remove_at(raw, pointer)
    elif "raw" in view:
        view["raw"] = None
    return view


def record_without_personal(record: dict, personal: Personal) -> dict:
    """A journey record (as stored, parsed) with the personal fields out of each event (in place)."""
    for view in record.get("events") or ():
        if type(view) is dict:
            fields = personal.get(view.get("type", ""))  # type: ignore[arg-type]
            if fields:
                without_personal(view, fields)
    return record


def may_read_personal(user: str | None, readers: Iterable[str]) -> bool:
    """Whether a web user may see personal fields: an authenticated user named among the readers.
    Without a web configuration there is no user, and nobody may."""
    return user is not None and user != "" and user in set(readers)


def for_reader(record: dict, contract: Contract, user: str | None, readers: Iterable[str], keep: bool = True) -> dict:
    """A journey record as the worker's ``/journeys`` answers ``user``: whole for a personal reader of
    a catalog that keeps personal fields (``keep``), else without them (a journey written while the
    catalog kept them, or before a field was declared personal, may still hold some)."""
    if not contract.personal or (keep and may_read_personal(user, readers)):
        return record
    return record_without_personal(record, contract.personal)


def check_web_users(readers: Iterable[str], users: Iterable[str]) -> None:
    """Check names given to a role (the personal readers, the forget users) against the web
    configuration's users: raise ValueError naming each who is no user (a typo would otherwise
    silently give nobody the role)."""
    known = set(users)
    unknown = sorted({reader for reader in readers if reader not in known})
    if unknown:
        names = ", ".join(unknown)
        users_text = ", ".join(sorted(known)) or "none"
        raise ValueError(f"{names}: not users of the web configuration (its users: {users_text})")


def parse_user_names(text: str) -> tuple[str, ...]:
    """``--personal-readers alice,bob`` or ``--forget-users dpo`` (or their TPMON_ variables): the names,
    in order, each once."""
    names: list[str] = []
    for name in text.split(","):
        name = name.strip()
        if name and name not in names:
            names.append(name)
    return tuple(names)
