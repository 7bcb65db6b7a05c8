"""Least privilege: what the rendered RBAC lets the operator's ServiceAccount do is exactly
the expected set, for every values case (a verb, resource or binding added anywhere fails)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from chart_cases import CASES, EXPECTED_PERMISSIONS, FULLNAME, NAMESPACE, RELEASE, expected_permissions
from render import REPO_ROOT, render

RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def service_account(values) -> str:
    sa = (values or {}).get("serviceAccount", {})
    return sa.get("name") or FULLNAME


def effective_permissions(
    docs, sa_name: str, namespace: str = NAMESPACE
) -> set[tuple[str, str, str, str, str]]:
    """(where, apiGroup, resource, resourceName or "*", verb) granted to the ServiceAccount,
    where is "cluster" or the namespace of a RoleBinding."""
    roles = {}
    for d in docs:
        if d["kind"] == "ClusterRole":
            roles[("ClusterRole", None, d["metadata"]["name"])] = d
        elif d["kind"] == "Role":
            roles[("Role", d["metadata"]["namespace"], d["metadata"]["name"])] = d
    perms = set()
    used = set()
    for d in docs:
        if d["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        assert d["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}], d
        ref = d["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        where = "cluster" if d["kind"] == "ClusterRoleBinding" else d["metadata"]["namespace"]
        key = (ref["kind"], None if ref["kind"] == "ClusterRole" else where, ref["name"])
        assert key in roles, f"{d['kind']} {d['metadata']['name']} binds a role the chart does not render"
        used.add(key)
        for rule in roles[key]["rules"]:
            assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, rule
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for name in rule.get("resourceNames", ["*"]):
                        for verb in rule["verbs"]:
                            perms.add((where, group, resource, name, verb))
    assert used == set(roles), f"roles rendered but never bound: {set(roles) - used}"
    return perms


@pytest.mark.parametrize("case", CASES)
def test_rbac_is_exactly_what_the_operator_needs(case):
    values = CASES[case]
    docs = [d for _, d in render(values, release=RELEASE, namespace=NAMESPACE)]
    granted = effective_permissions([d for d in docs if d["kind"] in RBAC_KINDS], service_account(values))
    expected = EXPECTED_PERMISSIONS[case]
    assert granted - expected == set(), "granted beyond what the operator needs"
    assert expected - granted == set(), "missing a permission the operator needs"


def test_nothing_cluster_wide_for_leases_or_the_release_namespace_secrets():
    docs = [d for _, d in render(None, release=RELEASE, namespace=NAMESPACE)]
    for d in docs:
        if d["kind"] == "ClusterRole":
            for rule in d["rules"]:
                assert "coordination.k8s.io" not in rule["apiGroups"]
                assert "resourceNames" not in rule


def test_no_leader_election_means_no_lease_access():
    docs = [d for _, d in render({"leaderElection": {"enabled": False}}, release=RELEASE, namespace=NAMESPACE)]
    assert not any(
        "coordination.k8s.io" in rule["apiGroups"]
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        for rule in d["rules"]
    )


def test_the_e2e_manifest_carries_every_rbac_object(tmp_path):
    """What scripts/test.sh renders for the Rust end-to-end tests (JSO_CHART_MANIFEST)."""
    out = tmp_path / "e2e.yaml"
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tests" / "chart" / "render.py"),
            "--release",
            "jso",
            "--namespace",
            "e2e-system",
            "--values-json",
            '{"watchNamespaces": []}',
            "--out",
            str(out),
        ],
        check=True,
    )
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert kind in kinds, kind
    # Helm's install order: the ServiceAccount and RBAC before the Deployment.
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRole") < kinds.index("Deployment")
    assert not {"CustomResourceDefinition"} & set(kinds)
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert sa["metadata"] == {
        "name": "jso-juju-secrets-operator",
        "namespace": "e2e-system",
        "labels": sa["metadata"]["labels"],
    }
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    granted = effective_permissions(rbac, "jso-juju-secrets-operator", namespace="e2e-system")
    assert granted == expected_permissions(namespace="e2e-system")
