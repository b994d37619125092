"""Kubernetes manifests, checked statically: they parse, every resource is namespaced and listed
in the kustomization, images are pinned, SUPPORTSTREAM_* names are the ones the code reads,
referenced ConfigMaps and Secret keys exist, the rules ConfigMap is a valid rules file, the HPA
scales the workers no further than the partitions, and scrape annotations match the ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.rules import rules_from_mapping
from streams.settings import Settings
from tests.deploy.paths import DEPLOY, settings_env_names, settings_env_patterns
from tests.deploy.test_compose import is_pinned

K8S = DEPLOY / "k8s"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def applied() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in documents(K8S / name)]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in applied() if d["kind"] == kind}


def pod_specs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod template metadata, pod spec) of every workload."""
    found = []
    for doc in applied():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            template = doc["spec"]["template"]
            found.append((doc["metadata"]["name"], template.get("metadata", {}), template["spec"]))
    return found


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [(name, c) for name, _, spec in pod_specs() for c in spec["containers"]]


def test_every_manifest_parses_and_the_kustomization_lists_them() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"secret.example.yaml"}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path.name


def test_resources_live_in_the_supportstream_namespace() -> None:
    for doc in applied():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "supportstream", doc["metadata"]["name"]


def test_the_required_workloads_are_there() -> None:
    assert {"connect-http", "connect-imap"} <= set(by_kind("Deployment"))
    assert "worker" in by_kind("StatefulSet")
    assert "migrate" in by_kind("Job")
    assert "worker" in by_kind("HorizontalPodAutoscaler")
    commands = {name: c["args"] for name, c in containers()}
    assert commands["migrate"] == ["migrate", "--rules", "/etc/supportstream/rules.yaml"]
    # migrate creates the Kafka topics too: it reads the brokers from the config map as the
    # workers do, and the rules file from the same config map volume.
    found = dict(containers())
    for name in ("migrate", "worker"):
        sources = [s["configMapRef"]["name"] for s in found[name].get("envFrom", [])]
        assert "supportstream-config" in sources, name
        mounts = {m["mountPath"] for m in found[name].get("volumeMounts", [])}
        assert "/etc/supportstream" in mounts, name
    assert commands["worker"][0] == "worker"
    assert commands["connect-http"] == ["connect", "http"]
    assert commands["connect-imap"] == ["connect", "imap"]


def test_images_are_pinned() -> None:
    for name, container in containers():
        assert is_pinned(container["image"]), (name, container["image"])


def test_environment_names_are_the_ones_the_code_reads() -> None:
    known, patterns = settings_env_names(), settings_env_patterns()
    names = [(n, e["name"]) for n, c in containers() for e in c.get("env", [])]
    names += [
        ("supportstream-config", k) for k in by_kind("ConfigMap")["supportstream-config"]["data"]
    ]
    for where, name in names:
        assert name in known or any(p.fullmatch(name) for p in patterns), (where, name)


def test_the_config_map_is_what_settings_accept() -> None:
    settings = Settings.from_env(by_kind("ConfigMap")["supportstream-config"]["data"])
    assert settings.metrics_port == 9108
    assert settings.partitions >= 1


def test_referenced_config_maps_and_secret_keys_exist() -> None:
    config_maps = set(by_kind("ConfigMap"))
    (secret,) = documents(K8S / "secret.example.yaml")
    secret_keys = set(secret["stringData"])
    for name, _, spec in pod_specs():
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, name
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"], (name, env["name"])
                    assert ref["key"] in secret_keys, (name, env["name"])


def test_the_rules_config_map_is_a_valid_rules_file() -> None:
    text = by_kind("ConfigMap")["supportstream-rules"]["data"]["rules.yaml"]
    rules_from_mapping(yaml.safe_load(text), "configmap supportstream-rules")


def test_the_hpa_scales_the_workers_no_further_than_the_partitions() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")["worker"]["spec"]
    target = hpa["scaleTargetRef"]
    assert target["kind"] == "StatefulSet" and target["name"] in by_kind("StatefulSet")
    partitions = int(
        by_kind("ConfigMap")["supportstream-config"]["data"]["SUPPORTSTREAM_PARTITIONS"]
    )
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= partitions


@pytest.mark.parametrize("name", ["connect-http", "connect-imap", "worker"])
def test_long_running_pods_announce_their_metrics_port(name: str) -> None:
    port = Settings.from_env(by_kind("ConfigMap")["supportstream-config"]["data"]).metrics_port
    (meta, spec) = next((m, s) for n, m, s in pod_specs() if n == name)
    annotations = meta["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    ports = {p["name"]: p["containerPort"] for p in spec["containers"][0]["ports"]}
    assert ports["metrics"] == port


def test_services_select_existing_pods() -> None:
    templates = [meta.get("labels", {}) for _, meta, _ in pod_specs()]
    for name, service in by_kind("Service").items():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in templates), name


def test_the_kubernetes_scrape_job_keeps_annotated_pods_under_the_alerts_job_name() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "kubernetes-scrape.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "supportstream"  # alerts.yml: up{job="supportstream"}
    keep = job["relabel_configs"][0]
    assert keep["action"] == "keep"
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
