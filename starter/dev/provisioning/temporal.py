"""Temporal provisioning: find or build the CLI, start a dev server, register search attributes.

Order of preference for a server: `TEMPORAL_ADDRESS`; a `temporal` binary on PATH or in the
cache; the pinned CLI built with Go (`go install …@v1.5.1`: later tags carry a `replace`
directive and can't be installed by version); the SDK's own download (needs internet).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from starter.dev.provisioning.paths import cache_dir
from starter.settings import Settings

log = logging.getLogger(__name__)

TEMPORAL_CLI_MODULE = "github.com/temporalio/cli/cmd/temporal"
TEMPORAL_CLI_VERSION = "v1.5.1"

# Update-with-start (used for sales feedback) needs multi-operations on the frontend.
# Eager activities: an activity a workflow task schedules goes back to the worker in the
# task's completion when the worker has a free slot, not round through matching
# (docs/performance.md); off by default in the server.
DEV_SERVER_ARGS = (
    "--dynamic-config-value", "frontend.enableExecuteMultiOperation=true",
    "--dynamic-config-value", "system.enableActivityEagerExecution=true",
)  # fmt: skip

DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233


def cli_cache_dir() -> Path:
    return cache_dir() / "bin"


def find_temporal_cli() -> Path | None:
    """A `temporal` binary on PATH or in the cache, if there is one."""
    on_path = shutil.which("temporal")
    if on_path:
        return Path(on_path)
    cached = cli_cache_dir() / "temporal"
    return cached if os.access(cached, os.X_OK) else None


def build_temporal_cli() -> Path | None:
    """Build the pinned CLI with Go into the cache; None when Go is not installed."""
    go = shutil.which("go")
    if go is None:
        return None
    target = cli_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    log.warning(
        "building the Temporal CLI %s with Go (first run only, a few minutes)…",
        TEMPORAL_CLI_VERSION,
    )
    subprocess.run(
        [go, "install", f"{TEMPORAL_CLI_MODULE}@{TEMPORAL_CLI_VERSION}"],
        env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"},
        check=True,
        stdout=sys.stderr,  # keep stdout for what callers parse
    )
    return target / "temporal"


def ensure_temporal_cli() -> Path | None:
    """The CLI to run, building it when needed; None means: let the SDK download one."""
    return find_temporal_cli() or build_temporal_cli()


def port_is_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def start_dev_server(
    *,
    namespace: str = "default",
    port: int | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    database_file: Path | None = None,
    search_attributes: Iterable[SearchAttributeKey] = (),
    metrics_port: int | None = None,
) -> WorkflowEnvironment:
    """Start `temporal server start-dev`; state persists in `database_file` when given;
    Prometheus metrics on `metrics_port` when given (the benchmarks read them)."""
    cli = ensure_temporal_cli()
    if database_file is not None:
        database_file.parent.mkdir(parents=True, exist_ok=True)
    return await WorkflowEnvironment.start_local(
        namespace=namespace,
        data_converter=pydantic_data_converter,
        port=port,
        ui=ui,
        ui_port=ui_port,
        search_attributes=tuple(search_attributes),
        dev_server_existing_path=str(cli) if cli else None,
        dev_server_database_filename=str(database_file) if database_file else None,
        dev_server_extra_args=[
            *DEV_SERVER_ARGS,
            *(["--metrics-port", str(metrics_port)] if metrics_port else []),
        ],
    )


@asynccontextmanager
async def temporal_address(
    configured: str | None, *, namespace: str, data_dir: Path
) -> AsyncIterator[str]:
    """The Temporal frontend to use: `configured`, a server already on localhost:7233, or an
    embedded dev server (state in `data_dir/temporal.db`, UI on :8233) for as long as the
    context lasts."""
    if configured:
        yield configured
        return
    if port_is_open("127.0.0.1", DEFAULT_PORT):
        yield f"127.0.0.1:{DEFAULT_PORT}"
        return
    env = await start_dev_server(
        namespace=namespace,
        port=DEFAULT_PORT,
        ui=True,
        ui_port=DEFAULT_UI_PORT,
        database_file=data_dir / "temporal.db",
    )
    log.info(
        "embedded Temporal dev server on 127.0.0.1:%d, UI on http://localhost:%d",
        DEFAULT_PORT,
        DEFAULT_UI_PORT,
    )
    try:
        yield f"127.0.0.1:{DEFAULT_PORT}"
    finally:
        await env.shutdown()


def settings_address(settings: Settings) -> AbstractAsyncContextManager[str]:
    """`temporal_address` for `settings` (what `nurture api` gives the app factory)."""
    return temporal_address(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_dir=settings.data_dir,
    )


_INDEXED_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeIndexedValueType.KEYWORD_LIST: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


async def register_search_attributes(
    client: Client, namespace: str, keys: Iterable[SearchAttributeKey]
) -> list[str]:
    """Add the custom search attributes the server lacks; returns the names it added.

    Servers that can't list them (the Java time-skipping test server) get each one added,
    with "already exists" taken as success.
    """
    wanted = {key.name: _INDEXED_TYPES[key.indexed_value_type] for key in keys}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        added = []
        for name, kind in wanted.items():
            try:
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(namespace=namespace, search_attributes={name: kind})
                )
                added.append(name)
            except RPCError as add_error:
                if add_error.status != RPCStatusCode.ALREADY_EXISTS and "already exists" not in str(
                    add_error
                ):
                    raise
        return sorted(added)
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {name: kind for name, kind in wanted.items() if name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        log.info("registered search attributes %s", ", ".join(sorted(missing)))
    return sorted(missing)
