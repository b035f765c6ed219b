"""Funnel, chart, CSV export and journey statistics: pure functions on rows."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import cast

from journeys.dsl import SendEmail
from journeys.registry import get_journey
from reporting.csv_export import csv_lines, neutralise
from reporting.funnel import LeadHistory, funnel
from reporting.funnel_svg import funnel_svg
from reporting.journey_stats import SentEmail, journey_stats

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday


def _lead(
    *stages: tuple[int, str], current: str | None = None, created: datetime = T0
) -> LeadHistory:
    entered = [(created + timedelta(hours=h), stage) for h, stage in stages]
    return LeadHistory(
        created_at=created,
        current_stage=current or (entered[-1][1] if entered else "lead"),
        entered=entered,
    )


def test_a_lead_that_became_a_customer_counts_as_reaching_every_stage_before() -> None:
    report = funnel([_lead((0, "lead"), (10, "customer"))])

    assert [s.reached for s in report.stages] == [1, 1, 1, 1, 1, 1]


def test_conversion_is_the_share_of_a_stage_that_reached_the_next() -> None:
    report = funnel(
        [_lead((0, "lead"), (5, "mql")), _lead((0, "lead"), (5, "mql"), (7, "sal")), _lead()]
    )
    figures = {s.stage: s for s in report.stages}

    assert figures["lead"].reached == 3
    assert figures["lead"].conversion_to_next == round(2 / 3, 4)
    assert figures["mql"].conversion_to_next == 0.5
    assert figures["customer"].conversion_to_next is None


def test_median_time_in_stage_counts_only_stays_that_ended() -> None:
    report = funnel(
        [
            _lead((0, "lead"), (4, "mql"), (6, "sal")),
            _lead((0, "lead"), (10, "mql"), (20, "sal")),
            _lead((0, "lead"), (2, "mql")),
        ]
    )
    figures = {s.stage: s for s in report.stages}

    assert figures["lead"].median_hours_in_stage == 4.0  # 4, 10, 2
    assert figures["mql"].median_hours_in_stage == 6.0  # 2 and 10; the third still there
    assert figures["sal"].median_hours_in_stage is None


def test_recycled_leads_keep_the_furthest_stage_they_reached() -> None:
    report = funnel([_lead((0, "lead"), (3, "mql"), (5, "recycled"))])

    assert report.stages[1].reached == 1
    assert report.current_outside_funnel == {"recycled": 1}


def test_weekly_cohorts_group_leads_by_the_monday_of_their_creation() -> None:
    report = funnel([_lead(created=T0), _lead((1, "mql"), created=T0 + timedelta(days=8))], "week")

    assert [(p.period_start.isoformat(), p.leads, p.reached["mql"]) for p in report.periods] == [
        ("2026-11-02", 1, 0),
        ("2026-11-09", 1, 1),
    ]


def test_the_funnel_chart_is_valid_svg_with_the_real_counts() -> None:
    report = funnel([_lead((0, "lead"), (1, "mql")), _lead()])
    svg = funnel_svg(report, title="<b>Q4</b> & more")

    root = ET.fromstring(svg)
    counts = {
        g.get("data-stage"): int(cast("str", g.get("data-count")))
        for g in root.iter("{http://www.w3.org/2000/svg}g")
    }
    assert counts["lead"] == 2 and counts["mql"] == 1
    assert "&lt;b&gt;Q4&lt;/b&gt; &amp; more" in svg


def test_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    for dangerous in ('=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(dangerous) == "'" + dangerous
    assert neutralise("Ada") == "Ada"
    assert neutralise(None) == ""


def test_the_csv_export_neutralises_every_cell_and_stays_parseable() -> None:
    text = "".join(csv_lines(["name", "company"], [["=cmd|' /C calc'!A0", "ACME, Inc."]]))

    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "company"], ["'=cmd|' /C calc'!A0", "ACME, Inc."]]


def test_journey_stats_count_each_step_and_rank_the_ab_variants() -> None:
    definition = get_journey("whitepaper-nurture")
    ab_step = next(s for s in definition.steps if getattr(s, "variants", ()))
    assert isinstance(ab_step, SendEmail)  # only an email step has variants
    a, b = ab_step.variants
    sent = [
        SentEmail(1, "l1", ab_step.id, a.template, T0),
        SentEmail(2, "l2", ab_step.id, a.template, T0),
        SentEmail(3, "l3", ab_step.id, b.template, T0),
    ]

    stats = journey_stats(
        definition, sent, opened={1, 3}, clicked={3}, mql_at={"l3": T0 + timedelta(days=1)}
    )

    step = next(s for s in stats.steps if s.step_id == ab_step.id)
    assert (step.sent, step.opened, step.clicked, step.converted) == (3, 2, 1, 1)
    (test,) = stats.ab_tests
    rates = {v.variant: (v.sent, v.conversion_rate) for v in test.variants}
    assert rates == {a.name: (2, 0.0), b.name: (1, 1.0)}
    assert test.leader == b.name


def test_an_mql_before_the_email_is_not_a_conversion_of_that_email() -> None:
    definition = get_journey("welcome-series")
    sent = [SentEmail(1, "l1", "welcome", "ws_welcome", T0)]

    stats = journey_stats(definition, sent, set(), set(), {"l1": T0 - timedelta(hours=1)})

    assert stats.steps[0].converted == 0
