"""E-mail: a whole RFC 5322 message (one string) to a contact with its threading ids.

Named ``mail`` so that it never shadows the standard library's ``email`` package.

How it parses, and why (docs/REPLAY.md, "E-mail parsing", has the whole story): the standard
library's modern policy (``email.policy.default``) rebuilds every header through its header
registry, which cost ~2.5 ms a message and was quadratic on hostile headers. Here the MIME tree
is cut by ``_Part`` (a linear ``str.find``/regex splitter that cuts it as
the standard library's feed parser would) and only the headers we read are decoded, each by a
fast path giving the modern policy's result: ``Subject`` (RFC 2047 encoded words, word by word
with the standard library's rules) and ``From`` (the address of the usual shapes). Whatever the
fast paths do not recognise goes to the standard library itself (the feed parser with
``compat32``; the modern header parser for that one header), so unusual mail keeps exactly the
decoding it had; ``tests/processors/parsing/test_parse_email_oracle.py`` compares the two on
every generated and hand-made message. Headers longer than ``_MODERN_HEADER_LIMIT`` never reach
the modern parser (quadratic in the number of encoded words) and markup is read in one pass
(``_html_to_text``), so parsing time stays linear in the size of the message.

Within the fast reading, the shapes nearly all mail has take shorter ways still, each giving
exactly what the general code gives (``tests/processors/parsing/test_parse_email_fast_paths.py``
checks each against it on generated inputs): a header block is read by one match that keeps
only the fields read (``_header_block``); a multipart's one ``boundary`` parameter by one
pattern (``_USUAL_MULTIPART``); markup made of text and well-formed tags by one split
(``_simple_markup_text``); the body of a mail that is one text part without a tree walk
(``_single_part_body``); a Subject of encoded words alone without its token walk
(``_encoded_words``); runs of blanks by string replacements (``_collapse_blanks``). A bare CR,
which ends a line for the feed parser, is looked for only where that cuts lines otherwise: in
a header block, before a boundary line or ending one (``_Part.read``, ``_Part._children``).

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
import functools
import hashlib
import html
import re
from collections.abc import Callable, Iterator, Sequence
from email.message import Message
from email.utils import getaddresses
from typing import Any, Final

from processors.ids import Pseudonymizer, lower, normalize_email, normalize_message_id
from processors.model import Contact, EmailThreading, Identity, Parsed, RawRecord
from processors.parsing._common import Reject, json_type

# A msg-id is "<" id-left "@" id-right ">"; real mail also carries bare ids and comments
# ("<id> (message from Ivan)"), so ids in angle brackets win and bare tokens are the fallback.
_BRACKETED_ID: Final = re.compile(r"<([^<>\s]+)>")
# The same on ASCII text, its class spelled out (whitespace: \t-\r, \x1c-\x1f and the space):
# an explicit class is read a third faster than one holding "\s".
_ASCII_BRACKETED_ID: Final = re.compile(r"<([\x00-\x08\x0e-\x1b!-;=?-\x7f]+)>")
_BARE_TOKENS: Final = re.compile(r"[^\s,<>()]+")
_COMMENT: Final = re.compile(r"\([^()]*\)")
_FOLDING: Final = re.compile(r"\r?\n(?=[ \t])")
_WHITESPACE: Final = re.compile(r"\s+")
_BASE64_ALPHABET: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_SPACES: Final = re.compile(r"[ \t\r\f\v\n\xa0]+")
_SPACE_AROUND_NEWLINE: Final = re.compile(r" *\n *")
_BLANK_LINES: Final = re.compile(r"\n{3,}")

_MODERN: Final = email.policy.default
_MODERN_HEADER_LIMIT: Final = 8192
"""Headers longer than this (in characters) are never handed to the modern header parser,
whose time grows with the square of the number of encoded words in a header."""
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
_WSP_OR_TOKEN: Final = re.compile(r"[ \t]+|[^ \t]+")
# One RFC 2047 encoded word as a whole token, in the shape the modern parser reads the same
# way we do: ASCII charset (an optional RFC 2231 language after "*"), B or Q, and a text with
# no "?" that does not open with an "=" the parser would take for the end of the word.
_ENCODED_WORD: Final = re.compile(
    r"=\?(?P<charset>[A-Za-z0-9_.:+-]+(?:\*[A-Za-z0-9-]*)?)\?(?P<cte>[bBqQ])\?"
    r"(?P<text>(?:=[0-9A-Fa-f]{2}|[!-<>@-~])[!->@-~]*|)\?="
)
# A header that is nothing but such words between blanks (most encoded Subjects): its words
# are decoded without looking at its tokens one by one (_subject).
_WORD_SHAPE: Final = re.sub(r"\(\?P<[a-z]+>", "(?:", _ENCODED_WORD.pattern)
_ENCODED_WORDS: Final = re.compile(rf"[ \t]*{_WORD_SHAPE}(?:[ \t]+{_WORD_SHAPE})*[ \t]*")
_Q_ESCAPE: Final = re.compile(rb"=([a-fA-F0-9]{2})")
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM: Final = rf"{_ATEXT}(?:\.{_ATEXT})*"
_ADDR_SPEC: Final = rf"{_DOT_ATOM}@{_DOT_ATOM}"
# The From shapes almost every mailer writes: a bare address, or an address in angle brackets
# after a display name that is plain words (encoded words and 8-bit text included) or one
# quoted string. Anything else is parsed by the modern header parser. The angle form is tried
# first: no text is both (a bare address holds no "<"), and trying the bare form first cost
# three times as much on the usual "=?utf-8?b?...?= <address>", whose encoded word reads as
# the start of an address up to its end.
_SIMPLE_FROM: Final = re.compile(
    rf"[ \t]*(?:(?:[^<>\"@,;:\\()\[\] \t][^<>\"@,;:\\()\[\]]*|\"(?:[^\"\\]|\\[ -~])*\")?"
    rf"[ \t]*<(?P<angle>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))[ \t]*"
)


def parse_email(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    raw = record.payload
    if not isinstance(raw, str):
        raise Reject(
            f"field payload must be a string holding an rfc 5322 message, got {json_type(raw)}"
        )
    if not raw or raw.isspace():  # as `not raw.strip()`, without copying the message
        raise Reject("field payload holds an empty e-mail")
    message = _parse_mime(raw)
    from_, subject, own, references, in_reply_to = _first_values(message)[:5]
    sender = _sender(from_)
    # Ids are read from the values as they stand: no id holds whitespace, so a folding line
    # break reads as the space unfolding would leave (see _ids).
    own_id = _ids(own)
    message_id = own_id[0] if own_id else _synthetic_id(raw)
    threading = EmailThreading(
        message_id=message_id, references=_ids(references), in_reply_to=_ids(in_reply_to)
    )
    return [
        Contact(
            at=record.at,
            channel="email",
            conversation_id="",
            identities=(Identity("email", sender),),
            subject=_subject(subject),
            body=_body_of(message, raw),
            channel_message_id=message_id,
            threading=threading,
            ref=record.ref,
        )
    ]


def _sender(raw: str | None) -> str:
    """The first address of ``From`` (its first value, as the mail holds it)."""
    if raw is None:
        raise Reject("e-mail has no From header")
    unfolded = _unfold(raw)
    # Name <local@domain>, "Name" <local@domain>, local@domain (an "=?" in the address itself
    # would be read as an encoded word by the modern parser)
    simple = _SIMPLE_FROM.fullmatch(unfolded)
    address = None if simple is None else simple.group("angle") or simple.group("bare")
    if address is not None and "=?" not in address:
        return normalize_email(address)
    # The modern policy parses address headers into Address objects; a From holding only a
    # group name or garbage yields none, or one without a domain.
    try:
        if len(unfolded) > _MODERN_HEADER_LIMIT:
            raise ValueError("too long for the modern header parser")
        header = _MODERN.header_factory("from", unfolded)
        addresses = [(a.username, a.domain, a.addr_spec) for a in header.addresses]
    except Exception:
        # The modern header parser has crashed on malformed addresses (IndexError,
        # AttributeError inside the stdlib); the older, forgiving parser still finds most.
        addresses = []
        for _, addr_spec in getaddresses([_FOLDING.sub(" ", raw)]):
            local, _, domain = addr_spec.rpartition("@")
            if not _WHITESPACE.search(addr_spec):  # "E ivan@x" is debris, not an address
                addresses.append((local, domain, addr_spec))
    for username, domain, addr_spec in addresses:
        if username and domain:
            return normalize_email(addr_spec)
    raise Reject("e-mail From header holds no address")


def _subject(raw: str | None) -> str:
    """``Subject`` (its first value, as the mail holds it) decoded."""
    if raw is None:
        return ""
    value = _unfold(raw)
    text = _encoded_words(value) if "=?" in value else None
    if text is None:
        text = _decode_unstructured(value)
    return _collapse_blanks(text).strip()


def _encoded_words(value: str) -> str | None:
    """``_decode_unstructured`` of a header made of encoded words between blanks alone, short
    of the blanks before the first word and after the last (which ``_subject`` strips), or
    None for any other header or a word ``_decode_word`` leaves to the standard library. The
    blanks between two encoded words are dropped, so the words' texts are simply joined."""
    word = _ENCODED_WORD.fullmatch(value)
    if word is not None:  # one word alone, the usual short Subject
        text = _decode_word(word)
        return None if text is None else _sanitize(text)
    if _ENCODED_WORDS.fullmatch(value) is None:
        return None
    texts: list[str] = []
    # the words hold no whitespace and only blanks are between them: split cuts them apart
    for token in value.split():
        word = _ENCODED_WORD.fullmatch(token)
        text = None if word is None else _decode_word(word)
        if text is None:
            return None
        texts.append(text)
    return _sanitize("".join(texts))


def _unfold(raw: str) -> str:
    """A header value as the modern policy reads it: every CR and LF removed, the folding
    whitespace kept."""
    return raw.replace("\r", "").replace("\n", "")


def _decode_unstructured(value: str) -> str:
    """An unstructured header (``Subject``) with its RFC 2047 encoded words decoded, as
    ``str(email.policy.default.header_factory(name, value))`` gives it.

    The fast path takes a header whose whitespace-separated tokens are each either free of
    ``=?`` or one well-formed encoded word in a charset Python knows, and decodes it as the
    modern parser does: every word on its own, the whitespace between two adjacent encoded
    words dropped, the rest kept. Anything else goes to the modern parser itself, unless the
    header is longer than ``_MODERN_HEADER_LIMIT`` (the modern parser, and the older
    ``email.header.decode_header`` too, are quadratic in the number of encoded words): then the
    well-formed encoded words are decoded and every other token is kept as it stands.
    """
    if "=?" not in value:
        return _sanitize(value)
    decoded = _fast_unstructured(value)
    if decoded is not None:
        return decoded
    if len(value) <= _MODERN_HEADER_LIMIT:
        try:
            return str(_MODERN.header_factory("subject", value))
        except Exception:  # the header parser choking on hostile input: keep the raw text
            return value
    return _fast_unstructured(value, lenient=True) or value


def _fast_unstructured(value: str, *, lenient: bool = False) -> str | None:
    """The fast path of ``_decode_unstructured``: None at the first token it cannot decode as
    the modern parser would, unless ``lenient``, when such a token is kept as it stands."""
    pieces: list[str] = []
    previous_was_word = False
    pending_space = ""
    for match in _WSP_OR_TOKEN.finditer(value):
        token: str = match.group()
        if token[0] in " \t":
            pending_space = token
            continue
        text = None
        if "=?" in token:
            word = _ENCODED_WORD.fullmatch(token)
            text = None if word is None else _decode_word(word)
            if text is None and not lenient:
                return None
        if text is not None:
            if not previous_was_word:
                pieces.append(pending_space)
            pieces.append(text)
            previous_was_word = True
        else:
            pieces.append(pending_space)
            pieces.append(token)
            previous_was_word = False
        pending_space = ""
    pieces.append(pending_space)
    return _sanitize("".join(pieces))


def _decode_word(word: re.Match[str]) -> str | None:
    """One encoded word's text, or None where the standard library would need its lenient
    repairs (bad base64, undecodable bytes, unknown charset): the caller then asks it."""
    charset, cte, text = word.group("charset", "cte", "text")
    charset = charset.partition("*")[0]
    try:
        if cte in "bB":
            if len(text) % 4:
                return None
            data = binascii.a2b_base64(text, strict_mode=True)  # b64decode(validate=True)
        else:
            data = _Q_ESCAPE.sub(_q_byte, text.replace("_", " ").encode("ascii"))
        return data.decode(charset)
    except (binascii.Error, LookupError, UnicodeError, ValueError):
        return None


def _q_byte(match: re.Match[bytes]) -> bytes:
    return bytes.fromhex(match.group(1).decode("ascii"))


def _sanitize(text: str) -> str:
    """Bytes kept as surrogate escapes become U+FFFD, as ``email.utils._sanitize`` does."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _first_values(message: Message | _Part) -> tuple[str | None, ...]:
    """The first value of each of ``_READ_FIELDS`` (None: no such field) exactly as the mail
    holds it (folding line breaks included), without the policy's parsing (which threading
    ids do not need and which can fail on malformed input)."""
    if isinstance(message, _Part):  # already read so, by _Part.read
        return message.fields
    first: dict[str, str | None] = {}
    for key, value in message.raw_items():
        first.setdefault(lower(key), str(value))
    return tuple([first.get(name) for name in _READ_FIELDS])


def _ids(text: str | None) -> tuple[str, ...]:
    """The normalised message ids a threading header lists, in order, without repeats.

    The value may be folded: every pattern here takes a line break where it takes a space
    (ids and bare tokens hold no whitespace, a comment any), so it reads as unfolded."""
    if text is None:
        return ()
    found = (_ASCII_BRACKETED_ID if text.isascii() else _BRACKETED_ID).findall(text)
    if found:
        # normalize_message_id of an id in angle brackets is the id lower-cased: it holds no
        # brackets and no whitespace (what "\s" and str.strip take are the same characters)
        if len(found) == 1:
            return (lower(found[0]),)
        return tuple(dict.fromkeys([lower(token) for token in found]))
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
# MIME structure
# --------------------------------------------------------------------------------------------

_MAX_FAST_DEPTH: Final = 8
_READ_FIELDS: Final = (
    "from", "subject", "message-id", "references", "in-reply-to",
    "content-type", "content-transfer-encoding", "content-disposition",
)  # fmt: skip
"""The header fields the parser reads: ``_Part`` keeps the first value of each (parse_email
takes the first five in this order)."""
_FIELD_INDEX: Final = {name: index for index, name in enumerate(_READ_FIELDS)}
_CONTENT_TYPE: Final = _FIELD_INDEX["content-type"]
_TRANSFER_ENCODING: Final = _FIELD_INDEX["content-transfer-encoding"]
_CONTENT_DISPOSITION: Final = _FIELD_INDEX["content-disposition"]
# A header block as the feed parser reads it, in one match: every line is a field (a name of
# printable ASCII but ":", the value after blanks, and its continuation lines with their line
# breaks, which unfolding removes); any other line is debris, and the feed parser reads such a
# block. A field the parser reads has its value captured while that field has not been seen
# yet (the forward conditional "(?(n)(?!)|...)" keeps the first, as setdefault would); any
# other field is only stepped over. A CR is taken only before an LF: a bare CR ends a line for
# the feed parser, so a block holding one is not matched (the feed parser reads it). Every line
# is atomic, so a block with debris fails in linear time. The fields read are tried by their
# first letter, so that most lines try none. One match costs half what finding every field
# and keeping the first of each did (tests/processors/parsing/test_parse_email_fast_paths.py
# holds that reading as reference). The repeats are possessive: what follows each can never
# match what it gave back.
_LINE_CHARACTER: Final = r"[\x00-\t\x0b\x0c\x0e-\U0010ffff]"
"""What ``[^\\r\\n]`` matches, spelled as ranges: a third faster to match than the negated
class, which the pattern engine tests character by character."""
_FIELD_VALUE_SHAPE: Final = rf"[ \t]*+({_LINE_CHARACTER}*+(?:\r?\n[ \t]{_LINE_CHARACTER}*+)*+)\r?\n"
_OTHER_FIELD_SHAPE: Final = (
    rf"[\041-\071\073-\176]++:{_LINE_CHARACTER}*+\r?\n(?:[ \t]{_LINE_CHARACTER}*+\r?\n)*+"
)


def _header_block_pattern() -> str:
    # Group n captures _READ_FIELDS[n - 1]: the names sharing a first letter are next to each
    # other in _READ_FIELDS, so grouping them by letter keeps their order.
    by_letter: dict[str, list[str]] = {}
    for number, name in enumerate(_READ_FIELDS, start=1):
        field = rf"(?({number})(?!)|(?ai:{re.escape(name[1:])}):{_FIELD_VALUE_SHAPE})"
        by_letter.setdefault(name[0], []).append(field)
    read = "|".join(
        f"[{letter.upper()}{letter}](?:{'|'.join(fields)})" for letter, fields in by_letter.items()
    )
    return rf"(?>{read}|{_OTHER_FIELD_SHAPE})*+"


# ... and the empty line after it: no field line is empty, so the fields stop at the first
# one, where the body starts (a block that does not start with a field is not one).
# Compiled at its first use, not at import: it takes 40 ms to compile (the ranges), which
# every process importing the parsers paid, a replay's desk too, which parses no mail.
@functools.cache
def _header_block() -> re.Pattern[str]:
    return re.compile(rf"(?![\r\n]){_header_block_pattern()}\r?\n")


_PLAIN_CONTENT_TYPE: Final = re.compile(
    r"[ \t]*[^;\s\"]+"
    r"(?:[ \t]*;[ \t]*[A-Za-z0-9_.-]+=(?:\"[^\"\\;*()<>\r\n]*\"|[^\";\\*()<>\s]*)[ \t]*)*;?[ \t]*"
)
_PLAIN_PARAM: Final = re.compile(r';[ \t]*([A-Za-z0-9_.-]+)=("[^"]*"|[^;\s]*)')


def _plain_params(value: str) -> tuple[tuple[str, str], ...] | None:
    """The parameters of a plain ``Content-Type`` value (no quoted specials, comments or RFC
    2231 parameters) as ``(lower-cased name, value as written)``, or None for any other value.
    Short values are remembered: mailers repeat the same few (``text/plain; charset="utf-8"``)
    on every part of every mail."""
    return _remembered_params(value) if len(value) <= 200 else _read_params(value)


def _read_params(value: str) -> tuple[tuple[str, str], ...] | None:
    if not _PLAIN_CONTENT_TYPE.fullmatch(value):
        return None
    return tuple((lower(p.group(1)), p.group(2)) for p in _PLAIN_PARAM.finditer(value))


_remembered_params: Final = functools.lru_cache(maxsize=512)(_read_params)
# A plain Content-Type (_PLAIN_CONTENT_TYPE) with one parameter, "boundary", as almost every
# multipart has it; its boundary is unique to the mail, so _remembered_params would not help.
_USUAL_MULTIPART: Final = re.compile(
    r"[ \t]*[^;\s\"]+[ \t]*;[ \t]*boundary="
    r"(?:\"([^\"\\;*()<>\r\n]*)\"|([^\";\\*()<>\s]*))[ \t]*;?[ \t]*"
)
_BOUNDARY_TAIL: Final = re.compile(r"(--)?[ \t]*(?:\r?\n|\Z)")
_BARE_CR_TAIL: Final = re.compile(r"(?:--)?[ \t]*\r")  # where _BOUNDARY_TAIL failed


def _parse_mime(raw: str) -> Message | _Part:
    """The message: its top-level headers read by ``_Part`` when they are plainly well formed
    (its parts are then cut lazily, as the body is looked for), else the standard library's
    feed parser's whole tree (``compat32``)."""
    part = _Part.read(raw, 0, top=True)
    if part is not None:
        return part
    return email.message_from_string(raw, policy=email.policy.compat32)


class _Fallback(Exception):
    """The MIME structure is not plainly well formed: let the feed parser read it."""


class _Part:
    """One MIME entity cut from the text without the standard library, with the few
    ``compat32`` ``Message`` methods the body needs and their exact results. A multipart's
    children are cut one by one as ``get_payload()`` is iterated, so the parts after the text
    that is looked for (the HTML alternative, attachments) are never read. Whatever is not
    plainly well formed raises ``_Fallback`` (a ``message/*`` part, a digest, a multipart
    without its boundary or closing line, two boundary lines in a row, nesting deeper than
    ``_MAX_FAST_DEPTH``), and the whole mail goes to the feed parser.
    Linear in the length of the text: one regex pass per header block, ``str.find`` for
    boundaries."""

    __slots__ = ("_body", "_content_type", "_depth", "_fields", "_top")

    def __init__(self, fields: tuple[str | None, ...], body: str, depth: int, top: bool) -> None:
        self._fields = fields
        self._body = body
        self._depth = depth
        self._top = top
        self._content_type = ""

    @classmethod
    def read(cls, text: str, depth: int, *, top: bool = False) -> _Part | None:
        if depth > _MAX_FAST_DEPTH:
            return None
        # The header block is up to the first empty line; it must be nothing but
        # "Name: value" fields with their continuation lines, and it is not empty.
        fields = _header_block().match(text)
        if fields is None:  # a line that is neither "Name: value" nor a continuation first
            return None
        return cls(fields.groups(), text[fields.end() :], depth, top)

    @property
    def fields(self) -> tuple[str | None, ...]:
        """The first value of each of ``_READ_FIELDS``, in that order (None: no such field),
        exactly as the mail holds it."""
        return self._fields

    @property
    def first_values(self) -> dict[str, str | None]:
        """The first value of each of ``_READ_FIELDS`` (None: no such field), exactly as the
        mail holds it (the caller must not change it)."""
        return dict(zip(_READ_FIELDS, self._fields, strict=True))

    def get(self, name: str, failobj: Any = None) -> Any:
        index = _FIELD_INDEX.get(lower(name))
        value = None if index is None else self._fields[index]
        return failobj if value is None else value

    def get_content_type(self) -> str:
        if not self._content_type:
            value = self._fields[_CONTENT_TYPE]
            ctype = "" if value is None else lower(value.partition(";")[0].strip())
            self._content_type = ctype if ctype.count("/") == 1 else "text/plain"
        return self._content_type

    def get_content_disposition(self) -> str | None:
        value = self._fields[_CONTENT_DISPOSITION]
        return None if value is None else lower(value.partition(";")[0].strip())

    def get_content_charset(self) -> str | None:
        return self._as_message().get_content_charset()

    def get_payload(self) -> str | Iterator[_Part]:
        content_type = self.get_content_type()
        if content_type.startswith("message/") or content_type == "multipart/digest":
            raise _Fallback
        if content_type.startswith("multipart/"):
            return self._children()
        return self.text

    @property
    def text(self) -> str:
        """``get_payload()`` of a part that is not a multipart or message/*: its body, short
        of the line end before the boundary that follows it (that belongs to the boundary)."""
        if self._top:
            return self._body
        return self._body[: len(self._body) - _eol_length(self._body)]

    def _as_message(self) -> Message:
        message = Message(policy=email.policy.compat32)
        for name, value in zip(_READ_FIELDS, self._fields, strict=True):
            if value is not None:
                message.set_raw(name, value)
        return message

    def _boundary(self) -> str | None:
        value = self._fields[_CONTENT_TYPE] or ""
        usual = _USUAL_MULTIPART.fullmatch(value)
        if usual is not None:  # what the loop below finds in it, without reading every param
            quoted, bare = usual.groups()
            return bare if quoted is None else quoted.rstrip()
        params = _plain_params(value)
        if params is not None:
            for name, found in params:
                if name == "boundary":
                    return (found[1:-1] if found[:1] == '"' else found).rstrip()
            return None
        return self._as_message().get_boundary()

    def _children(self) -> Iterator[_Part]:
        boundary = self._boundary()
        if not boundary:
            raise _Fallback
        body = self._body
        delimiter = "--" + boundary
        # A bare CR ends a line for the feed parser. Inside a multipart that matters where it
        # cuts lines differently: a boundary line after a bare CR (looked for here), one ended
        # by a bare CR (_boundary_line), a part's header block (_header_block takes none).
        # Elsewhere in a part's text it is kept as it stands, by both.
        if "\r" + delimiter in body:
            raise _Fallback
        first = _boundary_line(body, delimiter, 0)
        if first is None or first[2]:
            raise _Fallback
        start = first[1]
        while True:
            following = _boundary_line(body, delimiter, start)
            if following is None or following[0] == start:
                raise _Fallback  # never closed, or two boundary lines in a row
            part = _Part.read(body[start : following[0]], self._depth + 1)
            if part is None:
                raise _Fallback
            yield part
            if following[2]:
                return
            start = following[1]


def _boundary_line(body: str, delimiter: str, start: int) -> tuple[int, int, bool] | None:
    """The next boundary line at or after ``start``: where it starts, where it ends (its line
    end included) and whether it closes the multipart. A boundary line is ``--boundary``, then
    ``--`` if it closes, blanks and the line end, at the start of a line (RFC 2046 5.1.1, as
    the feed parser matches it); the line end before it belongs to it."""
    position = body.find(delimiter, start)
    while position >= 0:
        if position == 0 or body[position - 1] == "\n":
            tail = _BOUNDARY_TAIL.match(body, position + len(delimiter))
            if tail is not None:
                return position, tail.end(), tail.group(1) is not None
            if _BARE_CR_TAIL.match(body, position + len(delimiter)) is not None:
                raise _Fallback  # a boundary line for the feed parser, ended by a bare CR
        position = body.find(delimiter, position + 1)
    return None


def _eol_length(text: str) -> int:
    """The line end the feed parser takes off a part's end (it belongs to the boundary)."""
    return 2 if text.endswith("\r\n") else 1 if text.endswith("\n") else 0


# --------------------------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------------------------


def _body_of(message: Message | _Part, raw: str) -> str:
    try:
        if isinstance(message, _Part):
            return _part_body(message)
        return _body(message)
    except _Fallback:
        return _body(email.message_from_string(raw, policy=email.policy.compat32))


def _body(message: Message | _Part) -> str:
    """The first text/plain part that reads, else the first text/html one, as text. Parts are
    looked at in document order and only as far as needed (``_text_parts``)."""
    structure: list[str] = []
    conversion: list[str] = []
    html: list[Message | _Part] = []
    for kind, part in _text_parts(message, structure):
        if kind == "html":
            html.append(part)
            continue
        text = _converted(part, _plain, conversion)
        if text is not None:
            return text
    return _html_body(html, structure, conversion)


def _part_body(top: _Part) -> str:
    """``_body`` of a tree of ``_Part``s, by plain recursion rather than nested generators:
    the same parts looked at in the same order, and only as far as ``_body`` looks."""
    text = _single_part_body(top)
    if text is not None:
        return text
    conversion: list[str] = []
    html: list[_Part] = []
    text = _first_plain(top, html, conversion)
    if text is not None:
        return text
    # A _Part tree has no structural problems: those are _Fallback.
    return _html_body(html, [], conversion)


def _html_body(html: Sequence[Message | _Part], structure: list[str], conversion: list[str]) -> str:
    """How ``_body`` ends once no text/plain part converted: the first text/html part that
    converts, else the first problem met (the structure's before the conversions'), else no
    text."""
    for part in html:
        text = _converted(part, _html_to_text, conversion)
        if text is not None:
            return text
    problems = structure + conversion
    if problems:
        raise Reject(problems[0])
    return ""


def _first_plain(part: _Part, html: list[_Part], problems: list[str]) -> str | None:
    """What ``_body``'s first loop does over ``_text_parts(part)``: the first text/plain part
    that converts, the text/html ones met on the way kept in ``html``."""
    if part.get_content_disposition() == "attachment":
        return None
    content_type = part.get_content_type()
    payload = part.get_payload()
    if isinstance(payload, str):
        if content_type == "text/plain":
            return _converted(part, _plain, problems)
        if content_type == "text/html":
            html.append(part)
        return None
    for child in payload:
        text = _first_plain(child, html, problems)
        if text is not None:
            return text
    return None


def _single_part_body(part: _Part) -> str | None:
    """``_body`` of a mail that is one text part (half of all mail), without walking a tree;
    None for a multipart or a message/* one."""
    content_type = part.get_content_type()
    if content_type.startswith(("multipart/", "message/")):
        return None
    if part.get_content_disposition() == "attachment" or not content_type.startswith("text/"):
        return ""
    convert: Callable[[str], str]
    if content_type == "text/plain":
        convert = _plain
    elif content_type == "text/html":
        convert = _html_to_text
    else:
        return ""
    try:  # _converted, its one problem raised at once
        return convert(_decoded_text(part))
    except (Reject, _Fallback):
        raise
    except Exception:  # charset or transfer-encoding header the stdlib chokes on
        raise Reject("e-mail text part has a malformed content header") from None


def _converted(
    part: Message | _Part, convert: Callable[[str], str], problems: list[str]
) -> str | None:
    try:
        return convert(_decoded_text(part))
    except Reject as problem:
        problems.append(problem.reason)
    except _Fallback:
        raise
    except Exception:  # charset or transfer-encoding header the stdlib chokes on
        problems.append("e-mail text part has a malformed content header")
    return None


def _text_parts(
    part: Message | _Part, problems: list[str]
) -> Iterator[tuple[str, Message | _Part]]:
    """The text parts of a MIME tree in document order (``plain`` or ``html``), skipping
    attachments with everything inside them (a forwarded mail attached as message/rfc822 is
    not the customer's text). Structural problems go to ``problems``."""
    try:
        disposition = part.get_content_disposition()
        content_type = part.get_content_type()
    except Exception:  # a Content-* header the stdlib parser crashes on
        problems.append("e-mail part has a malformed content header")
        return
    if disposition == "attachment":
        return
    payload = part.get_payload()
    if isinstance(payload, str) or payload is None:
        if content_type.startswith("multipart/"):
            # Without a (matching) boundary the parser cannot split the parts and keeps the
            # whole body as one string; nothing inside can be trusted as text.
            assert isinstance(part, Message)
            problems.append(_broken_multipart(part))
        elif content_type == "text/plain":
            yield "plain", part
        elif content_type == "text/html":
            yield "html", part
        return
    if payload is None:
        return
    for child in payload:
        if isinstance(child, Message | _Part):
            yield from _text_parts(child, problems)


def _broken_multipart(part: Message) -> str:
    kind = part.get_content_type()
    if part.get_param("boundary") is None:
        return f"{kind} e-mail part has no boundary parameter, so no body part can be found"
    return f"{kind} e-mail part never contains its boundary, so no body part can be found"


def _decoded_text(part: Message | _Part) -> str:
    """A text part's content as text: transfer encoding undone, then its charset applied."""
    if isinstance(part, _Part):  # a text/plain or text/html part: its payload is its text
        payload = part.text
        value = part.fields[_TRANSFER_ENCODING]
        cte = "7bit" if value is None else lower(value.strip())
    else:
        content = part.get_payload()
        if not isinstance(content, str):  # message/rfc822 and friends are not text/*
            return ""
        payload = content
        cte = lower(str(part.get("Content-Transfer-Encoding", "7bit")).strip())
    # Without a charset parameter RFC 2045 says US-ASCII; UTF-8 reads that the same and also
    # reads the 8-bit UTF-8 that careless mailers send without declaring it.
    charset = _content_charset(part) or "utf-8"
    if cte == "base64":
        return _decode_charset(_base64_bytes(payload, part.get_content_type()), charset)
    if cte == "quoted-printable":
        # The payload came to us as text; a QP body should be ASCII, but if a relay left raw
        # characters in it they are put back in the part's own charset before QP decoding.
        # (quopri.decodestring is binascii.a2b_qp behind a Python call)
        return _decode_charset(binascii.a2b_qp(_to_bytes(payload, charset)), charset)
    # 7bit / 8bit / binary: the JSON string already holds the characters, nothing to decode.
    return payload


def _content_charset(part: Message | _Part) -> str | None:
    """``part.get_content_charset()``, read straight from a plain ``Content-Type`` (no quoted
    specials, comments or RFC 2231 parameters); the standard library reads the others."""
    value = part.fields[_CONTENT_TYPE] if isinstance(part, _Part) else part.get("Content-Type")
    if isinstance(value, str):
        plain, charset = _remembered_charset(value) if len(value) <= 200 else _plain_charset(value)
        if plain:
            return charset
    return part.get_content_charset()


def _plain_charset(value: str) -> tuple[bool, str | None]:
    """Whether a ``Content-Type`` value is plain (``_read_params``), and then its charset."""
    params = _read_params(value)
    if params is None:
        return False, None
    for name, found in params:
        if name == "charset":
            charset = found.strip('"') if found[:1] == '"' else found
            return True, charset.lower() if charset.isascii() else None
    return True, None


# the few values mailers write on every text part, read once (as _remembered_params)
_remembered_charset: Final = functools.lru_cache(maxsize=512)(_plain_charset)


def _base64_bytes(payload: str, content_type: str) -> bytes:
    # every whitespace character dropped: str.split() and the regex "\s" both take what
    # str.isspace() calls whitespace, and split and join cost a tenth of a regex substitution
    compact = "".join(payload.split())
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


_CDATA_TAGS: Final = frozenset({"script", "style"})
_START_TAG: Final = re.compile(
    r"<([a-zA-Z][^\t\n\r\f />\x00]*)(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>"
)
_END_TAG: Final = re.compile(r"</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>")
_TAG_NAME: Final = re.compile(r"[a-zA-Z][^\t\n\r\f />\x00]*")
_COMMENT_CLOSE: Final = re.compile(r"--\s*>")
_MARKED_CLOSE: Final = re.compile(r"]\s*]\s*>")
_CDATA_CLOSE: Final = {tag: re.compile(rf"</\s*{tag}\s*>", re.IGNORECASE) for tag in _CDATA_TAGS}


class _Finder:
    """``pattern.search(text, start)`` that remembers where a search found nothing: a later
    search from at least that far cannot find anything either, so hostile markup full of
    unclosed comments or tags costs one scan, not one per opening."""

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self._text = text
        self._pattern = pattern
        self._hopeless_from = len(text) + 1

    def search(self, start: int) -> re.Match[str] | None:
        if start >= self._hopeless_from:
            return None
        found = self._pattern.search(self._text, start)
        if found is None:
            self._hopeless_from = start
        return found


_GREATER: Final = re.compile(">")


# A start tag as _START_TAG reads it but holding no "<" (its name and what follows the name:
# the tag ends "/>", self-closing, when that ends with "/", as a name holds no "/"), or an end
# tag as _END_TAG reads it (its name); splitting on it leaves the text between tags. A tag
# with a "<" inside is left in the text (and _simple_markup_text gives up): so every try stops
# at the next "<", and hostile markup (unclosed tags and quotes) costs linear time. The "<"
# leads the pattern outside any group, so that the search skips from "<" to "<" at once.
_SIMPLE_TAG: Final = re.compile(
    r"<(?:([a-zA-Z][^\t\n\r\f />\x00<]*)((?:[^>\"'<]++|\"[^\"<]*+\"|'[^'<]*+')*+)>"
    r"|/\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>)"
)


def _html_to_text(markup: str) -> str:
    """Markup to readable text (``_markup_text``), the usual markup of mail by a shorter way
    (``_simple_markup_text``)."""
    text = _simple_markup_text(markup)
    return _markup_text(markup) if text is None else text


def _simple_markup_text(markup: str) -> str | None:
    """``_markup_text`` of markup made of text and well-formed start and end tags only, or
    None for any other: a "<" that is not such a tag (comments, declarations, a lone "<",
    an unclosed tag) or a script or style element, whose raw text has its own rules.

    On such markup ``_markup_text`` meets every tag where ``_SIMPLE_TAG`` finds it and reads
    it with the same patterns, and hands the text between two tags to ``data`` in one piece;
    here one split does the cutting instead of a search per tag. The pieces of text are
    joined with a separator (``_CUT``) that no blank run crosses, so that one substitution
    collapses the blanks of each piece as ``data`` does piece by piece, and line breaks for
    tags are kept out of that substitution as ``_BREAK`` until it is done."""
    pieces = _SIMPLE_TAG.split(markup)
    # each tag holds exactly one "<": one more anywhere is a "<" in the text
    if markup.count("<") != len(pieces) // 4 or _CUT in markup or _BREAK in markup:
        return None
    unescape = "&" in markup  # else html.unescape would give every piece back as it is
    following = iter(pieces)
    text = next(following)
    chunks: list[str] = [html.unescape(text) if unescape else text] if text else []
    hidden = 0
    # after the first text, each tag comes as its three groups and the text that follows it
    for start, attributes, end, text in zip(
        following, following, following, following, strict=True
    ):
        if start is not None:
            action = _START_ACTIONS.get(start)  # the table's names are lower-case already
            if action is None:
                action = _START_ACTIONS.get(lower(start))
            if action is not None:
                if action is _RAW_TEXT:
                    return None
                if attributes.endswith("/"):  # <br/>, <hr />
                    if action is _BREAK:
                        chunks.append(_BREAK)
                elif action is _HIDE:
                    hidden += 1
                else:
                    chunks.append(action)
        else:
            action = _END_ACTIONS.get(end)  # the table's names are lower-case already
            if action is None:
                action = _END_ACTIONS.get(lower(end))
            if action is _HIDE:
                hidden = max(0, hidden - 1)
            elif action is _BREAK:
                chunks.append(_BREAK)
        if text and not hidden:
            chunks.append(html.unescape(text) if unescape else text)
    joined = _collapse_blanks(_CUT.join(chunks)).replace(_CUT, "").replace(_BREAK, "\n")
    # _SPACE_AROUND_NEWLINE.sub("\n", joined) but for spaces at the very start and end, which
    # the final strip takes either way
    joined = "\n".join([line.strip(" ") for line in joined.split("\n")])
    if "\n\n\n" in joined:
        joined = _BLANK_LINES.sub("\n\n", joined)
    return joined.strip()


def _collapse_blanks(text: str) -> str:
    """``_SPACES.sub(" ", text)`` by string methods: every blank a space, then runs of spaces
    halved until none is left (log2 of the longest run passes). A substitution whose pattern
    opens with a character class tries every position of the text, ~10 ns a character on
    text that is not ASCII; these passes cost a fraction of it."""
    for blank in "\t\r\n\f\v\xa0":  # _SPACES but the space
        text = text.replace(blank, " ")
    while "  " in text:
        text = text.replace("  ", " ")
    return text


_CUT: Final = "\x01"
_BREAK: Final = "\x02"
"""Stand-ins, in ``_simple_markup_text``, for the cut between two pieces of text (no blank
run crosses it) and for a tag's line break (not a blank to collapse). Markup holding either
is read by ``_markup_text``; no entity unescapes to them (``html.unescape`` drops the C0
controls)."""
_HIDE: Final = "hide"
_RAW_TEXT: Final = "raw text"
_START_ACTIONS: Final[dict[str, str]] = {
    **{tag: _BREAK for tag in _BLOCK_TAGS},
    **{tag: " " for tag in _CELL_TAGS},
    **{tag: _HIDE for tag in _HIDDEN_TAGS},
    **{tag: _RAW_TEXT for tag in _CDATA_TAGS},
}
"""What ``_markup_text`` does at a start tag, by its lower-cased name: a script or style
element's raw text, content hidden up to the end tag, a line break, a space (table cells)."""
_END_ACTIONS: Final[dict[str, str]] = {
    **{tag: _BREAK for tag in _BLOCK_TAGS - {"br"}},
    **{tag: _HIDE for tag in _HIDDEN_TAGS},
}
"""... and at an end tag: hidden content ends, a line break."""


_BLANKS: Final = " \t\r\f\v\n\xa0"
"""What ``_SPACES`` matches."""


def _collapsed(text: str) -> str:
    """Text between tags as ``_markup_text``'s ``data`` keeps it: entities unescaped, runs
    of blanks one space (the line breaks between tags are one space at once)."""
    if not text.strip(_BLANKS):
        return " "
    return _SPACES.sub(" ", html.unescape(text))


def _markup_text(markup: str) -> str:
    """Markup to readable text: what a mail client shows, roughly, and what the standard
    library's ``HTMLParser`` (``convert_charrefs``) handed us before (``tests/processors/
    parsing/test_parse_email_oracle.py`` compares them): script, style, head, title and template
    contents are dropped; block elements and ``<br>`` become line breaks, table cells a space;
    entities are unescaped; runs of whitespace collapse as in a browser; comments,
    declarations and processing instructions vanish; an opening that never closes is text up
    to the next ``>`` (or ``<``). One pass: every search that fails is remembered
    (``_Finder``), so the time is linear in the length of the markup, whatever it holds."""
    chunks: list[str] = []
    hidden = 0
    n = len(markup)
    greater = _Finder(markup, _GREATER)
    comment_close = _Finder(markup, _COMMENT_CLOSE)
    marked_close = _Finder(markup, _MARKED_CLOSE)
    cdata_close = {tag: _Finder(markup, pattern) for tag, pattern in _CDATA_CLOSE.items()}

    def data(text: str) -> None:
        if not hidden and text:
            chunks.append(_SPACES.sub(" ", html.unescape(text)))

    i = 0
    while i < n:
        j = markup.find("<", i)
        if j < 0:
            data(markup[i:])
            break
        data(markup[i:j])
        i = j
        nxt = markup[i + 1 : i + 2]
        end = -1  # where the construct at i ends; -1: it never closes
        if nxt.isascii() and nxt.isalpha():
            close = greater.search(i + 1)
            tag_match = _START_TAG.match(markup, i) if close is not None else None
            if tag_match is not None:
                tag = lower(tag_match.group(1))
                end = tag_match.end()
                if markup[i:end].endswith("/>"):  # <br/>, <hr />
                    if tag in _BLOCK_TAGS:
                        chunks.append("\n")
                else:
                    if tag in _HIDDEN_TAGS:
                        hidden += 1
                    elif tag in _BLOCK_TAGS:
                        chunks.append("\n")
                    elif tag in _CELL_TAGS:
                        chunks.append(" ")
                    if tag in _CDATA_TAGS:  # raw text up to its end tag, hidden anyway
                        closing = cdata_close[tag].search(end)
                        end = n if closing is None else closing.start()
        elif nxt == "/":
            close = greater.search(i + 2)
            if close is not None:
                end = close.end()
                named = _END_TAG.match(markup, i) or _TAG_NAME.match(markup, i + 2)
                if named is not None:
                    tag = lower(named.group(1) if named.re is _END_TAG else named.group())
                    if tag in _HIDDEN_TAGS:
                        hidden = max(0, hidden - 1)
                    elif tag in _BLOCK_TAGS and tag != "br":
                        chunks.append("\n")
        elif markup.startswith("<!--", i):
            closing = comment_close.search(i + 4)
            end = -1 if closing is None else closing.end()
        elif markup.startswith("<![CDATA[", i):
            closing = marked_close.search(i + 3)
            end = -1 if closing is None else closing.end()
        elif nxt in ("!", "?"):
            close = greater.search(i + 2)
            end = -1 if close is None else close.end()
        else:  # "<" before a space, a digit, the end: just a character
            data("<")
            i += 1
            continue
        if end < 0:
            # Never closed: as HTMLParser does at the end of input, the opening is text up to
            # the next ">" (or "<").
            close = greater.search(i + 1)
            if close is not None:
                end = close.end()
            else:
                following = markup.find("<", i + 1)
                end = following if following >= 0 else i + 1
            data(markup[i:end])
        i = end
    joined = _SPACE_AROUND_NEWLINE.sub("\n", "".join(chunks))
    return _BLANK_LINES.sub("\n\n", joined).strip()
