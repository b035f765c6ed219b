"""A local Temporal cluster in the production shape: `nurture cluster`.

Four `temporal-server` processes (frontend, history, matching, worker) persisting to
PostgreSQL, with SQL visibility, instead of the single-process dev server. The server and its
schema tool are built once with Go (`go install go.temporal.io/server/…@v1.29.1`, the server
the pinned CLI embeds; its go.mod has no `replace`, so it installs by version) and cached next
to the CLI. The databases live on the PostgreSQL the tests provision (`postgres.py`).

Everything here is idempotent: a second `start` leaves running services alone, reuses the
ports and config it wrote, and only migrates the schemas when the tool says they are behind.
State (config, pids, logs) lives in one directory per cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import psycopg
from google.protobuf.duration_pb2 import Duration
from psycopg import sql
from sqlalchemy.engine import make_url
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
    ListWorkflowExecutionsRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.dev.provisioning.paths import cache_dir
from starter.dev.provisioning.temporal import port_is_open

log = logging.getLogger(__name__)

SERVER_MODULE = "go.temporal.io/server"
SERVER_VERSION = "v1.29.1"
# What `go install` builds (named after the package's last path element) → what we call it.
_PACKAGES = {
    "cmd/server": ("server", "temporal-server"),
    "cmd/tools/sql": ("sql", "temporal-sql-tool"),
}

DEFAULT_FRONTEND_PORT = 7233
DEFAULT_SHARDS = 4
RETENTION = Duration(seconds=3 * 24 * 3600)


class ClusterError(RuntimeError):
    """The cluster could not be built, set up or started; the message says what to do."""


class Service(StrEnum):
    """The four Temporal services, in the order they are started (the worker service is a
    client of the frontend, so it comes last)."""

    HISTORY = "history"
    MATCHING = "matching"
    FRONTEND = "frontend"
    WORKER = "worker"


@dataclass(frozen=True)
class Binaries:
    server: Path
    sql_tool: Path


def binaries_dir() -> Path:
    """Where the server and schema tool of SERVER_VERSION are cached (beside the CLI)."""
    return cache_dir() / "bin" / f"temporal-server-{SERVER_VERSION}"


def find_binaries() -> Binaries | None:
    """The cached server and schema tool, if both are there."""
    folder = binaries_dir()
    found = Binaries(folder / "temporal-server", folder / "temporal-sql-tool")
    if all(os.access(path, os.X_OK) for path in (found.server, found.sql_tool)):
        return found
    return None


def build_binaries() -> Binaries:
    """`go install` the server and the schema tool into the cache (a few minutes, once)."""
    go = shutil.which("go")
    if go is None:
        raise ClusterError(
            "building the Temporal server needs Go (https://go.dev/dl/, 1.24 or later); "
            f"or put temporal-server and temporal-sql-tool {SERVER_VERSION} in {binaries_dir()}"
        )
    target = binaries_dir()
    target.mkdir(parents=True, exist_ok=True)
    log.warning(
        "building temporal-server and temporal-sql-tool %s with Go (first run only, minutes)…",
        SERVER_VERSION,
    )
    packages = [f"{SERVER_MODULE}/{package}@{SERVER_VERSION}" for package in _PACKAGES]
    try:
        subprocess.run(
            [go, "install", *packages],
            env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"},
            check=True,
            stdout=sys.stderr,  # keep stdout for what callers parse
            cwd=target,  # outside any Go module, so `@version` installs stand alone
        )
    except subprocess.CalledProcessError as exc:
        raise ClusterError(
            f"`go install {' '.join(packages)}` failed (exit {exc.returncode}); its output is "
            "above. It needs the Go module proxy (GOPROXY) or a warm module cache."
        ) from None
    for built, name in _PACKAGES.values():
        (target / built).replace(target / name)
    found = find_binaries()
    assert found is not None
    return found


def ensure_binaries() -> Binaries:
    """The cached binaries, building them when missing."""
    return find_binaries() or build_binaries()


@dataclass(frozen=True)
class Postgres:
    """Where Temporal's two databases live, and who creates them."""

    host: str
    port: int
    user: str
    password: str
    maintenance_database: str  # an existing database to connect to for CREATE DATABASE

    @classmethod
    def from_url(cls, url: str) -> Postgres:
        parsed = make_url(url)
        if not parsed.drivername.startswith("postgresql"):
            raise ClusterError(f"the Temporal cluster needs PostgreSQL, not {parsed.drivername}")
        return cls(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password or "",
            maintenance_database=parsed.database or "postgres",
        )

    def connect(self, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.maintenance_database,
            autocommit=True,
            connect_timeout=5,
        )


@dataclass(frozen=True)
class ServicePorts:
    grpc: int
    membership: int
    http: int | None = None  # the frontend's HTTP API only


@dataclass(frozen=True)
class ClusterSpec:
    """What one local cluster is: where its state lives, its databases and its size."""

    state_dir: Path
    postgres: Postgres
    frontend_port: int | None = None  # None: a free port
    shards: int = DEFAULT_SHARDS
    namespace: str = "default"
    database: str = "temporal"
    visibility_database: str = "temporal_visibility"
    # Connections per service process; four processes share the PostgreSQL's max_connections
    # with Nurture's own processes (100 by default), so keep these small.
    max_connections: int = 10
    max_visibility_connections: int = 4
    log_level: str = "warn"
    dynamic_config: dict[str, object] = field(default_factory=dict)


# Dynamic config: what Nurture needs (update-with-start for sales feedback, updates), eager
# activities (an activity a workflow task schedules goes straight back to its worker), and what
# the dev server sets by default (search attributes visible at once, the persistence QPS that
# goes with it). A test cluster's rate limits are raised so the load tests measure Nurture.
BASE_DYNAMIC_CONFIG: dict[str, object] = {
    "frontend.enableUpdateWorkflowExecution": True,
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted": True,
    "frontend.enableExecuteMultiOperation": True,
    "system.forceSearchAttributesCacheRefreshOnRead": True,
    "system.enableActivityEagerExecution": True,
    "frontend.persistenceMaxQPS": 10000,
    "history.persistenceMaxQPS": 45000,
    "matching.persistenceMaxQPS": 10000,
    "frontend.namespaceRPS": 10000,
    "frontend.rps": 10000,
    "frontend.namespaceRPS.visibility": 100,
    "history.hostLevelCacheMaxSize": 8192,
    "limit.maxIDLength": 255,
}


def _yaml_scalar(value: object) -> str:
    # JSON scalars are YAML scalars (quoted strings stay strings, whatever they contain).
    return json.dumps(value)


def render_dynamic_config(values: dict[str, object]) -> str:
    """The dynamic config file: each key, unconstrained."""
    lines = ["# Written by `nurture cluster`; re-read by the services every 10s."]
    for key, value in sorted(values.items()):
        lines += [f"{key}:", f"  - value: {_yaml_scalar(value)}", "    constraints: {}"]
    return "\n".join(lines) + "\n"


def render_config(spec: ClusterSpec, ports: dict[Service, ServicePorts]) -> str:
    """The static server config: PostgreSQL persistence and visibility, four services."""
    pg = spec.postgres

    def datastore(database: str, connections: int) -> str:
        return f"""      sql:
        pluginName: "postgres12"
        databaseName: {_yaml_scalar(database)}
        connectAddr: {_yaml_scalar(f"{pg.host}:{pg.port}")}
        connectProtocol: "tcp"
        user: {_yaml_scalar(pg.user)}
        password: {_yaml_scalar(pg.password)}
        maxConns: {connections}
        maxIdleConns: {connections}
        maxConnLifetime: "1h\""""

    services = []
    for service in Service:
        service_ports = ports[service]
        services.append(f"""  {service.value}:
    rpc:
      grpcPort: {service_ports.grpc}
      membershipPort: {service_ports.membership}
      bindOnLocalHost: true""")
        if service_ports.http is not None:
            services.append(f"      httpPort: {service_ports.http}")
    frontend = ports[Service.FRONTEND].grpc
    return f"""# Written by `nurture cluster` ({SERVER_VERSION}); docs/operations.md explains it.
log:
  stdout: true
  level: {_yaml_scalar(spec.log_level)}

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {spec.shards}
  datastores:
    postgres-default:
{datastore(spec.database, spec.max_connections)}
    postgres-visibility:
{datastore(spec.visibility_database, spec.max_visibility_connections)}

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"

services:
{chr(10).join(services)}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:{frontend}"

dcRedirectionPolicy:
  policy: "noop"

dynamicConfigClient:
  filepath: {_yaml_scalar(str(spec.state_dir / "dynamicconfig.yaml"))}
  pollInterval: "10s"
"""


class LocalCluster:
    """One local four-process cluster: its databases, config, processes and address."""

    ENV = "cluster"  # the server reads <config dir>/<env>.yaml

    def __init__(self, spec: ClusterSpec, binaries: Binaries) -> None:
        self.spec = spec
        self.binaries = binaries
        self.state_dir = spec.state_dir.resolve()
        self.config_dir = self.state_dir / "config"

    # -- state ---------------------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _read_state(self) -> dict[str, object]:
        try:
            loaded: dict[str, object] = json.loads(self._state_file.read_text())
            return loaded
        except (OSError, ValueError):
            return {}

    def _saved_ports(self) -> dict[Service, ServicePorts] | None:
        saved = self._read_state().get("ports")
        if not isinstance(saved, dict):
            return None
        return {Service(name): ServicePorts(**value) for name, value in saved.items()}

    def _choose_ports(self) -> dict[Service, ServicePorts]:
        """The saved ports when the frontend's is still the one asked for; else free ones."""
        saved = self._saved_ports()
        wanted = self.spec.frontend_port
        if saved is not None and wanted in (None, saved[Service.FRONTEND].grpc):
            return saved
        block = iter(free_port_block(9 if wanted is None else 8))
        chosen = {}
        for service in Service:
            grpc = wanted if service is Service.FRONTEND and wanted is not None else next(block)
            http = next(block) if service is Service.FRONTEND else None
            chosen[service] = ServicePorts(grpc=grpc, membership=next(block), http=http)
        return chosen

    def ports(self) -> dict[Service, ServicePorts]:
        """The ports the config names (chosen by `prepare`, kept across restarts)."""
        saved = self._saved_ports()
        if saved is None:
            raise ClusterError(f"no cluster set up in {self.state_dir}: run `nurture cluster`")
        return saved

    @property
    def address(self) -> str:
        """The frontend's gRPC address: what TEMPORAL_ADDRESS should be."""
        return f"127.0.0.1:{self.ports()[Service.FRONTEND].grpc}"

    def pid_file(self, service: Service) -> Path:
        return self.state_dir / f"{service.value}.pid"

    def log_file(self, service: Service) -> Path:
        return self.state_dir / f"{service.value}.log"

    def pid(self, service: Service) -> int | None:
        """The pid of `service` when it runs (checked against /proc, not only the pid file)."""
        try:
            pid = int(self.pid_file(service).read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, ValueError):
            return None
        # A recycled pid is someone else's process: ours runs our binary in our state dir.
        ours = [str(self.binaries.server), "--service", service]
        words = [word.decode(errors="replace") for word in command]
        if all(p in words for p in ours) and cwd == self.state_dir and not _has_exited(pid):
            return pid
        return None

    def running(self) -> dict[Service, int]:
        """The services that run now, with their pids."""
        return {service: pid for service in Service if (pid := self.pid(service)) is not None}

    # -- set-up --------------------------------------------------------------------------
    def prepare(self, *, reset: bool = False) -> None:
        """Create the databases, set up and migrate their schemas, write the config.

        `reset` drops both databases first (every workflow and namespace is lost)."""
        running = self.running()
        if running and reset:
            raise ClusterError(
                f"the cluster in {self.state_dir} runs ({', '.join(running)}): "
                "`nurture cluster stop` before a reset"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        state = self._read_state()
        databases = (self.spec.database, self.spec.visibility_database)
        if reset:
            self._drop_databases(databases)
            self._state_file.unlink(missing_ok=True)
            state = {}
        shards = state.get("shards")
        if shards is not None and shards != self.spec.shards and not reset:
            raise ClusterError(
                f"the databases were set up with {shards} history shards, not {self.spec.shards} "
                "(Temporal can't change that later): pass --shards "
                f"{shards}, or --reset to start over with empty databases"
            )
        self._create_databases(databases)
        self._migrate(self.spec.database, "postgresql/v12/temporal")
        self._migrate(self.spec.visibility_database, "postgresql/v12/visibility")
        ports = self._choose_ports()
        if ports != self._saved_ports():
            if running:
                raise ClusterError(
                    f"the cluster in {self.state_dir} runs on other ports: "
                    "`nurture cluster stop` first"
                )
            frontend = ports[Service.FRONTEND].grpc
            if port_is_open("127.0.0.1", frontend):
                raise ClusterError(
                    f"port {frontend} is taken (a dev server, or another cluster?): "
                    "stop it, or pass another --port"
                )
        (self.config_dir / f"{self.ENV}.yaml").write_text(render_config(self.spec, ports))
        (self.state_dir / "dynamicconfig.yaml").write_text(
            render_dynamic_config({**BASE_DYNAMIC_CONFIG, **self.spec.dynamic_config})
        )
        self._state_file.write_text(
            json.dumps(
                {
                    "version": SERVER_VERSION,
                    "shards": self.spec.shards,
                    "ports": {service.value: asdict(p) for service, p in ports.items()},
                },
                indent=2,
            )
        )

    def _create_databases(self, names: tuple[str, ...]) -> None:
        try:
            with self.spec.postgres.connect() as connection:
                for name in names:
                    exists = connection.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                    ).fetchone()
                    if not exists:
                        connection.execute(
                            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                        )
        except psycopg.Error as exc:
            pg = self.spec.postgres
            raise ClusterError(
                f"could not create {', '.join(names)} on PostgreSQL {pg.host}:{pg.port} as "
                f"{pg.user} ({exc}): the role needs CREATEDB; `nurture provision` sets one up"
            ) from None

    def drop_databases(self) -> None:
        """Drop both databases (a stopped cluster's: tests clean up their own)."""
        if running := self.running():
            raise ClusterError(f"{', '.join(running)} still running: stop the cluster first")
        self._drop_databases((self.spec.database, self.spec.visibility_database))
        self._state_file.unlink(missing_ok=True)

    def _drop_databases(self, names: tuple[str, ...]) -> None:
        with self.spec.postgres.connect() as connection:
            for name in names:
                _drop_database(connection, name)

    def _sql_tool(self, database: str, *args: str) -> None:
        pg = self.spec.postgres
        command = [
            str(self.binaries.sql_tool),
            "--plugin", "postgres12",
            "--endpoint", pg.host,
            "--port", str(pg.port),
            "--user", pg.user,
            "--db", database,
            *args,
        ]  # fmt: skip
        # The password goes by environment, not on a command line `ps` shows.
        done = subprocess.run(
            command,
            env={**os.environ, "SQL_PASSWORD": pg.password},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ClusterError(
                f"temporal-sql-tool {' '.join(args)} on {database} failed:\n"
                f"{done.stdout}{done.stderr}"
            )

    def _migrate(self, database: str, schema: str) -> None:
        # Both steps are no-ops on an up-to-date database: setup only adds the version
        # tables when missing, update applies the embedded versions not yet applied.
        self._sql_tool(database, "setup-schema", "-v", "0.0")
        self._sql_tool(database, "update-schema", "--schema-name", schema)

    # -- processes -----------------------------------------------------------------------
    def start_service(self, service: Service) -> int:
        """Start `service` unless it runs; returns its pid."""
        if (pid := self.pid(service)) is not None:
            return pid
        with self.log_file(service).open("ab") as log_out:
            process = subprocess.Popen(
                [
                    str(self.binaries.server),
                    # Relative to the working directory: the server joins it onto --root.
                    "--config",
                    self.config_dir.name,
                    "--env",
                    self.ENV,
                    "--allow-no-auth",
                    "start",
                    "--service",
                    service.value,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # outlives `nurture cluster`; stopped by its pid
            )
        self.pid_file(service).write_text(str(process.pid))
        return process.pid

    def start(self) -> str:
        """Start the four services (those not running); returns the frontend's address."""
        if not (self.config_dir / f"{self.ENV}.yaml").exists():
            raise ClusterError(f"no config in {self.config_dir}: prepare() the cluster first")
        first, *others = Service
        self.start_service(first)
        # On empty databases the first service writes the cluster's metadata; services
        # starting at the same moment race for that row and the losers exit.
        self._wait_for_cluster_metadata(first)
        for service in others:
            self.start_service(service)
        return self.address

    def _wait_for_cluster_metadata(self, starting: Service, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.spec.postgres.connect(self.spec.database) as connection:
                if connection.execute("SELECT 1 FROM cluster_metadata_info LIMIT 1").fetchone():
                    return
            if self.exited(starting):
                raise self._exited_error(starting)
            time.sleep(0.2)
        raise ClusterError(
            f"{starting} wrote no cluster metadata within {within:.0f}s; "
            f"its log ({self.log_file(starting)}):\n{self.log_tail(starting)}"
        )

    def exited(self, service: Service) -> bool:
        """Whether the process last started for `service` has exited (or never started)."""
        try:
            pid = int(self.pid_file(service).read_text())
        except (OSError, ValueError):
            return True
        return _has_exited(pid)

    def _exited_error(self, service: Service) -> ClusterError:
        return ClusterError(
            f"{service} exited during start-up; its log ({self.log_file(service)}) ends:\n"
            + self.log_tail(service)
        )

    def signal_service(self, service: Service, signum: signal.Signals) -> int | None:
        """Send `signum` to `service`; its pid, or None when it was not running."""
        pid = self.pid(service)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pid

    def kill_service(self, service: Service) -> None:
        """SIGKILL `service` and wait until it is gone (a crash, for fault tests)."""
        pid = self.signal_service(service, signal.SIGKILL)
        if pid is not None and not _wait_gone(pid, 10):
            raise ClusterError(f"{service} (pid {pid}) did not die on SIGKILL")

    def stop(self, within: float = 30) -> list[Service]:
        """Stop every service (SIGTERM, then SIGKILL after `within` seconds); returns the
        services that were running."""
        pids = {
            service: pid
            for service in Service
            if (pid := self.signal_service(service, signal.SIGTERM)) is not None
        }
        for pid in pids.values():
            if not _wait_gone(pid, within):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)
        for service in Service:
            self.pid_file(service).unlink(missing_ok=True)
        return list(pids)

    def log_tail(self, service: Service, lines: int = 20) -> str:
        try:
            return "\n".join(
                self.log_file(service).read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""

    # -- readiness -----------------------------------------------------------------------
    async def start_ready(self) -> None:
        """Set up the databases, start the four services and wait until they answer (the
        blocking steps in a thread, so an event loop stays free)."""
        await asyncio.to_thread(self.prepare)
        await asyncio.to_thread(self.start)
        await self.wait_until_ready()

    async def wait_until_ready(self, within: float = 120) -> None:
        """Wait until every service answers, then register the namespace (once) and wait
        until it is usable: the frontend, history (a describe of a workflow that doesn't
        exist), matching (a task queue's description) and visibility (a list) all answer."""
        deadline = asyncio.get_running_loop().time() + within
        last_error = "no answer yet"
        namespace = self.spec.namespace
        while asyncio.get_running_loop().time() < deadline:
            if dead := [service for service in Service if self.exited(service)]:
                raise self._exited_error(dead[0])
            try:
                client = await Client.connect(self.address, namespace=namespace)
                await _register_namespace(client, namespace)
                await _probe(client, namespace)
                return
            except (RPCError, RuntimeError) as exc:
                last_error = str(exc)
            await asyncio.sleep(0.5)
        raise ClusterError(
            f"the cluster at {self.address} was not ready within {within:.0f}s ({last_error}); "
            f"logs in {self.state_dir}"
        )


def free_port_block(count: int, start: int = 17200, stop: int = 32000) -> list[int]:
    """`count` consecutive free loopback ports below 32768.

    Below the kernel's ephemeral range, so no outgoing connection takes one meanwhile; and
    Temporal's PostgreSQL schema keeps membership ports in a smallint (at most 32767)."""
    for base in range(start, stop - count, 10):
        ports = list(range(base, base + count))
        if all(_port_is_free(port) for port in ports):
            return ports
    raise ClusterError(f"no {count} consecutive free ports between {start} and {stop}")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_gone(pid: int, within: float) -> bool:
    """Wait until process `pid` has exited (a zombie has: it holds no port or file)."""
    deadline = time.monotonic() + within
    while not _has_exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _has_exited(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


async def _register_namespace(client: Client, namespace: str) -> None:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace, workflow_execution_retention_period=RETENTION
            )
        )
        log.info("registered namespace %s", namespace)
    except RPCError as error:
        if error.status != RPCStatusCode.ALREADY_EXISTS:  # registered meanwhile: fine
            raise


async def _probe(client: Client, namespace: str) -> None:
    service = client.workflow_service
    try:
        await service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=namespace,
                execution=WorkflowExecution(workflow_id="nurture-cluster-readiness-probe"),
            )
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # history answered: there is no such thing
            raise
    await service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=namespace,
            task_queue=TaskQueue(name="nurture-cluster-readiness-probe"),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    await service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace=namespace, page_size=1)
    )


def default_state_dir(data_dir: Path) -> Path:
    """Where `nurture cluster` keeps its config, pids and logs."""
    return data_dir / "cluster"


DROP_TRIES = 20


def _drop_database(connection: psycopg.Connection, name: str) -> None:
    """Drop `name`, closing its sessions first.

    FORCE terminates every session on the database, and refuses to a role that isn't a
    superuser when one of them is an autovacuum worker (whose role is none: PostgreSQL 15
    reports "must be a member of the role whose process is being terminated"). Autovacuum
    visits a database soon after heavy writes (it did after the cluster lane restarted
    PostgreSQL under load). A plain DROP cancels autovacuum itself, waiting up to 5 s for
    it, so that is the fallback; between tries, a session of ours still closing goes.
    """
    force = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    plain = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    for attempt in range(DROP_TRIES):
        try:
            connection.execute(force)
            return
        except psycopg.errors.InsufficientPrivilege:
            pass
        try:
            connection.execute(plain)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == DROP_TRIES - 1:
                raise
            time.sleep(0.5)
