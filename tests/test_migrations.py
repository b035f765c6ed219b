"""The schema comes from Alembic migrations, applied idempotently."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from db.migrate import upgrade_to_head
from db.models import Base


def test_migrations_create_every_table_of_the_models_on_postgresql(database_url: str) -> None:
    upgrade_to_head(database_url)  # a second run changes nothing

    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrations_create_the_demo_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo' / 'nurture.db'}"

    upgrade_to_head(url)
    upgrade_to_head(url)

    engine = create_engine(url)
    try:
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
