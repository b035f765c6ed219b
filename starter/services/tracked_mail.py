"""The per-lead, per-message parts of a marketing email (journeys and broadcasts alike): the
lead's own pages (preference page, unsubscribe), the open pixel, the one-click unsubscribe
headers for the message's topic, and its links rewritten to tracked redirects."""

from __future__ import annotations

from dataclasses import dataclass

from journeys.link_tracking import TrackedLink, track_links
from journeys.rendering import LINK_PATHS, OWN_LINKS, RenderedEmail
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings


@dataclass(frozen=True)
class MarketingMail:
    """Builds a lead's links and headers with one secret and the two base URLs."""

    tokens: LinkTokens
    public_url: str  # Nurture's own pages (no trailing slash)
    website_url: str  # the company's website (no trailing slash)

    @classmethod
    def of(cls, settings: Settings) -> MarketingMail:
        return cls(
            LinkTokens(settings.require_secret_key()),
            settings.public_base_url.rstrip("/"),
            settings.website_url,
        )

    def preferences_url(self, lead_id: str) -> str:
        """The lead's preference page."""
        return f"{self.public_url}/p/{self.tokens.preferences(lead_id)}"

    def unsubscribe_url(self, lead_id: str, topic: str | None = None) -> str:
        """Unsubscribe from everything (the footer's), or from `topic` only (the header's)."""
        return f"{self.public_url}/u/{self.tokens.unsubscribe(lead_id, topic)}"

    def links(self, lead_id: str, outbox_id: int) -> dict[str, str]:
        """The template's `links` for a real send (over the plain content links): the
        lead's own pages and the open pixel. `stay_subscribed` is the preference page
        too, but tracked: the click is what a win-back journey waits for."""
        preferences = self.preferences_url(lead_id)
        return {
            "preferences": preferences,
            "stay_subscribed": f"{preferences}?notice=stay",
            "unsubscribe": self.unsubscribe_url(lead_id),
            "pixel": f"{self.public_url}/t/o/{self.tokens.open(outbox_id)}.gif",
        }

    def headers(self, lead_id: str, topic: str) -> dict[str, str]:
        """RFC 8058 one-click unsubscribe: from this message's topic only."""
        return {
            "List-Unsubscribe": f"<{self.unsubscribe_url(lead_id, topic)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }

    def track(
        self, rendered: RenderedEmail, outbox_id: int, lead_id: str
    ) -> tuple[RenderedEmail, list[TrackedLink]]:
        """`rendered` with every link a tracked redirect, and the links to store
        (`db.email_links.store_links`, with the send). The lead's preference page and
        unsubscribe links, and Nurture's tracking URLs, are left alone. In the text part
        only the HTML part's link targets and the named links are tracked: any other URL
        there may be a lead's own text (its name, its company) and stays untracked, so it
        never becomes a redirect on our domain."""
        own = self.links(lead_id, outbox_id)
        names = {
            f"{self.website_url}{path}": name
            for name, path in LINK_PATHS.items()
            if name not in OWN_LINKS
        } | {own["stay_subscribed"]: "stay_subscribed"}
        base = self.public_url
        return track_links(
            rendered,
            outbox_id,
            link_url=lambda outbox, position: f"{base}/t/c/{self.tokens.link(outbox, position)}",
            base_url=self.website_url,
            untracked={own["preferences"], own["unsubscribe"]},
            untracked_prefixes=(f"{base}/t/", f"{base}/u/", f"{base}/c/"),
            names=names,
        )
