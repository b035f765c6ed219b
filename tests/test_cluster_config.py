"""What `nurture cluster` writes for the Temporal server, read back as the server reads it
(YAML); no server is started here (tests/test_cluster.py starts one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from starter.dev.provisioning.cluster import (
    BASE_DYNAMIC_CONFIG,
    ClusterSpec,
    Postgres,
    Service,
    ServicePorts,
    free_port_block,
    render_config,
    render_dynamic_config,
)

POSTGRES = Postgres("127.0.0.1", 5432, "nurture", 'p@ss: "word" #1', "nurture_test")
PORTS = {
    Service.HISTORY: ServicePorts(17200, 17201),
    Service.MATCHING: ServicePorts(17202, 17203),
    Service.FRONTEND: ServicePorts(7233, 17205, http=17204),
    Service.WORKER: ServicePorts(17206, 17207),
}


def server_config(**spec: Any) -> dict[str, Any]:
    cluster = ClusterSpec(state_dir=Path("/state"), postgres=POSTGRES, **spec)
    loaded: dict[str, Any] = yaml.safe_load(render_config(cluster, PORTS))
    return loaded


def test_both_stores_are_postgres_with_the_configured_shards_and_databases() -> None:
    config = server_config(shards=8, database="t", visibility_database="tv")

    persistence = config["persistence"]
    stores = persistence["datastores"]
    assert persistence["numHistoryShards"] == 8
    assert stores[persistence["defaultStore"]]["sql"]["databaseName"] == "t"
    assert stores[persistence["visibilityStore"]]["sql"]["databaseName"] == "tv"
    assert {store["sql"]["pluginName"] for store in stores.values()} == {"postgres12"}


def test_a_password_with_yaml_syntax_in_it_reaches_the_server_unchanged() -> None:
    stores = server_config()["persistence"]["datastores"]

    assert {store["sql"]["password"] for store in stores.values()} == {POSTGRES.password}


def test_each_service_listens_on_its_own_loopback_ports() -> None:
    services = server_config()["services"]

    assert set(services) == {service.value for service in Service}
    assert services["frontend"]["rpc"]["httpPort"] == 17204
    assert all(s["rpc"]["bindOnLocalHost"] for s in services.values())
    ports = [p for s in services.values() for k, p in s["rpc"].items() if k.endswith("Port")]
    assert len(ports) == len(set(ports)) == 9


def test_the_dynamic_config_enables_update_with_start_and_takes_overrides() -> None:
    values = {**BASE_DYNAMIC_CONFIG, "frontend.namespaceRPS": 5}

    loaded = yaml.safe_load(render_dynamic_config(values))

    assert loaded["frontend.enableExecuteMultiOperation"] == [{"value": True, "constraints": {}}]
    assert loaded["frontend.namespaceRPS"][0]["value"] == 5


def test_a_port_block_is_consecutive_and_fits_temporals_smallint_membership_ports() -> None:
    ports = free_port_block(9)

    assert ports == list(range(ports[0], ports[0] + 9))
    assert ports[-1] < 32768
