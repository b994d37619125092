"""E-mail: a whole RFC 5322 message (one string) to a contact with its threading ids.

Named ``mail`` so that it never shadows the standard library's ``email`` package, which does the
MIME work here (``policy=email.policy.default``: RFC 2047 encoded words in any charset Python
knows, folded headers, address parsing).

What this module decides:

- **Sender**: the first address of ``From``, lower-cased, is the identity. A mail without a
  usable From address is a dead letter: there is nobody to answer.
- **Subject**: the decoded ``Subject`` (encoded words in UTF-8, KOI8-R, windows-1251, ...).
- **Body**: the first ``text/plain`` part that is not an attachment, decoded from its transfer
  encoding and charset; failing that the first ``text/html`` part stripped of markup
  (``_HtmlText``). A mail with no text part at all (a scan sent as a lone PDF) is still a
  contact, with an empty body.
- **Threading**: ``Message-ID``, ``References`` and ``In-Reply-To`` normalised with
  ``normalize_message_id``; the threading processor picks the conversation, so
  ``conversation_id`` stays ``""``. A mail without a ``Message-ID`` gets the deterministic
  ``synthetic-{first 24 hex digits of sha256(raw UTF-8 text)}``: a redelivery of the same text
  is recognised as such, and a reply to it cannot thread on an id nobody ever saw anyway.
- **Broken MIME** is a dead letter naming the problem: an empty or non-string payload, a
  multipart without a boundary (or whose boundary never occurs) so that no part can be found,
  a text part whose base64 cannot be decoded when no other text part can stand in for it.

Automatic replies (vacation notices, bounces) are contacts like any other: no policy about
them has been decided, and dropping customer mail silently would be worse than a stray ticket.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import quopri
import re
from email.message import EmailMessage, Message
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Final

from processors.ids import Pseudonymizer, normalize_email, normalize_message_id
from processors.model import Contact, EmailThreading, Identity, Parsed, RawRecord
from processors.parsing._common import Reject, json_type

# A msg-id is "<" id-left "@" id-right ">"; real mail also carries bare ids and comments
# ("<id> (message from Ivan)"), so ids in angle brackets win and bare tokens are the fallback.
_BRACKETED_ID: Final = re.compile(r"<([^<>\s]+)>")
_BARE_TOKENS: Final = re.compile(r"[^\s,<>()]+")
_COMMENT: Final = re.compile(r"\([^()]*\)")
_FOLDING: Final = re.compile(r"\r?\n(?=[ \t])")
_BASE64_NOISE: Final = re.compile(r"\s+")
_WHITESPACE: Final = _BASE64_NOISE
_BASE64_ALPHABET: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_SPACES: Final = re.compile(r"[ \t\r\f\v\n\xa0]+")
_SPACE_AROUND_NEWLINE: Final = re.compile(r" *\n *")
_BLANK_LINES: Final = re.compile(r"\n{3,}")


def parse_email(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    raw = record.payload
    if not isinstance(raw, str):
        raise Reject(
            f"field payload must be a string holding an rfc 5322 message, got {json_type(raw)}"
        )
    if not raw.strip():
        raise Reject("field payload holds an empty e-mail")
    message = email.message_from_string(raw, policy=email.policy.default)

    sender = _sender(message)
    own_id = _ids(_raw_header(message, "Message-ID"))
    message_id = own_id[0] if own_id else _synthetic_id(raw)
    threading = EmailThreading(
        message_id=message_id,
        references=_ids(_raw_header(message, "References")),
        in_reply_to=_ids(_raw_header(message, "In-Reply-To")),
    )
    return [
        Contact(
            at=record.at,
            channel="email",
            conversation_id="",
            identities=(Identity("email", sender),),
            subject=_subject(message),
            body=_body(message),
            channel_message_id=message_id,
            threading=threading,
            ref=record.ref,
        )
    ]


def _sender(message: EmailMessage) -> str:
    if _raw_header(message, "From") is None:
        raise Reject("e-mail has no From header")
    # The default policy parses address headers into Address objects; a From holding only a
    # group name or garbage yields none, or one without a domain.
    try:
        addresses = [(a.username, a.domain, a.addr_spec) for a in message["From"].addresses]
    except Exception:
        # The modern header parser has crashed on malformed addresses (IndexError,
        # AttributeError inside the stdlib); the older, forgiving parser still finds most.
        addresses = []
        for _, addr_spec in getaddresses([_raw_header(message, "From") or ""]):
            local, _, domain = addr_spec.rpartition("@")
            if not _WHITESPACE.search(addr_spec):  # "E ivan@x" is debris, not an address
                addresses.append((local, domain, addr_spec))
    for username, domain, addr_spec in addresses:
        if username and domain:
            return normalize_email(addr_spec)
    raise Reject("e-mail From header holds no address")


def _subject(message: EmailMessage) -> str:
    raw = _raw_header(message, "Subject")
    if raw is None:
        return ""
    try:
        decoded = str(message["Subject"])
    except Exception:  # the header parser choking on hostile input: keep the raw text
        decoded = raw
    return _SPACES.sub(" ", decoded).strip()


def _raw_header(message: Message, name: str) -> str | None:
    """A header's first value as it stands in the mail, unfolded, without the policy's parsing
    (which threading ids do not need and which can fail on malformed input)."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return _FOLDING.sub(" ", str(value))
    return None


def _ids(text: str | None) -> tuple[str, ...]:
    """The normalised message ids a threading header lists, in order, without repeats."""
    if text is None:
        return ()
    found = _BRACKETED_ID.findall(text)
    if not found:
        # No angle brackets: a sloppy mailer's bare ids. Comments go first so that
        # "id@host (your message)" does not read as three ids; a msg-id always has an "@".
        tokens = _BARE_TOKENS.findall(_COMMENT.sub(" ", text))
        found = [token for token in tokens if "@" in token] or tokens[:1]
    ids: list[str] = []
    for token in found:
        normalised = normalize_message_id(token)
        if normalised and normalised not in ids:
            ids.append(normalised)
    return tuple(ids)


def _synthetic_id(raw: str) -> str:
    return "synthetic-" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:24]


# --------------------------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------------------------


def _body(message: EmailMessage) -> str:
    plain: list[Message] = []
    html: list[Message] = []
    problems: list[str] = []
    _collect(message, plain, html, problems)
    for candidates, convert in ((plain, _plain), (html, _html_to_text)):
        for part in candidates:
            try:
                return convert(_decoded_text(part))
            except Reject as problem:
                problems.append(problem.reason)
            except Exception:  # charset or transfer-encoding header the stdlib chokes on
                problems.append("e-mail text part has a malformed content header")
    if problems:
        raise Reject(problems[0])
    return ""


def _collect(part: Message, plain: list[Message], html: list[Message], problems: list[str]) -> None:
    """The text parts of a MIME tree in document order, skipping attachments with everything
    inside them (a forwarded mail attached as message/rfc822 is not the customer's text)."""
    try:
        disposition = part.get_content_disposition()
        content_type = part.get_content_type()
    except Exception:  # a Content-* header the stdlib parser crashes on
        problems.append("e-mail part has a malformed content header")
        return
    if disposition == "attachment":
        return
    payload = part.get_payload()
    if content_type.startswith("multipart/") or isinstance(payload, list):
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    _collect(child, plain, html, problems)
        else:
            # Without a (matching) boundary the parser cannot split the parts and keeps the
            # whole body as one string; nothing inside can be trusted as text.
            problems.append(_broken_multipart(part))
        return
    if content_type == "text/plain":
        plain.append(part)
    elif content_type == "text/html":
        html.append(part)


def _broken_multipart(part: Message) -> str:
    kind = part.get_content_type()
    if part.get_param("boundary") is None:
        return f"{kind} e-mail part has no boundary parameter, so no body part can be found"
    return f"{kind} e-mail part never contains its boundary, so no body part can be found"


def _decoded_text(part: Message) -> str:
    """A text part's content as text: transfer encoding undone, then its charset applied."""
    payload = part.get_payload()
    if not isinstance(payload, str):  # message/rfc822 and friends are not text/*
        return ""
    cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    # Without a charset parameter RFC 2045 says US-ASCII; UTF-8 reads that the same and also
    # reads the 8-bit UTF-8 that careless mailers send without declaring it.
    charset = part.get_content_charset() or "utf-8"
    if cte == "base64":
        return _decode_charset(_base64_bytes(payload, part.get_content_type()), charset)
    if cte == "quoted-printable":
        # The payload came to us as text; a QP body should be ASCII, but if a relay left raw
        # characters in it they are put back in the part's own charset before QP decoding.
        return _decode_charset(quopri.decodestring(_to_bytes(payload, charset)), charset)
    # 7bit / 8bit / binary: the JSON string already holds the characters, nothing to decode.
    return payload


def _base64_bytes(payload: str, content_type: str) -> bytes:
    compact = _BASE64_NOISE.sub("", payload)
    if not _BASE64_ALPHABET.fullmatch(compact) or len(compact) % 4 == 1:
        # Stray characters or a length no padding can repair: whatever a lenient decoder
        # returned would be garbage presented as the customer's words.
        raise Reject(f"{content_type} part has undecodable base64 content")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4))
    except binascii.Error:
        raise Reject(f"{content_type} part has undecodable base64 content") from None


def _to_bytes(text: str, charset: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        try:
            return text.encode(charset, "replace")
        except LookupError:
            return text.encode("utf-8")


def _decode_charset(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except LookupError:
        # An unknown charset label ("x-unknown", a typo): UTF-8 is what most such mail is.
        return data.decode("utf-8", "replace")


def _plain(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


_BLOCK_TAGS: Final = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "blockquote", "pre", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
    }
)  # fmt: skip
_CELL_TAGS: Final = frozenset({"td", "th"})
_HIDDEN_TAGS: Final = frozenset({"script", "style", "head", "title", "template"})


class _HtmlText(HTMLParser):
    """Markup to readable text: what a mail client shows, roughly. Script, style and head
    contents are dropped; block elements and ``<br>`` become line breaks; entities are
    unescaped (``convert_charrefs``); runs of whitespace collapse as in a browser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._chunks: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self._chunks.append("\n")
        elif tag in _CELL_TAGS:  # keep neighbouring table cells from gluing together
            self._chunks.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:  # <br/> and <hr/>; a self-closed hidden tag hides nothing
            self._chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS and tag != "br":
            self._chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._chunks.append(_SPACES.sub(" ", data))

    def text(self) -> str:
        joined = _SPACE_AROUND_NEWLINE.sub("\n", "".join(self._chunks))
        return _BLANK_LINES.sub("\n\n", joined).strip()


def _html_to_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return parser.text()
