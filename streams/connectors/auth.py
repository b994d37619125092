"""Who may post to the HTTP connector: each channel's own proof, compared in constant time.

- Telegram: ``setWebhook(secret_token=...)`` makes Telegram send the token in the
  ``X-Telegram-Bot-Api-Secret-Token`` header of every update.
- WhatsApp Cloud API: ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body
  keyed with the app secret; the GET verification handshake compares ``hub.verify_token``.
- VK Callback API: the ``secret`` field of every event body, set in the community's settings.
- The project's own sources: ``Authorization: Bearer <token>``, one token per source.

Every check returns ``Denied`` (with the status to answer) or ``None``. 401 means no credential
was presented, 403 a wrong one. Secrets are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Denied:
    status: int  # 401: no credential, 403: a wrong one
    reason: str


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of two texts (as UTF-8 bytes; ``compare_digest`` refuses
    non-ASCII ``str``)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_telegram(header: str | None, secret_token: str) -> Denied | None:
    if not header:
        return Denied(401, "missing X-Telegram-Bot-Api-Secret-Token")
    if not same(header, secret_token):
        return Denied(403, "wrong X-Telegram-Bot-Api-Secret-Token")
    return None


def whatsapp_signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def check_whatsapp(header: str | None, body: bytes, app_secret: str) -> Denied | None:
    if not header:
        return Denied(401, "missing X-Hub-Signature-256")
    given = header.strip()
    if not given.lower().startswith("sha256="):
        return Denied(403, "X-Hub-Signature-256 must be sha256=<hex>")
    # Meta sends lower-case hex; accept upper case too, the digest is the same.
    if not same("sha256=" + given[7:].lower(), whatsapp_signature(body, app_secret)):
        return Denied(403, "X-Hub-Signature-256 does not match the body")
    return None


def check_vk(secret: object, expected: str) -> Denied | None:
    if secret is None or secret == "":
        return Denied(401, "missing secret")
    if not isinstance(secret, str) or not same(secret, expected):
        return Denied(403, "wrong secret")
    return None


def check_bearer(header: str | None, token: str) -> Denied | None:
    if not header:
        return Denied(401, "missing Authorization: Bearer token")
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Denied(401, "Authorization must be Bearer <token>")
    if not same(given.strip(), token):
        return Denied(403, "wrong bearer token")
    return None
