"""The language of the contact that opens a ticket (CONTRACT §7 "Languages", docs/RULES.md).

``LanguageDetector(languages).detect(text)`` is the ticket's ``language``: ``und`` when the text
holds fewer than 10 letters, otherwise the most likely of the rules' ``languages``. The text
is the opening contact's subject + newline + body *after masking*; the masking placeholders
(``[email]``, ``[phone]``...) are English words the customer did not write, so they are
removed before letters are counted and the text is scored.

The statistical model is py3langid's (a maintained fork of langid.py: a naive Bayes
classifier over byte n-grams, 97+ languages, shipped inside the wheel, no network). Loading it
decompresses a few megabytes (the commands map a copy decompressed once per machine instead,
``streams.model_cache``), so it happens once per process, on the first text that needs it,
and is shared by every detector; each detector keeps its own view restricted to its
``languages``, so scoring is one pass over the text's bytes and a small matrix product.

Pure apart from reading the model (the file that ships with the package, or what the loader
given to ``use_model_loader`` reads): no clock, no network; the same text and languages always
give the same answer.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "DEFAULT_LANGUAGES",
    "MIN_LETTERS",
    "SUPPORTED_LANGUAGES",
    "UNDETERMINED",
    "LanguageDetector",
    "model_loader",
    "packaged_model",
    "use_model_loader",
]

UNDETERMINED: Final = "und"
MIN_LETTERS: Final = 10
DEFAULT_LANGUAGES: Final[tuple[str, ...]] = ("ru", "en")

SUPPORTED_LANGUAGES: Final[frozenset[str]] = frozenset(
    [
        "af",
        "am",
        "an",
        "ar",
        "as",
        "az",
        "ba",
        "be",
        "bg",
        "bn",
        "br",
        "bs",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "dz",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "fi",
        "fo",
        "fr",
        "fy",
        "ga",
        "gd",
        "gl",
        "gu",
        "ha",
        "he",
        "hi",
        "hr",
        "ht",
        "hu",
        "hy",
        "id",
        "ig",
        "is",
        "it",
        "ja",
        "jv",
        "ka",
        "kk",
        "km",
        "kn",
        "ko",
        "ku",
        "ky",
        "la",
        "lb",
        "lg",
        "ln",
        "lo",
        "lt",
        "lv",
        "mg",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "ne",
        "nl",
        "nn",
        "no",
        "oc",
        "om",
        "or",
        "pa",
        "pl",
        "ps",
        "pt",
        "qu",
        "ro",
        "ru",
        "rw",
        "sa",
        "se",
        "si",
        "sk",
        "sl",
        "sn",
        "so",
        "sq",
        "sr",
        "st",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "tk",
        "tl",
        "tr",
        "tt",
        "ug",
        "uk",
        "ur",
        "uz",
        "vi",
        "vo",
        "wa",
        "xh",
        "yo",
        "zh",
        "zu",
    ]
)
"""The ISO 639-1 codes the model knows; a rules file may list only these (the tests check
this list against the model itself)."""

# The placeholders processors.pii.Masker writes.
_PLACEHOLDERS: Final = re.compile(r"\[(?:email|handle|card|phone)\]")

_lock = threading.Lock()
_model: Any = None


def packaged_model() -> Any:
    """py3langid's full identifier, decompressed from the model file in its wheel."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


_loader: Callable[[], Any] = packaged_model


def use_model_loader(loader: Callable[[], Any]) -> None:
    """How this process loads the model, if it has not yet: by default py3langid decompresses
    the file in its wheel; the commands map a decompressed copy (``streams.model_cache``)."""
    global _loader
    _loader = loader


def model_loader() -> Callable[[], Any]:
    """The loader this process uses (``use_model_loader``)."""
    return _loader


def _shared_model() -> Any:
    """The full py3langid identifier, loaded once per process."""
    global _model
    with _lock:
        if _model is None:
            _model = _loader()
        return _model


class LanguageDetector:
    """Detects a ticket's language among ``languages`` (ISO 639-1 codes of
    :data:`SUPPORTED_LANGUAGES`; validated by the rules loader)."""

    def __init__(self, languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> None:
        unknown = [code for code in languages if code not in SUPPORTED_LANGUAGES]
        if unknown or not languages:
            raise ValueError(f"unsupported languages: {unknown or 'none given'}")
        self.languages = languages
        self._identifier: Any = None
        self.known: dict[str, str] = {}
        """Texts whose language was detected elsewhere (replay's parse worker, for the record
        being applied): ``detect`` answers them without scoring. Whoever fills it must have
        used a detector of the same ``languages``."""

    def _restricted(self) -> Any:
        if self._identifier is None:
            identifier = copy.copy(_shared_model())
            # set_languages replaces the copy's arrays with column slices of the shared
            # model's; the shared identifier itself stays unrestricted.
            identifier.set_languages(list(self.languages))
            self._identifier = identifier
        return self._identifier

    def warm_up(self, *, background: bool = False) -> None:
        """Load the model now rather than on the first ticket that needs it (a live process
        does not want a pause of a few seconds in the middle of its traffic). ``background``:
        in a daemon thread, so that the process starts meanwhile (the decompression releases
        the GIL); a ticket that needs the model before it is ready waits for it."""
        if background:
            threading.Thread(target=_shared_model, name="language-model", daemon=True).start()
        else:
            self._restricted()

    def detect(self, text: str) -> str:
        """``und`` for fewer than :data:`MIN_LETTERS` letters, else the most likely language."""
        if self.known:
            known = self.known.get(text)
            if known is not None:
                return known
        text = _PLACEHOLDERS.sub(" ", text)
        letters = 0
        for char in text:
            if char.isalpha():
                letters += 1
                if letters >= MIN_LETTERS:
                    break
        if letters < MIN_LETTERS:
            return UNDETERMINED
        if len(self.languages) == 1:
            return self.languages[0]
        language, _score = self._restricted().classify(text)
        return str(language)
