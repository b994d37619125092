"""What every source parser shares: the ``Reject`` signal and typed field access.

A parser walks a decoded JSON payload and either returns what it understood or raises
``Reject`` with a reason naming the offending path (``missing field payload.message.chat.id``).
The dispatcher in ``processors.parsing`` turns a ``Reject`` into a ``DeadLetter``; nothing else
catches it. Raising keeps each parser a straight line of "take this field, then that one"
instead of threading error values through every step.

Reasons are short lower-case sentences that name paths and types, never the values of personal
fields: dead letters are stored and shown to operators, and only their ``record`` text is
masked.

``given_identities`` lives here too: the chat widget and the feedback form collect the same
optional e-mail and phone fields and must present them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NoReturn

from processors.ids import Pseudonymizer, normalize_email, normalize_phone
from processors.model import Identity, Parsed, RawRecord

Parser = Callable[[RawRecord, Pseudonymizer], list[Parsed]]
"""A source's parser: the record in, what it means out; raises ``Reject`` for a dead letter."""

_MISSING: Final = object()


class Reject(Exception):
    """The record cannot be understood; ``reason`` says why and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for reasons (``got number``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def show(value: object) -> str:
    """An enumerated value (a type, a status, a tier) quoted for a reason, kept short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def wrong_type(path: str, expected: str, value: object) -> NoReturn:
    raise Reject(f"field {path} must be {expected}, got {json_type(value)}")


def _get(obj: dict[str, Any], key: str, path: str) -> Any:
    value = obj.get(key, _MISSING)
    # JSON null is treated as absence: producers often serialise an unset field as null.
    if value is _MISSING or value is None:
        raise Reject(f"missing field {path}")
    return value


def as_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        wrong_type(path, "an object", value)
    return value


def req_object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    return as_object(_get(obj, key, path), path)


def opt_object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    return None if value is None else as_object(value, path)


def req_list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    value = _get(obj, key, path)
    if not isinstance(value, list):
        wrong_type(path, "an array", value)
    return value


def opt_list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    """An optional array; absent or null reads as empty."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        wrong_type(path, "an array", value)
    return value


def req_str(obj: dict[str, Any], key: str, path: str, *, allow_empty: bool = True) -> str:
    value = _get(obj, key, path)
    if not isinstance(value, str):
        wrong_type(path, "a string", value)
    if not allow_empty and not value.strip():
        raise Reject(f"field {path} must not be empty")
    return value


def opt_str(obj: dict[str, Any], key: str, path: str) -> str:
    """An optional string; absent or null reads as ``""``."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        wrong_type(path, "a string", value)
    return value


def req_int(obj: dict[str, Any], key: str, path: str) -> int:
    value = _get(obj, key, path)
    # bool is an int subclass in Python; true/false is never a valid id or count.
    if isinstance(value, bool) or not isinstance(value, int):
        wrong_type(path, "an integer", value)
    return value


def opt_int(obj: dict[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        wrong_type(path, "an integer", value)
    return value


def req_bool(obj: dict[str, Any], key: str, path: str) -> bool:
    value = _get(obj, key, path)
    if not isinstance(value, bool):
        wrong_type(path, "a boolean", value)
    return value


def req_key(obj: dict[str, Any], key: str, path: str) -> str:
    """An identifier the project's own systems send (a session, a submission, a call, a
    customer): a non-empty string, or an integer taken as its decimal text, since JSON
    producers differ on whether numeric ids are quoted."""
    value = _get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, str | int):
        wrong_type(path, "a string or an integer", value)
    text = value.strip() if isinstance(value, str) else str(value)
    if not text:
        raise Reject(f"field {path} must not be empty")
    return text


def req_number(obj: dict[str, Any], key: str, path: str) -> int | float:
    value = _get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        wrong_type(path, "a number", value)
    return value


def given_identities(obj: dict[str, Any], path: str) -> tuple[Identity, ...]:
    """The e-mail, then the phone, a person typed into a chat or a form (CONTRACT §1 order).

    Both are optional and free text. A value that normalises to nothing (a phone field holding
    no digits) is left out rather than dead-lettering the contact: the customer's message
    matters more than a malformed optional field.
    """
    identities: list[Identity] = []
    email = normalize_email(opt_str(obj, "email", f"{path}.email"))
    if email:
        identities.append(Identity("email", email))
    phone = normalize_phone(opt_str(obj, "phone", f"{path}.phone"))
    if phone:
        identities.append(Identity("phone", phone))
    return tuple(identities)
