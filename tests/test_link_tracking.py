"""Link tracking and topics, pure: which links become tracked redirects, what is left alone
or refused (hostile markup included), the tokens, and the topic rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.dsl import End, JourneyDefinition, SendEmail
from journeys.link_tracking import LinkKind, TrackedLink, classify, track_links
from journeys.registry import all_journeys
from journeys.rendering import TEMPLATE_DIR, RenderedEmail
from journeys.topics import (
    DEFAULT_CHOICE,
    JOURNEY_TOPIC,
    TOPIC_NAMES,
    Frequency,
    TopicAction,
    TopicChoice,
    changes,
    journey_topic,
    next_allowed,
)
from starter.services.errors import InvalidParameter
from starter.services.link_tokens import LinkTokens, TokenInvalid
from starter.services.preferences import choices_from_form

SITE = "https://www.acme.example"


def tracker(outbox_id: int, position: int) -> str:
    return f"https://n.example/t/c/{outbox_id}-{position}"


def track(
    markup: str, text: str = "", **options: object
) -> tuple[RenderedEmail, list[TrackedLink]]:
    return track_links(
        RenderedEmail("subject", markup, text),
        7,
        link_url=tracker,
        base_url=SITE,
        **options,  # type: ignore[arg-type]  # the keyword options, as the tests vary them
    )


class Hrefs(HTMLParser):
    """Every `<a>`'s attributes, as a browser's parser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(markup: str) -> list[dict[str, str | None]]:
    parser = Hrefs()
    parser.feed(markup)
    parser.close()
    return parser.anchors


# --- what becomes of a link ------------------------------------------------------------


def test_every_http_link_becomes_a_tracked_redirect_and_its_target_is_returned() -> None:
    rendered, links = track(
        '<p><a href="https://x.example/a">A</a> <a href="http://y.example/">B</a></p>'
    )

    assert [a["href"] for a in anchors(rendered.html)] == [tracker(7, 1), tracker(7, 2)]
    assert links == [
        TrackedLink(7, 1, "https://x.example/a"),
        TrackedLink(7, 2, "http://y.example/"),
    ]


def test_markup_around_the_links_is_left_byte_for_byte() -> None:
    markup = '<div class="x">Hi &amp; welcome<br/>\n<a href="https://x.example">go</a>\n</div>'

    rendered, _ = track(markup)

    assert rendered.html == markup.replace("https://x.example", tracker(7, 1))


def test_the_same_url_twice_is_one_link_in_both_parts() -> None:
    rendered, links = track(
        '<a href="https://x.example/p">1</a><a href="https://x.example/p">2</a>',
        "Read it: https://x.example/p.",
    )

    assert len(links) == 1
    assert rendered.text == f"Read it: {tracker(7, 1)}."


@pytest.mark.parametrize(
    "href",
    [
        "mailto:ada@example.com",
        "tel:+4930123",
        "sms:+4930123",
        "#section-2",
        "MAILTO:a@b.example",
        "",
    ],
)
def test_mailto_tel_anchors_and_empty_links_are_left_exactly_as_written(href: str) -> None:
    markup = f'<a href="{href}" class="c">x</a>'

    rendered, links = track(markup)

    assert rendered.html == markup and links == []


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java&#x09;script:alert(1)",
        "&#106;avascript:alert(1)",
        "&#x6A;avascript&colon;alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "http:evil.example",
        "https:///nohost",
    ],
)
def test_unsafe_schemes_lose_their_href_however_they_are_spelled(href: str) -> None:
    rendered, links = track(f'<a href="{href}" title="t">click</a>')

    assert anchors(rendered.html) == [{"title": "t"}]
    assert "click" in rendered.html and links == []


def test_relative_links_resolve_against_the_website() -> None:
    rendered, links = track('<a href="/pricing?plan=team">p</a><a href="//cdn.example/x">c</a>')

    assert [link.url for link in links] == [
        f"{SITE}/pricing?plan=team",
        "https://cdn.example/x",
    ]
    assert [a["href"] for a in anchors(rendered.html)] == [tracker(7, 1), tracker(7, 2)]


def test_a_link_can_opt_out_and_the_attribute_is_removed() -> None:
    rendered, links = track(
        '<a data-nurture-track="off" href="https://x.example/private">x</a>',
        "Also https://x.example/private here",
    )

    assert anchors(rendered.html) == [{"href": "https://x.example/private"}]
    assert "data-nurture-track" not in rendered.html
    assert rendered.text == "Also https://x.example/private here"
    assert links == []


def test_an_opt_out_attribute_with_another_value_is_removed_and_the_link_tracked() -> None:
    rendered, links = track('<a data-nurture-track="on" href="https://x.example">x</a>')

    assert anchors(rendered.html) == [{"href": tracker(7, 1)}] and len(links) == 1


def test_named_urls_and_prefixes_are_left_alone_and_names_are_kept() -> None:
    markup = (
        '<a href="https://n.example/u/tok">unsubscribe</a>'
        '<a href="https://n.example/t/o/x.gif">pixel</a>'
        '<a href="https://n.example/p/tok">prefs</a>'
        '<a href="https://www.acme.example/pricing">pricing</a>'
    )

    rendered, links = track(
        markup,
        "Preferences: https://n.example/p/tok\nUnsubscribe: https://n.example/u/tok",
        untracked={"https://n.example/p/tok"},
        untracked_prefixes=("https://n.example/u/", "https://n.example/t/"),
        names={"https://www.acme.example/pricing": "pricing"},
    )

    assert links == [TrackedLink(7, 1, "https://www.acme.example/pricing", "pricing")]
    assert rendered.html == markup.replace("https://www.acme.example/pricing", tracker(7, 1))
    assert "https://n.example/p/tok" in rendered.text and "https://n.example/u/tok" in rendered.text


def test_entities_in_an_href_are_decoded_into_the_stored_target() -> None:
    _, links = track('<a href="https://x.example/?a=1&amp;b=2&#38;c=3">x</a>')

    assert links[0].url == "https://x.example/?a=1&b=2&c=3"


def test_hostile_quoting_keeps_other_attributes_intact_and_escaped() -> None:
    markup = (
        "<A HREF='https://x.example/' TITLE='say \"hi\" &lt;b&gt;' data-x=\"it's\" hidden>x</A>"
    )

    rendered, _ = track(markup)

    [anchor] = anchors(rendered.html)
    assert anchor == {
        "href": tracker(7, 1),
        "title": 'say "hi" <b>',
        "data-x": "it's",
        "hidden": None,
    }


def test_only_the_first_of_two_hrefs_counts_as_in_a_browser() -> None:
    rendered, links = track('<a href="https://x.example/one" href="javascript:alert(1)">x</a>')

    assert anchors(rendered.html) == [{"href": tracker(7, 1)}]
    assert [link.url for link in links] == ["https://x.example/one"]


def test_links_in_comments_scripts_and_outside_anchors_are_not_touched() -> None:
    markup = (
        '<!--[if mso]><a href="https://x.example/mso">m</a><![endif]-->'
        '<script>var a = "<a href=\\"https://x.example/s\\">";</script>'
        '<img src="https://x.example/img.png"><link href="https://x.example/c.css">'
    )

    rendered, links = track(markup)

    assert rendered.html == markup and links == []


def test_text_urls_lose_no_sentence_punctuation_and_balance_parentheses() -> None:
    rendered, links = track(
        '<a href="https://x.example/wiki/A_(b)">a</a><a href="https://y.example/x?q=1">y</a>'
        '<a href="https://z.example/">z</a>',
        "See (https://x.example/wiki/A_(b)), then https://y.example/x?q=1, "
        "and “https://z.example/”.",
    )

    assert [link.url for link in links] == [
        "https://x.example/wiki/A_(b)",
        "https://y.example/x?q=1",
        "https://z.example/",
    ]
    assert rendered.text == (f"See ({tracker(7, 1)}), then {tracker(7, 2)}, and “{tracker(7, 3)}”.")


def test_a_text_url_the_html_part_does_not_link_to_is_left_as_written() -> None:
    # `Hi {{ lead.first_name }}` with first_name="https://evil.example/login": text only.
    rendered, links = track(
        '<p>Hi https://evil.example/login,</p><a href="https://x.example/p">Read</a>',
        "Hi https://evil.example/login,\nRead: https://x.example/p",
    )

    assert rendered.text == f"Hi https://evil.example/login,\nRead: {tracker(7, 1)}"
    assert links == [TrackedLink(7, 1, "https://x.example/p")]


def test_a_named_link_in_the_text_part_only_is_tracked() -> None:
    rendered, links = track(
        "", "Pricing: https://www.acme.example/pricing.",
        names={"https://www.acme.example/pricing": "pricing"},
    )  # fmt: skip

    assert rendered.text == f"Pricing: {tracker(7, 1)}."
    assert links == [TrackedLink(7, 1, "https://www.acme.example/pricing", "pricing")]


# An `href` whose value comes from a lead's field: `href="{{ lead.website }}"`, `{{ x.y }}`…
_LEAD_IN_HREF = re.compile(r"""href\s*=\s*["']?[^"'>]*\{\{[^}]*\blead\b""", re.IGNORECASE)


def test_no_shipped_template_writes_a_lead_field_into_an_href() -> None:
    offending = [
        str(path.relative_to(TEMPLATE_DIR))
        for path in sorted(TEMPLATE_DIR.rglob("*.html"))
        if _LEAD_IN_HREF.search(path.read_text())
    ]

    assert offending == []


def test_tracking_is_deterministic_for_a_retry() -> None:
    markup = '<a href="https://b.example">b</a><a href="https://a.example">a</a>'

    assert track(markup, "https://c.example") == track(markup, "https://c.example")


def test_classify_keeps_an_overlong_url_untracked() -> None:
    assert classify("https://x.example/" + "a" * 5000)[0] is LinkKind.KEPT


# A hostile fragment: tags, quotes, entities, schemes and text mixed at random.
FRAGMENTS = st.sampled_from(
    [
        '<a href="https://x.example/1">',
        "<a href='javascript:alert(1)'>",
        "<a href=https://y.example/2?a=1&amp;b=2>",
        '<a data-nurture-track="off" href="https://z.example/">',
        "<a href>",
        '<a href="mailto:a@b.example">',
        "</a>",
        "<!-- <a href='https://c.example'> -->",
        '"',
        "'",
        "&amp;",
        "&",
        "<",
        ">",
        "<b>",
        "text",
        "https://t.example/p",
        "\n",
        '<a title="&quot;>" href="https://w.example/">',
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS, max_size=30))
def test_any_markup_ends_with_only_tracked_or_safe_hrefs(pieces: list[str]) -> None:
    markup = "".join(pieces)

    rendered, links = track(markup, markup)

    for anchor in anchors(rendered.html):
        href = anchor.get("href")
        if href is None:
            continue
        kind, url = classify(href)
        assert kind is not LinkKind.REFUSED, href
        if kind is LinkKind.TRACKED:  # a redirect of ours, or the link that opted out
            assert url.startswith(("https://n.example/t/c/", "https://z.example/")), href
    assert [link.position for link in links] == list(range(1, len(links) + 1))
    assert all(link.url.startswith(("http://", "https://")) for link in links)


# --- tokens ----------------------------------------------------------------------------

TOKENS = LinkTokens("k" * 40)


def test_a_link_token_carries_the_outbox_and_position_only() -> None:
    assert TOKENS.read_link(TOKENS.link(12, 3)) == (12, 3)


def test_old_click_tokens_are_not_link_tokens_and_the_other_way_round() -> None:
    with pytest.raises(TokenInvalid):
        TOKENS.read_link(TOKENS.click(12, "pricing"))
    with pytest.raises(TokenInvalid):
        TOKENS.read_click(TOKENS.link(12, 3))


def test_an_unsubscribe_token_names_everything_or_one_topic() -> None:
    assert TOKENS.read_unsubscribe_from(TOKENS.unsubscribe("lead-1")) == ("lead-1", None)
    assert TOKENS.read_unsubscribe_from(TOKENS.unsubscribe("lead-1", "events")) == (
        "lead-1",
        "events",
    )
    assert TOKENS.read_unsubscribe(TOKENS.unsubscribe("lead-1", "events")) == "lead-1"


def test_a_preference_token_is_its_own_purpose() -> None:
    assert TOKENS.read_preferences(TOKENS.preferences("lead-1")) == "lead-1"
    with pytest.raises(TokenInvalid):
        TOKENS.read_preferences(TOKENS.unsubscribe("lead-1"))
    with pytest.raises(TokenInvalid):
        TOKENS.read_unsubscribe(TOKENS.preferences("lead-1"))


# --- topics ----------------------------------------------------------------------------


def test_the_shipped_topics_include_newsletter_product_updates_events_and_journeys() -> None:
    assert {"newsletter", "product-updates", "events", JOURNEY_TOPIC} <= TOPIC_NAMES


def test_every_deployed_journey_has_a_declared_topic() -> None:
    assert all(definition.topic in TOPIC_NAMES for definition in all_journeys().values())


def test_a_journey_topic_must_be_declared() -> None:
    with pytest.raises(ValueError, match="topic 'gossip' is not declared"):
        JourneyDefinition(
            name="x",
            entry="a",
            steps=(SendEmail(id="a", template="welcome", next="b"), End(id="b")),
            topic="gossip",
        )


def test_a_journeys_topic_stays_out_of_its_snapshot_and_version() -> None:
    definition = all_journeys()["welcome"]
    events = definition.model_copy(update={"topic": "events"})

    assert "topic" not in definition.model_dump()
    assert events.version == definition.version


def test_the_topic_of_a_journey_email_is_found_by_its_workflow_id() -> None:
    assert journey_topic("journey:welcome:3f1e") == all_journeys()["welcome"].topic
    assert journey_topic("journey:removed-long-ago:3f1e") == JOURNEY_TOPIC


def test_a_frequency_holds_the_next_email_of_the_topic() -> None:
    sent = datetime(2026, 3, 1, 9, tzinfo=UTC)

    assert next_allowed(Frequency.ANY, sent) is None
    assert next_allowed(Frequency.WEEKLY, None) is None
    assert next_allowed(Frequency.WEEKLY, sent) == sent + timedelta(days=7)
    assert next_allowed(Frequency.MONTHLY, sent) == sent + timedelta(days=30)


def test_each_change_of_choice_is_one_record() -> None:
    off_weekly = TopicChoice(False, Frequency.WEEKLY)

    assert changes(DEFAULT_CHOICE, DEFAULT_CHOICE) == []
    assert changes(DEFAULT_CHOICE, off_weekly) == [TopicAction.UNSUBSCRIBED, TopicAction.FREQUENCY]
    assert changes(off_weekly, TopicChoice(True, Frequency.WEEKLY)) == [TopicAction.RESUBSCRIBED]


def test_a_form_states_every_topic_unticked_ones_unsubscribed() -> None:
    choices = choices_from_form(["events"], {"events": "weekly"})

    assert set(choices) == TOPIC_NAMES
    assert choices["events"] == TopicChoice(True, Frequency.WEEKLY)
    assert choices["newsletter"] == TopicChoice(False, Frequency.ANY)


@pytest.mark.parametrize(
    ("subscribed", "frequencies", "field"),
    [(["gossip"], {}, "topic"), ([], {"<script>": "any"}, "topic"),
     ([], {"events": "hourly"}, "frequency-events")],
)  # fmt: skip
def test_a_form_with_an_unknown_topic_or_frequency_is_refused_naming_the_field(
    subscribed: list[str], frequencies: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidParameter) as refused:
        choices_from_form(subscribed, frequencies)

    assert refused.value.loc == ("body", field)
