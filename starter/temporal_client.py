"""The one way to reach Temporal: every process uses the same data converter (pydantic)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


async def connect(address: str, namespace: str) -> Client:
    """A client for `address`/`namespace` that (de)serialises pydantic models."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )
