"""The CLI's commands for marketers and sales (`enroll`, `leads`, `lead`, `feedback`,
`funnel`, `journeys`): clients of the HTTP API."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from starter.cli.api_client import ApiUnavailable, NurtureApi, api_from
from starter.settings import DEFAULT_DATA_DIR

console = Console()
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url", envvar="NURTURE_API_URL", help="The API's base URL.", show_default=False
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="NURTURE_API_KEY",
        help="An API key (default: the demo's admin key).",
        show_default=False,
    ),
]


class Outcome(StrEnum):
    accept = "accept"
    reject = "reject"
    qualify = "qualify"
    won = "won"
    lost = "lost"


def _api(url: str | None, key: str | None) -> NurtureApi:
    import os

    data_dir = Path(os.environ.get("NURTURE_DATA_DIR") or DEFAULT_DATA_DIR)
    return api_from(url, key, data_dir)


def _fail(exc: ApiUnavailable) -> typer.Exit:
    console.print(f"[red]nurture:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def _follow_job(api: NurtureApi, job: dict[str, Any], poll: float) -> dict[str, Any]:
    with Progress(
        TextColumn("[bold]enrolling[/bold] {task.fields[journey]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "enrolled {task.fields[enrolled]} · already {task.fields[already]} · "
            "errors {task.fields[errors]}"
        ),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(
            "job", total=job["total_rows"], journey=job["journey"], enrolled=0, already=0, errors=0
        )
        while True:
            progress.update(
                task,
                completed=job["processed_rows"],
                enrolled=job["enrolled"],
                already=job["already_enrolled"],
                errors=job["failed_rows"],
            )
            if job["status"] == "done":
                return job
            time.sleep(poll)
            job = api.get(f"/v1/enrollment-jobs/{job['job_id']}")


def _print_errors(job: dict[str, Any], shown: int = 20) -> None:
    errors = job["errors"]
    if not errors:
        return
    table = Table(title=f"{job['failed_rows']} rows not enrolled", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("field")
    table.add_column("reason")
    for error in errors[:shown]:
        table.add_row(str(error["line"]), error["field"] or "", error["reason"])
    console.print(table)
    if len(errors) > shown:
        console.print(f"… and {len(errors) - shown} more: GET /v1/enrollment-jobs/{job['job_id']}")


def enroll(
    journey: Annotated[str, typer.Option(help="The journey, e.g. whitepaper-nurture.")],
    email: Annotated[str | None, typer.Option(help="One lead's email.")] = None,
    first_name: Annotated[str | None, typer.Option(help="One lead's first name.")] = None,
    company: Annotated[str | None, typer.Option(help="One lead's company.")] = None,
    title: Annotated[str | None, typer.Option(help="One lead's job title.")] = None,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", exists=True, dir_okay=False, help="Enroll every row of a CSV file."),
    ] = None,
    consent_source: Annotated[
        str | None, typer.Option(help="Where the leads opted in (kept as evidence).")
    ] = None,
    confirmed: Annotated[
        bool, typer.Option(help="They confirmed elsewhere: skip the double opt-in.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between progress checks.")] = 0.5,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Enroll one lead (--email) or a CSV file of leads (--csv: a progress bar, then the
    rows that could not be enrolled)."""
    if (email is None) == (csv is None):
        raise typer.BadParameter("give either --email or --csv", param_hint="--email/--csv")
    api = _api(api_url, api_key)
    consent = {"source": consent_source, "confirmed": confirmed} if consent_source else None
    try:
        if csv is not None:
            _enroll_csv(api, journey, csv, consent, poll)
            return
        lead = {"email": email, "first_name": first_name, "company": company, "title": title}
        body: dict[str, Any] = {
            "journey": journey,
            "lead": {k: v for k, v in lead.items() if v is not None},
        }
        if consent:
            body["consent"] = consent
        result = api.post("/v1/enrollments", body)
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    suppressed = result.get("suppressed")
    console.print(
        f"{result['status']}: lead {result['lead_id']} in {result['journey']} "
        f"(consent {result.get('consent_status')})"
        + (f": the address is {suppressed}, no email will be sent" if suppressed else "")
    )


def _enroll_csv(
    api: NurtureApi, journey: str, csv: Path, consent: dict[str, Any] | None, poll: float
) -> None:
    """Upload a CSV file as a bulk job, follow it with a progress bar, print the outcome."""
    params: dict[str, Any] = {"journey": journey}
    if consent:
        params |= {"consent_source": consent["source"], "consent_confirmed": consent["confirmed"]}
    job = api.request(
        "POST",
        "/v1/enrollment-jobs/csv",
        params=params,
        content=csv.read_bytes(),
        headers={"Content-Type": "text/csv"},
    ).json()
    job = _follow_job(api, job, poll)
    console.print(
        f"{job['enrolled']} enrolled, {job['already_enrolled']} already enrolled, "
        f"{job['failed_rows']} rows with errors, {job['suppressed_rows']} suppressed "
        f"(unsubscribed, bounced or complained: mailed nothing) (job {job['job_id']})"
    )
    _print_errors(job)


def leads(
    stage: Annotated[str | None, typer.Option(help="Lifecycle stage, e.g. mql.")] = None,
    score_min: Annotated[int | None, typer.Option(help="Lowest score.")] = None,
    score_max: Annotated[int | None, typer.Option(help="Highest score.")] = None,
    journey: Annotated[str | None, typer.Option(help="Enrolled in this journey.")] = None,
    owner: Annotated[str | None, typer.Option(help="Assigned to this sales rep.")] = None,
    account: Annotated[str | None, typer.Option(help="Of this account id.")] = None,
    sort: Annotated[str, typer.Option(help="created_at, score; - for descending.")] = "-score",
    limit: Annotated[int, typer.Option(min=1, max=500, help="Leads per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page.")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List leads (filtered, sorted, a page at a time)."""
    try:
        page = _api(api_url, api_key).get(
            "/v1/leads",
            stage=stage,
            score_min=score_min,
            score_max=score_max,
            journey=journey,
            owner=owner,
            account_id=account,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    table = Table(title=f"{len(page['items'])} leads", title_justify="left")
    for column in ("id", "email", "name", "stage", "score", "owner"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for lead in page["items"]:
        name = " ".join(filter(None, (lead["first_name"], lead["last_name"])))
        table.add_row(
            lead["id"], lead["email"] or "", name, lead["lifecycle_stage"],
            str(lead["score"]), lead["owner"] or "",
        )  # fmt: skip
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more: nurture leads --cursor {page['next_cursor']}")


def lead(
    lead_id: Annotated[str, typer.Argument(help="The lead's id.")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show one lead: stage, score explained, journeys and its timeline."""
    try:
        view = _api(api_url, api_key).get(f"/v1/leads/{lead_id}")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    name = " ".join(filter(None, (view["first_name"], view["last_name"])))
    console.print(f"[bold]{name or view['email']}[/bold] <{view['email']}>", highlight=False)
    score = view["score"]
    console.print(
        f"stage {view['lifecycle_stage']} · score {score['total']} (fit {score['fit']}, "
        f"behaviour {score['behaviour']}) · owner {view['owner'] or '—'} · consent "
        f"{view['consent_status']}"
    )
    for line in score["contributions"]:
        console.print(f"  {line['points']:+4d}  {line['kind']}: {line['label']}")
    console.print(_deliverability_line(view), highlight=False)
    for journey in view["journeys"]:
        console.print(
            f"journey {journey['journey']} ({journey['status']}, at {journey['current_step']})"
        )
    table = Table(title="timeline", title_justify="left")
    table.add_column("at")
    table.add_column("what")
    table.add_column("")
    for entry in view["timeline"]:
        table.add_row(entry["at"][:19].replace("T", " "), entry["kind"], entry["summary"])
    console.print(table)


def _deliverability_line(view: dict[str, Any]) -> str:
    """`deliverability soft_bouncing (2 transient bounces) · 4.2.2 … at …` and the hold."""
    found = view.get("deliverability") or {}
    line = f"deliverability {found.get('status', '—')}"
    if found.get("transient_bounces"):
        line += f" ({found['transient_bounces']} transient bounces)"
    if evidence := found.get("evidence"):
        code = " ".join(filter(None, (evidence.get("status_code"), evidence.get("diagnostic"))))
        line += f" · {evidence['kind']} {code or evidence['action']} at {evidence['at'][:19]}"
    if held := found.get("mail_held_until"):
        line += f" · out of office: journey emails held until {held[:16]}"
    if view.get("source"):
        line += f" · source {view['source']}"
    return line


def feedback(
    lead_id: Annotated[str, typer.Argument(help="The lead's id.")],
    outcome: Annotated[Outcome, typer.Argument(help="What sales says.")],
    reason: Annotated[str | None, typer.Option(help="Why (required to reject or lose).")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Give sales feedback: accept, reject --reason …, qualify, won, lost."""
    body = {"outcome": outcome.value, "reason": reason}
    try:
        result = _api(api_url, api_key).post(f"/v1/leads/{lead_id}/sales-feedback", body)
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    console.print(f"{result['previous_stage']} → {result['stage']}")


def funnel(
    journey: Annotated[str | None, typer.Option(help="Only leads of this journey.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO 8601).")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Draw the lifecycle funnel: leads that reached each stage and the conversion."""
    try:
        report = _api(api_url, api_key).get(
            "/v1/analytics/funnel", journey=journey, since=since, until=until
        )
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    widest = max((s["reached"] for s in report["stages"]), default=0) or 1
    console.print(f"[bold]Lifecycle funnel[/bold]: {report['leads']} leads")
    console.print(f"{'stage':>11} {'':<30} {'reached':>6} {'conv.':>6} {'median':>9}")
    previous = None
    for stage in report["stages"]:
        bar = "█" * max(1, round(30 * stage["reached"] / widest)) if stage["reached"] else ""
        rate = ""
        if previous and previous["reached"]:
            share = 100 * stage["reached"] / previous["reached"]
            rate = f"{share:.1f}%" if share < 10 else f"{share:.0f}%"
        hours = stage["median_hours_in_stage"]
        stay = f"{hours:.1f} h" if hours is not None else ""
        console.print(
            f"{stage['stage']:>11} {bar:<30} {stage['reached']:>6} {rate:>6} {stay:>9}",
            highlight=False,
        )
        previous = stage
    try:
        sources = _api(api_url, api_key).get(
            "/v1/analytics/deliverability", name=journey, since=since
        )
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    _print_deliverability(sources)


def _print_deliverability(sources: list[dict[str, Any]]) -> None:
    """Bounce and complaint rates per journey and broadcast, and their warnings."""
    if not sources:
        return
    console.print("[bold]Deliverability[/bold] (per message sent)")
    console.print(f"{'source':>30} {'sent':>6} {'bounced':>8} {'soft':>6} {'complaints':>11}")

    def share(rate: float | None) -> str:
        return f"{100 * rate:.2f}%" if rate is not None else "—"

    for source in sources:
        console.print(
            f"{source['kind'] + ' ' + source['name']:>30} {source['sent']:>6} "
            f"{share(source['bounce_rate']):>8} {share(source['soft_bounce_rate']):>6} "
            f"{share(source['complaint_rate']):>11}",
            highlight=False,
        )
        for warning in source["warnings"]:
            console.print(f"[bold red]warning[/bold red] {source['name']}: {warning}")


def journeys(api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """List the deployed journeys and their versions."""
    try:
        found = _api(api_url, api_key).get("/v1/journeys")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    table = Table(title=f"{len(found)} journeys", title_justify="left")
    for column in ("name", "version", "emails", "re-entry", "triggers", "description"):
        table.add_column(column)
    for journey in found:
        table.add_row(
            journey["name"], journey["version"], ", ".join(journey["emails"]),
            journey["reentry"], ", ".join(journey.get("triggers", [])), journey["description"],
        )  # fmt: skip
    console.print(table)


def clicks(
    journey: Annotated[str, typer.Argument(help="The journey, e.g. welcome.")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Clicks per link of a journey's emails: each URL, the recipients who clicked it and
    all its clicks."""
    try:
        stats = _api(api_url, api_key).get(f"/v1/analytics/journeys/{journey}")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    table = Table(title=f"{journey}: clicks per link", title_justify="left")
    for column in ("template", "link", "emails", "unique", "total", "rate"):
        table.add_column(column, justify="left" if column in ("template", "link") else "right")
    for link in stats.get("links", []):
        rate = link["click_rate"]
        table.add_row(
            link["template"], link["url"], str(link["emails"]), str(link["unique_clicks"]),
            str(link["total_clicks"]), "" if rate is None else f"{100 * rate:.1f}%",
        )  # fmt: skip
    console.print(table)


def segments(api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """List the segments and how many leads are in each now."""
    try:
        found = _api(api_url, api_key).get("/v1/segments")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    table = Table(title=f"{len(found)} segments", title_justify="left")
    for column in ("name", "size", "description"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for segment in found:
        table.add_row(segment["name"], str(segment["size"]), segment["description"])
    console.print(table)


def segment(
    name: Annotated[str, typer.Argument(help="The segment, e.g. pricing-visitors.")],
    members: Annotated[int, typer.Option(help="How many members to list (oldest first).")] = 20,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show a segment: its definition, size and first members."""
    api = _api(api_url, api_key)
    try:
        found = api.get(f"/v1/segments/{name}")
        page = api.get(f"/v1/segments/{name}/members?limit={max(1, min(members, 1000))}")
    except ApiUnavailable as exc:
        raise _fail(exc) from None
    console.print(f"[bold]{found['name']}[/bold]: {found['description']}")
    console.print(f"{found['size']} members; definition: {found['definition']}")
    table = Table(title="members", title_justify="left")
    table.add_column("lead")
    table.add_column("since")
    for member in page["items"]:
        table.add_row(member["lead_id"], member["entered_at"])
    console.print(table)


COMMANDS = (enroll, leads, lead, feedback, funnel, journeys, clicks, segments, segment)
