"""PostgreSQL provisioning for tests, CI and the dev stack.

`TEST_DATABASE_URL` (or a PostgreSQL `DATABASE_URL`) wins. Otherwise, on a Debian machine,
install the `postgresql` package when it is missing (needs root), start a cluster listening
on loopback, and create a `nurture` role and database.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from starter.dev.provisioning.debian_packages import apt_install, can_install

log = logging.getLogger(__name__)

ROLE = "nurture"
PASSWORD = "nurture"
DEFAULT_DATABASE = "nurture_test"


class PostgresProvisioningError(RuntimeError):
    """PostgreSQL could not be provided; the message says what to do instead."""


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    running: bool


def configured_url() -> str | None:
    """A PostgreSQL URL the environment names for tests, if any."""
    for name in ("TEST_DATABASE_URL", "DATABASE_URL"):
        value = os.environ.get(name, "")
        if value.startswith("postgresql"):
            return value
    return None


def _run(args: list[str], *, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, capture_output=True, cwd=cwd)


def _install_postgres() -> None:
    if not can_install():
        raise PostgresProvisioningError(
            "PostgreSQL is not installed and can't be installed here (needs root and apt-get): "
            "install it, or set TEST_DATABASE_URL=postgresql+psycopg://user:pass@host/db"
        )
    apt_install(["postgresql"])


def clusters() -> list[Cluster]:
    """The Debian-managed clusters on this machine."""
    if shutil.which("pg_lsclusters") is None:
        return []
    out = _run(["pg_lsclusters", "--no-header"]).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            found.append(Cluster(parts[0], parts[1], int(parts[2]), parts[3].startswith("online")))
    return found


def _newest_installed_version() -> str | None:
    versions = sorted(
        (
            p.name
            for p in Path("/usr/lib/postgresql").glob("*")
            if (p / "bin" / "postgres").exists()
        ),
        key=lambda v: float(v) if v.replace(".", "").isdigit() else 0.0,
    )
    return versions[-1] if versions else None


def ensure_cluster() -> Cluster:
    """A running cluster, installing and creating one when needed."""
    if shutil.which("pg_lsclusters") is None or _newest_installed_version() is None:
        _install_postgres()
    existing = clusters()
    if not existing:
        version = _newest_installed_version()
        assert version is not None
        _run(["pg_createcluster", version, "main"])
        existing = clusters()
    cluster = next((c for c in existing if c.running), existing[0])
    if not cluster.running:
        log.warning("starting PostgreSQL cluster %s/%s…", cluster.version, cluster.name)
        _run(["pg_ctlcluster", cluster.version, cluster.name, "start"])
        cluster = Cluster(cluster.version, cluster.name, cluster.port, True)
    return cluster


def _psql_as_postgres(cluster: Cluster, sql: str, database: str = "postgres") -> str:
    command = ["psql", "-p", str(cluster.port), "-d", database, "-tAc", sql]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return _run(command, cwd="/").stdout.strip()


def url_for(port: int, database: str) -> str:
    return f"postgresql+psycopg://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{database}"


def _can_connect(port: int, database: str) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user=ROLE,
            password=PASSWORD,
            dbname=database,
            connect_timeout=3,
        ):
            return True
    except psycopg.Error:
        return False


def ensure_database(database: str = DEFAULT_DATABASE) -> str:
    """A SQLAlchemy URL of a PostgreSQL database that accepts connections."""
    if url := configured_url():
        return url
    for cluster in clusters():
        if cluster.running and _can_connect(cluster.port, database):
            return url_for(cluster.port, database)
    cluster = ensure_cluster()
    if _psql_as_postgres(cluster, f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'") != "1":
        _psql_as_postgres(cluster, f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
    if _psql_as_postgres(cluster, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") != "1":
        _psql_as_postgres(cluster, f"CREATE DATABASE {database} OWNER {ROLE}")
    if not _can_connect(cluster.port, database):
        raise PostgresProvisioningError(
            f"PostgreSQL on port {cluster.port} refuses {ROLE}@127.0.0.1: check pg_hba.conf, "
            "or set TEST_DATABASE_URL"
        )
    return url_for(cluster.port, database)
