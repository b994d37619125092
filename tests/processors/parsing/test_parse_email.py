"""E-mail: MIME decoding (encoded words, quoted-printable, base64, charsets, html-only),
threading ids, synthetic Message-IDs and the broken-MIME dead letters."""

from __future__ import annotations

import hashlib

import pytest

from processors.model import Contact, DeadLetter, EmailThreading, Identity


def test_multipart_alternative_with_quoted_printable_russian_text(kit) -> None:
    out = kit.parse_payload("email", kit.text("mail_alternative_qp_ru.eml"))

    mid = "caf3x9=kp2q@mail.example.ru"
    assert out == [
        Contact(
            at=kit.at_ms,
            channel="email",
            conversation_id="",
            identities=(Identity("email", "ivan.petrov@example.ru"),),
            subject="Проблема с оплатой счёта № 4417",
            body=(
                "Здравствуйте!\n\n"
                "Не могу оплатить счёт № 4417 — карта отклоняется, ошибка «платёж отклонён».\n"
                "Подскажите, что делать?\n\n"
                "-- \n"
                "Иван Петров\n"
                "+7 916 123-45-67"
            ),
            channel_message_id=mid,
            threading=EmailThreading(message_id=mid, references=(), in_reply_to=()),
            ref=kit.ref,
        )
    ]


def test_html_only_koi8r_mail_is_stripped_of_markup(kit) -> None:
    out = kit.parse_payload("email", kit.text("mail_html_only_koi8r.eml"))

    mid = "20260303110210.77@mail.example.ru"
    assert out == [
        Contact(
            at=kit.at_ms,
            channel="email",
            conversation_id="",
            identities=(Identity("email", "olga@mail.example.ru"),),
            subject="Возврат за заказ",
            body=(
                "Добрый день,\n\n"
                "мой заказ N 88 так и не пришёл.\n"
                "Прошу вернуть деньги & закрыть заказ.\n\n"
                "Заказ 88\n\n"
                "С уважением,\n"
                "Ольга"
            ),
            channel_message_id=mid,
            threading=EmailThreading(message_id=mid, references=(), in_reply_to=()),
            ref=kit.ref,
        )
    ]


def test_reply_carries_normalised_references_and_in_reply_to(kit) -> None:
    out = kit.parse_payload("email", kit.text("mail_reply_threaded.eml"))

    mid = "reply-2.ivan@mail.example.ru"
    assert out == [
        Contact(
            at=kit.at_ms,
            channel="email",
            conversation_id="",
            identities=(Identity("email", "ivan.petrov@example.ru"),),
            subject="Re: Проблема с оплатой счёта № 4417",
            # windows-1251 text in base64, CRLF line ends; the PDF attachment is not the body.
            body=(
                "Спасибо, но проблема осталась: после оплаты счёт всё ещё «не оплачен».\n\n"
                "> Здравствуйте, Иван! Попробуйте оплатить ещё раз."
            ),
            channel_message_id=mid,
            threading=EmailThreading(
                message_id=mid,
                references=(
                    "caf3x9=kp2q@mail.example.ru",
                    "desk-reply-1.8841@support.example.com",
                ),
                in_reply_to=("desk-reply-1.8841@support.example.com",),
            ),
            ref=kit.ref,
        )
    ]


def test_mail_without_message_id_gets_a_deterministic_synthetic_one(kit) -> None:
    raw = (
        "From: Petr <PETR@Example.org>\r\n"
        "To: support@example.com\r\n"
        "Subject: =?utf-8?q?=D0=A1=D1=87=D1=91=D1=82?=\r\n"
        "In-Reply-To: <A1@Desk.Example.com> <a2@desk.example.com>\r\n"
        "\r\n"
        "Пришлите счёт, пожалуйста.\r\n"
    )
    synthetic = "synthetic-" + hashlib.sha256(raw.encode()).hexdigest()[:24]

    first = kit.parse_payload("email", raw)
    again = kit.parse_payload("email", raw)

    assert (
        first
        == again
        == [
            Contact(
                at=kit.at_ms,
                channel="email",
                conversation_id="",
                identities=(Identity("email", "petr@example.org"),),
                subject="Счёт",
                body="Пришлите счёт, пожалуйста.",
                channel_message_id=synthetic,
                threading=EmailThreading(
                    message_id=synthetic,
                    references=(),
                    in_reply_to=("a1@desk.example.com", "a2@desk.example.com"),
                ),
                ref=kit.ref,
            )
        ]
    )


def test_bare_ids_and_comments_in_threading_headers(kit) -> None:
    raw = (
        "From: a@example.org\n"
        "Message-ID: <Own@Example.org>\n"
        "References: root@example.org\n"
        "\tmid@example.org\n"
        'In-Reply-To: mid@example.org (message from "Desk")\n'
        "\n"
        "ok\n"
    )

    (out,) = kit.parse_payload("email", raw)

    assert isinstance(out, Contact)
    assert out.threading == EmailThreading(
        message_id="own@example.org",
        references=("root@example.org", "mid@example.org"),
        in_reply_to=("mid@example.org",),
    )


def test_subject_in_koi8r_and_windows_1251_base64_encoded_words(kit) -> None:
    raw = (
        "From: a@example.org\n"
        "Message-ID: <s@example.org>\n"
        "Subject: =?KOI8-R?Q?=F0=D2=C9=D7=C5=D4=2C?= =?windows-1251?B?IOzo8A==?=\n"
        "\n"
        "x\n"
    )

    (out,) = kit.parse_payload("email", raw)

    assert isinstance(out, Contact)
    assert out.subject == "Привет, мир"


def test_mail_whose_only_part_is_an_attachment_is_a_contact_with_empty_body(kit) -> None:
    raw = (
        "From: scanner@example.org\n"
        "Message-ID: <scan-1@example.org>\n"
        "Subject: Scan\n"
        "MIME-Version: 1.0\n"
        'Content-Type: application/pdf; name="scan.pdf"\n'
        'Content-Disposition: attachment; filename="scan.pdf"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "JVBERi0xLjQKJSVFT0YK\n"
    )

    (out,) = kit.parse_payload("email", raw)

    assert isinstance(out, Contact)
    assert (out.subject, out.body) == ("Scan", "")


def test_broken_text_plain_falls_back_to_the_html_alternative(kit) -> None:
    raw = (
        "From: a@example.org\n"
        "Message-ID: <fb@example.org>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b"\n'
        "\n"
        "--b\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "!!!not base64!!!\n"
        "--b\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        "<p>Hello&nbsp;there</p>\n"
        "--b--\n"
    )

    (out,) = kit.parse_payload("email", raw)

    assert isinstance(out, Contact)
    assert out.body == "Hello there"


def test_eight_bit_body_and_a_from_header_the_modern_parser_crashes_on(kit) -> None:
    # "list: ;x," makes the stdlib's default-policy address parser raise AttributeError; the
    # forgiving parser still finds the one real address. The body is 8bit: the JSON string
    # already holds the characters.
    raw = (
        "From: list: ;x, Ivan.Petrov@Example.RU\n"
        "Message-ID: <8bit@example.ru>\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Счёт не пришёл\n"
    )

    (out,) = kit.parse_payload("email", raw)

    assert isinstance(out, Contact)
    assert out.identities == (Identity("email", "ivan.petrov@example.ru"),)
    assert out.body == "Счёт не пришёл"


def test_a_text_plain_attachment_is_not_the_body(kit) -> None:
    raw = (
        "From: a@example.org\n"
        "Message-ID: <att@example.org>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="m"\n'
        "\n"
        "--m\n"
        'Content-Type: text/plain; charset=utf-8; name="log.txt"\n'
        'Content-Disposition: attachment; filename="log.txt"\n'
        "\n"
        "ERROR 42 at line 7\n"
        "--m\n"
        "Content-Type: text/html; charset=windows-1251\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "<div>=D1=EC. =EB=EE=E3</div>\n"
        "--m--\n"
    )

    (out,) = kit.parse_payload("email", raw)

    assert isinstance(out, Contact)
    assert out.body == "См. лог"


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        (
            "mail_no_boundary.eml",
            "multipart/alternative e-mail part has no boundary parameter, "
            "so no body part can be found",
        ),
        ("mail_bad_base64.eml", "text/plain part has undecodable base64 content"),
    ],
)
def test_broken_mime_is_a_dead_letter(kit, fixture: str, reason: str) -> None:
    text = kit.line("email", kit.text(fixture))

    assert kit.parse(text) == [
        DeadLetter(at=kit.at_ms, source="email", reason=reason, record=kit.mask(text), ref=kit.ref)
    ]
    assert "petr@example.org" not in kit.mask(text)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "field payload holds an empty e-mail"),
        ("   \r\n ", "field payload holds an empty e-mail"),
        (
            {"raw": "From: a@b.c"},
            "field payload must be a string holding an rfc 5322 message, got object",
        ),
        ("Subject: hi\n\nno sender\n", "e-mail has no From header"),
        ("From: undisclosed-recipients:;\n\nx\n", "e-mail From header holds no address"),
        ("From: just a name\n\nx\n", "e-mail From header holds no address"),
        ("From: <\n\nx\n", "e-mail From header holds no address"),
        (
            "From: a@example.org\nContent-Type: multipart/mixed; boundary=zz\n\nno parts here\n",
            "multipart/mixed e-mail part never contains its boundary, so no body part can be found",
        ),
    ],
)
def test_unusable_mail_is_a_dead_letter_naming_the_problem(kit, payload, reason: str) -> None:
    (out,) = kit.parse_payload("email", payload)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason
