"""The e-mail parser's fast paths against the general code they stand in for.

Each fast path in ``processors/parsing/mail.py`` must give exactly what the slower, general
reading gives, on every input, not only on the mail we happened to look at: Hypothesis builds
the inputs from the pieces that matter to each path (field names in any case, repeats,
continuation lines, CR LF and bare LF, debris lines; encoded words and the blanks between
them). Whole messages are also compared with the old parser (``mail_oracle.py``) as in
``test_parse_email_oracle.py``.
"""

from __future__ import annotations

import base64
import binascii
import email
import importlib.util
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.ids import Pseudonymizer, normalize_message_id
from processors.model import RawRecord
from processors.parsing import mail
from processors.parsing._common import Reject

_HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("mail_oracle", _HERE / "mail_oracle.py")
assert _spec is not None and _spec.loader is not None
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)

# The header reading the fast one replaced: every field by one pattern that also tells
# debris apart, the first value of each lower-cased name kept.
_REFERENCE_LINES = re.compile(
    r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)\r?\n|([^\n]*\n)"
)


def reference_fields(block: str) -> dict[str, str] | None:
    first: dict[str, str] = {}
    for name, value, debris in _REFERENCE_LINES.findall(block):
        if debris:
            return None
        first.setdefault(name.lower(), value)
    return first


_PSEUDO = Pseudonymizer.from_text("fast-paths-test-key")


def outcome(parse: object, raw: str) -> object:
    record = RawRecord(at=0, source="email", payload=raw, ref="r", text="")
    try:
        return parse(record, _PSEUDO)  # type: ignore[operator]
    except Reject as problem:
        return ("dead letter", problem.reason)
    except Exception as exc:
        return ("crash", type(exc).__name__)


_NAMES = st.sampled_from(
    [
        *mail._READ_FIELDS,
        *("received", "to", "x-mailer", "date", "content-id", "from-x", "x-from"),
        # letters that match ASCII ones when case is ignored the Unicode way (long s, dotless i)
        *("meſſage-id", "ſubject", "ın-reply-to", "content-dıſpoſıtıon"),
    ]
)
_CASED_NAME = _NAMES.flatmap(
    lambda name: st.sampled_from([name, name.upper(), name.title(), name.capitalize()])
)
_VALUE_TEXT = st.lists(
    st.sampled_from([*"abc <>@.;=?:\"'\t", "т", "тест", "=?utf-8?q?x?=", "=?utf-8?b?0YI=?="]),
    max_size=12,
).map("".join)
_LINE_END = st.sampled_from(["\r\n", "\n"])


@st.composite
def header_lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field"] * 6 + ["continuation", "debris", "empty name"]))
    end = draw(_LINE_END)
    if kind == "continuation":
        return draw(st.sampled_from([" ", "\t", "  "])) + draw(_VALUE_TEXT) + end
    if kind == "debris":
        return draw(st.sampled_from(["not a header", "Subject : spaced", "x\x01y: ctl"])) + end
    if kind == "empty name":
        return ":" + draw(_VALUE_TEXT) + end
    blanks = draw(st.sampled_from(["", " ", "\t", "  \t"]))
    return f"{draw(_CASED_NAME)}:{blanks}{draw(_VALUE_TEXT)}{end}"


_BLOCKS = st.lists(header_lines(), min_size=1, max_size=12).map("".join)


def reference_read(text: str) -> tuple[dict[str, str], str] | None:
    """``_Part.read`` as it was: the header block up to the first empty line, every field."""
    blank = re.search(r"\n\r?\n", text)
    if blank is None:
        return None
    fields = reference_fields(text[: blank.start() + 1])
    return None if fields is None else (fields, text[blank.end() :])


@settings(max_examples=800, deadline=None)
@given(
    _BLOCKS,
    st.sampled_from(["\r\n", "\n", "", "\r\n\r\n"]),
    st.sampled_from(["", "\r\n", "\n"]),
    st.sampled_from(["body", "", "body\r\n\r\nmore", "Subject: in the body\r\n"]),
)
def test_header_block_reads_as_the_reference(block: str, blank: str, lead: str, body: str) -> None:
    text = lead + block + blank + body
    part = mail._Part.read(text, 0, top=True)
    reference = reference_read(text)
    if reference is None:
        assert part is None
        return
    assert part is not None
    fields, rest = reference
    assert part.first_values == {name: fields.get(name) for name in mail._READ_FIELDS}
    assert part.get_payload() == rest


@settings(max_examples=150, deadline=None)
@given(_BLOCKS, _LINE_END)
def test_messages_with_such_headers_parse_as_before(block: str, blank: str) -> None:
    raw = block + blank + "body text\r\n"
    assert outcome(mail.parse_email, raw) == outcome(oracle.parse_email, raw)


_MARKUP_PIECES = st.sampled_from(
    [
        *("<p>", "</p>", '<div class="a>b">', "</div>", "<br>", "<br/>", "<hr />", "<td>"),
        *("<TH>", "</tr>", "<head>", "</head>", "<title>", "</TITLE>", "<template>", "<b>"),
        *("</ b>", "</p >", "<img alt='x>y' src=z>", "<a<b>", "<script>", "</script>"),
        *("<style/>", "<!-- c -->", "<!x>", "<?pi?>", "< p>", "<", ">", "</>", "<p", "</3>"),
        *("text", "  two  words ", "\n", "\t", "\xa0", "&amp;", "&nbsp;", "&#1055;", "&lt;"),
        *("привет", "a\r\nb", "&unknown;", "&amp"),
        # the simple reader's own stand-ins in the text, and entities for them
        *("\x01", "\x02", "&#1;", "&#x02;", "\x1c", "\u2003", "  ", "<td/>", "<HEAD/>"),
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_MARKUP_PIECES, max_size=24).map("".join))
def test_simple_markup_reads_as_the_general_reader(markup: str) -> None:
    simple = mail._simple_markup_text(markup)
    if simple is not None:
        assert simple == mail._markup_text(markup)
    assert mail._html_to_text(markup) == oracle._html_to_text(markup)


def test_simple_markup_takes_the_usual_mail_markup() -> None:
    markup = (
        '<html><head><meta http-equiv="Content-Type" content="text/html"></head><body>\r\n'
        "<div>Здравствуйте!</div>\r\n<div><br></div>\r\n<div>Трек-номер &laquo;RA05&raquo;"
        "</div>\r\n<table><tr><td>a</td><td>b</td></tr></table></body></html>"
    )
    expected = "Здравствуйте!\n\nТрек-номер «RA05»\n\na b"
    assert mail._simple_markup_text(markup) == mail._markup_text(markup) == expected
    assert mail._simple_markup_text("<p>a<!-- b --></p>") is None
    assert mail._simple_markup_text("<p>1 < 2</p>") is None
    assert mail._simple_markup_text("<style>p {}</style>x") is None


# The From pattern as it was, bare address first: the one now used tries the angle form first.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_REFERENCE_FROM = re.compile(
    rf"[ \t]*(?:(?P<bare>{_ATOM}@{_ATOM})"
    rf"|(?:[^<>\"@,;:\\()\[\] \t][^<>\"@,;:\\()\[\]]*|\"(?:[^\"\\]|\\[ -~])*\")?"
    rf"[ \t]*<(?P<angle>{_ATOM}@{_ATOM})>)[ \t]*"
)
_FROM_PIECES = st.sampled_from(
    [*'<>@." \t\\,;:()[]', "ivan", "Ivan Petrov", "example.ru", "=?utf-8?b?0JjQstCw0L0=?=", "ё"]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_FROM_PIECES, max_size=14).map("".join))
def test_from_pattern_reads_as_the_reference(value: str) -> None:
    new = mail._SIMPLE_FROM.fullmatch(value)
    old = _REFERENCE_FROM.fullmatch(value)
    assert (new is None) == (old is None)
    if new is not None and old is not None:
        assert new.group("angle", "bare") == old.group("angle", "bare")


_CONTENT_TYPE_PIECES = st.sampled_from(
    [
        *("multipart/mixed", "multipart/alternative", "text/plain", " ", "\t", ";", "; "),
        *("boundary=", "Boundary=", "charset=utf-8", '"', "b1", "----=_Part_1.2", "(c)", "a b"),
        *('"quoted; semi"', "=", "*", "\\", "ё"),
    ]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_CONTENT_TYPE_PIECES, max_size=10).map("".join))
def test_usual_multipart_boundary_reads_as_the_parameter_reader(content_type: str) -> None:
    if mail._USUAL_MULTIPART.fullmatch(content_type) is None:
        return  # the general reading, which the oracle tests cover
    params = mail._read_params(content_type)
    assert params is not None  # a plain Content-Type
    assert [name for name, _ in params] == ["boundary"]
    found = params[0][1]
    part = mail._Part.read(f"Content-Type:{content_type}\r\n\r\n", 0, top=True)
    assert part is not None and part.get("Content-Type") == content_type.lstrip(" \t")
    assert part._boundary() == (found[1:-1] if found[:1] == '"' else found).rstrip()


def test_usual_multipart_shapes() -> None:
    usual = mail._USUAL_MULTIPART.fullmatch
    assert usual('multipart/mixed; boundary="----=_NextPart_4b2c"') is not None
    assert usual("multipart/alternative;\tboundary=b1 ") is not None
    assert usual('multipart/mixed; boundary="b1"; charset=utf-8') is None
    assert usual('multipart/mixed; Boundary="b1"') is None


def reference_base64(payload: str) -> bytes | str:
    """``_base64_bytes`` as it was: whitespace removed by a regex."""
    compact = re.sub(r"\s+", "", payload)
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", compact) or len(compact) % 4 == 1:
        return "undecodable"
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4))
    except binascii.Error:
        return "undecodable"


_BASE64_PIECES = st.sampled_from(
    [
        *"QUJD+/=\r\n\t \x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0",
        *("0J/RgNC4", "\r\n", "ё", "\u1680", "\u2000", "\u2028", "\u202f", "\u3000"),
        *("\u200b", "\ufeff"),  # not whitespace
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_BASE64_PIECES, max_size=16).map("".join))
def test_base64_bodies_decode_as_before(payload: str) -> None:
    try:
        decoded: bytes | str = mail._base64_bytes(payload, "text/plain")
    except Reject as problem:
        assert problem.reason == "text/plain part has undecodable base64 content"
        decoded = "undecodable"
    assert decoded == reference_base64(payload)


@st.composite
def single_part_mails(draw: st.DrawFn) -> str:
    content_type = draw(
        st.sampled_from(
            [
                *("text/plain", "text/plain; charset=koi8-r", 'text/html; charset="utf-8"'),
                *("TEXT/PLAIN", "text/enriched", "application/pdf", "message/rfc822", "text"),
                *("multipart/mixed", "multipart/mixed; boundary=b1", "image/png; name=a.png"),
            ]
        )
    )
    headers = ["From: Ivan <ivan@example.ru>", "Subject: s", f"Content-Type: {content_type}"]
    disposition = draw(st.sampled_from([None, "inline", "attachment", "ATTACHMENT; x=1"]))
    if disposition is not None:
        headers.append(f"Content-Disposition: {disposition}")
    cte = draw(st.sampled_from([None, "7bit", "base64", "quoted-printable", "x-unknown"]))
    if cte is not None:
        headers.append(f"Content-Transfer-Encoding: {cte}")
    body = draw(
        st.sampled_from(
            [
                *("0J/RgNC40LLQtdGC", "!!not base64", "=D0=9F=D1=80 soft=\r\nbreak"),
                *("<p>a &amp; b</p>", "Привет\r\n", ""),
                "--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1--\r\n",
            ]
        )
    )
    return "\r\n".join(headers) + "\r\n\r\n" + body


@settings(max_examples=400, deadline=None)
@given(single_part_mails())
def test_single_part_mails_parse_as_before(raw: str) -> None:
    assert outcome(mail.parse_email, raw) == outcome(oracle.parse_email, raw)
    part = mail._parse_mime(raw)
    assert isinstance(part, mail._Part)
    try:
        fast: object = mail._single_part_body(part)
    except Reject as problem:
        fast = problem.reason
    if fast is not None:
        try:
            general: object = mail._body(part)
        except Reject as problem:
            general = problem.reason
        assert fast == general


def reference_ids(text: str) -> tuple[str, ...]:
    """``_ids`` as it was: every id through normalize_message_id, repeats dropped."""
    found = re.findall(r"<([^<>\s]+)>", text)
    if not found:
        tokens = re.findall(r"[^\s,<>()]+", re.sub(r"\([^()]*\)", " ", text))
        found = [token for token in tokens if "@" in token] or tokens[:1]
    ids: list[str] = []
    for token in found:
        normalised = normalize_message_id(token)
        if normalised and normalised not in ids:
            ids.append(normalised)
    return tuple(ids)


_ID_PIECES = st.sampled_from(
    [*"<> ,()\t@.", "\r\n ", "A1@Host.RU", "a1@host.ru", "İd@x", "ΑΣ@Σ", "\xa0", "\u2003", "x"]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_ID_PIECES, max_size=14).map("".join))
def test_threading_ids_read_as_before(text: str) -> None:
    assert mail._ids(text) == reference_ids(text)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(_ID_PIECES, st.sampled_from(["\r\n\t", "\n ", "\n\t\t"])), max_size=14))
def test_folded_threading_ids_read_as_unfolded(pieces: list[str]) -> None:
    # parse_email hands _ids the header value as the mail holds it, folding line breaks
    # included; before, they were turned into spaces first
    text = "".join(pieces)
    assert mail._ids(text) == reference_ids(re.sub(r"\r?\n(?=[ \t])", " ", text))


_LEAVES = st.sampled_from(
    [
        "Content-Type: text/plain; charset=utf-8\r\n\r\nplain one",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n0J/RgNC4",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!bad",
        "Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: quoted-printable"
        "\r\n\r\n=F0=D2=C9",
        "Content-Type: text/html\r\n\r\n<p>html &amp; one</p>",
        "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!bad",
        "Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nattached",
        "Content-Type: application/pdf\r\n\r\nJVBERi0=",
        "Content-Type: message/rfc822\r\n\r\nFrom: x@y.z\r\n\r\nforwarded",
        "no header block at all",
        "Content-Type: text/plain\r\n\r\n",
    ]
)


def _multipart(children: list[str], depth: int, broken: str) -> str:
    boundary = f"b{depth}"
    body = "".join(f"--{boundary}\r\n{child}\r\n" for child in children)
    if broken != "unclosed":
        body += f"--{boundary}--\r\n"
    kind = "alternative" if depth % 2 else "mixed"
    parameter = "" if broken == "no boundary" else f'; boundary="{boundary}"'
    return f"Content-Type: multipart/{kind}{parameter}\r\n\r\n{body}"


_TREES = st.recursive(
    _LEAVES,
    lambda children: st.builds(
        _multipart,
        st.lists(children, min_size=1, max_size=3),
        st.integers(min_value=1, max_value=6),
        st.sampled_from(["", "", "", "unclosed", "no boundary"]),
    ),
    max_leaves=8,
)


def body_outcome(read: object, part: object) -> object:
    try:
        return read(part)  # type: ignore[operator]
    except Reject as problem:
        return ("dead letter", problem.reason)
    except mail._Fallback:
        return "feed parser"


@settings(max_examples=800, deadline=None)
@given(_TREES)
def test_part_trees_read_as_the_generator_walk(tree: str) -> None:
    raw = "From: ivan@example.ru\r\nSubject: s\r\n" + tree
    part = mail._parse_mime(raw)
    if isinstance(part, mail._Part):
        assert body_outcome(mail._part_body, part) == body_outcome(mail._body, part)
    assert outcome(mail.parse_email, raw) == outcome(oracle.parse_email, raw)


_SUBJECT_PIECES = st.sampled_from(
    [
        *("=?utf-8?b?0J/RgNC40LLQtdGC?=", "=?UTF-8?B?LCDQvNC40YA=?=", "=?utf-8?q?a_b?="),
        *("=?koi8-r?b?8NLJ18XU?=", "=?windows-1251?q?=CF=F0?=", "=?utf-8*ru?q?x?="),
        # a character split across two words, an unknown charset, bad base64 and Q escapes
        *("=?utf-8?b?0J?=", "=?utf-8?b?/w==?=", "=?x-unknown?q?abc?=", "=?utf-8?b?bad?="),
        *("=?utf-8?q?=ZZ?=", "=?utf-8?q??=", "=?utf-8?q?no_end", "=?", "?=", "=?utf-8?b?=?="),
        *(" ", "  ", "\t", "\r\n ", "\n\t", "\xa0", "word", "тема", "Re:", "\udcff"),
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_SUBJECT_PIECES, max_size=8).map("".join))
def test_subjects_of_encoded_words_read_as_the_token_walk(value: str) -> None:
    # _subject takes a header of encoded words between blanks alone by _encoded_words; the
    # token walk of _decode_unstructured (and the standard library behind it) is the reference
    reference = mail._SPACES.sub(" ", mail._decode_unstructured(mail._unfold(value))).strip()
    assert mail._subject(value) == reference


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from([*" \t\r\n\f\v\xa0\x1c\x85\u2003\u3000\x01", "a", "тест"]), max_size=20
    )
)
def test_blanks_collapse_as_the_pattern(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert mail._collapse_blanks(text) == mail._SPACES.sub(" ", text)


@st.composite
def mails_with_bare_crs(draw: st.DrawFn) -> tuple[str, bool]:
    """A generated mail with a CR alone somewhere (in a header, before a boundary, in a body)
    or a CR LF cut short, and whether that happened in the top header block."""
    tree = draw(_TREES)
    raw = draw(
        st.sampled_from(
            ["From: ivan@example.ru\r\nSubject: s\r\n" + tree, draw(single_part_mails())]
        )
    )
    header_end = raw.find("\r\n\r\n")
    length = len(raw)
    in_header = False
    for position in draw(st.lists(st.integers(0, len(raw)), min_size=1, max_size=3)):
        if draw(st.booleans()):
            raw = raw[:position] + "\r" + raw[position:]
        else:
            position = raw.find("\r\n", position)
            if position < 0:
                continue
            raw = raw[:position] + "\r" + raw[position + 2 :]
        # the top header block, its empty line included
        in_header = in_header or position <= header_end + 2
        header_end += 0 if position > header_end else 1 if len(raw) > length else -1
        length = len(raw)
    return raw, in_header


def feed_parser_outcome(raw: str) -> object:
    """What parse_email gave a mail holding a bare CR before: the whole mail read by the
    standard library's feed parser (compat32), whose reading of a bare CR inside a header
    value differs from the old parser's modern policy."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mail, "_parse_mime", lambda text: email.message_from_string(text))
        return outcome(mail.parse_email, raw)


@settings(max_examples=800, deadline=None)
@given(mails_with_bare_crs())
def test_mails_with_bare_crs_parse_as_before(mail_and_where: tuple[str, bool]) -> None:
    # A bare CR is looked for in the top header block and in a multipart's body only: a
    # single part's body is its payload whatever line ends it holds. One in the top header
    # block sends the mail to the feed parser, as any bare CR did before.
    raw, in_header = mail_and_where
    if in_header:
        assert not isinstance(mail._parse_mime(raw), mail._Part)
    assert outcome(mail.parse_email, raw) == feed_parser_outcome(raw)


_ALTERNATIVE = (
    "From: ivan@example.ru\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    "--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    "raw",
    [
        # a boundary line after a bare CR: the feed parser cuts the plain part there
        _ALTERNATIVE.replace("plain\r\n--b", "pla\r--b\r\nin\r\n--b"),
        # a boundary line ended by a bare CR, closing or not
        _ALTERNATIVE.replace("--b\r\nContent-Type: text/plain", "--b\rContent-Type: text/plain"),
        _ALTERNATIVE.replace("--b--\r\n", "--b-- \r"),
        # a bare CR in a part's header block, and as the empty line after it
        _ALTERNATIVE.replace("Content-Type: text/plain\r\n", "Content-Type: text/\rplain\r\n"),
        _ALTERNATIVE.replace("text/plain\r\n\r\n", "text/plain\r\n\rx\r\n"),
        # bare CRs only in the text of parts: the fast reading keeps them as the feed parser
        _ALTERNATIVE.replace("plain\r\n--b", "pl\rain\r\r\n--b").replace("<p>", "<p>\r"),
        "From: ivan@example.ru\r\nSubject: s\r\n\r\none\rtwo\r\r\n",
    ],
)
def test_bare_crs_where_lines_are_cut_and_elsewhere(raw: str) -> None:
    assert outcome(mail.parse_email, raw) == feed_parser_outcome(raw)


@pytest.mark.parametrize(
    "block",
    [
        "From: a\rb@example.ru\r\nSubject: s\r\n\r\nbody",  # a field read
        "From: ab@example.ru\r\nX-Mailer: a\rb\r\n\r\nbody",  # a field stepped over
        "From: ab@example.ru\r\nReceived: a\r\n\tb\rc\r\n\r\nbody",  # a continuation
        "From: ab@example.ru\r\nX-Mailer: ab\r\rbody",  # the empty line
        "From: ab@example.ru\rX-Mailer: ab\r\n\r\nbody",  # a line end
    ],
)
def test_a_header_block_holding_a_bare_cr_is_left_to_the_feed_parser(block: str) -> None:
    assert mail._Part.read(block, 0, top=True) is None
    assert outcome(mail.parse_email, block) == feed_parser_outcome(block)
