"""Apply the Alembic migrations: run by the worker and the API at start-up, and by the tests."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

MIGRATIONS = Path(__file__).with_name("migrations")

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 0x6E757274


def upgrade_to_head(sync_url: str) -> None:
    """Bring the schema at `sync_url` to the newest revision.

    On PostgreSQL an advisory lock serialises the worker and the API starting together.
    """
    url = make_url(sync_url)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has no advisory lock: a lock file next to the database serialises the
        # worker and the API migrating one new demo database at the same time.
        with open(f"{url.database}.migrating", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _upgrade(url)
        return
    _upgrade(url)


def _upgrade(url: URL) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if url.get_backend_name() == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
