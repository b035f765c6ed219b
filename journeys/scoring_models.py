"""The scoring models, one per persona, as code. Edit here; every lead is rescored with the
deployed model the next time its score is computed (see docs/scoring.md for why scores,
unlike journeys, are not snapshotted)."""

from __future__ import annotations

from datetime import timedelta

from journeys.accounts import FREE_MAIL_DOMAINS
from journeys.dsl import EventType
from journeys.events.catalog import TRIAL_STARTED
from journeys.scoring import BehaviourRule, FitRule, InactivityPenalty, ScoringModel
from journeys.seniority import SENIORITY_WORDS, Seniority

COMPETITOR_DOMAINS = ("mautic.org", "dittofeed.com", "hubspot.com", "marketo.com")

_SENIORITY = (
    FitRule(
        group="seniority",
        label="C-level title",
        attribute="title",
        points=30,
        any_of=SENIORITY_WORDS[Seniority.C_LEVEL],
    ),
    FitRule(
        group="seniority",
        label="VP or head title",
        attribute="title",
        points=25,
        any_of=SENIORITY_WORDS[Seniority.VP],
    ),
    FitRule(
        group="seniority",
        label="director title",
        attribute="title",
        points=20,
        any_of=SENIORITY_WORDS[Seniority.DIRECTOR],
    ),
    FitRule(
        group="seniority",
        label="manager title",
        attribute="title",
        points=10,
        any_of=SENIORITY_WORDS[Seniority.MANAGER],
    ),
    FitRule(
        group="seniority",
        label="student",
        attribute="title",
        points=-40,
        any_of=SENIORITY_WORDS[Seniority.STUDENT],
    ),
)
_COMPANY_SIZE = (
    FitRule(
        group="company size",
        label="company 200-4,999",
        attribute="company_size",
        points=20,
        min=200,
        max=5000,
    ),
    FitRule(
        group="company size", label="company 5,000+", attribute="company_size", points=15, min=5000
    ),
    FitRule(
        group="company size",
        label="company 20-199",
        attribute="company_size",
        points=10,
        min=20,
        max=200,
    ),
)
_INDUSTRY = (
    FitRule(
        group="industry",
        label="target industry",
        attribute="industry",
        points=10,
        any_of=("software", "manufacturing", "financial services", "healthcare"),
    ),
)
_COUNTRY = (
    FitRule(
        group="country",
        label="served country",
        attribute="country",
        points=5,
        any_of=("de", "gb", "us", "fr", "nl", "at", "ch"),
    ),
)
_PENALTIES = (
    FitRule(
        group="email",
        label="free-mail address",
        attribute="email_domain",
        points=-15,
        any_of=FREE_MAIL_DOMAINS,
    ),
    FitRule(
        group="competitor",
        label="competitor",
        attribute="email_domain",
        points=-100,
        any_of=COMPETITOR_DOMAINS,
    ),
)
FIT_RULES = _SENIORITY + _COMPANY_SIZE + _INDUSTRY + _COUNTRY + _PENALTIES

BEHAVIOUR_RULES = (
    BehaviourRule(label="demo request", event=EventType.DEMO_REQUEST, points=40, cap=40),
    BehaviourRule(
        label="pricing or demo page visit",
        event=EventType.PAGE_VIEW,
        points=10,
        cap=30,
        url_contains=("/pricing", "/demo"),
    ),
    BehaviourRule(label="page visit", event=EventType.PAGE_VIEW, points=2, cap=10),
    BehaviourRule(label="webinar attended", event=EventType.WEBINAR_ATTENDED, points=15, cap=30),
    BehaviourRule(label="download", event=EventType.DOWNLOAD, points=10, cap=30),
    BehaviourRule(label="form submitted", event=EventType.FORM_SUBMIT, points=10, cap=20),
    BehaviourRule(label="email click", event=EventType.EMAIL_CLICK, points=5, cap=25),
    BehaviourRule(label="email open", event=EventType.EMAIL_OPEN, points=1, cap=5),
    BehaviourRule(
        label="unsubscribed", event=EventType.UNSUBSCRIBE, points=-50, cap=50, decays=False
    ),
    BehaviourRule(
        label="email bounced", event=EventType.EMAIL_BOUNCE, points=-20, cap=20, decays=False
    ),
)
# Custom event types (journeys/events/catalog.py) score like built-in ones. A practitioner
# who starts a trial is evaluating the product hands-on: 15 points, once (the cap), so a
# second trial adds nothing.
TRIAL_RULE = BehaviourRule(label="trial started", event=TRIAL_STARTED.name, points=15, cap=15)
INACTIVITY = InactivityPenalty(after=timedelta(days=90), points=-10)

DECISION_MAKER = ScoringModel(
    name="decision-maker",
    fit_rules=FIT_RULES,
    behaviour_rules=BEHAVIOUR_RULES,
    half_life=timedelta(days=30),
    inactivity=INACTIVITY,
    fit_threshold=40,
    behaviour_threshold=30,
)
PRACTITIONER = ScoringModel(
    name="practitioner",
    fit_rules=FIT_RULES,
    behaviour_rules=(*BEHAVIOUR_RULES, TRIAL_RULE),
    half_life=timedelta(days=21),
    inactivity=INACTIVITY,
    fit_threshold=25,
    behaviour_threshold=45,
)
# Students are not buyers: their fit never reaches the threshold, whatever they do.
STUDENT = ScoringModel(
    name="student",
    fit_rules=FIT_RULES,
    behaviour_rules=BEHAVIOUR_RULES,
    half_life=timedelta(days=14),
    inactivity=INACTIVITY,
    fit_threshold=1000,
    behaviour_threshold=1000,
)
# Leads without a persona are scored with the general model.
GENERAL = ScoringModel(
    name="general",
    fit_rules=FIT_RULES,
    behaviour_rules=BEHAVIOUR_RULES,
    half_life=timedelta(days=30),
    inactivity=INACTIVITY,
    fit_threshold=30,
    behaviour_threshold=40,
)

SCORING_MODELS = {m.name: m for m in (DECISION_MAKER, PRACTITIONER, STUDENT, GENERAL)}


def scoring_model_for(persona: str | None) -> ScoringModel:
    """The model a lead of `persona` is scored with (the general one when unknown)."""
    return SCORING_MODELS.get(persona or "", GENERAL)
