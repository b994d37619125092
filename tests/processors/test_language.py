"""Ticket language (CONTRACT §7 "Languages"): real texts in the languages a rules file lists,
the 10-letter threshold, and the masking placeholders that are not the customer's words."""

from __future__ import annotations

import pytest

from processors.language import (
    MIN_LETTERS,
    SUPPORTED_LANGUAGES,
    LanguageDetector,
    _shared_model,
)
from processors.pii import MASKER

RU_EN = LanguageDetector(("ru", "en"))
FIVE = LanguageDetector(("ru", "en", "de", "fr", "es"))

TEXTS = {
    "ru": [
        "Здравствуйте! Не могу оплатить заказ картой, выдаёт ошибку",
        "Спасибо большое за помощь, всё заработало",
        "Верните деньги за подписку, я ей не пользовался",
        "Привет, где мой заказ?",
    ],
    "en": [
        "Hello, I was charged twice for my subscription this month",
        "Thanks a lot, the issue is resolved now",
        "I can't log in to my account since yesterday",
        "Where is my order?",
    ],
    "de": [
        "Guten Tag, meine Rechnung für Dezember ist leider falsch",
        "Ich kann mich seit gestern nicht mehr anmelden",
        "Vielen Dank für die schnelle Hilfe!",
    ],
    "fr": [
        "Bonjour, je n'arrive pas à me connecter à mon compte",
        "Merci beaucoup pour votre aide rapide",
        "J'ai été débité deux fois pour ma commande",
    ],
    "es": [
        "Hola, no puedo pagar la factura con mi tarjeta",
        "Muchas gracias por la ayuda, ya funciona",
        "Quiero devolver el pedido, llegó roto",
    ],
}


@pytest.mark.parametrize("language", ["ru", "en"])
def test_russian_and_english_are_recognised_with_the_default_languages(language: str) -> None:
    for text in TEXTS[language]:
        assert RU_EN.detect(text) == language, text


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_each_listed_language_is_recognised(language: str) -> None:
    for text in TEXTS[language]:
        assert FIVE.detect(text) == language, text


def test_fewer_than_ten_letters_is_undetermined() -> None:
    assert RU_EN.detect("") == "und"
    assert RU_EN.detect("ok 👍") == "und"
    assert RU_EN.detect("Привет!!!") == "und"  # 6 letters
    assert RU_EN.detect("12345 67890 ?? !!") == "und"
    assert RU_EN.detect("абвгд еёжзи") != "und"  # exactly 10 letters: detected
    assert MIN_LETTERS == 10


def test_masking_placeholders_are_not_letters_of_the_text() -> None:
    masked = MASKER.mask("+7 916 123-45-67 anna@example.com")
    assert "[phone]" in masked and "[email]" in masked
    assert RU_EN.detect(masked) == "und"
    # A Russian text with an e-mail in it stays Russian.
    assert RU_EN.detect(MASKER.mask("Пишу с почты anna@example.com, ответьте туда")) == "ru"


def test_a_single_listed_language_is_every_text_with_enough_letters() -> None:
    only = LanguageDetector(("de",))
    assert only.detect("Hello there, how are you") == "de"
    assert only.detect("hi") == "und"


def test_the_supported_codes_are_the_models_two_letter_labels() -> None:
    labels = {label for label in _shared_model().labels if len(label) == 2}
    assert labels == SUPPORTED_LANGUAGES


def test_detectors_do_not_restrict_each_other() -> None:
    assert FIVE.detect(TEXTS["de"][0]) == "de"
    assert RU_EN.detect(TEXTS["de"][0]) in ("ru", "en")
    assert FIVE.detect(TEXTS["de"][0]) == "de"


def test_unknown_languages_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        LanguageDetector(("ru", "xx"))


def test_warm_up_prepares_the_restricted_model_before_the_first_ticket() -> None:
    detector = LanguageDetector(("en", "de"))
    detector.warm_up()
    assert detector._identifier is not None
    assert detector.detect(TEXTS["de"][1]) == "de"


def test_a_background_warm_up_is_waited_for_by_the_first_detection() -> None:
    detector = LanguageDetector(("ru", "en"))
    detector.warm_up(background=True)
    assert detector.detect(TEXTS["en"][0]) == "en"
