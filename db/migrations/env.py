"""Alembic environment: migrations run on the connection handed over by db.migrate."""

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from db.models import Base


def migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite can't ALTER most things: batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    migrate(handed_over)
else:
    # `alembic -c db/alembic.ini revision --autogenerate`: DATABASE_URL names the database.
    with create_engine(os.environ["DATABASE_URL"]).begin() as connection:
        migrate(connection)
