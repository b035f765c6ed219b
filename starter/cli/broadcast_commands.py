"""`nurture broadcast …`: send a broadcast and follow it, read one, list them, pause, resume
or cancel one — clients of `/v1/broadcasts` (docs/broadcasts.md)."""

from __future__ import annotations

import time
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from starter.cli.api_client import ApiUnavailable, NurtureApi
from starter.cli.api_commands import ApiKey, ApiUrl, _api, _fail, console

broadcast_app = typer.Typer(
    help="Newsletters and announcements to a segment or a topic's subscribers.",
    no_args_is_help=True,
)
FINISHED = ("done", "cancelled")


class Metric(StrEnum):
    opens = "opens"
    clicks = "clicks"


def _skipped(counts: dict[str, Any]) -> int:
    return sum(counts["skipped"].values())


def _follow(api: NurtureApi, broadcast_id: str, poll: float) -> dict[str, Any]:
    """A live progress bar until the broadcast is done or cancelled."""
    view = api.get(f"/v1/broadcasts/{broadcast_id}")
    with Progress(
        TextColumn("[bold]{task.fields[status]}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "sent {task.fields[sent]} · skipped {task.fields[skipped]} · "
            "deferred {task.fields[deferred]} · bounced {task.fields[bounced]}"
        ),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(
            "broadcast", total=None, status=view["status"], sent=0, skipped=0, deferred=0,
            bounced=0,
        )  # fmt: skip
        while True:
            counts = view["counts"]
            done = counts["sent"] + _skipped(counts) + counts["failed"] + counts["bounced"]
            progress.update(
                task, total=view["audience"], completed=done, status=view["status"],
                sent=counts["sent"], skipped=_skipped(counts), deferred=counts["deferred"],
                bounced=counts["bounced"],
            )  # fmt: skip
            if view["status"] in FINISHED:
                return view
            time.sleep(poll)
            view = api.get(f"/v1/broadcasts/{broadcast_id}")


def _print(view: dict[str, Any]) -> None:
    counts, results = view["counts"], view["results"]
    console.print(
        f"[bold]{view['name']}[/bold] ({view['id']}): {view['status']}, template "
        f"{view['template']}, {'segment ' + view['segment'] if view['segment'] else 'topic'} "
        f"· topic {view['topic']}",
        highlight=False,
    )
    table = Table(show_header=False, box=None)
    rows = [
        ("audience", view["audience"]), ("pending", counts["pending"]), ("sent", counts["sent"]),
        *((f"skipped: {reason}", n) for reason, n in sorted(counts["skipped"].items())),
        ("deferred", counts["deferred"]), ("failed", counts["failed"]),
        ("bounced", counts["bounced"]), ("unique opens", results["unique_opens"]),
        ("unique clicks", results["unique_clicks"]), ("unsubscribes", results["unsubscribes"]),
    ]  # fmt: skip
    for label, value in rows:
        table.add_row(label, "—" if value is None else str(value))
    console.print(table)
    if view.get("ab_result"):
        console.print(f"A/B: {view['ab_result']['verdict']}", highlight=False)


@broadcast_app.command("send")
def send(
    name: Annotated[
        str, typer.Argument(help="What the broadcast is called, e.g. 'December news'.")
    ],
    template: Annotated[str, typer.Option(help="The email template, e.g. newsletter.")],
    segment: Annotated[str | None, typer.Option(help="Send to this segment's members.")] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="The message's topic; without --segment, its subscribers get it."),
    ] = None,
    send_at: Annotated[
        str | None, typer.Option(help="Start at (ISO 8601 with zone); default now.")
    ] = None,
    local_time: Annotated[
        str | None, typer.Option(help="Send at this time of day in each lead's zone, e.g. 09:00.")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="At most this many messages a second.")] = None,
    ab_subject: Annotated[
        list[str] | None,
        typer.Option("--ab-subject", help="An A/B subject (give two to four)."),
    ] = None,
    ab_sample: Annotated[int, typer.Option(help="A/B sample, percent of the audience.")] = 10,
    ab_wait: Annotated[float, typer.Option(help="Hours to wait before picking the winner.")] = 4,
    ab_metric: Annotated[Metric, typer.Option(help="The winner has the most of these.")] = (
        Metric.opens
    ),
    follow: Annotated[bool, typer.Option(help="Show a live progress bar until done.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between progress checks.")] = 1.0,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Create a broadcast; with --follow, watch it go out."""
    body: dict[str, Any] = {
        "name": name, "template": template, "segment": segment, "topic": topic,
        "send_at": send_at, "local_time": local_time, "rate_per_second": rate,
    }  # fmt: skip
    if ab_subject:
        body["ab_test"] = {
            "subjects": ab_subject, "sample_percent": ab_sample,
            "wait": timedelta(hours=ab_wait).total_seconds(), "metric": ab_metric.value,
        }  # fmt: skip
    try:
        api = _api(api_url, api_key)
        created = api.post("/v1/broadcasts", {k: v for k, v in body.items() if v is not None})
        console.print(f"broadcast {created['broadcast_id']}: {created['status']}", highlight=False)
        if follow:
            _print(_follow(api, created["broadcast_id"], poll))
    except ApiUnavailable as exc:
        raise _fail(exc) from None


@broadcast_app.command("status")
def status(
    broadcast_id: Annotated[str, typer.Argument(help="The broadcast's id.")],
    follow: Annotated[bool, typer.Option(help="Show a live progress bar until done.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """A broadcast's status, counts, engagement and A/B result."""
    try:
        api = _api(api_url, api_key)
        view = (
            _follow(api, broadcast_id, 1.0) if follow else api.get(f"/v1/broadcasts/{broadcast_id}")
        )
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    _print(view)


@broadcast_app.command("list")
def list_(api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """The latest broadcasts."""
    try:
        found = _api(api_url, api_key).get("/v1/broadcasts")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    table = Table(title=f"{len(found)} broadcasts", title_justify="left")
    for column in ("id", "name", "status", "audience", "template", "segment", "topic", "created"):
        table.add_column(column)
    for b in found:
        table.add_row(
            b["id"], b["name"], b["status"], str(b["audience"] or "—"), b["template"],
            b["segment"] or "—", b["topic"], b["created_at"][:16],
        )  # fmt: skip
    console.print(table)


def _control(broadcast_id: str, action: str, api_url: str | None, api_key: str | None) -> None:
    try:
        found = _api(api_url, api_key).post(f"/v1/broadcasts/{broadcast_id}/{action}")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    console.print(f"broadcast {broadcast_id}: {found['status']}", highlight=False)


@broadcast_app.command("pause")
def pause(
    broadcast_id: Annotated[str, typer.Argument(help="The broadcast's id.")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Pause after the batch in flight."""
    _control(broadcast_id, "pause", api_url, api_key)


@broadcast_app.command("resume")
def resume(
    broadcast_id: Annotated[str, typer.Argument(help="The broadcast's id.")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Resume a paused broadcast."""
    _control(broadcast_id, "resume", api_url, api_key)


@broadcast_app.command("cancel")
def cancel(
    broadcast_id: Annotated[str, typer.Argument(help="The broadcast's id.")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel: nothing more is sent after the batch in flight."""
    _control(broadcast_id, "cancel", api_url, api_key)
