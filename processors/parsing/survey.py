"""Satisfaction surveys: one answer to a ``SurveyAnswer``.

Payload (CONTRACT §1): ``{"conversation_id", "kind": "csat" | "nps", "score"}``; csat is 1..5,
nps is 0..10. The score must be a whole number: ``4`` and ``4.0`` (JSON does not tell them
apart in meaning) are accepted, ``4.5``, ``"4"`` and ``true`` are dead letters.
"""

from __future__ import annotations

from typing import Final, Literal, cast

from processors.ids import Pseudonymizer
from processors.model import Parsed, RawRecord, SurveyAnswer
from processors.parsing._common import Reject, as_object, req_number, req_str, show

SCALES: Final[dict[str, tuple[int, int]]] = {"csat": (1, 5), "nps": (0, 10)}


def parse_survey(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    conversation_id = req_str(
        payload, "conversation_id", "payload.conversation_id", allow_empty=False
    )
    kind = req_str(payload, "kind", "payload.kind")
    scale = SCALES.get(kind)
    if scale is None:
        raise Reject(f"unknown survey kind {show(kind)} in payload.kind")
    raw = req_number(payload, "score", "payload.score")
    if isinstance(raw, float) and not raw.is_integer():
        raise Reject(f"field payload.score must be a whole number, got {raw!r}")
    score = int(raw)
    low, high = scale
    if not low <= score <= high:
        raise Reject(f"score {score} out of range {low}..{high} for {kind}")
    return [
        SurveyAnswer(
            at=record.at,
            conversation_id=conversation_id.strip(),
            kind=cast(Literal["csat", "nps"], kind),
            score=score,
            ref=record.ref,
        )
    ]
