"""E-mail threading: which conversation an e-mail belongs to (CONTRACT §1, Conversations).

An e-mail joins the conversation of the first id, in ``References`` order then ``In-Reply-To``
order, that is already known: a customer message's ``Message-ID`` or the ``message_id`` of an
agent's reply. If none is known, the conversation is ``email:{h(root)}``, the root being the
first id in ``References``, else ``In-Reply-To``, else the message's own ``Message-ID``. Ids are
normalised (angle brackets removed, lower-cased) by the parser before they get here.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from processors.ids import Pseudonymizer
from processors.model import EmailThreading


class ThreadIndex:
    """Known message ids and their conversations. ``ids`` is a mapping so a runner can back it
    with its own state store."""

    def __init__(self, pseudo: Pseudonymizer, ids: MutableMapping[str, str] | None = None) -> None:
        self._pseudo = pseudo
        self.ids: MutableMapping[str, str] = {} if ids is None else ids

    def conversation_of(self, threading: EmailThreading) -> str:
        for known in (*threading.references, *threading.in_reply_to):
            conversation = self.ids.get(known)
            if conversation is not None:
                return conversation
        if threading.references:
            root = threading.references[0]
        elif threading.in_reply_to:
            root = threading.in_reply_to[0]
        else:
            root = threading.message_id
        return f"email:{self._pseudo.h(root)}"

    def remember(self, message_id: str, conversation_id: str) -> None:
        """Record a customer e-mail's or an agent reply's id. An id keeps the first conversation
        it was seen in: a later message cannot move an existing thread."""
        if message_id and message_id not in self.ids:
            self.ids[message_id] = conversation_id
