"""PII masking (CONTRACT §4 "Personal data"): what is masked, what is left alone, and the
properties that make it safe to apply anywhere (no card or e-mail survives, idempotence)."""

from __future__ import annotations

import base64
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.ids import Pseudonymizer
from processors.pii import (
    MASKER,
    MAX_DEPTH,
    NESTED_REMOVED,
    Masker,
    luhn_valid,
    mask,
    redact_json_text,
)

# -------------------------------------------------------------------------------------------------
# Luhn
# -------------------------------------------------------------------------------------------------


def _with_check_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


@pytest.mark.parametrize(
    "digits",
    ["4222222222222", "4111111111111111", "378282246310005", "6011000990139424", "79927398713"],
)
def test_luhn_accepts_known_valid_numbers(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize("digits", ["4111111111111112", "4222222222223", "79927398710"])
def test_luhn_rejects_invalid_numbers(digits: str) -> None:
    assert not luhn_valid(digits)


# -------------------------------------------------------------------------------------------------
# Cards
# -------------------------------------------------------------------------------------------------

CARD_19 = _with_check_digit("622202000000000000")  # 19-digit UnionPay-style number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Списали с карты 4111 1111 1111 1111 дважды", "Списали с карты [card] дважды"),
        ("card 4111-1111-1111-1111 was charged", "card [card] was charged"),
        ("номер карты 4111111111111111.", "номер карты [card]."),
        ("13 digits: 4222222222222", "13 digits: [card]"),
        ("Amex 3782 822463 10005 please", "Amex [card] please"),
        (f"19 digits {CARD_19} ok", "19 digits [card] ok"),
        (
            f"19 grouped {CARD_19[:4]} {CARD_19[4:8]} {CARD_19[8:12]} {CARD_19[12:]}",
            "19 grouped [card]",
        ),
        # A card followed by an expiry / quantity still goes: the run as a whole fails Luhn.
        ("карта 4111 1111 1111 1111 12 шт", "карта [card] 12 шт"),
        ("2 x 4111 1111 1111 1111", "2 x [card]"),
        # An order number that passes Luhn is masked (CONTRACT §4).
        ("Заказ №4000000000000002 не пришёл", "Заказ №[card] не пришёл"),
    ],
)
def test_cards_passing_luhn_are_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 is late",  # 16 digits, not Luhn: neither card nor phone
        "Order 1234 5678 9012 3456 shipped",
        "заказ 41111111111111111111 (20 digits)",  # too long to be a card
        "id 411111111116",  # 12 digits, Luhn-valid but too short
    ],
)
def test_numbers_that_are_not_cards_are_left_alone(text: str) -> None:
    assert mask(text) == text


# -------------------------------------------------------------------------------------------------
# Phones
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Мой номер +7 916 123-45-67, перезвоните", "Мой номер [phone], перезвоните"),
        ("Call me at +44 20 7946 0958 tomorrow", "Call me at [phone] tomorrow"),
        ("тел. 8 (916) 123-45-67", "тел. [phone]"),
        ("whatsapp +79161234567", "whatsapp [phone]"),
        ("офис (495) 123-45-67 доб. 12", "офис [phone] доб. 12"),
        ("звоните 89161234567!", "звоните [phone]!"),
        ("+7(916)123-45-67", "[phone]"),
        ("US office 650-253-0000 ext 5", "US office [phone] ext 5"),
        ("dots 916.123.45.67 work too", "dots [phone] work too"),
        ("Телефон:8 800 555-35-35", "Телефон:[phone]"),
        ("UK mobile 07911 123456, landline 020 7946 0958", "UK mobile [phone], landline [phone]"),
        ("wa_id 79161234567", "wa_id [phone]"),
        # In a quoted-printable body the number follows an encoded byte: =B0 is not its start.
        ("=D0=BD=D0=B0 89161234567", "=D0=BD=D0=B0 [phone]"),
        ("=D0=B0 8-926-268-79-75\r\n", "=D0=B0 [phone]\r\n"),
    ],
)
def test_phones_are_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Встреча 2026-01-15 в 10:30",
        "Meeting on 2026-01-15 10:30:45 UTC",
        "с 15.01.2026 12.30 до 16.01.2026",
        "Сумма 1 200,50 ₽ списана",
        "Итого 1 200 000 000 ₽",
        "Price: $1,299.99",
        "Тикет #48213, заказ 123456",
        "ticket TCK-2026-000123 reopened",
        "order 1234567890 is late",  # a bare 10-digit order number is not a phone
        "ref 2026-000123",
        "server 192.168.100.200 is down",
        "see /orders/1234567890 page",
        "version 1.2.3, build 4567",
    ],
)
def test_dates_times_amounts_and_ids_are_left_alone(text: str) -> None:
    assert mask(text) == text


# -------------------------------------------------------------------------------------------------
# E-mail and handles
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Пишите на ivan.petrov@yandex.ru, спасибо", "Пишите на [email], спасибо"),
        ("My email is John.Doe+support@Example.co.uk.", "My email is [email]."),
        ("адрес иван@почта.рф", "адрес [email]"),
        ("Message-ID: <CAF+abc123@mail.gmail.com>", "Message-ID: <[email]>"),
        ("(mail: a_b-c@sub.example.com)", "(mail: [email])"),
    ],
)
def test_emails_are_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Мой телеграм @ivan_petrov, пишите", "Мой телеграм [handle], пишите"),
        ("ping @JohnDoe99 please", "ping [handle] please"),
        ("канал t.me/ivan_petrov.", "канал [handle]."),
        ("https://t.me/ivan_petrov", "[handle]"),
        ("telegram.me/some_user and telegram.dog/other_user", "[handle] and [handle]"),
        ("Напишите в wa.me/79161234567?text=hello", "Напишите в [handle]"),
        ("https://api.whatsapp.com/send?phone=79161234567", "[handle]"),
        ("vk.com/id123456 или vk.com/durov!", "[handle] или [handle]!"),
        ("пишите https://vk.me/durov", "пишите [handle]"),
        ("https://m.vk.com/ivan.petrov", "[handle]"),
    ],
)
def test_messenger_handles_and_links_are_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_email_domain_is_not_taken_for_a_handle() -> None:
    assert mask("support@example.com") == "[email]"
    assert "[handle]" not in mask("write to ivan_petrov@example.com")


@pytest.mark.parametrize(
    "text",
    [
        "@abc is too short for a Telegram handle",
        "price 5@100",
        "a.b/c and https://example.com/t.me",
    ],
)
def test_things_that_only_look_like_handles_are_left_alone(text: str) -> None:
    assert mask(text) == text


def test_everything_else_is_kept_exactly() -> None:
    text = (
        "Здравствуйте!\n\tЗаказ №123456 от 15.01.2026 (1 200,50 ₽) не пришёл; "
        "телефон +7 916 123-45-67, почта ivan@example.com, tg @ivan_petrov.  Спасибо :)"
    )
    assert mask(text) == (
        "Здравствуйте!\n\tЗаказ №123456 от 15.01.2026 (1 200,50 ₽) не пришёл; "
        "телефон [phone], почта [email], tg [handle].  Спасибо :)"
    )


def test_a_masker_is_reusable_and_stateless() -> None:
    assert Masker().mask("x@example.com") == MASKER.mask("x@example.com") == "[email]"
    assert mask("") == ""


# -------------------------------------------------------------------------------------------------
# Properties
# -------------------------------------------------------------------------------------------------

_NO_DIGITS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Nd", "Cs"), exclude_characters="@/"),
    max_size=40,
)


@st.composite
def luhn_cards(draw: st.DrawFn) -> tuple[str, str]:
    """A Luhn-valid number of 13..19 digits, as written: plain or grouped by spaces/hyphens."""
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    digits = _with_check_digit(body)
    style = draw(st.sampled_from(["plain", "4 ", "4-", "random"]))
    if style == "plain":
        return digits, digits
    if style == "random":
        sep = draw(st.sampled_from([" ", "-"]))
        cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=length - 1), max_size=6)))
        parts = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, length], strict=True)]
        return digits, sep.join(parts)
    sep = style[1]
    return digits, sep.join(digits[i : i + 4] for i in range(0, length, 4))


@settings(max_examples=400)
@given(card=luhn_cards(), before=st.text(max_size=30), after=st.text(max_size=30))
def test_a_luhn_valid_card_never_survives_in_any_text(
    card: tuple[str, str], before: str, after: str
) -> None:
    _, written = card
    masked = mask(f"{before} {written} {after}")
    assert written not in masked


@settings(max_examples=300)
@given(card=luhn_cards(), before=_NO_DIGITS, after=_NO_DIGITS)
def test_no_digit_of_a_card_survives_in_text_without_other_digits(
    card: tuple[str, str], before: str, after: str
) -> None:
    _, written = card
    masked = mask(f"{before} {written} {after}")
    assert not any(c in "0123456789" for c in masked)
    assert "[card]" in masked


@settings(max_examples=400)
@given(email=st.emails(), before=st.text(max_size=30), after=st.text(max_size=30))
def test_an_email_never_survives(email: str, before: str, after: str) -> None:
    masked = mask(f"{before} {email} {after}")
    assert email not in masked


@settings(max_examples=300)
@given(email=st.emails(), before=_NO_DIGITS, after=_NO_DIGITS)
def test_an_email_becomes_exactly_one_placeholder(email: str, before: str, after: str) -> None:
    # Text without digits, @ or / holds nothing else to mask, so the rest is kept exactly.
    assert mask(f"{before} {email} {after}") == f"{before} [email] {after}"


_FRAGMENTS = st.sampled_from(
    [
        "+7 916 123-45-67",
        "8 (916) 123-45-67",
        "89161234567",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "ivan@example.com",
        "@ivan_petrov",
        "t.me/ivan",
        "wa.me/79161234567",
        "vk.com/id1",
        "2026-01-15",
        "10:30",
        "1 200,50 ₽",
        "#48213",
        "@",
        ".",
        "/",
        "-",
        " ",
        "(",
        ")",
        "+",
    ]
)
_MESSY = st.lists(
    st.one_of(
        _FRAGMENTS,
        st.text(alphabet="0123456789 -+().@/_:tmevkwa.", max_size=12),
        st.text(max_size=8),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=600)
@given(text=_MESSY)
def test_masking_is_idempotent(text: str) -> None:
    once = mask(text)
    assert mask(once) == once


@settings(max_examples=200)
@given(text=st.text(max_size=200))
def test_masking_is_idempotent_on_arbitrary_text(text: str) -> None:
    once = mask(text)
    assert mask(once) == once


def test_masking_large_adversarial_text_is_fast() -> None:
    # Catastrophic backtracking would show up as a timeout here long before production.
    rng = random.Random(7)
    chunks = ["a" * 5000, "1 " * 5000, "a.b-" * 2000, "@" * 3000, "x@" + "b" * 5000]
    text = " ".join(rng.sample(chunks, len(chunks)))
    assert isinstance(mask(text), str)


# -------------------------------------------------------------------------------------------------
# Dead-letter redaction
# -------------------------------------------------------------------------------------------------


def test_redact_json_masks_identity_keys_and_free_text() -> None:
    record = {
        "at": "2026-01-15T10:00:00+03:00",
        "source": "telegram",
        "payload": {
            "update_id": 1,
            "message": {
                "message_id": 5,
                "from": {
                    "id": 123456789,
                    "is_bot": False,
                    "first_name": "Иван",
                    "username": "ivan_p",
                },
                "chat": {"id": 123456789, "type": "private"},
                "text": "мой тел +7 916 123-45-67, карта 4111 1111 1111 1111",
            },
        },
    }
    out = json.loads(redact_json_text(json.dumps(record, ensure_ascii=False)))
    message = out["payload"]["message"]
    assert message["from"] == {
        "id": "[redacted]",
        "is_bot": False,
        "first_name": "[redacted]",
        "username": "[redacted]",
    }
    assert message["chat"] == {"id": "[redacted]", "type": "private"}
    assert message["text"] == "мой тел [phone], карта [card]"
    assert message["message_id"] == 5  # not an identity: kept
    assert out["at"] == record["at"]


def test_redact_json_pseudonymizes_identities_when_given_a_hash() -> None:
    line = json.dumps(
        {
            "source": "whatsapp",
            "payload": {
                "entry": [
                    {
                        "changes": [
                            {
                                "value": {
                                    "contacts": [
                                        {"profile": {"name": "Ivan"}, "wa_id": "79161234567"}
                                    ],
                                    "messages": [{"from": "79161234567", "id": "wamid.X"}],
                                }
                            }
                        ]
                    }
                ]
            },
        }
    )
    out = redact_json_text(line, pseudonymize=lambda value: f"h({len(value)})")
    value = json.loads(out)["payload"]["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "h(4)"}, "wa_id": "h(11)"}]
    assert value["messages"] == [{"from": "h(11)", "id": "wamid.X"}]
    assert "79161234567" not in out


@pytest.mark.parametrize(
    "payload",
    [
        {"caller": "+79161234567", "callee": "+74951234567", "call_id": "c1"},
        {"visitor": {"id": "v-1", "email": "a@b.ru", "phone": "8 916 123 45 67"}, "text": "hi"},
        {"identities": {"email": ["a@b.ru"], "telegram": [123456789], "vk": [42]}, "tier": "vip"},
        {"object": {"message": {"from_id": 123456, "peer_id": 123456, "text": "vk.com/durov"}}},
    ],
)
def test_redact_json_leaves_no_identity_in_clear(payload: dict[str, object]) -> None:
    out = redact_json_text(json.dumps({"source": "x", "payload": payload}))
    for secret in ("79161234567", "74951234567", "v-1", "a@b.ru", "123 45 67", "123456", "durov"):
        assert secret not in out
    assert ":42" not in out and "[42]" not in out


def test_redact_json_masks_numbers_that_are_cards_and_nested_json_strings() -> None:
    line = json.dumps(
        {"card": 4111111111111111, "n": 42, "payload": json.dumps({"from": {"id": 7}})}
    )
    out = json.loads(redact_json_text(line))
    assert out["card"] == "[card]"
    assert out["n"] == 42
    assert json.loads(out["payload"]) == {"from": {"id": "[redacted]"}}


@pytest.mark.parametrize(
    "text",
    [
        '{"source": "email", "payload": "From: ivan@example.com',  # broken JSON
        "From: Ivan <ivan@example.com>\r\nSubject: тел +7 916 123-45-67\r\n\r\nbody",
        "",
    ],
)
def test_redact_text_that_is_not_json_masks_it_as_text(text: str) -> None:
    assert redact_json_text(text) == mask(text)
    assert "ivan@example.com" not in redact_json_text(text)


def test_redact_raw_email_joins_quoted_printable_soft_breaks_before_masking() -> None:
    message = (
        "From: a@b.ru\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "=D0=BD=D0=B0 wa.=\r\nme/79052666650 and 8916=\r\n1234567\r\n"
    )
    out = redact_json_text(json.dumps({"source": "email", "payload": message}))
    assert "79052666650" not in out and "1234567" not in out
    assert "[handle] and [phone]" in out


def test_redact_raw_email_drops_base64_bodies_that_cannot_be_masked() -> None:
    body = base64.encodebytes("Звоните +7 916 123-45-67, карта 4111 1111 1111 1111".encode())
    message = (
        "From: Ivan <ivan@example.com>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + body.decode().replace("\n", "\r\n")
    )
    out = redact_json_text(message)
    assert out.startswith("From: Ivan <[email]>\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    assert "[base64 removed]" in out
    assert body.decode().split()[0] not in out


def test_text_that_declares_no_transfer_encoding_is_only_masked() -> None:
    text = "a line ending in =\nand QGV4YW1wbGUuY29tIGxvbmcgYmFzZTY0\n"
    assert redact_json_text(text) == mask(text) == text


def test_redaction_of_a_record_nested_hundreds_deep_is_bounded() -> None:
    # The issue: a payload a few hundred levels deep made the redaction hit RecursionError.
    deep = "[" * 900 + '"+7 916 123-45-67"' + "]" * 900
    record = json.dumps({"payload": {"from": {"id": 5}, "x": json.loads(deep)}})

    redacted = json.loads(redact_json_text(record, lambda text: "h:" + text))

    assert redacted["payload"]["from"] == {"id": "h:5"}
    walked, depth = redacted["payload"]["x"], 2
    while isinstance(walked, list):
        (walked,) = walked
        depth += 1
    assert walked == NESTED_REMOVED and depth == MAX_DEPTH + 1  # nothing deeper kept unredacted


def test_redacted_text_never_holds_a_lone_surrogate() -> None:
    record = r'{"text": "\ud800 call +7 916 123-45-67", "from": {"id": "\udc00"}, "k\ud83d": 1}'

    redacted = redact_json_text(record, Pseudonymizer.from_text("k").h)

    redacted.encode("utf-8")  # storable
    assert json.loads(redacted)["text"] == "\ufffd call [phone]"


def test_h_hashes_a_lone_surrogate_as_the_parsers_read_it() -> None:
    pseudo = Pseudonymizer.from_text("k")

    assert pseudo.h("a\ud800b") == pseudo.h("a\ufffdb")
    assert pseudo.h("\udfff") != pseudo.h("")
