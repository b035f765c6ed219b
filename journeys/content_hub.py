"""A small content hub: reusable content items, each for some lifecycle stages and
personas. Templates include `blocks/recommended` to show the item that fits the lead."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import LifecycleStage as S


class ContentItem(BaseModel):
    """A piece of content: what it is, where it lives (a link name), and for whom."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    summary: str
    link: str = Field(description="A name of journeys.rendering.LINK_PATHS")
    stages: tuple[S, ...] = ()
    personas: tuple[str, ...] = ()


CONTENT = (
    ContentItem(
        id="roi-case-study",
        title="How a 800-person manufacturer cut lead response time by 80%",
        summary="The numbers a budget owner asks for, from a team like yours.",
        link="case_study",
        stages=(S.LEAD, S.MQL, S.RECYCLED),
        personas=("decision-maker",),
    ),
    ContentItem(
        id="hands-on-guide",
        title="Your first journey in 20 minutes",
        summary="A step-by-step guide for the people who build the campaigns.",
        link="getting_started",
        stages=(S.SUBSCRIBER, S.LEAD, S.RECYCLED),
        personas=("practitioner", "student"),
    ),
    ContentItem(
        id="pricing-explained",
        title="Pricing, explained in two minutes",
        summary="What it costs, what is included, and how teams usually start.",
        link="pricing",
        stages=(S.MQL, S.SAL, S.SQL, S.OPPORTUNITY),
    ),
    ContentItem(
        id="webinar-recording",
        title="Watch: nurture journeys that sales actually like",
        summary="A 30-minute recording with a live Q&A.",
        link="webinar_recording",
    ),
)


def recommend(stage: str | None, persona: str | None) -> ContentItem:
    """The item for this stage and persona; else for the stage; else the general one."""

    def fits_stage(item: ContentItem) -> bool:
        return not item.stages or (stage is not None and stage in item.stages)

    def fits_persona(item: ContentItem) -> bool:
        return not item.personas or (persona is not None and persona in item.personas)

    for ok in (
        lambda i: fits_stage(i) and fits_persona(i) and bool(i.stages) and bool(i.personas),
        lambda i: fits_stage(i) and fits_persona(i),
    ):
        found = next((item for item in CONTENT if ok(item)), None)
        if found is not None:
            return found
    return CONTENT[-1]
