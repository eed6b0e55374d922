"""What the chart renders, checked without a cluster: lint, security, credentials, RBAC, schema.

Each check runs for the three supported shapes (defaults, production, Docker
Desktop). The apiserver's own verdict on the same manifests is in
``test_apiserver.py``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import chart

SHAPE_IDS = list(chart.SHAPES)


@pytest.fixture(scope="module", params=SHAPE_IDS)
def shape(request: pytest.FixtureRequest) -> tuple[str, chart.Rendered]:
    files = chart.SHAPES[request.param]
    return request.param, chart.render(files)


# --- lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHAPE_IDS)
def test_helm_lint_strict_is_clean(name: str) -> None:
    out = chart.helm(
        "lint",
        "--strict",
        str(chart.CHART_DIR),
        "--kube-version",
        chart.kube_version(),
        *chart.values_args(chart.SHAPES[name]),
    )
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


# --- security of every container -------------------------------------------------------------


def _effective(container: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    """A security setting as the kubelet resolves it: container first, then pod."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


def test_no_container_runs_as_root_or_with_privileges(shape: tuple[str, chart.Rendered]) -> None:
    _, rendered = shape
    assert rendered.workloads()
    for workload in rendered.workloads():
        pod = chart.pod_spec(workload)
        for init in (False, True):
            for container in chart.containers(workload, init=init):
                where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
                sc = container.get("securityContext") or {}
                assert _effective(container, pod, "runAsNonRoot") is True, where
                uid = _effective(container, pod, "runAsUser")
                assert isinstance(uid, int) and uid > 0, f"{where} runs as uid {uid}"
                assert sc.get("allowPrivilegeEscalation") is False, where
                assert sc.get("readOnlyRootFilesystem") is True, where
                assert sc.get("privileged", False) is False, where
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
                assert not sc.get("capabilities", {}).get("add"), where
                seccomp = sc.get("seccompProfile") or pod["securityContext"].get("seccompProfile")
                assert seccomp == {"type": "RuntimeDefault"}, where
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert not any("hostPath" in v for v in pod.get("volumes") or []), (
            "pods use hostPath only through PersistentVolumes"
        )


def test_every_container_has_resources_and_probes(shape: tuple[str, chart.Rendered]) -> None:
    _, rendered = shape
    for workload in rendered.workloads():
        for init in (False, True):
            for container in chart.containers(workload, init=init):
                where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
                resources = container.get("resources") or {}
                assert {"cpu", "memory"} <= set(resources.get("requests") or {}), where
                assert "memory" in (resources.get("limits") or {}), where
                if not init:
                    assert container.get("readinessProbe"), f"{where} has no readiness probe"
                    assert container.get("livenessProbe"), f"{where} has no liveness probe"


def test_platform_probes_use_grpc_health_and_http_endpoints() -> None:
    rendered = chart.render()
    probes = {
        name: next(chart.containers(rendered.named("Deployment", f"dtpoc-{name}")))
        for name in ("files", "orchestrator", "gateway", "operator")
    }
    for name in ("files", "orchestrator"):
        port = probes[name]["ports"][0]["containerPort"]
        assert probes[name]["readinessProbe"]["grpc"] == {"port": port}
        assert probes[name]["livenessProbe"]["grpc"] == {"port": port}
    assert probes["gateway"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The gateway's own liveness: an orchestrator outage must not restart it.
    assert probes["gateway"]["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert probes["operator"]["livenessProbe"]["httpGet"]["port"] == "health"


# --- RBAC ------------------------------------------------------------------------------------


def test_roles_are_namespaced_and_grant_no_wildcards(shape: tuple[str, chart.Rendered]) -> None:
    _, rendered = shape
    assert not rendered.of_kind("ClusterRole") and not rendered.of_kind("ClusterRoleBinding")
    for role in rendered.of_kind("Role"):
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups", "resourceNames"):
                assert "*" not in (rule.get(key) or []), f"Role {role['metadata']['name']}: {rule}"


def test_orchestrator_may_only_manage_analytics_and_read_replica_logs() -> None:
    role = chart.render().named("Role", "dtpoc-orchestrator")
    assert role["rules"] == [
        {
            "apiGroups": ["eng.cam.ac.uk"],
            "resources": ["analytics"],
            "verbs": ["get", "list", "watch", "create", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]


def test_operator_role_is_the_operators_rbac_file() -> None:
    documents = [d for d in yaml.safe_load_all(chart.OPERATOR_ROLE_FILE.read_text()) if d]
    expected = [rule for d in documents if d["kind"] == "Role" for rule in d["rules"]]
    assert expected, f"{chart.OPERATOR_ROLE_FILE} holds no Role rules"
    assert chart.render().named("Role", "dtpoc-operator")["rules"] == expected


def test_files_and_gateway_have_no_kubernetes_token() -> None:
    rendered = chart.render()
    for name in ("files", "gateway"):
        account = rendered.named("ServiceAccount", f"dtpoc-{name}")
        assert account["automountServiceAccountToken"] is False
        pod = chart.pod_spec(rendered.named("Deployment", f"dtpoc-{name}"))
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == f"dtpoc-{name}"
        bound = [
            b
            for b in rendered.of_kind("RoleBinding")
            for s in b["subjects"]
            if s["name"] == f"dtpoc-{name}"
        ]
        assert not bound
    data_stack = [w for w in rendered.workloads() if "serviceAccountName" not in chart.pod_spec(w)]
    assert data_stack and all(
        chart.pod_spec(w)["automountServiceAccountToken"] is False for w in data_stack
    )


# --- credentials -----------------------------------------------------------------------------

KNOWN_DEFAULTS = {
    "password", "passw0rd", "admin", "administrator", "root", "secret", "changeme", "change-me",
    "super-secret", "super-secret-token", "supersecret", "pass", "guest", "test", "default",
    "mongo", "mongodb", "influxdb", "grafana", "nodered", "mosquitto", "123456", "12345678",
    "cookiesecret", "sessionsecret", "token", "my-super-secret-auth-token",
}  # fmt: skip
"""Values no credential may have (the original used root/password and super-secret-token)."""
KNOWN_DEFAULT_PARTS = ("super-secret", "changeme", "password")
CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|TOKEN(?!S_FILE$|_FILE$|S_DIR$)|SECRET(?!_NAME$)|USERNAME|_USER$|_PASS$|API_KEY"
)


def _literal_credential_env(rendered: chart.Rendered) -> list[tuple[str, str]]:
    found = []
    for workload in rendered.workloads():
        for init in (False, True):
            for container in chart.containers(workload, init=init):
                for env in container.get("env") or []:
                    if CREDENTIAL_NAME.search(env["name"]) and "value" in env:
                        found.append((env["name"], str(env["value"])))
    return found


def test_no_credential_has_a_known_default_value(shape: tuple[str, chart.Rendered]) -> None:
    _, rendered = shape
    secrets = rendered.secret_values()
    literal_env = _literal_credential_env(rendered)
    for where, value in [*((f"{n}/{k}", v) for (n, k), v in secrets.items()), *literal_env]:
        assert value.strip().lower() not in KNOWN_DEFAULTS, f"{where} = {value!r}"
        for part in KNOWN_DEFAULT_PARTS:
            assert part not in value.lower(), f"{where} contains {part!r}"
    # Credentials reach containers through secretKeyRef only, never as literal env values.
    assert [name for name, _ in literal_env if "USERNAME" not in name] == []
    # Nothing else in the output carries the original's literals either.
    for literal in ("super-secret", "root:password", ":password@"):
        assert literal not in rendered.text


def test_generated_secrets_are_long_random_and_new_on_every_install() -> None:
    first, second = chart.render().secret_values(), chart.render().secret_values()
    generated = {
        key: value
        for key, value in first.items()
        if re.search(r"password$|token$|secret$", key[1]) and not key[1].endswith("bcrypt")
    }
    assert len(generated) >= 9, sorted(generated)
    for key, value in generated.items():
        assert len(value) >= 32 and value.isalnum(), key
        assert second[key] != value, f"{key} is the same in two installs"


def test_existing_secrets_mean_no_generated_secret() -> None:
    rendered = chart.render([chart.PRODUCTION])
    assert rendered.of_kind("Secret") == []
    values = chart.merged_values([chart.PRODUCTION])
    refs = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for w in rendered.workloads()
        for c in chart.containers(w)
        for env in c.get("env") or []
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert refs == {values["mongodb"]["auth"]["existingSecret"]}
    gateway = chart.pod_spec(rendered.named("Deployment", "dtpoc-gateway"))
    tokens = next(v for v in gateway["volumes"] if v["name"] == "auth-tokens")
    assert tokens["secret"]["secretName"] == values["gateway"]["auth"]["existingSecret"]


def test_gateway_mounts_the_hash_of_the_generated_api_token_only() -> None:
    rendered = chart.render()
    secret = rendered.named("Secret", "dtpoc-gateway-auth")["stringData"]
    assert secret["tokens"] == hashlib.sha256(secret["token"].encode()).hexdigest() + "\n"
    pod = chart.pod_spec(rendered.named("Deployment", "dtpoc-gateway"))
    volume = next(v for v in pod["volumes"] if v["name"] == "auth-tokens")
    assert volume["secret"]["items"] == [{"key": "tokens", "path": "tokens"}]
    env = {
        e["name"]: e.get("value")
        for e in next(chart.containers(rendered.named("Deployment", "dtpoc-gateway")))["env"]
    }
    mount = next(
        m
        for m in next(chart.containers(rendered.named("Deployment", "dtpoc-gateway")))[
            "volumeMounts"
        ]
        if m["name"] == "auth-tokens"
    )
    assert env["DTPOC_GATEWAY_AUTH_TOKENS_FILE"] == f"{mount['mountPath']}/tokens"


def test_services_connect_to_mongodb_as_the_application_user() -> None:
    secret = chart.render().named("Secret", "dtpoc-mongodb-auth")["stringData"]
    user, password = secret["mongodb-app-username"], secret["mongodb-app-password"]
    assert secret["mongodb-uri"].startswith(f"mongodb://{user}:{password}@dtpoc-mongodb.")
    assert user != secret["mongodb-root-username"]


# --- platform wiring -------------------------------------------------------------------------


def _env(rendered: chart.Rendered, deployment: str) -> dict[str, Any]:
    container = next(chart.containers(rendered.named("Deployment", deployment)))
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_services_are_wired_to_each_other_by_service_dns_names() -> None:
    rendered = chart.render(namespace="lab")
    files = "dtpoc-files.lab.svc.cluster.local:50051"
    orchestrator = "dtpoc-orchestrator.lab.svc.cluster.local:50052"
    assert _env(rendered, "dtpoc-files")["DTPOC_FILES_ORCHESTRATOR_ADDRESS"] == orchestrator
    orch = _env(rendered, "dtpoc-orchestrator")
    assert orch["DTPOC_ORCHESTRATOR_BACKEND"] == "kubernetes"
    assert orch["DTPOC_ORCHESTRATOR_NAMESPACE"] == "lab"
    assert orch["DTPOC_ORCHESTRATOR_FILES_ADDRESS"] == files
    gateway = _env(rendered, "dtpoc-gateway")
    assert gateway["DTPOC_GATEWAY_FILES_ADDRESS"] == files
    assert gateway["DTPOC_GATEWAY_ORCHESTRATOR_ADDRESS"] == orchestrator
    operator = _env(rendered, "dtpoc-operator")
    assert operator["DTPOC_OPERATOR_RUNTIME"] == "kubernetes"
    assert operator["DTPOC_OPERATOR_NAMESPACES"] == "lab"
    assert operator["DTPOC_OPERATOR_FILES_ADDRESS"] == files
    assert operator["DTPOC_OPERATOR_OUTPUT_PVC"] == "dtpoc-output"
    assert operator["DTPOC_OPERATOR_IMAGE"] == "ghcr.io/cam-digital-hospitals/dtpoc:0.1.0"
    for service in rendered.of_kind("Service"):
        assert service["metadata"]["namespace"] == "lab"
    rendered.named("PersistentVolumeClaim", "dtpoc-output")


def test_the_gateways_connection_limits_come_from_values(tmp_path: Path) -> None:
    defaults = _env(chart.render(), "dtpoc-gateway")
    assert {k: v for k, v in defaults.items() if k in GATEWAY_LIMITS} == {
        "DTPOC_GATEWAY_LIMIT_CONCURRENCY": "1000",
        "DTPOC_GATEWAY_BACKLOG": "2048",
        "DTPOC_GATEWAY_KEEP_ALIVE_SECONDS": "75",
        "DTPOC_GATEWAY_HEADER_TIMEOUT_SECONDS": "15",
        "DTPOC_GATEWAY_MAX_HEADER_BYTES": "32768",
        "DTPOC_GATEWAY_BODY_TIMEOUT_SECONDS": "30",
        "DTPOC_GATEWAY_UPLOAD_IDLE_SECONDS": "60",
    }
    values = tmp_path / "limits.yaml"
    connections = {"limitConcurrency": 200, "headerTimeoutSeconds": 2.5}
    values.write_text(yaml.safe_dump({"gateway": {"connections": connections}}))
    tuned = _env(chart.render([values]), "dtpoc-gateway")
    assert tuned["DTPOC_GATEWAY_LIMIT_CONCURRENCY"] == "200"
    assert tuned["DTPOC_GATEWAY_HEADER_TIMEOUT_SECONDS"] == "2.5"
    refused = chart.render_error(sets=["gateway.connections.limitConcurrency=0"])
    assert "/gateway/connections/limitConcurrency" in refused


GATEWAY_LIMITS = frozenset(
    {
        "DTPOC_GATEWAY_LIMIT_CONCURRENCY",
        "DTPOC_GATEWAY_BACKLOG",
        "DTPOC_GATEWAY_KEEP_ALIVE_SECONDS",
        "DTPOC_GATEWAY_HEADER_TIMEOUT_SECONDS",
        "DTPOC_GATEWAY_MAX_HEADER_BYTES",
        "DTPOC_GATEWAY_BODY_TIMEOUT_SECONDS",
        "DTPOC_GATEWAY_UPLOAD_IDLE_SECONDS",
    }
)


def test_ingress_routes_the_api_with_the_original_body_limit() -> None:
    ingress = chart.render().named("Ingress", "dtpoc-gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == (
        "512m"
    )
    paths = {p["path"]: p for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    # the API, and the web console's page (exactly /) and assets
    assert {k: p["pathType"] for k, p in paths.items()} == {
        "/api/orchestrator": "Prefix",
        "/": "Exact",
        "/assets": "Prefix",
    }
    assert {p["backend"]["service"]["name"] for p in paths.values()} == {"dtpoc-gateway"}
    other = chart.render(sets=["ingress.className=traefik", "ingress.host=dt.example.org"])
    spec = other.named("Ingress", "dtpoc-gateway")["spec"]
    assert spec["ingressClassName"] == "traefik"
    assert spec["rules"][0]["host"] == "dt.example.org"


def test_ingress_serves_https_by_default_and_the_notes_say_which_secret_to_create(
    tmp_path: Path,
) -> None:
    ingress = chart.render().named("Ingress", "dtpoc-gateway")
    assert ingress["spec"]["tls"] == [{"secretName": "dtpoc-tls"}]
    assert not any(k.startswith("cert-manager.io/") for k in ingress["metadata"]["annotations"])
    notes = chart.render_notes(workdir=tmp_path / "default")
    assert "API=https://" in notes
    assert (
        "The web console (files, services, results as charts) is at / of the same address:\n"
        "     https://<address of your ingress controller>/\n" in notes
    )
    assert "kubectl -n dtpoc create secret tls dtpoc-tls --cert=" in notes
    # A named host is the certificate's; an existing Secret is used as it is.
    named = chart.render(sets=["ingress.host=dt.example.org", "ingress.tls.secretName=dt-cert"])
    spec = named.named("Ingress", "dtpoc-gateway")["spec"]
    assert spec["tls"] == [{"secretName": "dt-cert", "hosts": ["dt.example.org"]}]


def test_cert_manager_writes_the_tls_secret_when_an_issuer_is_named(tmp_path: Path) -> None:
    sets = ["ingress.host=dt.example.org", "ingress.tls.clusterIssuer=letsencrypt"]
    ingress = chart.render(sets=sets).named("Ingress", "dtpoc-gateway")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "512m"
    assert ingress["spec"]["tls"] == [{"secretName": "dtpoc-tls", "hosts": ["dt.example.org"]}]
    notes = chart.render_notes(sets=sets, workdir=tmp_path)
    assert "cert-manager writes the certificate into Secret dtpoc-tls" in notes
    assert "create secret tls" not in notes
    issuer = chart.render(sets=["ingress.host=dt.example.org", "ingress.tls.issuer=local-ca"])
    annotations = issuer.named("Ingress", "dtpoc-gateway")["metadata"]["annotations"]
    assert annotations["cert-manager.io/issuer"] == "local-ca"


def test_plain_http_is_a_choice_the_notes_warn_about(tmp_path: Path) -> None:
    sets = ["ingress.tls.enabled=false"]
    assert "tls" not in chart.render(sets=sets).named("Ingress", "dtpoc-gateway")["spec"]
    notes = chart.render_notes(sets=sets, workdir=tmp_path)
    assert "API=http://" in notes
    assert "WARNING: ingress.tls.enabled is false" in notes


def _operator_env(rendered: chart.Rendered) -> dict[str, str]:
    (container,) = chart.containers(rendered.named("Deployment", "dtpoc-operator"))
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_analytics_services_stay_in_the_cluster_unless_the_chart_exposes_them() -> None:
    for files in chart.SHAPES.values():
        rendered = chart.render(files)
        env = _operator_env(rendered)
        assert env["DTPOC_OPERATOR_EXPOSE_SERVICES"] == "false", files
        # ... and the orchestrator refuses a launch with expose (400 naming the field).
        orchestrator = _env(rendered, "dtpoc-orchestrator")
        assert orchestrator["DTPOC_ORCHESTRATOR_EXPOSE_SERVICES"] == "false", files
    exposed = chart.render(sets=["analytics.expose.enabled=true", "ingress.host=dt.example.org"])
    env = _operator_env(exposed)
    assert env["DTPOC_OPERATOR_EXPOSE_SERVICES"] == "true"
    assert _env(exposed, "dtpoc-orchestrator")["DTPOC_ORCHESTRATOR_EXPOSE_SERVICES"] == "true"
    # The gateway's token check, through its Service (port 80 -> the gateway's http port).
    assert env["DTPOC_OPERATOR_EXPOSE_AUTH_URL"] == (
        "http://dtpoc-gateway.dtpoc.svc.cluster.local:80/auth/check"
    )
    service = exposed.named("Service", "dtpoc-gateway")
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    # The Ingresses of exposed services are the API's kind: class, host, TLS Secret.
    assert env["DTPOC_OPERATOR_INGRESS_CLASS"] == "nginx"
    assert env["DTPOC_OPERATOR_INGRESS_HOST"] == "dt.example.org"
    assert env["DTPOC_OPERATOR_INGRESS_TLS_SECRET_NAME"] == "dtpoc-tls"
    plain = chart.render(sets=["analytics.expose.enabled=true", "ingress.tls.enabled=false"])
    assert _operator_env(plain)["DTPOC_OPERATOR_INGRESS_TLS_SECRET_NAME"] == ""


def test_the_notes_say_where_analytics_services_are_reached(tmp_path: Path) -> None:
    notes = chart.render_notes(workdir=tmp_path / "default")
    assert "reachable inside the cluster only" in notes
    assert "port-forward svc/ana-<service-id> <port>" in notes
    sets = ["analytics.expose.enabled=true", "ingress.host=dt.example.org"]
    exposed = chart.render_notes(sets=sets, workdir=tmp_path / "exposed")
    assert 'curl -H "Authorization: Bearer $TOKEN" https://dt.example.org/<service-id>/' in exposed


def test_disruption_budgets_only_where_there_are_replicas_to_spare() -> None:
    assert chart.render().of_kind("PodDisruptionBudget") == []
    budgets = chart.render([chart.PRODUCTION]).of_kind("PodDisruptionBudget")
    assert sorted(b["metadata"]["name"] for b in budgets) == [
        "dtpoc-files",
        "dtpoc-gateway",
        "dtpoc-orchestrator",
    ]


# --- storage -----------------------------------------------------------------------------


def test_output_volume_access_mode_and_class_follow_values() -> None:
    default = chart.render().named("PersistentVolumeClaim", "dtpoc-output")["spec"]
    assert default["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in default  # the cluster's default class
    production = chart.render([chart.PRODUCTION]).named("PersistentVolumeClaim", "dtpoc-output")
    assert production["spec"]["accessModes"] == ["ReadWriteMany"]
    assert production["spec"]["storageClassName"] == "nfs-csi"


def test_host_path_mode_binds_each_claim_to_a_folder_on_the_chosen_node() -> None:
    rendered = chart.render([chart.DOCKER_DESKTOP], namespace="dd")
    values = chart.merged_values([chart.DOCKER_DESKTOP])["persistence"]["hostPath"]
    volumes = {pv["spec"]["claimRef"]["name"]: pv for pv in rendered.of_kind("PersistentVolume")}
    claims = {
        "dtpoc-output": "output",
        "data-dtpoc-mongodb-0": "mongodb",
        "data-dtpoc-influxdb-0": "influxdb",
    }
    assert set(volumes) == set(claims)
    for claim, folder in claims.items():
        spec = volumes[claim]["spec"]
        assert spec["hostPath"]["path"] == f"{values['root']}/{folder}"
        assert spec["claimRef"]["namespace"] == "dd"
        assert spec["storageClassName"] == values["storageClassName"]
        term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert term["values"] == ["docker-desktop"]
    for sts in rendered.of_kind("StatefulSet"):
        (template,) = sts["spec"]["volumeClaimTemplates"]
        assert template["spec"]["storageClassName"] == values["storageClassName"]


def test_databases_are_statefulsets_with_claims_of_the_configured_class() -> None:
    rendered = chart.render(sets=["persistence.storageClass=fast", "mongodb.persistence.size=3Gi"])
    mongo = rendered.named("StatefulSet", "dtpoc-mongodb")
    (claim,) = mongo["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert "--auth" in next(chart.containers(mongo))["args"]


# --- values the schema or the templates refuse -----------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["persistence.output.accessMode=RWX"], "/persistence/output/accessMode"),
        (["operator.replicas=2"], "/operator/replicas"),
        (["files.port=0"], "/files/port"),
        (["platformSecurity.runAsUser=0"], "/platformSecurity/runAsUser"),
        (["telegraf.sensors[0].name=Light_Sensor"], "/telegraf/sensors/0"),
        (["ingress.enabeld=true"], "enabeld"),
        (["ingress.tls[0].secretName=x"], "/ingress/tls"),
        (["analytics.expose.enabled=true", "ingress.enabled=false"],
         "analytics.expose.enabled needs ingress.enabled"),
        (["analytics.expose.enabled=yes"], "/analytics/expose/enabled"),
        (["ingress.tls.clusterIssuer=letsencrypt"], "set ingress.host"),
        (["ingress.host=a.example.org", "ingress.tls.clusterIssuer=a",
          "ingress.tls.issuer=b"], "clusterIssuer or issuer, not both"),
        (["mongodb.auth.rootUsername=root"], "well-known default account name"),
        (["grafana.auth.adminUser=admin"], "well-known default account name"),
        (["mongodb.enabled=false", "mongoExpress.enabled=false"], "mongodb.auth.existingSecret"),
        (["influxdb.enabled=false"], "telegraf.sensors need somewhere to write"),
        (["mosquitto.enabled=false", "telegraf.sensors[0].name=x",
          "telegraf.sensors[0].measurement=m", "telegraf.sensors[0].mqtt.topics[0]=a",
          "telegraf.sensors[0].fields[0].path=v"], "mosquitto.enabled is off"),
    ],
)  # fmt: skip
def test_wrong_values_fail_with_a_message_naming_them(sets: list[str], message: str) -> None:
    assert message in chart.render_error(sets=sets)


def test_values_files_of_the_repository_are_all_checked() -> None:
    on_disk = sorted(p.name for p in chart.CHART_DIR.glob("values*.yaml"))
    assert on_disk == sorted(
        [
            "values.yaml",
            *(Path(f).name for f in (chart.PRODUCTION, chart.DOCKER_DESKTOP, chart.CLUSTER)),
        ]
    )


def test_ferretdb_serves_mongodb_without_users_and_keeps_its_data_on_the_volume() -> None:
    rendered = chart.render([chart.CLUSTER])
    uri = rendered.named("Secret", "dtpoc-mongodb-auth")["stringData"]["mongodb-uri"]
    assert uri == "mongodb://dtpoc-mongodb.dtpoc.svc.cluster.local:27017/"
    pod = rendered.named("StatefulSet", "dtpoc-mongodb")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "args" not in container, "the FerretDB image's entrypoint is used as it is"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FERRETDB_SQLITE_URL"] == "file:/state/"
    assert {"name": "data", "mountPath": "/state"} in container["volumeMounts"]
    assert not [v for v in pod["volumes"] if "configMap" in v], "no mongod init scripts"
    assert not rendered.of_kind("ConfigMap") or all(
        "mongodb-init" not in c["metadata"]["name"] for c in rendered.of_kind("ConfigMap")
    )


# --- network policies ------------------------------------------------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator == "NotIn" and labels.get(key) in expression["values"]:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _pod_labels(rendered: chart.Rendered, workload: str) -> dict[str, str]:
    for w in rendered.workloads():
        if w["metadata"]["name"] == workload:
            return dict(w["spec"]["template"]["metadata"]["labels"])
    raise KeyError(workload)


def _may_connect(rendered: chart.Rendered, source: dict[str, str], target: str, port: str) -> bool:
    """Kubernetes semantics: allowed if no policy selects the target pod, or one allows it."""
    target_labels = _pod_labels(rendered, target)
    selecting = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if _matches(p["spec"]["podSelector"], target_labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = [p["port"] for p in rule.get("ports") or []]
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if peers is None or any(
                "podSelector" in peer and _matches(peer["podSelector"], source) for peer in peers
            ):
                return True
    return False


def test_network_policies_admit_exactly_the_platforms_connections() -> None:
    rendered = chart.render()
    pods = {w["metadata"]["name"]: _pod_labels(rendered, w["metadata"]["name"])
            for w in rendered.workloads()}  # fmt: skip
    analytics_pod = {
        "app.kubernetes.io/managed-by": "dtpoc-operator",
        "batch.kubernetes.io/job-name": "x",
    }
    ingress_controller = {"app.kubernetes.io/name": "ingress-nginx"}
    allowed = [
        ("dtpoc-gateway", "dtpoc-files", "grpc"),
        ("dtpoc-gateway", "dtpoc-orchestrator", "grpc"),
        ("dtpoc-orchestrator", "dtpoc-files", "grpc"),
        ("dtpoc-files", "dtpoc-orchestrator", "grpc"),
        ("dtpoc-operator", "dtpoc-files", "grpc"),
        ("dtpoc-files", "dtpoc-mongodb", "mongodb"),
        ("dtpoc-orchestrator", "dtpoc-mongodb", "mongodb"),
        ("dtpoc-mongo-express", "dtpoc-mongodb", "mongodb"),
        ("dtpoc-telegraf-light", "dtpoc-influxdb", "http"),
        ("dtpoc-grafana", "dtpoc-influxdb", "http"),
        ("dtpoc-node-red", "dtpoc-mosquitto", "mqtt"),
    ]
    denied = [
        ("dtpoc-gateway", "dtpoc-mongodb", "mongodb"),
        ("dtpoc-operator", "dtpoc-mongodb", "mongodb"),
        ("dtpoc-telegraf-light", "dtpoc-mongodb", "mongodb"),
        ("dtpoc-grafana", "dtpoc-files", "grpc"),
        ("dtpoc-node-red", "dtpoc-influxdb", "http"),
        ("dtpoc-gateway", "dtpoc-mongo-express", "http"),
        ("dtpoc-files", "dtpoc-node-red", "http"),
    ]
    for source, target, port in allowed:
        assert _may_connect(rendered, pods[source], target, port), (source, target)
    for source, target, port in denied:
        assert not _may_connect(rendered, pods[source], target, port), (source, target)
    assert _may_connect(rendered, analytics_pod, "dtpoc-files", "grpc")
    assert not _may_connect(rendered, analytics_pod, "dtpoc-mongodb", "mongodb")
    assert not _may_connect(rendered, analytics_pod, "dtpoc-orchestrator", "grpc")
    assert _may_connect(rendered, ingress_controller, "dtpoc-gateway", "http")
    assert not _may_connect(rendered, ingress_controller, "dtpoc-mongo-express", "http")
    # Every pod of the chart is covered by a policy.
    for name, labels in pods.items():
        assert any(_matches(p["spec"]["podSelector"], labels)
                   for p in rendered.of_kind("NetworkPolicy")), name  # fmt: skip
