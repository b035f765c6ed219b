"""Clicks per link: for each template and URL, the emails that carried it, the recipients
who clicked it (unique) and all its clicks (total), most clicked first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel


class ClickCounts(Protocol):
    """What is counted for one URL of one template (`db.email_links.LinkClickRow`)."""

    @property
    def template(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def emails(self) -> int: ...
    @property
    def unique_clicks(self) -> int: ...
    @property
    def total_clicks(self) -> int: ...


class LinkClicks(BaseModel):
    """One URL of one template."""

    template: str
    url: str
    name: str | None  # the template's named link (`pricing` …), if it was one
    emails: int  # sent emails that carried the link
    unique_clicks: int  # recipients who clicked it
    total_clicks: int
    click_rate: float | None  # unique clicks / emails


def link_clicks(rows: Iterable[ClickCounts]) -> list[LinkClicks]:
    """The rows as figures, most clicked first (then by template and URL)."""
    figures = [
        LinkClicks(
            template=row.template,
            url=row.url,
            name=row.name,
            emails=row.emails,
            unique_clicks=row.unique_clicks,
            total_clicks=row.total_clicks,
            click_rate=round(row.unique_clicks / row.emails, 4) if row.emails else None,
        )
        for row in rows
    ]
    return sorted(figures, key=lambda f: (-f.unique_clicks, -f.total_clicks, f.template, f.url))
