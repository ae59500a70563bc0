"""Alembic environment: the URL comes from the caller (kit/migrate.py), never from a file."""

from __future__ import annotations

from alembic import context

import likeness.models  # noqa: F401  (registers the tables on Base.metadata)
from likeness.kit.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "kit.migrate.upgrade sets sqlalchemy.url"

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
