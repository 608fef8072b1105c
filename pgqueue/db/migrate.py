"""Apply the Alembic migrations without the caller knowing where they live.

From a checkout the scripts are the repo's ``migrations/``; from an installed
wheel they ship as the ``pgqueue.migrations`` package. Either way the config
is built in code, so no ``alembic.ini`` is needed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from pgqueue.errors import SchemaOutdated


def migrations_dir() -> Path:
    # pgqueue/db/migrate.py: the package is two levels up. An installed
    # wheel has pgqueue/migrations; a checkout has migrations/ beside pgqueue/.
    package_dir = Path(__file__).resolve().parents[1]
    for candidate in (package_dir / "migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("pgqueue's migrations are missing from this installation")


def sqlalchemy_url(database_url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Alembic interpolates '%' in option values.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision``; returns the revisions before and after."""
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    return before, current_revision(database_url)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def require_head(database_url: str) -> None:
    """Raise ``SchemaOutdated``, whose message names ``pgqueue migrate``,
    unless the database is at the newest revision (``server`` and
    ``worker`` never change it; the CLI exits with the message)."""
    current, head = current_revision(database_url), head_revision()
    if current != head:
        raise SchemaOutdated(
            f"pgqueue: the database schema is at {current or 'nothing'}, this version needs "
            f"{head}. Run `pgqueue migrate` (with the same DATABASE_URL) first."
        )
