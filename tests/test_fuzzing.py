"""Fuzzing the signed links: the token parser and the public endpoints that read tokens,
with hypothesis. Whatever arrives, the parser raises only `TokenInvalid` and the
endpoints answer 2xx/3xx/4xx — never a 5xx, never an unhandled exception."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starter.services.link_tokens import LinkTokens, TokenInvalid

TOKENS = LinkTokens(secrets.token_urlsafe(32))
GOOD = [
    TOKENS.click(7, "whitepaper"),
    TOKENS.open(7),
    TOKENS.unsubscribe("lead"),
    TOKENS.confirm("x"),
]

# Anything, and things close to real tokens: mutated, truncated, re-signed payloads.
token_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(GOOD).flatmap(
        lambda good: st.tuples(st.integers(0, len(good)), st.text(max_size=20)).map(
            lambda cut: good[: cut[0]] + cut[1] + good[cut[0] :]
        )
    ),
    st.from_regex(r"[A-Za-z0-9_\-]{0,80}\.[A-Za-z0-9_\-]{0,40}", fullmatch=True),
)


@given(token=token_text)
@settings(max_examples=2000, deadline=None)
def test_the_token_parser_only_ever_says_invalid(token: str) -> None:
    for read in (TOKENS.read_click, TOKENS.read_open, TOKENS.read_unsubscribe, TOKENS.read_confirm):
        try:
            read(token)
        except TokenInvalid:
            pass


@given(outbox_id=st.integers(0, 2**62), link=st.text(min_size=1, max_size=40))
@settings(max_examples=300, deadline=None)
def test_a_click_token_reads_back_what_was_signed(outbox_id: int, link: str) -> None:
    assert TOKENS.read_click(TOKENS.click(outbox_id, link)) == (outbox_id, link)


# Tokens as they would arrive in a URL path: percent-encoded by the client.
path_token = token_text.filter(lambda t: t not in ("", ".", "..")).map(
    lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")
)


@pytest.fixture
def public(threaded_api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=threaded_api_url, timeout=30, follow_redirects=False) as client:
        yield client


def test_public_endpoints_never_fail_on_any_token(public: httpx.Client) -> None:
    seen: list[int] = []

    @given(token=path_token, method=st.sampled_from(["GET", "POST"]),
           route=st.sampled_from(["/t/c/{}", "/t/o/{}.gif", "/u/{}", "/c/{}"]))  # fmt: skip
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    def probe(token: str, method: str, route: str) -> None:
        if method == "POST" and route.startswith("/t/"):
            method = "GET"
        response = public.request(method, route.format(token), headers={"User-Agent": token[:500]})
        seen.append(response.status_code)
        assert response.status_code < 500, (method, route, token, response.text[:200])

    probe()
    assert len(seen) >= 400 and all(code < 500 for code in seen)
