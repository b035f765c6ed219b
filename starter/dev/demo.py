"""`nurture demo`: the whole stack on embedded defaults, and a scripted scenario on top.

Starts (or reuses) a Temporal dev server that keeps its state in a file, a local SMTP
mailbox, the worker and the API as separate processes, then enrolls sample leads through
the HTTP API and prints what each of them received.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from starter.dev.provisioning.temporal import (
    DEFAULT_UI_PORT,
    port_is_open,
    register_search_attributes,
    temporal_address,
)
from starter.dev.smtp_sink import SmtpSink, start_sink
from starter.settings import Settings
from starter.temporal_client import connect
from workflows import search_attributes

# Wide enough for the summary table even when the output is not a terminal.
console = Console(width=None if sys.stdout.isatty() else 120)

SAMPLE_LEADS: tuple[dict[str, Any], ...] = (
    {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "title": "VP Engineering",
        "company_size": 250,
        "industry": "software",
        "country": "GB",
    },
    {
        "first_name": "Grace",
        "last_name": "Hopper",
        "company": "Compiler Works",
        "title": "Head of Platform",
        "company_size": 1200,
        "industry": "software",
        "country": "US",
    },
    {
        "first_name": "Alan",
        "last_name": "Turing",
        "company": "Bletchley Analytics",
        "title": "Data Scientist",
        "company_size": 40,
        "industry": "research",
        "country": "GB",
    },
)
DEMO_SMTP_PORT = 1025
REPO = Path(__file__).resolve().parents[2]  # starter/dev/demo.py → the repository
API_PORT = 8000
DEMO_REPS = ("alex", "sam", "kim")


def _persisted_secret(path: Path, make: str) -> str:
    """A value generated once and kept in the demo's data folder."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make)
    path.chmod(0o600)
    return make


def demo_environment(settings: Settings, temporal: str, smtp_port: int) -> dict[str, str]:
    """The environment the demo's worker and API run with: the settings plus demo secrets."""
    data = settings.data_dir
    secret = (
        settings.secret_key.get_secret_value()
        if settings.secret_key
        else _persisted_secret(data / "secret_key", secrets.token_urlsafe(32))
    )
    keys = os.environ.get("NURTURE_API_KEYS") or _persisted_secret(
        data / "api_keys",
        ",".join(
            [
                *(f"{role}:demo-{role}-{secrets.token_hex(8)}" for role in ("marketing", "admin")),
                # One key per sales rep: each sees their own leads (API and /inbox).
                *(f"sales:{rep}:demo-{rep}-{secrets.token_hex(8)}" for rep in DEMO_REPS),
            ]
        ),
    )
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "NURTURE_TASK_QUEUE": settings.task_queue,
        "DATABASE_URL": settings.effective_database_url,
        "NURTURE_DATA_DIR": str(data),
        "SMTP_HOST": settings.smtp_host if "SMTP_HOST" in os.environ else "127.0.0.1",
        "SMTP_PORT": str(settings.smtp_port if "SMTP_HOST" in os.environ else smtp_port),
        "NURTURE_SECRET_KEY": secret,
        "NURTURE_API_KEYS": keys,
        # The demo runs whenever you start it: no quiet hours (set the variable to see them).
        "NURTURE_QUIET_HOURS": os.environ.get("NURTURE_QUIET_HOURS", ""),
        "PYTHONUNBUFFERED": "1",
    }


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    return subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@asynccontextmanager
async def demo_stack(
    settings: Settings,
) -> AsyncIterator[tuple[str, dict[str, str], SmtpSink | None]]:
    """Temporal, a mailbox, the worker and the API; yields (API URL, environment, mailbox)."""
    if port_is_open("127.0.0.1", API_PORT):
        raise SystemExit(f"port {API_PORT} is taken: stop whatever serves it (an earlier demo?)")
    sink, controller = None, None
    if "SMTP_HOST" not in os.environ:
        controller, sink = start_sink(port=DEMO_SMTP_PORT)
    async with temporal_address(
        settings.temporal_address, namespace=settings.temporal_namespace, data_dir=settings.data_dir
    ) as temporal:
        client = await connect(temporal, settings.temporal_namespace)
        await register_search_attributes(client, settings.temporal_namespace, search_attributes.ALL)
        env = demo_environment(settings, temporal, DEMO_SMTP_PORT)
        logs = settings.data_dir / "logs"
        worker = _spawn([sys.executable, str(REPO / "worker.py")], env, logs / "worker.log")
        api = _spawn(
            [sys.executable, "-m", "starter.cli.app", "api", "--port", str(API_PORT)],
            env,
            logs / "api.log",
        )
        try:
            url = f"http://127.0.0.1:{API_PORT}"
            await _wait_until_healthy(url, api, logs / "api.log")
            yield url, env, sink
        finally:
            _stop(api)
            _stop(worker)
            if controller is not None:
                controller.stop()


async def _wait_until_healthy(url: str, api: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if api.poll() is not None:
                raise SystemExit(f"the API exited at start-up; see {log}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit(f"the API did not come up within 60 s; see {log}")


def _marketing_key(env: dict[str, str]) -> str:
    for pair in env["NURTURE_API_KEYS"].split(","):
        role, _, key = pair.partition(":")
        if role.strip() in ("marketing", "admin"):
            return key.strip()
    raise SystemExit("NURTURE_API_KEYS has no marketing or admin key for the demo scenario")


async def _wait_for_emails(http: httpx.AsyncClient, lead_id: str, count: int) -> dict:
    deadline = time.monotonic() + 60
    while True:
        lead = (await http.get(f"/v1/leads/{lead_id}")).json()
        if (
            sum(e["status"] == "sent" for e in lead["emails"]) >= count
            or time.monotonic() > deadline
        ):
            return lead
        await asyncio.sleep(0.25)


async def _wait_for_stage(http: httpx.AsyncClient, lead_id: str, stage: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        lead = (await http.get(f"/v1/leads/{lead_id}")).json()
        if (lead["lifecycle_stage"] == stage and lead["handovers"]) or time.monotonic() > deadline:
            return lead
        await asyncio.sleep(0.25)


async def run_scenario(url: str, env: dict[str, str], sink: SmtpSink | None = None) -> None:
    """Enroll the sample leads, enroll one twice, have one click and ask for a demo (an
    MQL, handed to sales); print what each got."""
    run = time.strftime("%Y%m%d%H%M%S")
    headers = {"Authorization": f"Bearer {_marketing_key(env)}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        leads = await _enroll_samples(http, run)
        for _, body in leads[:2]:
            await _wait_for_emails(http, body["lead_id"], 1)
        await _engage_until_mql(http, run, *leads[1])
        console.print(await _outcome_table(http, leads, sink))
        await _send_newsletter(http)
        await _show_funnel(http, env)
        if sink is not None and sink.to(leads[0][0]):
            _show_welcome(sink, leads[0][0])


async def _enroll_samples(http: httpx.AsyncClient, run: str) -> list[tuple[str, dict]]:
    """Enroll each sample lead (at an address unique to this run), then the first one
    again; returns (address, enrollment) per lead."""
    leads = []
    for sample in SAMPLE_LEADS:
        email = f"{sample['first_name'].lower()}.{sample['last_name'].lower()}+{run}@example.com"
        # Ada and Grace opted in on a form we trust; Alan gets a double opt-in first.
        consent = (
            {"source": "demo form", "confirmed": True}
            if sample["first_name"] != "Alan"
            else {"source": "demo form"}
        )
        response = await http.post(
            "/v1/enrollments",
            json={"journey": "welcome", "lead": {"email": email, **sample}, "consent": consent},
        )
        response.raise_for_status()
        leads.append((email, response.json()))
        console.print(f"enrolled [bold]{email}[/] → {response.json()['workflow_id']}")
    again = await http.post(
        "/v1/enrollments", json={"journey": "welcome", "lead": {"email": leads[0][0]}}
    )
    console.print(f"enrolled {leads[0][0]} again → [italic]{again.json()['status']}[/]")
    return leads


async def _engage_until_mql(http: httpx.AsyncClient, run: str, email: str, body: dict) -> None:
    """The lead clicks the welcome email, views pricing and asks for a demo; print whether
    that made it an MQL and whom it was handed to."""
    lead_id = body["lead_id"]
    await http.post(
        "/v1/events",
        json={"lead_id": lead_id, "type": "email_click", "event_id": f"demo-{run}"},
    )
    console.print(f"{email} clicked the welcome email's link")
    await _wait_for_emails(http, lead_id, 2)
    for number, (kind, props) in enumerate(
        (("page_view", {"url": "https://nurture.example/pricing"}), ("demo_request", {}))
    ):
        await http.post(
            "/v1/events",
            json={
                "lead_id": lead_id,
                "type": kind,
                "event_id": f"demo-{run}-{number}",
                "properties": props,
            },
        )
    console.print(f"{email} looked at the pricing page and asked for a demo")
    mql = await _wait_for_stage(http, lead_id, "mql")
    console.print(
        f"→ score {mql['score']['total']} (fit {mql['score']['fit']}, behaviour "
        f"{mql['score']['behaviour']}): [bold]MQL[/], handed over to sales rep "
        f"[bold]{mql['owner']}[/] ({mql['handovers'][0]['routing_rule']} routing)"
        if mql["lifecycle_stage"] == "mql"
        else "→ not an MQL yet (the lead workflow is still busy)"
    )


async def _outcome_table(
    http: httpx.AsyncClient, leads: list[tuple[str, dict]], sink: SmtpSink | None
) -> Table:
    """A row per sample lead: the emails it received, its journey step, stage and score,
    and what comes next."""
    table = Table(title="What each sample lead got")
    for column in ("lead", "emails received", "journey step", "stage · score", "next"):
        table.add_column(column)
    for email, body in leads:
        lead = (await http.get(f"/v1/leads/{body['lead_id']}")).json()
        journey = lead["journeys"][0]
        if sink is not None:  # what the SMTP server really received
            subjects = "\n".join(f"✉ {m['Subject']}" for m in sink.to(email))
        else:
            subjects = "\n".join(
                f"✉ {e['subject']}" for e in lead["emails"] if e["status"] == "sent"
            )
        stage = f"{lead['lifecycle_stage']} · {lead['score']['total']}"
        if lead["owner"]:
            stage += f"\nowner {lead['owner']}"
        table.add_row(
            email,
            subjects,
            f"{journey['current_step']} ({journey['status']})",
            stage,
            _whats_next(lead, journey),
        )
    return table


def _whats_next(lead: dict, journey: dict) -> str:
    if journey["status"] == "completed":
        return "journey complete"
    if lead.get("consent_status") == "pending":
        return "welcome held until the double opt-in is confirmed"
    return "a reminder in 3 days, unless they click first"


def _show_welcome(sink: SmtpSink, email: str) -> None:
    """The text part of the first email the address received (the welcome)."""
    welcome = sink.to(email)[0]
    console.rule(f"the welcome email as {email} received it (text part)")
    console.print(f"Subject: {welcome['Subject']}")
    plain = welcome.get_body(("plain",))
    text = plain.get_content() if plain is not None else "(no text part)"
    console.print(text, markup=False, highlight=False)
    console.rule()


async def _send_newsletter(http: httpx.AsyncClient) -> None:
    """A small broadcast: the newsletter to every lead subscribed to it (docs/broadcasts.md)."""
    created = await http.post(
        "/v1/broadcasts",
        json={"name": "Demo newsletter", "template": "newsletter", "topic": "newsletter"},
    )
    created.raise_for_status()
    broadcast_id = created.json()["broadcast_id"]
    deadline = time.monotonic() + 60
    view = (await http.get(f"/v1/broadcasts/{broadcast_id}")).json()
    while view["status"] != "done" and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        view = (await http.get(f"/v1/broadcasts/{broadcast_id}")).json()
    counts = view["counts"]
    skipped = ", ".join(f"{n} {reason}" for reason, n in counts["skipped"].items()) or "none"
    console.print(
        f"broadcast [bold]{view['name']}[/] ({view['status']}): audience {view['audience']}, "
        f"sent {counts['sent']}, skipped {skipped} — nurture broadcast status {broadcast_id}"
    )


async def _show_funnel(http: httpx.AsyncClient, env: dict[str, str]) -> None:
    """The funnel of everything in this demo's database, as numbers and as the SVG chart."""
    report = (await http.get("/v1/analytics/funnel")).json()
    parts, previous = [], None
    for stage in report["stages"]:
        part = f"{stage['stage']} {stage['reached']}"
        if previous and previous["reached"]:
            part += f" ({100 * stage['reached'] / previous['reached']:.0f}%)"
        parts.append(part)
        previous = stage
    console.print("funnel: " + " → ".join(parts))
    svg = await http.get("/v1/analytics/funnel.svg")
    path = Path(env["NURTURE_DATA_DIR"]) / "funnel.svg"
    path.write_text(svg.text)
    console.print(f"funnel chart: {path} (and GET /v1/analytics/funnel.svg)")


async def run_demo(settings: Settings, *, exit_after_scenario: bool) -> None:
    """Bring the stack up, run the scenario, and keep it up until Ctrl-C (unless told not to)."""
    async with demo_stack(settings) as (url, env, sink):
        await run_scenario(url, env, sink)
        if sink is not None:
            console.print(
                f"the local mailbox on 127.0.0.1:{DEMO_SMTP_PORT} holds "
                f"{len(sink.messages)} message(s) from this run"
            )
        console.print(f"API docs:    {url.replace('127.0.0.1', 'localhost')}/docs")
        console.print(f"Temporal UI: http://localhost:{DEFAULT_UI_PORT} (if this demo started it)")
        console.print(f"API keys:    {env['NURTURE_API_KEYS']}")
        console.print(
            f"sales inbox: {url.replace('127.0.0.1', 'localhost')}/inbox (sign in with a sales key)"
        )
        console.print("CLI:         .venv/bin/nurture funnel | leads | lead ID | journeys")
        console.print(f"logs:        {settings.data_dir / 'logs'}")
        if exit_after_scenario:
            return
        console.print("[bold]running — press Ctrl-C to stop[/]")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
