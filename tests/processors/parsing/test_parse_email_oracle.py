"""The fast e-mail parser against the one it replaced.

``mail_oracle.py`` (next to this file) is ``processors/parsing/mail.py`` as it stood before the
fast paths: the standard library's modern policy (``email.policy.default``) for the whole MIME
tree and every header, ``html.parser.HTMLParser`` for markup. Every message below, generated
and hand-made, must parse to the same contact (or be refused with the same reason) by both:
that is the proof that compat32 with targeted header decoding, the linear MIME splitter and the
one-pass markup reader keep every decoding behaviour. Hostile inputs, where the old parser took
minutes, are timed in ``test_parse_email_hostile.py`` instead.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.model import RawRecord
from processors.parsing import mail
from processors.parsing._common import Reject

_HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("mail_oracle", _HERE / "mail_oracle.py")
assert _spec is not None and _spec.loader is not None
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)

PSEUDO = Pseudonymizer.from_text("oracle-key")


def outcome(parse: Callable[[RawRecord, Pseudonymizer], Any], raw: str) -> object:
    record = RawRecord(at=0, source="email", payload=raw, ref="r", text="")
    try:
        return parse(record, PSEUDO)
    except Reject as problem:
        return ("dead letter", problem.reason)
    except Exception as exc:  # parse_record turns these into a dead letter naming the type
        return ("crash", type(exc).__name__)


def assert_same(raw: str) -> None:
    assert outcome(mail.parse_email, raw) == outcome(oracle.parse_email, raw), raw[:2000]


def generated_mails() -> Iterator[str]:
    traffic = generate_week(datetime.fromisoformat("2026-03-02T00:00:00+03:00"), seed=11)
    for record in traffic.records:
        line = json.loads(record) if isinstance(record, str) else record
        is_mail = isinstance(line, dict) and line.get("source") == "email"
        if is_mail and isinstance(line.get("payload"), str):
            yield line["payload"]


def test_every_generated_mail_parses_as_before() -> None:
    mails = list(generated_mails())
    assert len(mails) > 100
    for raw in mails:
        assert_same(raw)
        # the same mails with bare LF line ends, as some gateways hand them over
        assert_same(raw.replace("\r\n", "\n"))


def test_every_mail_fixture_parses_as_before() -> None:
    fixtures = sorted((_HERE / "fixtures").glob("*.eml"))
    assert fixtures
    for path in fixtures:
        raw = path.read_text(encoding="utf-8")
        assert_same(raw)
        assert_same(raw.replace("\r\n", "\n").replace("\n", "\r\n"))


def message(headers: str, body: str = "Hello", *, sep: str = "\r\n") -> str:
    return sep.join(headers.strip("\n").split("\n")) + sep + sep + body


BASE = "From: Ivan <ivan@example.ru>\nMessage-ID: <m1@example.ru>"

SUBJECTS = [
    "plain subject",
    "  leading and trailing spaces  ",
    "=?utf-8?b?0J/RgNC40LLQtdGC?=",
    "=?UTF-8?B?0J/RgNC40LLQtdGC?= =?UTF-8?B?LCDQvNC40YA=?=",
    "=?utf-8?q?=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82_=D0=BC=D0=B8=D1=80?=",
    "Re: =?koi8-r?b?8NLJ18XU?= and plain",
    "=?windows-1251?q?=CF=F0=E8=E2=E5=F2?= =?utf-8?q?_again?= tail",
    "=?utf-8?b?0J/RgNC40LLQtdGC?=\r\n =?utf-8?b?INC80LjRgA==?=",
    "=?utf-8?b?0J/RgNC40LLQtdGC?=\r\n\tfolded plain",
    "=?iso-8859-1?q?caf=E9?=",
    "=?utf-8*ru?q?lang_tagged?=",
    "=?x-unknown?q?abc?=",
    "=?utf-8?b?bad base64?=",
    "=?utf-8?b?0J/RgNC4?=",
    "=?utf-8?q?=ZZ?=",
    "=?utf-8?q??=",
    "word=?utf-8?q?inside?=word",
    "=?utf-8?q?no_end",
    "=?utf-8?b?//79?=",
    "=?utf-8?q?=FF=FE?=",
    "8-bit UTF-8 тема без кодирования",
    "=?utf-8?q?a?==?utf-8?q?b?=",
    "=?us-ascii?q?x?=\t\t=?us-ascii?q?y?=",
    "",
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subject_decoding_matches(subject: str) -> None:
    assert_same(message(f"{BASE}\nSubject: {subject}"))


FROMS = [
    "ivan@example.ru",
    "Ivan.Petrov@Example.RU",
    "Ivan Petrov <Ivan.Petrov@example.ru>",
    '"Petrov, Ivan" <ivan@example.ru>',
    '"Ivan \\"the\\" Petrov" <ivan@example.ru>',
    "=?utf-8?b?0JjQstCw0L0=?= <ivan@example.ru>",
    "Иван Петров <ivan@example.ru>",
    "<ivan@example.ru>",
    "ivan@example.ru (Ivan Petrov)",
    "Ivan (work) <ivan@example.ru>",
    "undisclosed-recipients:;",
    "Support: ivan@example.ru, olga@example.ru;",
    "ivan@example.ru, olga@example.ru",
    "Ivan",
    "ivan@",
    "@example.ru",
    '"ivan petrov"@example.ru',
    "ivan@[192.0.2.1]",
    "E ivan@example.ru",
    "Ivan <ivan@example.ru",
    "=?utf-8?q?x?=@example.ru",
    "ivan..petrov@example.ru",
    "Ivan <ivan@example.ru>\r\n (folded comment)",
    "",
]


@pytest.mark.parametrize("sender", FROMS)
def test_sender_parsing_matches(sender: str) -> None:
    headers = f"From: {sender}\nMessage-ID: <m1@example.ru>\nSubject: hi"
    assert_same(message(headers))


BOUNDARY = "b1"
PLAIN = 'Content-Type: text/plain; charset="utf-8"\r\n\r\nplain text\r\n'
HTML = 'Content-Type: text/html; charset="utf-8"\r\n\r\n<p>html &amp; text</p>\r\n'

STRUCTURES = [
    ('text/plain; charset="utf-8"', "Hello\r\nworld\r\n"),
    ("text/plain", "no charset, 8-bit: привет"),
    ("text/plain; charset=koi8-r", "raw"),
    ('text/html; charset="utf-8"', "<html><body><p>Hi&nbsp;there</p></body></html>"),
    (f"multipart/alternative; boundary={BOUNDARY}", f"--b1\r\n{PLAIN}--b1\r\n{HTML}--b1--\r\n"),
    (f'multipart/alternative; boundary="{BOUNDARY}"', f"pre\r\n--b1\r\n{HTML}--b1--\r\nepi"),
    (f"multipart/mixed; boundary={BOUNDARY}", f"--b1\r\n{PLAIN}--b1\r\n{HTML}"),  # no close
    (f"multipart/mixed; boundary={BOUNDARY}", "no boundary lines at all"),
    ("multipart/mixed", f"--b1\r\n{PLAIN}--b1--"),  # no boundary parameter
    (f"multipart/mixed; boundary={BOUNDARY}", f"--b1\r\n--b1\r\n{PLAIN}--b1--\r\n"),
    (f"multipart/mixed; boundary={BOUNDARY}", f"--b1 \t\r\n{PLAIN}--b1--  \r\n"),
    (f"multipart/mixed; boundary={BOUNDARY}", "--b1\r\nContent-Type: text/plain\r\n--b1--\r\n"),
    (
        f"multipart/mixed; boundary={BOUNDARY}",
        "--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
        f"--b2\r\n{HTML}--b2\r\n{PLAIN}--b2--\r\n--b1\r\n"
        "Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\nJVBERi0=\r\n"
        "--b1--\r\n",
    ),
    (
        f"multipart/mixed; boundary={BOUNDARY}",
        "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: x@y.z\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n--b1--\r\n",
    ),
    (f"multipart/digest; boundary={BOUNDARY}", "--b1\r\n\r\nFrom: x@y.z\r\n\r\nd\r\n--b1--\r\n"),
    (
        f"multipart/mixed; boundary={BOUNDARY}",
        "--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "!!!notbase64\r\n--b1\r\n" + HTML + "--b1--\r\n",
    ),
    ("text/plain; charset=utf-8", "bare\rCR inside"),
    ("message/delivery-status", "Reporting-MTA: dns; x\r\n\r\nAction: failed\r\n"),
]


@pytest.mark.parametrize("content_type, body", STRUCTURES)
def test_mime_structure_matches(content_type: str, body: str) -> None:
    headers = f"{BASE}\nSubject: s\nContent-Type: {content_type}"
    assert_same(message(headers, body))
    assert_same(message(headers, body.replace("\r\n", "\n"), sep="\n"))


TRANSFER = [
    ("quoted-printable", "utf-8", "=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82=\r\n soft break"),
    ("quoted-printable", "windows-1251", "=CF=F0=E8=E2=E5=F2"),
    ("quoted-printable", "utf-8", "raw ё left by a relay =3D"),
    ("base64", "utf-8", "0J/RgNC40LLQtdGC\r\n"),
    ("base64", "koi8-r", "8NLJ18XU"),
    ("base64", "utf-8", "0J/RgNC4"),
    ("base64", "utf-8", "0J/RgNC40LLQtdG"),
    ("base64", "utf-8", "not base64 at all!"),
    ("8bit", "utf-8", "Привет, 8-bit"),
    ("7bit", "x-unknown", "unknown charset"),
    ("BASE64", "UTF-8", "0J/RgNC40LLQtdGC"),
    ("x-uuencode", "utf-8", "begin 644"),
]


@pytest.mark.parametrize("cte, charset, body", TRANSFER)
def test_transfer_encodings_match(cte: str, charset: str, body: str) -> None:
    for kind in ("plain", "html"):
        headers = (
            f"{BASE}\nSubject: s\nContent-Type: text/{kind}; charset={charset}\n"
            f"Content-Transfer-Encoding: {cte}"
        )
        assert_same(message(headers, body))


MARKUP = [
    "<p>one</p><p>two</p>",
    "<div>a<br>b<br/>c<br />d</div>",
    "<table><tr><td>cell 1</td><td>cell 2</td></tr></table>",
    "<html><head><title>T</title><style>p {color: red}</style></head><body>seen</body></html>",
    "<script>var x = '<p>not text</p>';</script>after",
    "<SCRIPT type='text/javascript'>x</SCRIPT>after",
    "<!-- a comment -->text<!-- another -- >more",
    "<!DOCTYPE html><p>doc</p>",
    "<![CDATA[hidden]]>shown",
    "<?xml version='1.0'?><p>pi</p>",
    "<![if !supportLists]>1.<![endif]>item",
    "a &amp; b &lt;c&gt; &#1055;&#x440; &nbsp; &unknown; &amp",
    "<a href=\"x>y\">link</a> <img alt='a>b' src=x>",
    "1 < 2 and 3 > 2",
    "text <",
    "<p>unclosed <b",
    "<!-- never closed",
    "</>empty end</ p>spaced end</3>bogus",
    "<ul><li>one</li><li>two</li></ul>\n\n\n\n<p>gap</p>",
    "<pre>  keep   spaces?  </pre>",
    "<template><p>hidden</p></template>visible",
    "<p/>self-closed block<script/>not hidden",
    "<title>a</title></title></title>b",
    "<h1>Title</h1>\t<blockquote>quoted</blockquote><hr>end",
]


@pytest.mark.parametrize("markup", MARKUP)
def test_markup_to_text_matches(markup: str) -> None:
    assert mail._html_to_text(markup) == oracle._html_to_text(markup)
    headers = f"{BASE}\nSubject: s\nContent-Type: text/html; charset=utf-8"
    assert_same(message(headers, markup))


HEADER_SHAPES = [
    "From ivan@example.ru Mon Mar  2 00:00:00 2026\nFrom: ivan@example.ru\nSubject: unix from",
    "From: ivan@example.ru\nnot a header line\nSubject: after debris",
    " continuation first\nFrom: ivan@example.ru",
    "From: ivan@example.ru\n: empty name\nSubject: s",
    "From: ivan@example.ru\nSubject: one\nSubject: two",
    "from: ivan@example.ru\nSUBJECT: upper case names\nmessage-id: <LOWER@X>",
    "From: ivan@example.ru\nMessage-ID: <a@b> (comment)\nReferences: <r1@x>\r\n <r2@x>",
    "From: ivan@example.ru\nIn-Reply-To: bare-id@host (your message)",
    "From:ivan@example.ru\nSubject:no space after colon",
    "From: ivan@example.ru\nSubject: s\nContent-Type: text/plain;\r\n charset=koi8-r",
]


@pytest.mark.parametrize("headers", HEADER_SHAPES)
def test_header_shapes_match(headers: str) -> None:
    assert_same(message(headers, "body"))
    assert_same(message(headers, "body", sep="\n"))


def test_messages_without_a_body_separator_match() -> None:
    assert_same("From: ivan@example.ru\r\nSubject: headers only")
    assert_same("\r\nFrom: ivan@example.ru\r\n\r\nbody first")
    assert_same("just some text")
