"""`python worker.py` as operators run it: registers search attributes, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from starter.dev.provisioning.temporal import register_search_attributes
from starter.settings import Settings
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent


async def new_namespace(client: Client) -> str:
    name = f"ns-{uuid.uuid4().hex[:10]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    return name


async def custom_attributes(client: Client, namespace: str) -> set[str]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return set(response.custom_attributes)


async def test_missing_search_attributes_are_added_once(temporal_client: Client) -> None:
    namespace = await new_namespace(temporal_client)

    added = await register_search_attributes(temporal_client, namespace, search_attributes.ALL)
    again = await register_search_attributes(temporal_client, namespace, search_attributes.ALL)

    assert added == sorted(key.name for key in search_attributes.ALL)
    assert again == []
    assert {key.name for key in search_attributes.ALL} <= await custom_attributes(
        temporal_client, namespace
    )


async def test_worker_process_registers_attributes_and_stops_cleanly_on_sigterm(
    temporal_client: Client, settings: Settings
) -> None:
    namespace = await new_namespace(temporal_client)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "TEMPORAL_NAMESPACE": namespace,
        "NURTURE_TASK_QUEUE": settings.task_queue,
        "DATABASE_URL": settings.effective_database_url,
        "NURTURE_SECRET_KEY": settings.require_secret_key(),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = b""
    assert process.stdout is not None
    while b"worker on" not in output:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, output.decode()
        output += line

    process.send_signal(signal.SIGTERM)
    rest, _ = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, (output + rest).decode()
    assert b"worker stopped" in rest
    assert {key.name for key in search_attributes.ALL} <= await custom_attributes(
        temporal_client, namespace
    )
