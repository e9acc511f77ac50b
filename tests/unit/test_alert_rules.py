"""The alert rules load in Prometheus, fire as their unit tests say, and name only real metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

import invite.observability.metrics  # noqa: F401  (registers every metric of the service)
from invite.kernel.settings import ROOT

DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) not installed"
)
# series names Prometheus itself provides, not the service
PROMETHEUS_OWN = {"up"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", str(DEPLOY / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_alert_fires_in_its_unit_tests() -> None:
    result = promtool("test", "rules", str(DEPLOY / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(_alerts()), "every alert needs a unit test that fires it"


@needs_promtool
def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    # the config names the rules file by its path inside the container: point it here
    config = (
        (DEPLOY / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/alerts.yml", str(DEPLOY / "alerts.yml"))
    )
    (tmp_path / "prometheus.yml").write_text(config)
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_brief_four_alerts_are_there() -> None:
    assert {
        "InviteBlockedAccountsHigh",
        "InviteTaskStuck",
        "InviteIntegrationFailing",
        "InviteBacklogStalled",
    } <= set(_alerts())


def test_rules_name_only_metrics_the_service_exports() -> None:
    exported = {sample_name for family in REGISTRY.collect() for sample_name in _sample_names(family)}
    for alert, expr in _alerts().items():
        for name in re.findall(r"\b(invite_[a-z_]+|up)\b", expr):
            assert name in exported | PROMETHEUS_OWN, f"{alert} uses {name}, which no code exports"


def _alerts() -> dict[str, str]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _sample_names(family: Metric) -> set[str]:
    # a labelled metric nobody has touched yet has no samples: derive its series names
    if family.type == "counter":
        return {f"{family.name}_total"}
    if family.type == "histogram":
        return {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
    return {family.name}
