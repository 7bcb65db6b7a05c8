"""The chart rendered by Helm's own engine (helm-python-sdk): lint, objects, key fields."""

from __future__ import annotations

import base64
from collections import Counter

import helm_python as helm
import pytest
import yaml
from chart_cases import CASES, CONNECTION, FULL, FULLNAME, NAMESPACE, RELEASE, TENANCY, WATCHED
from render import CHART_DIR, REPO_ROOT, render

SELECTOR = {"app.kubernetes.io/name": "juju-secrets-operator", "app.kubernetes.io/instance": RELEASE}


def objects(values=None, **kw):
    return [doc for _, doc in render(values, release=RELEASE, namespace=NAMESPACE, **kw)]


def kinds(docs) -> Counter:
    return Counter(d["kind"] for d in docs)


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(docs):
    deployment = one(docs, "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env(docs) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


# ---- lint ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["defaults", "fully-loaded", "restricted", "ha-monitoring"])
def test_lint_strict_passes(case):
    report = helm.lint(str(CHART_DIR), CASES[case], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


# Helm lints in "lint mode", where `required` and `fail` only log: those are checked by
# rendering below. Schema errors are lint errors (test_chart_schema.py).


def test_helm_loads_the_generated_crds():
    """Helm follows the crds/ link (tests/chart.rs checks the link itself)."""
    generated = {p.name: p.read_text() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    assert len(generated) == 3
    with helm.Chart.load(str(CHART_DIR)) as chart:
        shipped = {c["name"].removeprefix("crds/"): c["data"] for c in chart.crds}
    assert shipped == generated


# ---- defaults --------------------------------------------------------------------------


def test_defaults_render_exactly_the_operator_and_its_rbac():
    docs = objects()
    assert kinds(docs) == Counter(
        {
            "ServiceAccount": 1,
            "ClusterRole": 2,
            "ClusterRoleBinding": 2,
            "Role": 1,
            "RoleBinding": 1,
            "Deployment": 1,
        }
    )
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == RELEASE


def test_every_namespaced_object_names_its_namespace():
    # render.py's output is applied with plain clients (the Rust end-to-end tests), which do
    # not fill in a namespace as Helm does.
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for case, values in CASES.items():
        for d in objects(values):
            if d["kind"] not in cluster_scoped:
                assert d["metadata"].get("namespace"), f"{case}: {d['kind']} {d['metadata']['name']}"


def test_default_deployment_is_locked_down_and_probed():
    docs = objects()
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"] == SELECTOR
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c = container(docs)
    assert c["image"] == "juju-secrets-operator:0.1.0"
    assert c["args"] == ["run"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert c["resources"]["limits"] == {"memory": "512Mi"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["periodSeconds"] == 20
    assert c["readinessProbe"]["periodSeconds"] == 10
    # /tmp is the only writable path.
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_default_environment_enables_leader_election():
    assert env(objects()) == {
        "JUJU_CONNECTION_SECRET": f"{NAMESPACE}/juju-connection",
        "REFRESH_INTERVAL": "10m",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "info",
        "METRICS_ADDR": "0.0.0.0:8080",
        "LEADER_ELECTION": "true",
        "LEASE_NAME": FULLNAME,
        "LEASE_NAMESPACE": NAMESPACE,
        "LEASE_DURATION": "15s",
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
    }


def test_without_leader_election_no_lease_settings():
    e = env(objects({"leaderElection": {"enabled": False}}))
    assert e["LEADER_ELECTION"] == "false"
    assert not {"LEASE_NAME", "LEASE_NAMESPACE", "LEASE_DURATION"} & set(e)
    assert "POD_NAME" in e


def test_more_than_one_replica_needs_leader_election():
    with pytest.raises(helm.HelmRenderError, match="leaderElection"):
        objects({"replicaCount": 2, "leaderElection": {"enabled": False}})


def test_lease_name_and_duration_follow_values():
    e = env(objects({"leaderElection": {"leaseName": "my-lease", "leaseDuration": "45s"}}))
    assert (e["LEASE_NAME"], e["LEASE_DURATION"]) == ("my-lease", "45s")


# ---- restricted namespaces -------------------------------------------------------------


def test_restricted_namespaces():
    docs = objects(CASES["restricted"])
    assert kinds(docs) == Counter(
        {
            "ClusterRole": 2,
            "ClusterRoleBinding": 1,  # the kinds; Secrets are bound per namespace
            "Role": 1,
            "RoleBinding": 3,
            "ConfigMap": 1,
            "Deployment": 1,
        }
    )
    secret_bindings = sorted(
        d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "ClusterRole"
    )
    assert secret_bindings == WATCHED
    for d in docs:
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert d["subjects"] == [{"kind": "ServiceAccount", "name": "existing-operator", "namespace": NAMESPACE}]
    e = env(docs)
    assert e["WATCH_NAMESPACES"] == "team-a,team-b"
    assert e["RUST_BACKTRACE"] == "1"
    c = container(docs)
    policy_dir = "/etc/juju-secrets-operator/tenancy"
    assert c["args"] == ["run", f"--tenancy-policy={policy_dir}/policy.yaml"]
    assert {"name": "tenancy-policy", "mountPath": policy_dir, "readOnly": True} in c["volumeMounts"]
    cm = one(docs, "ConfigMap")
    assert cm["metadata"]["name"] == f"{FULLNAME}-tenancy"
    assert yaml.safe_load(cm["data"]["policy.yaml"]) == TENANCY
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "tenancy-policy", "configMap": {"name": f"{FULLNAME}-tenancy"}} in pod["volumes"]


def test_a_new_tenancy_policy_restarts_the_pod():
    def checksum(values):
        return one(objects(values), "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/tenancy-policy"
        ]

    assert checksum(CASES["restricted"]) != checksum({"tenancy": {"policy": {"namespaces": {"*": ["*"]}}}})


# ---- the Juju connection ---------------------------------------------------------------


def test_connection_secret_from_values():
    docs = objects(CASES["connection-from-values"])
    assert kinds(docs)["Secret"] == 1
    secret = one(docs, "Secret")
    assert secret["metadata"] == {
        "name": "juju-connection",
        "namespace": NAMESPACE,
        "labels": secret["metadata"]["labels"],
    }
    assert secret["type"] == "Opaque"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "endpoints": "10.0.0.10:17070,10.0.0.11:17070",
        "ca-cert": CONNECTION["caCert"],
        "username": CONNECTION["username"],
        "password": CONNECTION["password"],
    }
    assert env(docs)["JUJU_CONNECTION_SECRET"] == f"{NAMESPACE}/juju-connection"
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/juju-connection" in annotations
    # The password is in no other object.
    for d in docs:
        if d["kind"] != "Secret":
            assert CONNECTION["password"] not in yaml.safe_dump(d)


def test_new_connection_values_restart_the_pod():
    def checksum(password):
        values = {"juju": {"connectionSecret": dict(CONNECTION, password=password)}}
        return one(objects(values), "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/juju-connection"
        ]

    assert checksum("one-password") != checksum("another-password")


def test_existing_connection_secret_is_not_rendered():
    docs = objects({"juju": {"connectionSecret": {"name": "my-juju"}}})
    assert "Secret" not in kinds(docs)
    assert env(docs)["JUJU_CONNECTION_SECRET"] == f"{NAMESPACE}/my-juju"
    role = one(docs, "Role")
    assert role["rules"][0]["resourceNames"] == ["my-juju", "juju-secrets-operator-mac-key"]


@pytest.mark.parametrize(
    "missing, empty",
    [("endpoints", []), ("caCert", ""), ("username", ""), ("password", "")],
)
def test_connection_from_values_requires_every_field(missing, empty):
    values = {"juju": {"connectionSecret": dict(CONNECTION, **{missing: empty})}}
    with pytest.raises(helm.HelmRenderError, match=f"juju.connectionSecret.{missing}"):
        objects(values)


# ---- high availability and monitoring --------------------------------------------------


def test_ha_monitoring():
    docs = objects(CASES["ha-monitoring"])
    assert kinds(docs) == Counter(
        {
            "ServiceAccount": 1,
            "ClusterRole": 2,
            "ClusterRoleBinding": 2,
            "Role": 1,
            "RoleBinding": 1,
            "Deployment": 1,
            "Service": 1,
            "ServiceMonitor": 1,
            "PodDisruptionBudget": 1,
        }
    )
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert env(docs)["LEADER_ELECTION"] == "true"

    service = one(docs, "Service")
    assert service["metadata"]["name"] == f"{FULLNAME}-metrics"
    assert service["spec"]["selector"] == SELECTOR
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]

    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), "the ServiceMonitor must select the Service"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s"}]

    pdb = one(docs, "PodDisruptionBudget")
    # Offline, Helm's default capabilities are a recent Kubernetes: policy/v1 (the dry-run
    # test checks that a 1.20 apiserver gets policy/v1beta1).
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}
    assert SELECTOR.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_metrics_service_alone():
    docs = objects({"metrics": {"service": {"enabled": True, "annotations": {"a": "b"}}, "port": 9100}})
    assert "ServiceMonitor" not in kinds(docs)
    service = one(docs, "Service")
    assert service["metadata"]["annotations"] == {"a": "b"}
    assert service["spec"]["ports"][0]["port"] == 9100
    assert env(docs)["METRICS_ADDR"] == "0.0.0.0:9100"
    assert container(docs)["ports"][0]["containerPort"] == 9100


def test_pdb_percentage():
    pdb = one(objects({"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == "50%"


# ---- everything set --------------------------------------------------------------------


def test_fully_loaded():
    docs = objects(FULL)
    assert kinds(docs) == Counter(
        {
            "ServiceAccount": 1,
            "Secret": 1,
            "ConfigMap": 1,
            "ClusterRole": 2,
            "ClusterRoleBinding": 1,
            "Role": 1,
            "RoleBinding": 3,
            "Service": 1,
            "Deployment": 1,
            "PodDisruptionBudget": 1,
            "ServiceMonitor": 1,
        }
    )
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == "jso-operator"
    assert sa["metadata"]["annotations"] == {"example.com/owner": "platform"}
    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["name"] == "jso-full"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["example.com/tier"] == "control"
    assert pod["metadata"]["annotations"]["example.com/team"] == "platform"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "jso-operator"
    assert spec["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert spec["priorityClassName"] == "platform-high"
    assert spec["nodeSelector"] == FULL["nodeSelector"]
    assert spec["tolerations"] == FULL["tolerations"]
    assert spec["affinity"] == FULL["affinity"]
    assert spec["securityContext"] == FULL["podSecurityContext"]
    c = container(docs)
    assert c["image"] == "registry.example/juju-secrets-operator:0.1.0-test"
    assert c["imagePullPolicy"] == "Always"
    assert c["resources"] == FULL["resources"]
    assert c["securityContext"] == FULL["securityContext"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert {k: v for k, v in c[probe].items() if k != "httpGet"} == FULL[probe]
    e = env(docs)
    assert e["JUJU_CONNECTION_SECRET"] == f"{NAMESPACE}/juju-controller"
    assert e["LEASE_NAME"] == "jso-leader"
    assert e["LEASE_DURATION"] == "20s"
    assert e["LOG_FORMAT"] == "json"
    assert e["LOG_LEVEL"] == "info,juju_secrets_operator=debug"
    assert e["REFRESH_INTERVAL"] == "30s"
    assert e["METRICS_ADDR"] == "0.0.0.0:9090"
    assert one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["interval"] == "1m"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == "50%"
    assert one(docs, "Secret")["metadata"]["name"] == "juju-controller"


def test_notes_describe_the_install():
    with helm.Chart.load(str(CHART_DIR)) as chart:
        notes = chart.render(FULL, name=RELEASE, namespace=NAMESPACE, is_install=True)[
            "juju-secrets-operator/templates/NOTES.txt"
        ]
        assert "created by this chart" in notes
        assert "Lease juju-system/jso-leader" in notes
        assert "ServiceMonitor jso-full" in notes
        assert "team-a, team-b" in notes
        default_notes = chart.render(None, name=RELEASE, namespace=NAMESPACE, is_install=True)[
            "juju-secrets-operator/templates/NOTES.txt"
        ]
        assert "kubectl -n juju-system create secret generic juju-connection" in default_notes
        assert "kubectl get jujusecrets -A" in default_notes
