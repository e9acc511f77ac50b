"""The deployment files: compose validates, runs two replicas that Prometheus both scrapes,
and the image runs as a non-root user with a health check on the service's health route."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from invite.kernel.settings import ROOT, Settings


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


COMPOSE = _compose_command()


@pytest.mark.skipif(COMPOSE is None, reason="no compose client (docker compose or docker-compose)")
def test_compose_config_validates() -> None:
    assert COMPOSE is not None
    result = subprocess.run(
        [*COMPOSE, "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    replicas = _replicas(resolved["services"])
    assert len(replicas) == 2
    replica_ids = {service["environment"]["REPLICA_ID"] for service in replicas.values()}
    assert len(replica_ids) == 2, "each replica needs its own id for leases"


def test_two_replicas_share_one_database_and_start_after_vault_is_seeded() -> None:
    services = _compose()["services"]
    replicas = _replicas(services)
    assert len(replicas) == 2
    for service in replicas.values():
        env = service["environment"]
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert env["VAULT_ADDR"] == "http://vault:8200"
        assert service["depends_on"]["vault-seed"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["vault"]["image"].startswith("hashicorp/vault")
    assert "-dev" in services["vault"]["command"]


def test_replica_environment_names_real_settings() -> None:
    fields = {name.upper() for name in Settings.__struct_fields__}
    for service in _replicas(_compose()["services"]).values():
        unknown = set(service["environment"]) - fields
        assert not unknown, f"compose sets variables no setting reads: {unknown}"


def test_prometheus_scrapes_every_replica_and_loads_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "invite")
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {f"{name}:8000" for name in _replicas(_compose()["services"])}
    assert job["metrics_path"] == "/metrics"
    mounts = _compose()["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/alerts.yml:") for m in mounts)
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]


def test_vault_seed_writes_the_secrets_the_service_reads() -> None:
    script = (ROOT / "deploy" / "vault-seed.sh").read_text()
    assert re.search(r"kv put -mount=kv jwt secret_key=", script)
    assert re.search(r"kv put -mount=kv integration-service\s*\\?\s*telegram_api_id=", script)
    assert "telegram_api_hash=" in script
    assert "-mount=kv invite-service/" in script
    assert "auth/approle/login" in script
    result = subprocess.run(
        ["sh", "-n", str(ROOT / "deploy" / "vault-seed.sh")], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_image_is_multi_stage_non_root_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    assert len(stages) == 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user
    assert user[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*", dockerfile, re.MULTILINE)
    assert "/health" in dockerfile
    assert re.search(r'^CMD \["python", "-m", "invite", "serve"\]', dockerfile, re.MULTILINE)
    assert re.search(r"^COPY .*sql \./sql", dockerfile, re.MULTILINE)
    assert "HOST=0.0.0.0" in dockerfile


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _replicas(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if s.get("image", "").startswith("invite-service")}
