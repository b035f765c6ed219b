"""Running the inbound listener as a process (`nurture inbound`): migrate, connect, pick
up what a previous run stored but didn't hand over, listen until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from starter.inbound.listener import InboundHandler, serve
from starter.settings import Settings
from starter.temporal_client import connect

log = logging.getLogger(__name__)


async def run_listener(settings: Settings, host: str, port: int) -> None:
    """Serve SMTP on `host:port` until SIGTERM or SIGINT."""
    await asyncio.to_thread(upgrade_to_head, settings.effective_database_url)
    engine = create_engine_for(settings.effective_database_url)
    try:
        client = await connect(
            settings.temporal_address or "127.0.0.1:7233", settings.temporal_namespace
        )
        handler = InboundHandler(
            session_factory(engine), client, settings.task_queue, settings.bounce_domain
        )
        picked_up = await handler.recover()
        server = await serve(handler, host, port)
        log.info("inbound SMTP on %s:%d (%d stored messages picked up)", host, port, picked_up)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with server:
            await stop.wait()
    finally:
        await engine.dispose()
