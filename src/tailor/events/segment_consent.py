"""Whether a Segment call may be stored: the shopper's consent categories and the call's
`integrations` object.

Reads and writes nothing; `tailor.events.segment_messages` asks these for every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class ConsentRule:
    """Which consent categories Tailor belongs to (`collector.segment_consent_categories`).

    An event whose `context.consent.categoryPreferences` (Segment) lacks any of them or sets
    one false, or whose `context.consentManagement.deniedConsentIds` (RudderStack) holds
    one, is not stored. Events without a consent object are stored (as Segment forwards
    them); with no categories configured the consent object is not looked at.
    """

    categories: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "ConsentRule":
        return cls(tuple(part.strip() for part in text.split(",") if part.strip()))

    def allows(self, context: Mapping[str, Any]) -> bool:
        if not self.categories:
            return True
        consent = context.get("consent")
        if isinstance(consent, dict):
            preferences = consent.get("categoryPreferences")
            if isinstance(preferences, dict) and preferences:
                return all(preferences.get(category) is True for category in self.categories)
        management = context.get("consentManagement")
        if isinstance(management, dict):
            denied = management.get("deniedConsentIds")
            if isinstance(denied, list) and any(category in denied
                                                for category in self.categories):
                return False
        return True


def for_tailor(integrations: Any) -> bool:
    """Whether Segment's `integrations` object lets the call reach Tailor (`Tailor: false`,
    or `All: false` without `Tailor: true`, keep it out)."""
    if not isinstance(integrations, dict) or not integrations:
        return True
    own = integrations.get("Tailor")
    if own is False:
        return False
    return not (integrations.get("All") is False and not own)
