"""charts/gpuwork-exporter/ with a real helm (scripts/helm.sh provides helm 3).

- `helm lint --strict` and `helm template` for every `ci/*-values.yaml`, each rendered
  object of a core kind validated offline against the Kubernetes OpenAPI schemas
  (kubernetes-validate, strict: unknown fields fail). The Prometheus operator's and
  OpenShift's kinds (ServiceMonitor, PodMonitor, PrometheusRule,
  SecurityContextConstraints) have no schema there: they are checked by the
  assertions below instead.
- values.schema.json rejects bad values with a message naming the key.
- The secure defaults and each switch's effect, asserted on the rendered objects.
- `helm install` into the real kube-apiserver of harness/kube_apiserver.py, then the
  chart's ServiceAccount, impersonated, may watch pods and namespaces and nothing more.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import subprocess
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter.sources.engines.catalog import BUILTIN, parse_catalog
from harness.kube_apiserver import ClusterUnavailableError, KubeCluster
from mixin import chart as mixin_chart
from mixin.config import CONFIG

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpuwork-exporter"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM_SCRIPT = ROOT / "scripts" / "helm.sh"
# Kinds whose schemas kubernetes-validate ships, by apiVersion.
CORE_KINDS = {
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("apps/v1", "DaemonSet"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("security.openshift.io/v1", "SecurityContextConstraints"),
}
K8S_SCHEMA_VERSION = "1.30"
HELM_ENV: dict[str, str] = {}


# -- helm -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    done = subprocess.run(
        ["bash", str(HELM_SCRIPT)], capture_output=True, text=True, check=False, timeout=600
    )
    path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.access(path, os.X_OK):
        message = f"scripts/helm.sh gave no helm (rc {done.returncode}): {done.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("helm-home")  # helm's caches stay out of $HOME
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        HELM_ENV[name] = str(home / name.lower())
    yield path


def run_helm(helm: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [helm, *args], capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, **HELM_ENV, **(env or {})},
    )  # fmt: skip
    if done.returncode != 0:
        raise HelmError(done.stderr + done.stdout)
    return done.stdout


class HelmError(RuntimeError):
    pass


def render(helm: str, *sets: str, values: Path | None = None) -> list[dict[str, Any]]:
    args = ["template", "gpuwork-exporter", str(CHART), "--namespace", "gpuwork"]
    if values is not None:
        args += ["-f", str(values)]
    for one in sets:
        args += ["--set", one]
    return [doc for doc in yaml.safe_load_all(run_helm(helm, *args)) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} rendered"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {doc["kind"] for doc in docs}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


# -- lint, template, schemas ------------------------------------------------------------------


def test_every_variant_has_a_ci_values_file() -> None:
    names = {path.name.removesuffix("-values.yaml") for path in CI_VALUES}
    assert names >= {"default", "mig-hostpid", "monitoring", "openshift", "networkpolicy",
                     "webconfig", "engines"}  # fmt: skip


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict(helm: str, values: Path) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_template_is_valid_kubernetes(helm: str, values: Path) -> None:
    docs = render(helm, values=values)
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        assert key in CORE_KINDS | CRD_KINDS, f"unexpected {key}"
        if key in CORE_KINDS:  # the CRDs' kinds have no schema in kubernetes-validate
            kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "gpuwork-exporter"


def test_chart_versions() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["version"] == "0.1.0"
    assert meta["appVersion"] == project["version"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["exporter.port=-1"], "exporter.port: Must be greater than or equal to 1"),
        (["exporter.port=70000"], "exporter.port: Must be less than or equal to 65535"),
        (["bogus=1"], "Additional property bogus is not allowed"),
        (["mig.monitor=yes"], "mig.monitor: Invalid type. Expected: boolean, given: string"),
        (["processes.hostPID=1"], "processes.hostPID: Invalid type. Expected: boolean"),
        (["exporter.collectInterval=10 seconds"], "exporter.collectInterval: Does not match"),
        (["exporter.logLevel=loud"], "exporter.logLevel: exporter.logLevel must be one of"),
        (["image.pullPolicy=Sometimes"], "image.pullPolicy must be one of"),
        (["mig.gpus=true"], "mig: Additional property gpus is not allowed"),
        (["prometheusRule.alertGroups.gpuwork-safe=off"], "Expected: boolean, given: string"),
        (["prometheusRule.alerts.GpuworkGpuLost.for=soon"], "GpuworkGpuLost.for: Does not match"),
        (["prometheusRule.alerts.GpuworkGpuLost.severity=page"], "severity must be one of"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(
    helm: str, sets: list[str], message: str
) -> None:
    with pytest.raises(HelmError) as error:
        render(helm, *sets)
    assert message in str(error.value)


def test_root_needs_run_as_non_root_off(helm: str) -> None:
    with pytest.raises(HelmError, match=r"runAsUser: 0 needs securityContext.runAsNonRoot: false"):
        render(helm, "securityContext.runAsUser=0")
    sc = container(render(helm, "securityContext.runAsUser=0",
                          "securityContext.runAsNonRoot=false"))["securityContext"]  # fmt: skip
    assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False


def test_unknown_alert_group_is_named(helm: str) -> None:
    with pytest.raises(HelmError, match=r"alertGroups.gpuwork-nope: no such alert group"):
        render(helm, "prometheusRule.enabled=true", "prometheusRule.alertGroups.gpuwork-nope=true")


# -- the secure defaults -----------------------------------------------------------------------


def test_defaults_are_unprivileged(helm: str) -> None:
    docs = render(helm)
    assert kinds(docs) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service",
                           "DaemonSet"}  # fmt: skip
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    c = container(docs)
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65534
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostPID" not in pod and "hostNetwork" not in pod and "hostIPC" not in pod
    assert "runtimeClassName" not in pod
    assert "resources" not in c
    # Only the kubelet's pod-resources directory from the host, read-only.
    assert pod["volumes"] == [{"name": "pod-resources", "hostPath": {
        "path": "/var/lib/kubelet/pod-resources", "type": "Directory"}}]  # fmt: skip
    assert all(mount["readOnly"] is True for mount in c["volumeMounts"])
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    variables = env(docs)
    assert variables["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert variables["GPUWORK_NODE_NAME"] == "$(NODE_NAME)"
    assert variables["GPUWORK_KUBELET_SOCKET"] == "/var/lib/kubelet/pod-resources/kubelet.sock"
    assert variables["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert variables["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert "NVIDIA_MIG_MONITOR_DEVICES" not in variables
    assert "GPUWORK_PROC_ROOT" not in variables and "GPUWORK_WEB_CONFIG_FILE" not in variables
    # Every GPUWORK_* variable set is one the exporter knows.
    from exporter.settings import FLAGS

    known = {flag.env for flag in FLAGS}
    assert {name for name in variables if name.startswith("GPUWORK_")} <= known
    assert c["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "metrics",
        "scheme": "HTTP",
    }
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_rbac_is_what_deploy_rbac_grants(helm: str) -> None:
    docs = render(helm)
    deployed = [d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()) if d]
    (deploy_role,) = [d for d in deployed if d["kind"] == "ClusterRole"]
    assert one(docs, "ClusterRole")["rules"] == deploy_role["rules"]
    rules = one(docs, "ClusterRole")["rules"]
    assert all(not {"secrets", "*"} & set(r["resources"]) for r in rules)
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in rules)
    binding = one(docs, "ClusterRoleBinding")
    sa = one(docs, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                    "namespace": "gpuwork"}]  # fmt: skip
    assert one(docs, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"] == sa["name"]


# -- the switches ------------------------------------------------------------------------------


def test_mig_monitor_adds_sys_admin_and_the_toolkit_variable(helm: str) -> None:
    docs = render(helm, "mig.monitor=true")
    assert container(docs)["securityContext"]["capabilities"] == {
        "add": ["SYS_ADMIN"], "drop": ["ALL"]}  # fmt: skip
    assert env(docs)["NVIDIA_MIG_MONITOR_DEVICES"] == "all"


def test_host_pid_mounts_the_host_proc_read_only(helm: str) -> None:
    docs = render(helm, "processes.hostPID=true")
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert {"name": "host-proc", "hostPath": {"path": "/proc", "type": "Directory"}} in pod[
        "volumes"
    ]
    assert {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True} in container(docs)[
        "volumeMounts"
    ]
    assert env(docs)["GPUWORK_PROC_ROOT"] == "/host/proc"
    assert container(docs)["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_an_engine_catalog_is_a_config_map_mounted_for_the_flag(helm: str) -> None:
    docs = render(helm, values=CHART / "ci" / "engines-values.yaml")
    text = (ROOT / "simulator" / "catalogs" / "inhouse.yaml").read_text()
    config = one(docs, "ConfigMap")
    assert config["metadata"]["name"] == "gpuwork-exporter-engines"
    assert config["data"] == {"catalog.yaml": text}
    assert "inhouse" in BUILTIN.with_entries(parse_catalog(config["data"]["catalog.yaml"])).names()
    template = one(docs, "DaemonSet")["spec"]["template"]
    assert {"name": "engine-catalog", "configMap": {"name": "gpuwork-exporter-engines",
            "defaultMode": 0o444}} in template["spec"]["volumes"]  # fmt: skip
    assert {"name": "engine-catalog", "mountPath": "/etc/gpuwork/engines",
            "readOnly": True} in container(docs)["volumeMounts"]  # fmt: skip
    assert env(docs)["GPUWORK_ENGINES_CATALOG"] == "/etc/gpuwork/engines/catalog.yaml"
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert template["metadata"]["annotations"]["gpuwork.io/engine-catalog-sha256"] == digest
    default = render(helm)  # none by default
    assert "ConfigMap" not in kinds(default) and "GPUWORK_ENGINES_CATALOG" not in env(default)


def test_runtime_class_and_resources(helm: str) -> None:
    docs = render(helm, "runtimeClassName=nvidia", "resources.requests.memory=128Mi")
    assert one(docs, "DaemonSet")["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert container(docs)["resources"] == {"requests": {"memory": "128Mi"}}


def test_web_config_mounts_the_secret_and_secures_the_scrape(helm: str) -> None:
    docs = render(helm, values=CHART / "ci" / "webconfig-values.yaml")
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert {"name": "web-config", "secret": {"secretName": "gpuwork-web-config",
            "defaultMode": 0o440}} in pod["volumes"]  # fmt: skip
    assert {"name": "web-config", "mountPath": "/etc/gpuwork/web", "readOnly": True} in container(
        docs
    )["volumeMounts"]
    assert env(docs)["GPUWORK_WEB_CONFIG_FILE"] == "/etc/gpuwork/web/web-config.yml"
    for probe in ("livenessProbe", "readinessProbe"):  # no credentials needed, TLS is
        assert container(docs)[probe]["httpGet"]["scheme"] == "HTTPS"
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["serverName"] == "gpuwork-exporter"
    assert endpoint["basicAuth"]["password"] == {"name": "gpuwork-scrape", "key": "password"}
    # Client certificates required: the kubelet's probes only connect.
    mutual = render(helm, "webConfig.probes=tcp", values=CHART / "ci" / "webconfig-values.yaml")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container(mutual)[probe]["tcpSocket"] == {"port": "metrics"}
        assert "httpGet" not in container(mutual)[probe]
    # Without the Secret, the same scrape settings are not used.
    plain = render(helm, "serviceMonitor.enabled=true", "webConfig.scrape.scheme=https")
    assert "scheme" not in one(plain, "ServiceMonitor")["spec"]["endpoints"][0]


def test_monitors_honor_labels_and_name_the_job(helm: str) -> None:
    docs = render(helm, values=CHART / "ci" / "monitoring-values.yaml")
    service_monitor = one(docs, "ServiceMonitor")
    pod_monitor = one(docs, "PodMonitor")
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pod_monitor["metadata"]["namespace"] == "monitoring"
    job = re.fullmatch(r'job="(.+)"', CONFIG.job_selector)
    assert job is not None
    for endpoint in (service_monitor["spec"]["endpoints"][0],
                     pod_monitor["spec"]["podMetricsEndpoints"][0]):  # fmt: skip
        assert endpoint["honorLabels"] is True
        assert endpoint["port"] == "metrics"
        assert {"action": "replace", "targetLabel": "job", "replacement": job[1]} in endpoint[
            "relabelings"
        ]
    assert (
        service_monitor["spec"]["selector"]["matchLabels"]
        == one(docs, "Service")["spec"]["selector"]
    )


def _generated(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def test_prometheus_rule_carries_the_generated_groups(helm: str) -> None:
    recording = _generated(mixin_chart.RULES)["groups"]
    for path in mixin_chart.EXTRA_RULES:  # right-sizing and autoscaling, after the useful work
        recording += _generated(path)["groups"]
    alerting = _generated(mixin_chart.ALERTS)["groups"]
    everything = one(render(helm, "prometheusRule.enabled=true"), "PrometheusRule")
    assert everything["spec"]["groups"] == recording + alerting
    # The monitoring variant leaves gpuwork-serving out.
    docs = render(helm, values=CHART / "ci" / "monitoring-values.yaml")
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    assert groups == recording + [g for g in alerting if g["name"] != "gpuwork-serving"]
    alerts_only = one(render(helm, "prometheusRule.enabled=true",
                             "prometheusRule.recordingRules=false"), "PrometheusRule")  # fmt: skip
    assert alerts_only["spec"]["groups"] == alerting


def test_values_set_an_alerts_for_and_severity_and_name_an_unknown_alert(helm: str) -> None:
    rule = one(render(helm, "prometheusRule.enabled=true",
                      "prometheusRule.alerts.GpuworkDeviceAllocatedIdle.for=4h",
                      "prometheusRule.alerts.GpuworkDeviceAllocatedIdle.severity=info"),
               "PrometheusRule")  # fmt: skip
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert rules["GpuworkDeviceAllocatedIdle"]["for"] == "4h"
    assert rules["GpuworkDeviceAllocatedIdle"]["labels"]["severity"] == "info"
    generated = {r["alert"]: r for g in _generated(mixin_chart.ALERTS)["groups"]
                 for r in g["rules"]}  # fmt: skip
    assert rules["GpuworkGpuLost"] == generated["GpuworkGpuLost"]  # the others as generated
    with pytest.raises(HelmError, match=r"prometheusRule.alerts.GpuworkNope: no such alert"):
        render(helm, "prometheusRule.enabled=true", "prometheusRule.alerts.GpuworkNope.for=1m")


def test_values_name_every_generated_alert_group() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    names = [g["name"] for g in _generated(mixin_chart.ALERTS)["groups"]]
    assert list(values["prometheusRule"]["alertGroups"]) == names


def test_chart_files_are_the_mixin_output() -> None:
    for path, text in mixin_chart.files(CONFIG).items():
        assert (ROOT / path).read_text() == text, f"run `python -m mixin.generate`: {path}"
    assert (ROOT / mixin_chart.ALERTS).read_text() == (
        ROOT / "alerts/gpuwork.alerts.yml"
    ).read_text()


def test_dashboards_are_config_maps_for_the_grafana_sidecar(helm: str) -> None:
    docs = render(helm, values=CHART / "ci" / "monitoring-values.yaml")
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    boards = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert len(maps) == len(boards) >= 5
    by_key = {key: value for m in maps for key, value in m["data"].items()}
    for board in boards:
        assert json.loads(by_key[f"gpuwork-{board.name}"]) == json.loads(board.read_text())
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert m["metadata"]["namespace"] == "monitoring"
        assert m["metadata"]["annotations"] == {"grafana_folder": "GPU"}


def test_network_policy_admits_only_the_scraper(helm: str) -> None:
    docs = render(helm, values=CHART / "ci" / "networkpolicy-values.yaml")
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["podSelector"]["matchLabels"] == one(docs, "Service")["spec"]["selector"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]  # fmt: skip
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_openshift_scc_grants_only_what_the_pod_needs(helm: str) -> None:
    scc = one(render(helm, "openshift.enabled=true"), "SecurityContextConstraints")
    assert scc["allowHostPID"] is False and scc["allowPrivilegedContainer"] is False
    assert scc["allowedCapabilities"] == [] and scc["requiredDropCapabilities"] == ["ALL"]
    assert scc["allowHostDirVolumePlugin"] is True
    assert scc["runAsUser"] == {"type": "MustRunAs", "uid": 65534}
    assert scc["users"] == ["system:serviceaccount:gpuwork:gpuwork-exporter"]
    both = one(render(helm, "openshift.enabled=true", "mig.monitor=true",
                      "processes.hostPID=true"), "SecurityContextConstraints")  # fmt: skip
    assert both["allowHostPID"] is True and both["allowedCapabilities"] == ["SYS_ADMIN"]


# -- a real API server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeCluster]:
    try:
        cluster = KubeCluster.start()
    except ClusterUnavailableError as err:
        if os.environ.get("CI"):
            pytest.fail(f"the Kubernetes test cluster is unavailable in CI: {err}")
        pytest.skip(f"no kube-apiserver/etcd here (`make kube-apiserver`): {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _kubeconfig(kube: KubeCluster, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {
            "server": kube.url, "certificate-authority": kube.ca_file}}],
        "users": [{"name": "admin", "user": {"token": kube.admin_token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
    }))  # fmt: skip
    path.chmod(0o600)
    return path


def _call(kube: KubeCluster, method: str, path: str, body: Any = None,
          as_user: str | None = None, groups: tuple[str, ...] = ()) -> tuple[int, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {kube.admin_token}", "Content-Type": "application/json"}
    request = urllib.request.Request(
        kube.url + path, method=method, headers=headers,
        data=None if body is None else json.dumps(body).encode(),
    )  # fmt: skip
    if as_user:
        request.add_header("Impersonate-User", as_user)
        for group in groups:  # urllib joins repeated headers; one group each is enough here
            request.add_header("Impersonate-Group", group)
    context = ssl.create_default_context(cafile=kube.ca_file)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            return resp.status, _decode(resp.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _decode(body: bytes) -> Any:
    """One JSON object, or a watch's events (one per line) as a list."""
    lines = body.splitlines()
    return [json.loads(line) for line in lines] if len(lines) > 1 else json.loads(body or b"null")


@pytest.mark.integration
def test_helm_install_and_the_service_account_may_only_watch(
    helm: str, kube: KubeCluster, tmp_path: Path
) -> None:
    namespace = f"gpuwork-{uuid.uuid4().hex[:6]}"
    kubeconfig = _kubeconfig(kube, tmp_path / "kubeconfig")
    out = run_helm(
        helm, "install", "gpuwork-exporter", str(CHART), "--namespace", namespace,
        "--create-namespace", "-f", str(CHART / "ci" / "networkpolicy-values.yaml"),
        env={"KUBECONFIG": str(kubeconfig)},
    )  # fmt: skip
    assert "STATUS: deployed" in out
    notes = out.split("NOTES:", 1)[1]  # what to do next
    assert f"-n {namespace} port-forward ds/gpuwork-exporter 9842" in notes
    assert "serviceMonitor.enabled=true" in notes and "webConfig.secretName" in notes
    status, ds = _call(kube, "GET", f"/apis/apps/v1/namespaces/{namespace}/daemonsets/"
                       "gpuwork-exporter")  # fmt: skip
    assert status == 200, ds
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == "gpuwork-exporter"
    status, sa = _call(kube, "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/"
                       "gpuwork-exporter")  # fmt: skip
    assert status == 200, sa

    user = f"system:serviceaccount:{namespace}:gpuwork-exporter"

    def allowed(verb: str, resource: str, ns: str = "", group: str = "") -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": ["system:serviceaccounts",
                                              f"system:serviceaccounts:{namespace}"],
                     "resourceAttributes": {"verb": verb, "resource": resource,
                                            "namespace": ns, "group": group}},
        }  # fmt: skip
        status, answer = _call(kube, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                               review)  # fmt: skip
        assert status == 201, answer
        return bool(answer["status"].get("allowed"))

    # The exporter's watch: pods (all namespaces, its node's by field selector) and namespaces.
    for verb in ("get", "list", "watch"):
        assert allowed(verb, "pods"), verb
        assert allowed(verb, "pods", namespace), verb
        assert allowed(verb, "namespaces"), verb
    # Nothing else: no secrets, no writes, no other kinds.
    for verb in ("create", "update", "patch", "delete", "deletecollection"):
        assert not allowed(verb, "pods", namespace), verb
        assert not allowed(verb, "namespaces"), verb
    for verb in ("get", "list", "watch"):
        assert not allowed(verb, "secrets", namespace), verb
        assert not allowed(verb, "secrets"), verb
        assert not allowed(verb, "configmaps", namespace), verb
        assert not allowed(verb, "nodes"), verb
        assert not allowed(verb, "daemonsets", namespace, "apps"), verb

    # The same through real requests, impersonating the service account.
    status, pods = _call(kube, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dgpu-node-1",
                         as_user=user)  # fmt: skip
    assert status == 200 and pods["kind"] == "PodList"
    status, events = _call(kube, "GET", "/api/v1/namespaces?watch=1&timeoutSeconds=1",
                           as_user=user)  # fmt: skip
    assert status == 200
    assert {"type": "ADDED", "name": namespace} in [
        {"type": e["type"], "name": e["object"]["metadata"]["name"]} for e in events
    ]
    status, _ = _call(kube, "GET", f"/api/v1/namespaces/{namespace}/secrets", as_user=user)
    assert status == 403
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intruder"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    status, _ = _call(kube, "POST", f"/api/v1/namespaces/{namespace}/pods", pod, as_user=user)
    assert status == 403
    status, _ = _call(kube, "DELETE", f"/apis/apps/v1/namespaces/{namespace}/daemonsets/"
                      "gpuwork-exporter", as_user=user)  # fmt: skip
    assert status == 403

    run_helm(helm, "uninstall", "gpuwork-exporter", "--namespace", namespace,
             env={"KUBECONFIG": str(kubeconfig)})  # fmt: skip
    status, _ = _call(kube, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/"
                      "gpuwork-exporter")  # fmt: skip
    assert status == 404
