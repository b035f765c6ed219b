"""The `nurture` command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from starter.cli.api_commands import COMMANDS
from starter.cli.broadcast_commands import broadcast_app
from starter.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from starter.dev.provisioning.cluster import LocalCluster

app = typer.Typer(
    help="Nurture: buyer journeys as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _exit_without_finalizing(code: int) -> None:
    """Exit once the work is done, skipping interpreter finalization: the Temporal client's
    Rust threads can abort a finalizing interpreter (temporalio/sdk-python#300, seen here as
    `PyGILState_Release … finalizing` and exit 134 after a successful demo)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"nurture: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from starter.api.app import create_app
    from starter.dev.provisioning.temporal import settings_address

    settings = _settings()
    try:
        application = create_app(settings, temporal_address=settings_address)
    except SettingsError as exc:
        typer.echo(f"nurture api: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def worker() -> None:
    """Run the worker (the same as `python worker.py`)."""
    from starter.worker_wiring import main as run_worker

    run_worker()


@app.command()
def demo(
    exit_after_scenario: Annotated[
        bool, typer.Option("--exit-after-scenario", help="Stop once the scenario has run.")
    ] = False,
) -> None:
    """Run the whole stack on embedded defaults and a scripted scenario with sample leads."""
    import logging

    from starter.dev.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run_demo(_settings(), exit_after_scenario=exit_after_scenario))
    _exit_without_finalizing(0)


@app.command()
def simulate(
    journey: Annotated[
        str, typer.Argument(help="The journey to simulate, e.g. whitepaper-nurture.")
    ],
    persona: Annotated[
        str, typer.Option(help="Whose sample lead to enroll (see journeys/personas.py).")
    ] = "decision-maker",
    days: Annotated[float, typer.Option(min=0.01, max=3650, help="Simulated days to run.")] = 90,
    events: Annotated[
        str,
        typer.Option(
            help='Events to play, e.g. "3d:email_click,36h:page_view{url=/pricing}"; segment '
            "entries and exits and the journeys their triggers start show on the timeline."
        ),
    ] = "",
    prop: Annotated[
        list[str] | None,
        typer.Option("--property", help="Lead property KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Run a journey for a sample lead on a time-skipping server and print its timeline.

    The real workflow and activities run; emails go to a local SMTP sink. 90 days take
    seconds.
    """
    from journeys.personas import PERSONAS
    from journeys.registry import UnknownJourneyError, all_journeys, get_journey
    from starter.dev.simulation import parse_events, print_report, run_simulation

    try:
        definition = get_journey(journey)
    except UnknownJourneyError:
        raise typer.BadParameter(
            f"unknown journey {journey!r}; known: {', '.join(sorted(all_journeys()))}",
            param_hint="JOURNEY",
        ) from None
    if persona not in PERSONAS:
        raise typer.BadParameter(
            f"unknown persona {persona!r}; known: {', '.join(PERSONAS)}", param_hint="--persona"
        )
    try:
        played = parse_events(events)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--events") from None
    properties = _properties(prop or [])
    report = asyncio.run(
        run_simulation(
            definition, PERSONAS[persona], days=days, events=played, properties=properties
        )
    )
    print_report(report, days=days)
    _exit_without_finalizing(0)


@app.command()
def inbound(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (25 for an MX).")] = 2525,
) -> None:
    """Take bounces, complaints and replies over SMTP for NURTURE_BOUNCE_DOMAIN: stored
    before the 250, then processed by a workflow each (docs/deliverability.md)."""
    import logging

    from starter.inbound.service import run_listener

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run_listener(_settings(), host, port))


@app.command("upgrade-leads")
def upgrade_leads() -> None:
    """After a deploy: every running lead workflow continues as new on the deployed code
    (segments, triggers and date timers start for leads whose workflows began before)."""
    from starter.dev.provisioning.temporal import settings_address
    from starter.services.lead_workflow import upgrade_lead_workflows
    from starter.temporal_client import connect

    settings = _settings()

    async def upgrade() -> int:
        async with settings_address(settings) as address:
            client = await connect(address, settings.temporal_namespace)
            return await upgrade_lead_workflows(client)

    typer.echo(f"{asyncio.run(upgrade())} lead workflows asked to continue on the new code")
    _exit_without_finalizing(0)


@app.command("dns-records")
def dns_records() -> None:
    """Print the DNS records to publish for the configured sender: SPF, DKIM, DMARC, and the
    MX of the bounce domain."""
    from email.utils import parseaddr

    from activities.dkim_signing import public_key_record

    settings = _settings()
    sender_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "example.com"
    rows = [
        (sender_domain, "TXT", "v=spf1 mx a ~all  (add your relay's include:…)"),
        (f"_dmarc.{sender_domain}", "TXT",
         f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{sender_domain}; adkim=r; aspf=r"),
    ]  # fmt: skip
    if settings.dkim_domain and settings.dkim_selector and settings.dkim_private_key_file:
        record = public_key_record(settings.dkim_private_key_file.read_bytes())
        rows.append((f"{settings.dkim_selector}._domainkey.{settings.dkim_domain}", "TXT", record))
    else:
        typer.echo("(no DKIM record: set DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY_FILE)")
    if settings.bounce_domain:
        rows.append((settings.bounce_domain, "MX", "10 <the host that receives bounces>"))
    for name, kind, value in rows:
        typer.echo(f"{name}\t{kind}\t{value}")


def _properties(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` options as a dict."""
    properties = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--property")
        properties[key] = value
    return properties


@app.command()
def provision(
    postgres: Annotated[bool, typer.Option(help="Provide a PostgreSQL test database.")] = True,
    temporal: Annotated[bool, typer.Option(help="Find or build the Temporal CLI.")] = True,
    test_server: Annotated[
        bool, typer.Option(help="Fetch the time-skipping test server (Java, via Maven).")
    ] = True,
    browser: Annotated[
        bool, typer.Option(help="Find or install Chromium for the browser test.")
    ] = True,
    mta: Annotated[bool, typer.Option(help="Find or install Postfix for the relay test.")] = True,
) -> None:
    """Provision the dev stack for the tests; prints `TEST_DATABASE_URL=…` for the shell."""
    import logging

    from starter.dev.provisioning.postgres import PostgresProvisioningError, ensure_database
    from starter.dev.provisioning.temporal import ensure_temporal_cli

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if temporal:
        cli = ensure_temporal_cli()
        typer.echo(f"temporal CLI: {cli or 'none found; the SDK will download one'}", err=True)
    if test_server:
        from starter.dev.provisioning.test_server import ensure_test_server

        wrapper = ensure_test_server()
        typer.echo(
            f"test server: {wrapper or 'no Java/Maven; the SDK will download one'}", err=True
        )
    if browser:
        from starter.dev.provisioning.browser import ensure_chromium

        typer.echo(f"chromium: {ensure_chromium() or 'not found'}", err=True)
    if mta:
        from starter.dev.provisioning.postfix import PostfixProvisioningError, ensure_postfix

        try:
            typer.echo(f"postfix: {ensure_postfix()}", err=True)
        except (PostfixProvisioningError, OSError, subprocess.CalledProcessError) as exc:
            typer.echo(f"postfix: not available ({exc})", err=True)
    if postgres:
        try:
            url = ensure_database()
        except PostgresProvisioningError as exc:
            typer.echo(f"nurture provision: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"TEST_DATABASE_URL={url}")


@app.command()
def preview(
    template: Annotated[str, typer.Argument(help="Email template, e.g. welcome or wp_delivery.")],
    lead: Annotated[
        str | None, typer.Option(help="Render for this lead id (read from DATABASE_URL).")
    ] = None,
    persona: Annotated[
        str, typer.Option(help="Without --lead: render for this persona's sample lead.")
    ] = "decision-maker",
    html: Annotated[bool, typer.Option(help="Print the HTML part instead of the text.")] = False,
) -> None:
    """Render an email template as a lead would receive it (links untracked)."""
    from db.engine import create_engine_for, session_factory
    from db.migrate import upgrade_to_head
    from starter.services.errors import Problem
    from starter.services.preview import preview_template

    settings = _settings()

    async def render() -> None:
        await asyncio.to_thread(upgrade_to_head, settings.effective_database_url)
        engine = create_engine_for(settings.effective_database_url)
        try:
            result = await preview_template(
                settings, session_factory(engine), template, lead_id=lead, persona=persona
            )
        finally:
            await engine.dispose()
        typer.echo(f"Subject: {result.subject}\n")
        typer.echo(result.html if html else result.text)

    try:
        asyncio.run(render())
    except Problem as problem:
        typer.echo(f"nurture preview: {problem.message}", err=True)
        raise typer.Exit(1) from None


cluster_app = typer.Typer(
    help="A local Temporal cluster in the production shape (docs/operations.md): frontend, "
    "history, matching and worker as four processes on PostgreSQL, with SQL visibility.",
    invoke_without_command=True,
)
app.add_typer(broadcast_app, name="broadcast")
app.add_typer(cluster_app, name="cluster")


def _local_cluster(state_dir: Path | None, **spec: Any) -> LocalCluster:
    from starter.dev.provisioning.cluster import (
        ClusterSpec,
        LocalCluster,
        Postgres,
        default_state_dir,
        ensure_binaries,
    )
    from starter.dev.provisioning.postgres import ensure_database

    folder = state_dir or default_state_dir(_settings().data_dir)
    postgres = Postgres.from_url(ensure_database())
    return LocalCluster(ClusterSpec(state_dir=folder, postgres=postgres, **spec), ensure_binaries())


@cluster_app.callback()
def cluster(
    context: typer.Context,
    port: Annotated[int, typer.Option(help="The frontend's gRPC port.")] = 7233,
    shards: Annotated[
        int, typer.Option(min=1, max=16384, help="History shards (fixed once the database exists).")
    ] = 4,
    reset: Annotated[
        bool, typer.Option(help="Drop Temporal's databases first: every workflow is lost.")
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Config, pids and logs [default: $NURTURE_DATA_DIR/cluster]."),
    ] = None,
) -> None:
    """Build (once), set up and start the cluster; prints `TEMPORAL_ADDRESS=…`. Idempotent:
    running services are left alone."""
    import logging

    from starter.dev.provisioning.cluster import ClusterError
    from starter.dev.provisioning.postgres import PostgresProvisioningError

    if context.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        local = _local_cluster(
            state_dir, frontend_port=port, shards=shards, namespace=_settings().temporal_namespace
        )
        local.prepare(reset=reset)
        address = local.start()
        asyncio.run(local.wait_until_ready())
    except (ClusterError, PostgresProvisioningError) as exc:
        typer.echo(f"nurture cluster: {exc}", err=True)
        raise typer.Exit(1) from None
    pids = ", ".join(f"{service} {pid}" for service, pid in local.running().items())
    typer.echo(f"cluster running ({pids}); logs in {local.state_dir}", err=True)
    typer.echo("stop it with `nurture cluster stop`", err=True)
    typer.echo(f"TEMPORAL_ADDRESS={address}")
    _exit_without_finalizing(0)


@cluster_app.command("stop")
def cluster_stop(
    state_dir: Annotated[
        Path | None,
        typer.Option(help="The cluster's directory [default: $NURTURE_DATA_DIR/cluster]."),
    ] = None,
) -> None:
    """Stop the cluster's four services (SIGTERM, SIGKILL after 30s); its data stays."""
    from starter.dev.provisioning.cluster import ClusterError

    try:
        stopped = _local_cluster(state_dir).stop()
    except ClusterError as exc:
        typer.echo(f"nurture cluster stop: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no cluster service was running")


for _command in COMMANDS:  # the API's clients: enroll, leads, lead, feedback, funnel, journeys
    app.command()(_command)


def main() -> None:
    app(prog_name="nurture")


if __name__ == "__main__":
    main()
