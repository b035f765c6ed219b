"""Forms on the website, as code: which journey each form enrolls into and what a
submission counts as. `POST /v1/forms/{form}/submissions` looks forms up here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import EventType


class FormDefinition(BaseModel):
    """A form: its journey, the engagement a submission records, and its opt-in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    journey: str
    event: EventType = Field(
        default=EventType.FORM_SUBMIT,
        description="What a submission counts as for scoring (a lead magnet: a download).",
    )
    lead_magnet: str | None = Field(default=None, description="The content item it gates.")
    double_opt_in: bool = Field(
        default=True,
        description="Send a confirmation email before any marketing email (recommended; "
        "required in Germany). False records the form's opt-in as confirmed.",
    )


FORMS: dict[str, FormDefinition] = {
    form.name: form
    for form in (
        FormDefinition(
            name="whitepaper-download",
            journey="whitepaper-nurture",
            event=EventType.DOWNLOAD,
            lead_magnet="whitepaper",
        ),
        FormDefinition(name="newsletter", journey="welcome-series"),
        FormDefinition(name="webinar-signup", journey="webinar-registration"),
        FormDefinition(name="contact", journey="welcome", event=EventType.DEMO_REQUEST),
    )
}
