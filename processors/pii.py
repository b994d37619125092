"""Masking personal data in free text and in dead-letter records (CONTRACT §4 "Personal data").

``Masker.mask`` replaces, in Russian and English text, e-mail addresses with ``[email]``,
messenger links and handles with ``[handle]``, card numbers with ``[card]`` and phone numbers
with ``[phone]``, and leaves every other character exactly as it was. ``redact_json_text`` does
the same for a raw record that is about to become a dead letter and, when the record is JSON,
also redacts the values of keys that name a person (``email``, ``caller``, ``from.id``...).

Everything is compiled once, at import; the hot path only runs the compiled patterns. The module
is pure: no I/O, no clock, no key material (a keyed pseudonymiser may be passed in).

The rules, in the order they are applied (an earlier kind wins over a later one):

1. **E-mail** ``local@domain.tld`` (RFC 5322 dot-atom local part, Unicode letters allowed,
   the last domain label starts with a letter). Message-IDs ``<id@host.domain>`` look the same
   and are masked too, which is what the contract asks for customers' Message-IDs.
2. **Messenger links**: ``t.me/…``, ``telegram.me/…``, ``telegram.dog/…``, ``wa.me/…``,
   ``api.whatsapp.com/send?phone=…``, ``vk.com/…``, ``vk.ru/…``, ``m.vk.com/…``, ``vk.me/…``,
   with or without ``http(s)://`` and ``www.``; the whole link becomes ``[handle]``. Links run
   before numbers so ``wa.me/79161234567`` is one ``[handle]``, not ``wa.me/[phone]``.
3. **Card**: a *run* is a maximal sequence of digit groups joined by a single space or hyphen
   (``4111 1111 1111 1111``, ``4111-1111-1111-1111``, ``4111111111111111``). A run of 13 to 19
   digits that passes Luhn is a card, whatever it is called (an order number that passes Luhn is
   masked too, CONTRACT §4). When the whole run is not a card, every window of whole
   consecutive groups with 13 to 19 digits that passes Luhn is masked, overlapping windows
   together: a card written next to another number (``4111 1111 1111 1111 12``, an expiry or a
   quantity) must not survive because of its neighbour. Digits inside one group are never split.
4. **Phone**: a *chain* is digit groups joined by one of ``space - .`` with an optional leading
   ``+`` and optional ``(area)`` groups (``+7 916 123-45-67``, ``8 (916) 123-45-67``,
   ``(495) 123-45-67``). A chain is a phone when it has 10 to 15 digits (E.164 allows at most
   15) and either starts with ``+``, or has parentheses or at least three digit groups, or
   starts with a national trunk prefix (``8`` or ``0``: ``89161234567``, ``07911 123456``), or
   is a bare 11-digit number starting with ``7`` (Russia without the ``+``, a WhatsApp
   ``wa_id``). A chain glued to a word at its start (``TCK-2026-000123``, ``/orders/123…``,
   ``=B0 8916…`` in a quoted-printable body) loses its first group, which belongs to the word,
   and the rest is judged on its own.
   Not phones: a chain that contains a date (``2026-01-15 10``, ``15.01.2026 12.30``), a chain
   followed by a currency (``1 200 000 000 ₽``), a dotted IPv4 address, other bare digit
   strings and two-group chains (a 10-digit order number ``1234567890``, ``2026-000123``), and
   anything of 16 digits or more (a 16-digit number that fails Luhn is neither a card nor a
   phone).
5. **Telegram-style handle** ``@username`` (5 to 32 of ``[A-Za-z0-9_]``, not preceded by a
   word character, so the ``@`` of an address that was not an e-mail is not split).

Masking is idempotent: the rules are applied until nothing changes (see ``Masker.mask``), so
running ``mask`` on its own output changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Final

EMAIL: Final = "[email]"
PHONE: Final = "[phone]"
CARD: Final = "[card]"
HANDLE: Final = "[handle]"
REDACTED: Final = "[redacted]"

# --- e-mail ------------------------------------------------------------------------------------
# atext of RFC 5322 plus Unicode letters (\w). The lookbehinds anchor a match at the start of a
# dot-atom local part, which keeps the scan linear: without them the engine would retry from
# every position inside a long word (or ``a.a.a...``) and rescan it to its end, O(n²).
_ATEXT = r"[\w!#$%&'*+/=?^`{|}~-]"
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_EMAIL_RE: Final = re.compile(
    rf"(?<!{_ATEXT})(?<!{_ATEXT}\.){_ATEXT}+(?:\.{_ATEXT}+)*"
    rf"@(?:{_LABEL}\.)+[^\W\d_][\w-]*[^\W_]"
)

# --- messenger links -----------------------------------------------------------------------------
_LINK_RE: Final = re.compile(
    r"(?<![\w.-])(?:https?://)?(?:www\.)?"
    r"(?:t\.me|telegram\.me|telegram\.dog|wa\.me|api\.whatsapp\.com|"
    r"(?:m\.)?vk\.com|(?:m\.)?vk\.ru|vk\.me)"
    # A path of word characters joined by . / + - (so a sentence's closing period stays), then
    # an optional query string (wa.me/79161234567?text=..., api.whatsapp.com/send?phone=...).
    r"/(?:[+]?\w+(?:[./+-]\w+)*/?)?(?:\?[\w=&%+.-]*[\w=])?",
    re.IGNORECASE,
)

# --- cards ---------------------------------------------------------------------------------------
# re.ASCII throughout the number patterns: only 0-9 are digits (Luhn is defined on them).
_RUN_RE: Final = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)", re.ASCII)
_GROUP_RE: Final = re.compile(r"\d+", re.ASCII)

# --- phones --------------------------------------------------------------------------------------
_PAREN = r"\(\ ?\d{1,5}\ ?\)"
_PHONE_CHAIN_RE: Final = re.compile(
    rf"(?<!\d)(?:\+\ ?)?(?:{_PAREN}\ ?[.-]?\d+|\d+)"
    rf"(?:[ .-]?{_PAREN}|(?:[ .-]|(?<=\))[ .-]?)\d+)*",
    re.ASCII,
)
_PHONE_DIGITS_MAX: Final = 15  # E.164
_PHONE_DIGITS_MIN: Final = 10
_DATE_RE: Final = re.compile(
    r"(?<!\d)(?:(?:19|20)\d\d-\d\d?-\d\d?|\d\d?[./]\d\d?[./](?:19|20)\d\d)(?!\d)", re.ASCII
)
_IPV4_RE: Final = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}", re.ASCII)
_CURRENCY_AFTER_RE: Final = re.compile(
    r"\ ?(?:[₽$€£¥]|руб|р\.|rub|usd|eur|тыс|млн|млрд)", re.IGNORECASE
)

# --- handles -------------------------------------------------------------------------------------
_HANDLE_RE: Final = re.compile(r"(?<!\w)@[A-Za-z0-9_]{5,32}(?![A-Za-z0-9_])")


def luhn_valid(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn check (ISO/IEC 7812)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_spans(run: str) -> list[tuple[int, int]]:
    """Spans (relative to ``run``) to mask as cards in one run of digit groups."""
    digits = run.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return [(0, len(run))]
    if len(digits) < 13:
        return []
    groups = [(m.start(), m.end()) for m in _GROUP_RE.finditer(run)]
    if len(groups) == 1:
        return []  # one long group: digits inside a group are never split
    spans: list[tuple[int, int]] = []
    for i in range(len(groups)):
        count = 0
        for j in range(i, len(groups)):
            count += groups[j][1] - groups[j][0]
            if count > 19:
                break
            if count < 13:
                continue
            window = run[groups[i][0] : groups[j][1]].replace(" ", "").replace("-", "")
            if luhn_valid(window):
                start, end = groups[i][0], groups[j][1]
                if spans and start <= spans[-1][1]:
                    # Overlapping windows merge: masking only one would leave part of the
                    # other (possibly the real card) in clear.
                    spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
                else:
                    spans.append((start, end))
    return spans


def _mask_cards(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _RUN_RE.finditer(text):
        spans = _card_spans(match.group())
        if not spans:
            continue
        base = match.start()
        for start, end in spans:
            out.append(text[last : base + start])
            out.append(CARD)
            last = base + end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _is_ipv4(chain: str) -> bool:
    return _IPV4_RE.fullmatch(chain) is not None and all(int(o) <= 255 for o in chain.split("."))


def _glued(text: str, start: int) -> bool:
    """Whether a chain starting at ``start`` continues a word: an identifier (``TCK-2026-…``,
    ``id123…``), a path (``/orders/1234567890``) or an encoded byte (``=B0 8916…``)."""
    before = text[start - 1] if start > 0 else ""
    if before.isalnum() or before == "_":
        return True
    return before in "-/" and start > 1 and (text[start - 2].isalnum() or text[start - 2] == "_")


def _is_phone(text: str, start: int, end: int) -> bool:
    chain = text[start:end]
    digit_count = sum(c.isdigit() for c in chain)
    if not _PHONE_DIGITS_MIN <= digit_count <= _PHONE_DIGITS_MAX:
        return False
    if chain.startswith("+"):
        return True
    if _DATE_RE.search(chain) or _is_ipv4(chain):
        return False
    if _CURRENCY_AFTER_RE.match(text, end):
        return False
    if "(" in chain:
        return True
    groups = len(_GROUP_RE.findall(chain))
    if groups >= 3:
        return True
    # Fewer groups look like ids (2026-000123, 1234567890) unless the number starts with a
    # national trunk prefix: 8 in Russia (89161234567, 8 9161234567), 0 in the UK and most of
    # Europe (07911 123456); or is Russia's 7 without the + (79161234567, a WhatsApp wa_id).
    if chain[0] == "7":
        return groups == 1 and digit_count == 11
    return chain[0] in "08"


def _phone_start(text: str, start: int, end: int) -> int | None:
    """Where the phone in the chain ``text[start:end]`` starts, or None if it holds none."""
    while _glued(text, start):
        # The chain's first group belongs to the word it is glued to; what follows the group
        # may still be a phone (a QP-encoded e-mail body reads ``=D0=B0 89161234567``).
        first = _GROUP_RE.search(text, start, end)
        rest = _PHONE_CHAIN_RE.search(text, first.end(), end) if first else None
        if rest is None:
            return None
        start = rest.start()
    return start if _is_phone(text, start, end) else None


def _mask_phones(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _PHONE_CHAIN_RE.finditer(text):
        end = match.end()
        start = _phone_start(text, match.start(), end)
        if start is not None:
            out.append(text[last:start])
            out.append(PHONE)
            last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


class Masker:
    """Replaces personal values in free text; see the module docstring for the rules.

    Stateless and thread-safe; the patterns are compiled once at import, so constructing a
    ``Masker`` costs nothing and the shared ``MASKER`` can be used everywhere.
    """

    __slots__ = ()

    def mask(self, text: str) -> str:
        """``text`` with e-mails, messenger links and handles, cards and phones replaced."""
        # A replacement can change what its neighbours look like (``89161234567t.me/x``: once
        # the phone is masked the link is no longer glued to a word), so passes repeat until
        # nothing changes. Each changing pass removes at least one digit, ``@`` or ``/`` and the
        # placeholders contain none, so this ends; text without personal data takes one pass.
        while True:
            masked = self._mask_once(text)
            if masked == text:
                return masked
            text = masked

    @staticmethod
    def _mask_once(text: str) -> str:
        # Order matters: e-mails before handles (the @ of an address is not a handle), links
        # before numbers (wa.me/7916... is one handle), cards before phones (a 13-15 digit card
        # would otherwise be called a phone, and [card] is the more precise word).
        if "@" in text:
            text = _EMAIL_RE.sub(EMAIL, text)
        if "/" in text:
            text = _LINK_RE.sub(HANDLE, text)
        text = _mask_cards(text)
        text = _mask_phones(text)
        if "@" in text:
            text = _HANDLE_RE.sub(HANDLE, text)
        return text

    def redact_json_text(self, text: str, pseudonymize: Callable[[str], str] | None = None) -> str:
        """A raw record (any string, JSON or not) with personal data removed, for dead letters.

        When ``text`` is a JSON document, it is walked: values of identity keys (``email``,
        ``phone``, ``caller``, ``callee``, ``from``, ``wa_id``, ``from_id``, ``user_id``,
        ``identities``, names...; ``id`` when under ``from``, ``chat``, ``visitor``...) are
        replaced, strings are masked with ``mask`` (a string that itself holds a JSON object or
        array is redacted the same way), and numbers whose decimal text would be masked are
        replaced by the masked text. The result is compact JSON with non-ASCII kept. Otherwise
        (not JSON: a broken line, an RFC 5322 message) the whole text is masked. In a raw
        e-mail, quoted-printable soft line breaks are joined first and base64 body lines, which
        cannot be masked, are replaced by ``[base64 removed]``.

        ``pseudonymize`` (e.g. ``Pseudonymizer.h``) turns an identity into its keyed hash, so the
        dead letter can still be correlated with a conversation; without it identities become
        ``[redacted]``.
        """
        parsed = _parse_json(text)
        if parsed is _NOT_JSON:
            return self.mask(_unwrap_transfer_encodings(text))
        redacted = _Redactor(self, pseudonymize).value(parsed, None, None)
        text = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
        return _SURROGATE.sub("\ufffd", text)


# Keys whose value identifies a person wherever they appear (CONTRACT §1 payloads: Telegram
# ``from``/``chat``, WhatsApp ``contacts[].wa_id`` and ``messages[].from``, VK ``from_id``,
# chat ``visitor``, form, phone ``caller``/``callee``, crm ``identities``).
IDENTITY_KEYS: Final[frozenset[str]] = frozenset(
    {
        "email",
        "emails",
        "phone",
        "phones",
        "phone_number",
        "display_phone_number",
        "caller",
        "callee",
        "wa_id",
        "from_id",
        "user_id",
        "chat_id",
        "recipient_id",
        "peer_id",
        "reply_to_user",
        "username",
        "first_name",
        "last_name",
        "name",
        "identities",
    }
)
# Objects that describe a person: inside them ``id`` is an identity too; as a scalar (WhatsApp
# ``messages[].from``) the key itself is one.
PERSON_KEYS: Final[frozenset[str]] = frozenset(
    {"from", "chat", "visitor", "user", "sender", "contact", "author", "profile"}
)

_NOT_JSON: Final = object()

# Raw e-mails reach dead letters still transfer-encoded. A quoted-printable soft line break
# (``=`` at a line end) can split a phone or a link in two, so breaks are joined before
# masking; a base64 body cannot be masked at all, so its lines are dropped. Applied only to
# text that declares the encoding, so nothing else changes.
_QP_DECLARED: Final = re.compile(r"content-transfer-encoding:\s*quoted-printable", re.IGNORECASE)
_QP_SOFT_BREAK: Final = re.compile(r"=\r?\n")
_B64_DECLARED: Final = re.compile(r"content-transfer-encoding:\s*base64", re.IGNORECASE)
_B64_LINES: Final = re.compile(
    r"^[A-Za-z0-9+/]{16,}={0,2}\r?(?:\n[A-Za-z0-9+/]+={0,2}\r?$)*$", re.M
)
BASE64_REMOVED: Final = "[base64 removed]"


def _unwrap_transfer_encodings(text: str) -> str:
    if _QP_DECLARED.search(text):
        text = _QP_SOFT_BREAK.sub("", text)
    if _B64_DECLARED.search(text):
        text = _B64_LINES.sub(BASE64_REMOVED, text)
    return text


def _parse_json(text: str) -> object:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return _NOT_JSON
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):  # malformed, or nested too deep to walk
        return _NOT_JSON


# Half a surrogate pair escaped in JSON (``"\\ud800"``) decodes to a lone surrogate, which no
# stored text can hold; the redacted text has U+FFFD there, as the parsers read it.
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")

MAX_DEPTH: Final = 64
"""How deep ``redact_json_text`` walks a record. Deeper values (no channel nests a tenth of
that; a hostile record nests thousands) are stored as ``NESTED_REMOVED``: they cannot be
walked for identities without risking the stack, and must not be kept unredacted."""
NESTED_REMOVED: Final = "[nested too deeply]"


class _Redactor:
    __slots__ = ("_masker", "_pseudonymize")

    def __init__(self, masker: Masker, pseudonymize: Callable[[str], str] | None) -> None:
        self._masker = masker
        self._pseudonymize = pseudonymize

    def _identity(self, value: object, depth: int) -> object:
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            return NESTED_REMOVED
        if isinstance(value, dict):
            return {k: self._identity(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._identity(v, depth + 1) for v in value]
        if isinstance(value, bool) or value is None:
            return value  # flags and nulls say nothing about the person
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = value if isinstance(value, str) else str(value)
        return self._pseudonymize(text) if self._pseudonymize else REDACTED

    def value(self, value: object, key: str | None, parent: str | None, depth: int = 0) -> object:
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            return NESTED_REMOVED
        if key is not None:
            if key in IDENTITY_KEYS:
                return self._identity(value, depth)
            if key == "id" and parent in PERSON_KEYS:
                return self._identity(value, depth)
            if key in PERSON_KEYS and not isinstance(value, dict | list):
                return self._identity(value, depth)
        if isinstance(value, dict):
            return {k: self.value(v, k, key, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            # Items of a list belong to the list's key (``entry[].changes[]``...).
            return [self.value(v, None, key, depth + 1) for v in value]
        if isinstance(value, str):
            nested = _parse_json(value)
            if nested is not _NOT_JSON:
                redacted = self.value(nested, None, None, depth + 1)
                return json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
            return self._masker.mask(_unwrap_transfer_encodings(value))
        if isinstance(value, int) and not isinstance(value, bool):
            decimal = str(value)
            masked = self._masker.mask(decimal)
            return value if masked == decimal else masked
        return value


MASKER: Final = Masker()


def mask(text: str) -> str:
    """``MASKER.mask(text)``."""
    return MASKER.mask(text)


def redact_json_text(text: str, pseudonymize: Callable[[str], str] | None = None) -> str:
    """``MASKER.redact_json_text(text, pseudonymize)``."""
    return MASKER.redact_json_text(text, pseudonymize)
