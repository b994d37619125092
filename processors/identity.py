"""Identity resolution: which customer a contact comes from, and their tier at that instant.

A ``crm`` record replaces the whole profile of a customer from its ``at`` on (CONTRACT §1): the
identities it no longer lists stop pointing at that customer. A contact's identities are tried
in the order the parser gives them (the channel's sender first, then the e-mail, then the phone
of a chat or form); the first identity a profile names wins. A sender no profile names is a new
``prospect`` whose id is derived from the identity through ``h``, never the identity itself.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from processors.ids import Pseudonymizer
from processors.model import CrmUpsert, Identity


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    tier: str
    status: str
    identities: tuple[Identity, ...]
    mrr: float | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    """The customer a contact was attributed to, and the identity that decided it."""

    customer_id: str
    tier: str
    sender: str  # "kind:h(value)" of the deciding identity, "" when the contact had none
    known: bool  # a crm profile names the customer


def identity_key(identity: Identity) -> str:
    return f"{identity.kind}:{identity.value}"


class CustomerDirectory:
    """Customer profiles and the index from identity to customer.

    The stores are mappings so that a runner can back them with its own state (plain dicts
    locally, changelogged tables under Faust): ``profiles`` by customer id, ``index`` by
    ``"kind:value"``.
    """

    def __init__(
        self,
        pseudo: Pseudonymizer,
        profiles: MutableMapping[str, Profile] | None = None,
        index: MutableMapping[str, str] | None = None,
    ) -> None:
        self._pseudo = pseudo
        self.profiles: MutableMapping[str, Profile] = {} if profiles is None else profiles
        self.index: MutableMapping[str, str] = {} if index is None else index

    def upsert(self, record: CrmUpsert) -> Profile:
        """Replace the customer's profile; identities it no longer names are released."""
        previous = self.profiles.get(record.customer_id)
        if previous is not None:
            for identity in previous.identities:
                key = identity_key(identity)
                if self.index.get(key) == record.customer_id:
                    del self.index[key]
        profile = Profile(
            customer_id=record.customer_id,
            tier=record.tier,
            status=record.status,
            identities=record.identities,
            mrr=record.mrr,
        )
        self.profiles[record.customer_id] = profile
        for identity in record.identities:
            # The latest profile to name an identity owns it.
            self.index[identity_key(identity)] = record.customer_id
        return profile

    def resolve(self, identities: tuple[Identity, ...], fallback: str) -> Resolved:
        """The customer behind a contact. ``fallback`` names an anonymous contact (no identity
        at all, e.g. a chat visitor who left neither e-mail nor phone): it becomes a prospect
        whose id is derived from it."""
        for identity in identities:
            customer_id = self.index.get(identity_key(identity))
            if customer_id is not None:
                profile = self.profiles[customer_id]
                return Resolved(customer_id, profile.tier, self.sender(identity), known=True)
        if identities:
            first = identities[0]
            sender = self.sender(first)
            return Resolved(f"prospect:{sender}", "prospect", sender, known=False)
        return Resolved(f"prospect:anon:{self._pseudo.h(fallback)}", "prospect", "", known=False)

    def sender(self, identity: Identity) -> str:
        return f"{identity.kind}:{self._pseudo.h(identity.value)}"
