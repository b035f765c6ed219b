"""Link tracking, pure: every link of a rendered email becomes a signed redirect.

`track_links` finds each `<a href>` of the HTML part with the standard library's HTML
parser (which knows quoting, entities and comments; no regex reads markup) and each
http(s) URL of the text part that is also a tracked `<a href>` target of the HTML part or
a named link (`names`), gives every distinct target a position (1, 2, …, shared by both
parts) and replaces it by the caller's tracking URL for (outbox id, position). Any other
URL of the text part is left as written: it may come from a lead's own field
(`first_name="https://evil.example/login"`), and a tracked redirect would make it a link
on our domain. (Lead fields can't add an `<a href>` to the HTML part, which is
autoescaped, but a template that writes one into an `href` makes it a tracked link: see
docs/preferences.md.) The
targets are returned as `TrackedLink`s for the caller to store: the token in a tracking
URL carries ids only, so it can't be made to redirect anywhere else.

Left alone: `mailto:`, `tel:` and `sms:` links, `#anchors`, an empty `href`, the URLs the
caller names (Nurture's own unsubscribe and preference pages) or whose prefix it names, and
any `<a data-nurture-track="off">` (the attribute itself is removed from the output; the
same URL in the text part is then left alone too). Refused: any other scheme
(`javascript:`, `data:`, `vbscript:` …, however it is spelled with entities, case,
whitespace or control characters): the `href` is removed, the link text stays.
A relative URL (`/pricing`) is resolved against `base_url` (the company's website).

Links inside HTML comments (Outlook's conditional comments too) and `<script>`/`<style>`
are not links to the parser and stay as they are.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from journeys.rendering import RenderedEmail

# `<a data-nurture-track="off" href="…">`: this link is not tracked.
TRACK_ATTRIBUTE = "data-nurture-track"
# Schemes left as they are (the mail client handles them; no redirect could).
KEPT_SCHEMES = frozenset({"mailto", "tel", "sms"})
TRACKED_SCHEMES = frozenset({"http", "https"})
# Longest target stored: longer ones are left untracked rather than cut.
MAX_URL_LENGTH = 4000

_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
# What a browser strips from a URL before it reads it (WHATWG URL: leading and trailing C0
# controls and space; tab and newline anywhere).
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# An attribute name written back into a rebuilt tag (anything else is dropped from it).
_ATTRIBUTE_NAME = re.compile(r"[a-zA-Z_:][-a-zA-Z0-9_:.]*")
# A URL in plain text: up to whitespace or a character that can't be part of one.
_TEXT_URL = re.compile(r"https?://[^\s<>\"'\x00-\x1f\x7f]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"\u201d\u2019\u00bb"  # and closing typographic quotes


@dataclass(frozen=True)
class TrackedLink:
    """A link of a sent email: `/t/c/<token of (outbox_id, position)>` redirects to `url`.
    `name` is the template's named link it came from (`links.whitepaper`), if any."""

    outbox_id: int
    position: int
    url: str
    name: str | None = None


class LinkKind(StrEnum):
    """What the tracker does with a link."""

    TRACKED = "tracked"
    KEPT = "kept"  # left exactly as written
    REFUSED = "refused"  # an unsafe scheme: the href is removed


def classify(href: str, *, base_url: str | None = None) -> tuple[LinkKind, str]:
    """What becomes of `href` (already entity-decoded), and the URL to track (for
    `TRACKED`; otherwise `href` unchanged)."""
    url = _TAB_NEWLINE.sub("", href.strip(_C0_AND_SPACE))
    if not url or url.startswith("#"):
        return LinkKind.KEPT, href
    found = _SCHEME.match(url)
    if found is None:
        if url.startswith(("//", "\\\\", "/\\", "\\/")):
            url = "https:" + url  # protocol-relative: email has no page protocol
        elif base_url:
            url = urljoin(base_url.rstrip("/") + "/", url)
        else:
            return LinkKind.KEPT, href
        found = _SCHEME.match(url)
        assert found is not None
    scheme = found.group(1).lower()
    if scheme in KEPT_SCHEMES:
        return LinkKind.KEPT, href
    if scheme not in TRACKED_SCHEMES:
        return LinkKind.REFUSED, href
    url = scheme + url[len(scheme) :]
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal
        return LinkKind.REFUSED, href
    if not parts.hostname or not url.lower().startswith(f"{scheme}://"):
        return LinkKind.REFUSED, href  # `http:evil.example`, `https:///x`
    if len(url) > MAX_URL_LENGTH:
        return LinkKind.KEPT, href
    return LinkKind.TRACKED, url


@dataclass(frozen=True)
class _Anchor:
    """An `<a>` start tag as written: where, its exact text, its attributes decoded."""

    offset: int
    source: str
    attrs: list[tuple[str, str | None]]
    self_closing: bool


class _AnchorFinder(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[_Anchor] = []
        # getpos() is (line, column): the offset of each line's start turns it into one.
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._text = text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._found(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._found(tag, attrs, self_closing=True)

    def _found(self, tag: str, attrs: list[tuple[str, str | None]], *, self_closing: bool) -> None:
        if tag != "a":
            return
        source = self.get_starttag_text()
        line, column = self.getpos()
        offset = self._line_starts[line - 1] + column
        if source is None or self._text[offset : offset + len(source)] != source:
            raise AssertionError("the HTML parser's position does not match its source")
        self.anchors.append(_Anchor(offset, source, attrs, self_closing))


def _rebuilt(attrs: list[tuple[str, str | None]], self_closing: bool) -> str:
    parts = ["<a"]
    for name, value in attrs:
        if not _ATTRIBUTE_NAME.fullmatch(name):
            continue
        parts.append(f" {name}" if value is None else f' {name}="{html.escape(value)}"')
    parts.append(" />" if self_closing else ">")
    return "".join(parts)


@dataclass
class _Positions:
    """Positions by target URL, in order of first appearance."""

    outbox_id: int
    names: Mapping[str, str]
    links: dict[str, TrackedLink]

    def of(self, url: str) -> int:
        if url not in self.links:
            self.links[url] = TrackedLink(
                self.outbox_id, len(self.links) + 1, url, self.names.get(url)
            )
        return self.links[url].position


def track_links(
    rendered: RenderedEmail,
    outbox_id: int,
    *,
    link_url: Callable[[int, int], str],
    base_url: str | None = None,
    untracked: Collection[str] = (),
    untracked_prefixes: tuple[str, ...] = (),
    names: Mapping[str, str] | None = None,
) -> tuple[RenderedEmail, list[TrackedLink]]:
    """`rendered` with every link tracked (in the text part: only the HTML part's tracked
    targets and the `names`), and the links to store (position order).

    `link_url(outbox_id, position)` makes a tracking URL; `base_url` resolves relative
    links; `untracked` (exact URLs) and `untracked_prefixes` are left alone; `names` maps
    a URL to the named link it came from. Deterministic: the same email gives the same
    positions and URLs on every retry.
    """
    positions = _Positions(outbox_id, names or {}, {})
    kept = set(untracked)

    def leave_alone(url: str) -> bool:
        return url in kept or url.startswith(untracked_prefixes)

    finder = _AnchorFinder(rendered.html)
    finder.feed(rendered.html)
    finder.close()
    pieces: list[str] = []
    done = 0
    for anchor in finder.anchors:
        attrs, changed, href_seen = [], False, False
        opted_out = any(
            name == TRACK_ATTRIBUTE and (value or "").strip().lower() == "off"
            for name, value in anchor.attrs
        )
        for name, value in anchor.attrs:
            if name == TRACK_ATTRIBUTE:
                changed = True  # never shown to the reader
                continue
            if name != "href":
                attrs.append((name, value))
                continue
            if href_seen:  # a browser reads the first href only: drop the others
                changed = True
                continue
            href_seen = True
            kind, url = classify(value or "", base_url=base_url)
            if kind is LinkKind.REFUSED:
                changed = True
                continue
            if kind is LinkKind.TRACKED and (opted_out or leave_alone(url)):
                kept.add(url)  # the same URL in the text part stays too
                kind = LinkKind.KEPT
            if kind is LinkKind.TRACKED:
                attrs.append((name, link_url(outbox_id, positions.of(url))))
                changed = True
            else:
                attrs.append((name, value))
        if changed:
            pieces += [rendered.html[done : anchor.offset], _rebuilt(attrs, anchor.self_closing)]
            done = anchor.offset + len(anchor.source)
    pieces.append(rendered.html[done:])

    # The text part has no markup to tell the author's links from a URL a lead typed into
    # its name: only a target the HTML part links to, or a named link, is tracked there.
    # Anything else stays as written, so it never becomes a redirect on our domain.
    linked = set(positions.links) | set(positions.names)

    def text_link(found: re.Match[str]) -> str:
        url, tail = _split_trailing(found.group(0))
        kind, target = classify(url, base_url=base_url)
        if kind is not LinkKind.TRACKED or leave_alone(target) or leave_alone(url):
            return found.group(0)
        if target not in linked:
            return found.group(0)
        return link_url(outbox_id, positions.of(target)) + tail

    text = _TEXT_URL.sub(text_link, rendered.text)
    tracked = replace(rendered, html="".join(pieces), text=text)
    return tracked, sorted(positions.links.values(), key=lambda link: link.position)


def _split_trailing(url: str) -> tuple[str, str]:
    """A URL found in text without the punctuation that ends its sentence: a trailing
    `.` or `,`, and a `)` or `]` that closes nothing opened inside the URL."""
    end = len(url)
    while end:
        last = url[end - 1]
        if last in _TRAILING:
            end -= 1
        elif last == ")" and url.count("(", 0, end) < url.count(")", 0, end):
            end -= 1
        elif last == "]" and url.count("[", 0, end) < url.count("]", 0, end):
            end -= 1
        else:
            break
    return url[:end], url[end:]
