"""The `nurture` command line."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from starter.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Nurture: buyer journeys as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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

    from starter.api import create_app

    settings = _settings()
    try:
        application = create_app(settings)
    except SettingsError as exc:
        typer.echo(f"nurture api: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def worker() -> None:
    """Run the worker (the same as `python worker.py`)."""
    import worker as worker_module

    worker_module.main()


@app.command()
def demo(
    exit_after_scenario: Annotated[
        bool, typer.Option("--exit-after-scenario", help="Stop once the scenario has run.")
    ] = False,
) -> None:
    """Run the whole stack on embedded defaults and a scripted scenario with sample leads."""
    import logging

    from starter.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run_demo(_settings(), exit_after_scenario=exit_after_scenario))


@app.command()
def provision(
    postgres: Annotated[bool, typer.Option(help="Provide a PostgreSQL test database.")] = True,
    temporal: Annotated[bool, typer.Option(help="Find or build the Temporal CLI.")] = True,
) -> None:
    """Provision the dev stack for the tests; prints `TEST_DATABASE_URL=…` for the shell."""
    import logging

    from starter.provisioning.postgres import PostgresProvisioningError, ensure_database
    from starter.provisioning.temporal import ensure_temporal_cli

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if temporal:
        cli = ensure_temporal_cli()
        typer.echo(f"temporal CLI: {cli or 'none found; the SDK will download one'}", err=True)
    if postgres:
        try:
            url = ensure_database()
        except PostgresProvisioningError as exc:
            typer.echo(f"nurture provision: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"TEST_DATABASE_URL={url}")


def main() -> None:
    app(prog_name="nurture")


if __name__ == "__main__":
    sys.exit(main())
