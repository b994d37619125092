"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine in CI): the file
parses, images are pinned, every referenced file exists, the environment names are the ones the
code reads, ports agree with the settings and the Prometheus scrape config, and every
long-running service has a healthcheck."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from tests.deploy.paths import DEPLOY, PROMTOOL, REPO, settings_env_names, settings_env_patterns

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PINNED = re.compile(r"^[\w.\-/]+(:(?!latest$)[\w.\-]*\d[\w.\-]*)?(@sha256:[0-9a-f]{64})?$")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def is_pinned(image: str) -> bool:
    if not PINNED.match(image):
        return False
    return "@sha256:" in image or ":" in image.rsplit("/", 1)[-1]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_the_stack_has_every_component() -> None:
    names = set(services())
    assert {"kafka", "clickhouse", "prometheus", "alertmanager", "grafana", "migrate", "worker",
            "connect-http", "connect-imap"} <= names  # fmt: skip
    commands = {name: s.get("command") for name, s in services().items()}
    assert commands["migrate"] == ["migrate", "--rules", "/etc/supportstream/rules.yaml"]
    assert commands["worker"][0] == "worker"
    assert commands["connect-http"] == ["connect", "http"]
    assert commands["connect-imap"] == ["connect", "imap"]


def test_kafka_runs_in_kraft_mode() -> None:
    env = environment(services()["kafka"])
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(env)


@pytest.mark.parametrize("name", sorted(services()))
def test_every_image_is_pinned(name: str) -> None:
    service = services()[name]
    assert "image" in service, f"{name}: name the image (and its version) even when built"
    assert is_pinned(service["image"]), f"{name}: {service['image']} is not pinned"


def test_the_pin_check_refuses_floating_tags() -> None:
    assert not is_pinned("grafana/grafana")
    assert not is_pinned("grafana/grafana:latest")
    assert not is_pinned("localhost:5000/grafana")
    assert is_pinned("grafana/grafana:11.2.0")
    assert is_pinned("clickhouse/clickhouse-server@sha256:" + "0" * 64)


def test_every_referenced_file_exists() -> None:
    for name, service in services().items():
        build = service.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (context / dockerfile).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose()["volumes"], f"{name}: volume {source} is not declared"


def test_the_dockerfile_is_pinned_and_copies_files_that_exist() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for line in lines:
        if line.startswith("FROM "):
            assert is_pinned(line.split()[1]), line
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), line
    assert any("ENTRYPOINT" in line and "supportstream" in line for line in lines)


def test_environment_names_are_the_ones_the_code_reads() -> None:
    known = settings_env_names()
    patterns = settings_env_patterns()
    assert "SUPPORTSTREAM_METRICS_PORT" in known
    for name, service in services().items():
        for key in environment(service):
            if key.startswith("SUPPORTSTREAM_"):
                assert key in known or any(p.fullmatch(key) for p in patterns), (name, key)


def test_the_pipeline_services_share_the_settings_settings_from_env_accepts() -> None:
    for name in ("migrate", "worker", "connect-http", "connect-imap"):
        env = {k: v for k, v in environment(services()[name]).items() if "${" not in v}
        settings = Settings.from_env(env)
        assert settings.metrics_port == 9108, name
        assert settings.kafka_bootstrap == "kafka:9092", name


def test_ports_agree_with_settings_and_the_scrape_config() -> None:
    metrics_port = Settings.from_env({}).metrics_port
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "supportstream"]
    (dns,) = job["dns_sd_configs"]
    assert dns["port"] == metrics_port
    all_services = services()
    for target in dns["names"]:
        service = all_services[target]
        assert environment(service)["SUPPORTSTREAM_METRICS_PORT"] == str(metrics_port)
        assert str(metrics_port) in [str(p) for p in service.get("expose", [])], target
    http = all_services["connect-http"]
    port = environment(http)["SUPPORTSTREAM_CONNECT_PORT"]
    assert any(str(p).endswith(f":{port}") for p in http["ports"])


def test_services_wait_for_what_they_need_and_have_healthchecks() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in all_services, (name, dependency)
        if name != "migrate":
            assert "healthcheck" in service, name
    assert all_services["worker"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    # migrate creates the topics too (acknowledgements included, CONTRACT §7): Kafka first.
    assert all_services["migrate"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    # ...and reads the workers' rules file, mounted where the worker reads it.
    assert all_services["migrate"]["volumes"] == all_services["worker"]["volumes"]
    assert "replicas" in all_services["worker"].get("deploy", {})


@pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool not installed")
def test_the_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
