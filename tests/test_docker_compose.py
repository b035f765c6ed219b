"""docker-compose.yml stays in step with the settings (Docker itself can't run here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from starter.dev.provisioning.cluster import BASE_DYNAMIC_CONFIG
from starter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTING_NAMES = {field.alias for field in Settings.model_fields.values()}


def test_the_stack_has_every_service() -> None:
    assert set(COMPOSE["services"]) == {
        "postgres",
        "temporal",
        "temporal-ui",
        "mailpit",
        "worker",
        "api",
    }


@pytest.mark.parametrize("service", ["worker", "api"])
def test_nurture_services_are_configured_only_with_known_setting_names(service: str) -> None:
    environment = COMPOSE["services"][service]["environment"]

    assert set(environment) <= SETTING_NAMES, set(environment) - SETTING_NAMES
    assert {
        "TEMPORAL_ADDRESS",
        "DATABASE_URL",
        "SMTP_HOST",
        "NURTURE_SECRET_KEY",
        "NURTURE_API_KEYS",
    } <= set(environment)


@pytest.mark.parametrize("service", ["worker", "api"])
def test_nurture_services_point_at_the_stack_services(service: str) -> None:
    environment = COMPOSE["services"][service]["environment"]

    assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert environment["SMTP_HOST"] == "mailpit"
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert COMPOSE["services"][service]["build"] == "."


def test_compose_values_are_valid_settings() -> None:
    environment = {
        name: value
        for name, value in COMPOSE["services"]["worker"]["environment"].items()
        if not str(value).startswith("${")
    }

    settings = Settings(**environment)

    assert settings.smtp_port == 1025
    assert settings.temporal_address == "temporal:7233"


def test_temporal_persists_to_the_stack_postgresql_with_multi_operations_enabled() -> None:
    temporal = COMPOSE["services"]["temporal"]
    config = yaml.safe_load((ROOT / "deploy/temporal/dynamicconfig.yaml").read_text())

    assert temporal["environment"]["DB"].startswith("postgres")
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgres"
    assert config["frontend.enableExecuteMultiOperation"][0]["value"] is True


def test_temporal_gets_the_dynamic_config_the_cluster_lane_runs_with() -> None:
    """The stack's dynamic config is `nurture cluster`'s, key for key and value for value."""
    config = yaml.safe_load((ROOT / "deploy/temporal/dynamicconfig.yaml").read_text())

    assert config == {
        key: [{"value": value, "constraints": {}}] for key, value in BASE_DYNAMIC_CONFIG.items()
    }


def test_the_server_reads_the_mounted_dynamic_config_file() -> None:
    temporal = COMPOSE["services"]["temporal"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in temporal["volumes"]}

    # auto-setup resolves DYNAMIC_CONFIG_FILE_PATH under its /etc/temporal working directory.
    read_from = "/etc/temporal/" + temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert mounts["./deploy/temporal/dynamicconfig.yaml"] == read_from


def test_two_workers_share_the_task_queue_as_in_the_cluster_lane() -> None:
    worker = COMPOSE["services"]["worker"]

    assert worker["deploy"]["replicas"] == 2
    # Replicas can't share a container name or a published port.
    assert "container_name" not in worker and "ports" not in worker


def test_images_are_pinned() -> None:
    for name, service in COMPOSE["services"].items():
        if "image" in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name


def test_the_dockerfile_installs_every_package_of_the_repo() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    for package in ("workflows", "activities", "journeys", "starter", "db", "worker.py"):
        assert f"COPY {package}" in dockerfile, package


def test_the_image_copies_every_package_the_project_installs() -> None:
    """The Dockerfile names its sources one by one (for layer caching): a package added to
    pyproject.toml and forgotten here would make the image fail at import."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        line.split()[1].rstrip("/")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }

    assert packages <= copied, packages - copied
