"""Versioned schema migrations of the Postgres sink (`tokengine db migrate`).

Owns `sinks/migrations/NNNN_name.sql`: each file is applied once, in order, in its own
transaction, and recorded in `schema_migrations` with its checksum. A recorded migration
whose file changed is an error (migrations are append-only). Concurrent migrators take an
advisory lock, so two starting processes cannot apply one file twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LOCK_ID = 0x70_6B_65_6E  # any constant; the same for every migrator


class MigrationError(RuntimeError):
    pass


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        version = int(path.name.split("_", 1)[0])
        found.append((version, path.stem, path.read_text()))
    versions = [version for version, _, _ in found]
    if versions != sorted(set(versions)):
        raise RuntimeError("migration versions must be unique and in order")
    return found


def database_url_named(database_url: str, name: str) -> str:
    """The same server, user and options (e.g. `?passfile=`), another database."""
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def migrate(database_url: str) -> list[str]:
    """Apply the migrations not applied yet; returns their names."""
    applied_now = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                version: checksum
                for version, checksum in conn.execute(
                    "SELECT version, checksum FROM schema_migrations"
                )
            }
            for version, name, sql in migrations():
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version] != checksum:
                        raise MigrationError(f"{name} changed after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (version, name, checksum),
                    )
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied_now
