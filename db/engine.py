"""Engines and sessions for the application database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def async_url(sync_url: str) -> str:
    """The asyncio driver URL for a synchronous SQLAlchemy URL."""
    url = make_url(sync_url)
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    # psycopg 3 serves both the sync and the async dialect under one name.
    return url.render_as_string(hide_password=False)


def create_engine_for(sync_url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An async engine for `sync_url`; creates the SQLite file's folder when needed."""
    url = make_url(sync_url)
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url(sync_url), connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        async_url(sync_url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The demo's worker and API share one SQLite file: WAL lets readers and a writer overlap.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erasure: overwrite deleted and replaced content with zeros instead of leaving it in
    # free pages of the file (the erasure also checkpoints the WAL).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
