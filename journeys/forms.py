"""Forms on the website, as code: what a submission counts as and its opt-in; the
journey a form enrolls into declares `on_form(<name>)` among its triggers.
`POST /v1/forms/{form}/submissions` looks forms up here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field

from journeys.dsl import EventType


class FormDefinition(BaseModel):
    """A form: the engagement a submission records and its opt-in. The journey it enrolls
    into declares it as its trigger (`on_form(name)` in the journey's module)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
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

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use
    @property
    def journey(self) -> str:
        """The journey whose trigger names this form."""
        from journeys.registry import journey_of_form  # the catalog imports triggers, not forms

        journey = journey_of_form(self.name)
        if journey is None:
            raise LookupError(f"no journey declares on_form({self.name!r})")
        return journey


FORMS: dict[str, FormDefinition] = {
    form.name: form
    for form in (
        FormDefinition(
            name="whitepaper-download",
            event=EventType.DOWNLOAD,
            lead_magnet="whitepaper",
        ),
        FormDefinition(name="newsletter"),
        FormDefinition(name="webinar-signup"),
        FormDefinition(name="contact", event=EventType.DEMO_REQUEST),
    )
}
