"""Values sets the chart tests render, lint and dry-run, and what the operator may do."""

from __future__ import annotations

RELEASE = "jso"
NAMESPACE = "juju-system"
FULLNAME = "jso-juju-secrets-operator"
WATCHED = ["team-a", "team-b"]

# A syntactically valid PEM block (not a real CA: the chart never parses it).
FAKE_CA = """-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQ2hhcnRUZXN0Q2hhcnRUZXN0Q2hhcnQwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwManVqdS10ZXN0LWNhMB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAw
-----END CERTIFICATE-----
"""

CONNECTION = {
    "create": True,
    "name": "juju-connection",
    "endpoints": ["10.0.0.10:17070", "10.0.0.11:17070"],
    "caCert": FAKE_CA,
    "username": "secrets-operator",
    "password": "not-a-real-password",
}

TENANCY = {
    "namespaces": {
        "team-a": ["admin/team-a-dev"],
        "team-b": ["admin/team-b", "6f1c2a8e-0c55-4b7e-9d8e-2f0b1f3c4d5e"],
        "*": [],
    }
}

# Every value set to something other than its default.
FULL = {
    "image": {
        "repository": "registry.example/juju-secrets-operator",
        "tag": "0.1.0-test",
        "pullPolicy": "Always",
    },
    "imagePullSecrets": [{"name": "registry-creds"}],
    "nameOverride": "",
    "fullnameOverride": "jso-full",
    "juju": {"connectionSecret": dict(CONNECTION, name="juju-controller")},
    "watchNamespaces": WATCHED,
    "refreshInterval": "30s",
    "logFormat": "json",
    "logLevel": "info,juju_secrets_operator=debug",
    "tenancy": {"policy": TENANCY},
    "replicaCount": 2,
    "leaderElection": {"enabled": True, "leaseName": "jso-leader", "leaseDuration": "20s"},
    "metrics": {
        "port": 9090,
        "service": {"enabled": True, "annotations": {"example.com/scrape": "true"}},
        "serviceMonitor": {"enabled": True, "interval": "1m", "labels": {"release": "prometheus"}},
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
    "serviceAccount": {
        "create": True,
        "name": "jso-operator",
        "annotations": {"example.com/owner": "platform"},
    },
    "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"example.com/tier": "control"},
    "podSecurityContext": {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "securityContext": {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    },
    "livenessProbe": {
        "initialDelaySeconds": 15,
        "periodSeconds": 30,
        "timeoutSeconds": 3,
        "failureThreshold": 5,
    },
    "readinessProbe": {
        "initialDelaySeconds": 2,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 2,
        "successThreshold": 1,
    },
    "priorityClassName": "platform-high",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {
                            "matchLabels": {"app.kubernetes.io/name": "juju-secrets-operator"}
                        },
                    },
                }
            ]
        }
    },
}

# name -> values (None: the chart's defaults).
CASES: dict[str, dict | None] = {
    "defaults": None,
    "restricted": {
        "watchNamespaces": WATCHED,
        "tenancy": {"policy": TENANCY},
        "serviceAccount": {"create": False, "name": "existing-operator"},
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
    },
    "connection-from-values": {"juju": {"connectionSecret": CONNECTION}},
    "ha-monitoring": {
        "replicaCount": 2,
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "podDisruptionBudget": {"enabled": True},
    },
    "no-leader-election": {"leaderElection": {"enabled": False}},
    "fully-loaded": FULL,
}


# ---- what the operator may do ---------------------------------------------------------
#
# One permission: (where, apiGroup, resource, resourceName or "*", verb), where is
# "cluster" for a ClusterRoleBinding, else the namespace of the RoleBinding.

KINDS = ["jujusecrets", "jujusecretgrants", "jujusecretbackends"]


def expected_permissions(
    *,
    namespace: str = NAMESPACE,
    watch: list[str] | None = None,
    connection_secret: str = "juju-connection",
    lease: str | None = FULLNAME,
) -> set[tuple[str, str, str, str, str]]:
    perms = set()

    def add(where, group, resources, verbs, names=("*",)):
        for r in resources:
            for v in verbs:
                for n in names:
                    perms.add((where, group, r, n, v))

    # The three kinds, their status and finalizers: everywhere (JujuSecretBackend is
    # cluster-scoped, and the kinds are listed cluster-wide).
    add("cluster", "secrets.juju.is", KINDS, ["get", "list", "watch", "patch", "update"])
    add(
        "cluster",
        "secrets.juju.is",
        [f"{k}/{sub}" for k in KINDS for sub in ("status", "finalizers")],
        ["get", "patch", "update"],
    )
    add("cluster", "events.k8s.io", ["events"], ["create", "patch"])
    add("cluster", "apiextensions.k8s.io", ["customresourcedefinitions"], ["get", "list"])
    # Secrets: sources read, generated values written (server-side apply creates them).
    for where in watch or ["cluster"]:
        add(where, "", ["secrets"], ["get", "list", "watch", "create", "patch"])
    # The release namespace: the connection and MAC-key Secrets, the Lease.
    add(namespace, "", ["secrets"], ["get"], names=(connection_secret, "juju-secrets-operator-mac-key"))
    add(namespace, "", ["configmaps"], ["get", "update"],
        names=tuple(f"juju-secrets-operator-ownership-{i:02d}" for i in range(32)))
    add(namespace, "", ["configmaps"], ["create"])
    add(namespace, "", ["secrets"], ["create"])
    if lease:
        add(namespace, "coordination.k8s.io", ["leases"], ["create"])
        add(namespace, "coordination.k8s.io", ["leases"], ["get", "update", "patch"], names=(lease,))
    return perms


EXPECTED_PERMISSIONS = {
    "defaults": expected_permissions(),
    "restricted": expected_permissions(watch=WATCHED),
    "connection-from-values": expected_permissions(),
    "ha-monitoring": expected_permissions(),
    "no-leader-election": expected_permissions(lease=None),
    "fully-loaded": expected_permissions(
        watch=WATCHED, connection_secret="juju-controller", lease="jso-leader"
    ),
}
