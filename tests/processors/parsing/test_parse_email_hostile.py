"""Hostile mail: parsing stays linear in the size of the message.

Each of these took the standard library's ``HTMLParser`` or modern header parser from seconds
to minutes (quadratic rescans of unclosed comments, tags and declarations; a header of many
encoded words). Every one must now come back, as a contact or a dead letter, well within a
few seconds of CPU even on a busy machine; the bound is generous on purpose (it is a guard
against quadratic time, not a speed figure: those live in ``loadtest/``).
"""

from __future__ import annotations

import time

import pytest

from processors.ids import Pseudonymizer
from processors.model import Contact, DeadLetter, RawRecord
from processors.parsing import parse_record

PSEUDO = Pseudonymizer.from_text("hostile-key")
BOUND_SECONDS = 5.0


def mail(*, subject: str = "Hi", content_type: str = "text/plain", body: str = "x") -> str:
    return (
        f"From: Ivan <ivan@example.ru>\r\nSubject: {subject}\r\nMessage-ID: <1@example.ru>\r\n"
        f"Content-Type: {content_type}; charset=utf-8\r\n\r\n{body}"
    )


def html(body: str) -> str:
    return mail(content_type="text/html", body=body)


MB = 1_000_000

HOSTILE = {
    "html, 20,000 unclosed comments": html("<!--" * 20_000),
    "html, 250,000 chars of unclosed comments": html("<!--" * 62_500),
    "html, 250,000 '<'": html("<" * 250_000),
    "html, 250,000 chars of unclosed tags": html("<a " * 83_334),
    "html, 250,000 chars of unclosed end tags": html("</" * 125_000),
    "html, 250,000 chars of unclosed declarations": html("<!" * 125_000),
    "html, 250,000 chars of unclosed processing instructions": html("<?" * 125_000),
    "html, 250,000 chars of unclosed CDATA": html("<![CDATA[" * 27_778),
    "html, unclosed quotes in tags": html('<a title="' * 25_000 + ">"),
    "html, a script that never ends": html("<script>" + "</scrip" * 35_000),
    "html, 1 MB of nested tags": html("<div><b>" * (MB // 8)),
    "html, 1 MB of one run of blanks": html("<p>a" + " \t\xa0" * (MB // 3) + "b</p>"),
    "html, 1 MB of cells holding blanks": html("<tr><td> </td>  <td>\n</td>" * (MB // 25)),
    "html, 1 MB of line breaks": html("<br> <br/>\r\n" * (MB // 12)),
    "subject, 30,000 encoded words": mail(subject=" ".join(["=?utf-8?q?abc?="] * 30_000)),
    "subject, 30,000 broken encoded words": mail(subject=" ".join(["=?utf-8?q?a"] * 30_000)),
    "subject, 30,000 glued encoded words": mail(subject="=?utf-8?b?0J/RgA==?=" * 30_000),
    "from, 30,000 addresses": mail().replace(
        "From: Ivan <ivan@example.ru>", "From: " + ", ".join(["a@b.example"] * 30_000)
    ),
    "body, 1 MB plain": mail(body=("a" * 76 + "\r\n") * (MB // 78)),
    "body, 1 MB of one line": mail(body="x" * MB),
    "body, 1 MB of bare CRs": mail(body="a\r" * (MB // 2)),
    "body, 1 MB of base64 noise": mail(body="!@#$" * (MB // 4)).replace(
        "charset=utf-8", "charset=utf-8\r\nContent-Transfer-Encoding: base64"
    ),
    "multipart, 1 MB of boundary-like lines": mail(
        content_type='multipart/mixed; boundary="b"', body="--bx\r\n" * (MB // 6)
    ),
    "multipart, 20,000 empty parts": mail(
        content_type='multipart/mixed; boundary="b"', body="--b\r\n\r\n\r\n" * 20_000 + "--b--"
    ),
    # Nesting deeper than 8 levels goes to the standard library's feed parser, whose time grows
    # with lines x depth (docs/REPLAY.md): bounded here at a depth no mailer produces.
    "multipart, 200 nested levels": (
        "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + "".join(
            f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n"
            for i in range(200)
        )
    ),
    "headers, 1 MB of folded lines": "From: a@b.example\r\nX-Long: a"
    + "\r\n b" * (MB // 4)
    + "\r\n\r\nbody",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_mail_is_parsed_in_linear_time(name: str) -> None:
    payload = HOSTILE[name]
    record = RawRecord(at=0, source="email", payload=payload, ref="hostile:1", text="")
    started = time.process_time()
    items = parse_record(record, PSEUDO, lambda text: text[:100])
    elapsed = time.process_time() - started
    assert len(items) == 1
    assert isinstance(items[0], Contact | DeadLetter)
    assert elapsed < BOUND_SECONDS, f"{name}: {elapsed:.1f} s of CPU"


def test_many_encoded_words_are_still_decoded() -> None:
    payload = mail(subject=" ".join(["=?utf-8?q?abc?="] * 30_000))
    record = RawRecord(at=0, source="email", payload=payload, ref="hostile:1", text="")
    [contact] = parse_record(record, PSEUDO, lambda text: text)
    assert isinstance(contact, Contact)
    assert contact.subject == "abc" * 30_000


def test_unclosed_markup_keeps_the_text_around_it() -> None:
    payload = html("<p>Hello</p><!-- " + "<!--" * 20_000)
    record = RawRecord(at=0, source="email", payload=payload, ref="hostile:1", text="")
    [contact] = parse_record(record, PSEUDO, lambda text: text)
    assert isinstance(contact, Contact)
    assert contact.body.startswith("Hello")
