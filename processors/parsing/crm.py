"""CRM: one customer profile upsert to a ``CrmUpsert``.

Payload (CONTRACT §1): ``{"customer_id", "tier": "prospect" | "active" | "vip", "identities":
{"email": [...], "phone": [...], "telegram": [...], "whatsapp": [...], "vk": [...]}, "mrr"?,
"status"?: "active" | "churned"}``. A profile replaces the previous one whole, so a bad one is
dead-lettered rather than half-applied.

Identities are normalised the way contacts present them (``processors.model.Identity``):
e-mail lower-cased, phones as ``+digits``, telegram and vk ids as decimal text, whatsapp
``wa_id`` as given. They are ordered by kind (the order of ``IDENTITY_KINDS``), then as listed,
with repeats dropped, so the same profile always yields the same tuple.
"""

from __future__ import annotations

import re
from typing import Any, Final, cast

from processors.ids import Pseudonymizer, normalize_email, normalize_phone
from processors.model import (
    IDENTITY_KINDS,
    TIERS,
    CrmUpsert,
    Identity,
    IdentityKind,
    Parsed,
    RawRecord,
    Tier,
)
from processors.parsing._common import (
    Reject,
    as_object,
    json_type,
    opt_list,
    opt_str,
    req_key,
    req_object,
    req_str,
    show,
    wrong_type,
)

CUSTOMER_STATUSES: Final = ("active", "churned")

_DECIMAL: Final = re.compile(r"-?[0-9]+")


def parse_crm(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    customer_id = req_key(payload, "customer_id", "payload.customer_id")
    tier = req_str(payload, "tier", "payload.tier")
    if tier not in TIERS:
        raise Reject(f"unknown tier {show(tier)} in payload.tier")
    identities = _identities(req_object(payload, "identities", "payload.identities"))
    mrr = payload.get("mrr")
    if mrr is not None and (isinstance(mrr, bool) or not isinstance(mrr, int | float)):
        wrong_type("payload.mrr", "a number", mrr)
    status = opt_str(payload, "status", "payload.status") or "active"
    if status not in CUSTOMER_STATUSES:
        raise Reject(f"unknown customer status {show(status)} in payload.status")
    return [
        CrmUpsert(
            at=record.at,
            customer_id=customer_id,
            tier=cast(Tier, tier),
            identities=identities,
            mrr=None if mrr is None else float(mrr),
            status=status,
            ref=record.ref,
        )
    ]


def _identities(given: dict[str, Any]) -> tuple[Identity, ...]:
    unknown = sorted(set(given) - set(IDENTITY_KINDS))
    if unknown:
        raise Reject(f"unknown identity kind {show(unknown[0])} in payload.identities")
    out: list[Identity] = []
    for kind in IDENTITY_KINDS:
        path = f"payload.identities.{kind}"
        for i, value in enumerate(opt_list(given, kind, path)):
            identity = Identity(cast(IdentityKind, kind), _normalise(kind, value, f"{path}[{i}]"))
            if identity not in out:
                out.append(identity)
    return tuple(out)


def _normalise(kind: str, value: object, path: str) -> str:
    numeric_id = kind in ("telegram", "vk", "whatsapp")
    if isinstance(value, bool) or not isinstance(value, str | int):
        expected = "a string or an integer" if numeric_id else "a string"
        raise Reject(f"field {path} must be {expected}, got {json_type(value)}")
    if isinstance(value, int):
        if not numeric_id:
            raise Reject(f"field {path} must be a string, got number")
        return str(value)
    text = value.strip()
    if kind == "email":
        text = normalize_email(text)
    elif kind == "phone":
        text = normalize_phone(text)
    elif kind in ("telegram", "vk") and _DECIMAL.fullmatch(text):
        # "007" and 7 are the same user id; contacts present it as str(int).
        text = str(int(text))
    if not text:
        raise Reject(f"field {path} is empty after normalisation")
    return text
