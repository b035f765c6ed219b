"""The properties of the built-in event types, where Nurture reads or writes some.

Permissive on purpose (`extra="allow"`): clients have always been free to attach small
scalar properties to a built-in event, and still are. The fields named here are the ones
Nurture itself sets or reads — `url` (scoring's pricing-page rule reads it), the tracked
link of an email click or download, a form's name — so they must be text when present.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from journeys.dsl import EventType


class BuiltInProperties(BaseModel):
    """Any small scalars (a built-in type with no known properties)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PageViewProperties(BuiltInProperties):
    """A page the lead viewed: `url` is what the pricing/demo-page scoring rule reads."""

    url: str | None = None
    referrer: str | None = None


class EmailOpenProperties(BuiltInProperties):
    """The open-tracking pixel was loaded."""

    user_agent: str | None = None


class EmailClickProperties(BuiltInProperties):
    """A tracked link was followed: `link` names it (`pricing`, `whitepaper`, …), `url` is
    where it led."""

    link: str | None = None
    url: str | None = None
    user_agent: str | None = None
    referrer: str | None = None


class FormProperties(BuiltInProperties):
    """A form's event: the form's name, its lead magnet (`content`) and the page it was on."""

    form: str | None = None
    content: str | None = None
    page_url: str | None = None


class DownloadProperties(EmailClickProperties, FormProperties):
    """A download, from a tracked link (`link`, `url`) or a form (`form`, `content`)."""


BUILT_IN_PROPERTIES: dict[EventType, type[BaseModel]] = {
    EventType.EMAIL_OPEN: EmailOpenProperties,
    EventType.EMAIL_CLICK: EmailClickProperties,
    EventType.DOWNLOAD: DownloadProperties,
    EventType.PAGE_VIEW: PageViewProperties,
    EventType.FORM_START: FormProperties,
    EventType.FORM_SUBMIT: FormProperties,
    EventType.WEBINAR_ATTENDED: BuiltInProperties,
    # A form can record a demo request (the contact form does).
    EventType.DEMO_REQUEST: FormProperties,
    EventType.UNSUBSCRIBE: BuiltInProperties,
    EventType.EMAIL_BOUNCE: BuiltInProperties,
}
