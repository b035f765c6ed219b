"""Email templates render personalised, escaped, with fallbacks (pure, no Temporal)."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from journeys.rendering import TemplateMissingError, render_email, template_environment

SENDER = {"name": "Nurture", "postal_address": "1 Example Street"}
LINKS = {
    "getting_started": "https://nurture.example/start",
    "book_demo": "https://nurture.example/demo",
    "unsubscribe": "https://nurture.example/u/token",
    "preferences": "https://nurture.example/p/token",  # the footer's preference page
    "pixel": "",
}


def context(**lead: object) -> dict:
    return {"lead": {"first_name": None, "company": None, **lead}, "sender": SENDER, "links": LINKS}


def test_welcome_greets_the_lead_by_first_name_in_subject_html_and_text() -> None:
    email = render_email("welcome", context(first_name="Ada"))

    assert email.subject == "Welcome to Nurture, Ada"
    assert "Hi Ada," in email.html
    assert "Hi Ada," in email.text


def test_a_missing_first_name_falls_back_to_there() -> None:
    email = render_email("welcome", context())

    assert "Hi there," in email.text


def test_html_escapes_lead_data_but_text_keeps_it_plain() -> None:
    email = render_email("welcome", context(first_name="<script>alert(1)</script>"))

    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "Hi <script>alert(1)</script>," in email.text


def test_line_breaks_in_data_cannot_inject_subject_headers() -> None:
    email = render_email("welcome", context(first_name="Ada\r\nBcc: victim@example.com"))

    assert "\n" not in email.subject and "\r" not in email.subject


def test_an_undefined_variable_fails_instead_of_rendering_blank() -> None:
    with pytest.raises(UndefinedError):
        render_email("welcome", {"lead": {}, "sender": SENDER})


def test_a_missing_template_is_named() -> None:
    with pytest.raises(TemplateMissingError, match="no-such-template"):
        render_email("no-such-template", context())


def test_templates_run_sandboxed() -> None:
    template = template_environment().from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}")

    with pytest.raises(SecurityError):
        template.render()


def test_the_content_hub_recommends_by_stage_and_persona() -> None:
    from journeys.content_hub import recommend

    assert recommend("lead", "decision-maker").id == "roi-case-study"
    assert recommend("recycled", "practitioner").id == "hands-on-guide"
    assert recommend("mql", "practitioner").id == "pricing-explained"
    assert recommend("customer", None).id == "webinar-recording"


def test_a_content_block_renders_the_recommended_item_with_its_link() -> None:
    from journeys.rendering import template_context

    context = template_context(
        {"first_name": "Pat", "persona": "practitioner"},
        base_url="https://nurture.example",
        sender_name="Nurture",
        postal_address="1 Example Street",
        stage="lead",
    )

    email = render_email("ws_tips", context)

    assert "Recommended for you: Your first journey in 20 minutes" in email.text
    assert "https://nurture.example/guides/getting-started" in email.html
