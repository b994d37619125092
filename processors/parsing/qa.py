"""Quality reviews: one ``qa`` record to a ``QaReview``.

Payload (CONTRACT §1, §7): ``{"ticket_id", "reviewer_id", "scores": {"<criterion>": number 0..1
or null}, "comment"?}``; null means not applicable. A score that is not a number (``"1"``,
``true``) or lies outside 0..1 is a dead letter naming the criterion. Whether the ticket exists
and the criteria are on the rules' scorecard is the desk's to say: it knows the tickets and the
rules, the parser knows neither.
"""

from __future__ import annotations

from processors.ids import Pseudonymizer
from processors.model import Parsed, QaReview, RawRecord
from processors.parsing._common import Reject, as_object, json_type, opt_str, req_str, show


def parse_qa(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    ticket_id = req_str(payload, "ticket_id", "payload.ticket_id", allow_empty=False).strip()
    reviewer_id = req_str(payload, "reviewer_id", "payload.reviewer_id", allow_empty=False).strip()
    raw_scores = payload.get("scores")
    if raw_scores is None:
        raise Reject("missing field payload.scores")
    scores_obj = as_object(raw_scores, "payload.scores")
    scores: list[tuple[str, float | None]] = []
    for name, value in scores_obj.items():
        path = f"payload.scores.{name}"
        if value is None:
            scores.append((name, None))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Reject(f"field {path} must be a number 0..1 or null, got {json_type(value)}")
        if not 0 <= value <= 1:
            raise Reject(f"score {value!r} out of range 0..1 for criterion {show(name)}")
        scores.append((name, float(value)))
    comment = opt_str(payload, "comment", "payload.comment")
    return [
        QaReview(
            at=record.at,
            ticket_id=ticket_id,
            reviewer_id=reviewer_id,
            scores=tuple(scores),
            comment=comment,
            ref=record.ref,
        )
    ]
