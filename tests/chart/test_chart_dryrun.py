"""Every rendered object is accepted by a real kube-apiserver (Kubernetes 1.20, started by
scripts/kube-apiserver.sh): server-side apply with dryRun=All, fieldManager=helm, after the
release namespaces, the chart's CRDs and a ServiceMonitor CRD were created for real.

The chart is rendered cluster-aware: helm-python-sdk's Config.install(dry_run="server"),
Helm's `install --dry-run=server`, which reads the cluster's Kubernetes version and API
versions into .Capabilities (so the PodDisruptionBudget is policy/v1beta1 on 1.20), stores
no release and creates nothing. (Config.render would not do: it contacts the cluster for
`lookup` only and keeps Helm's default capabilities.)
"""

from __future__ import annotations

import pytest
from chart_cases import CASES, NAMESPACE, RELEASE
from chart_fixtures import cluster, kube_apiserver  # noqa: F401 (fixtures)
from kubernetes.client.exceptions import ApiException
from render import render


def apply_all(cluster, docs) -> list[str]:
    """Dry-run every object; the refusals, as readable lines."""
    refused = []
    for source, doc in docs:
        what = f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']} ({source})"
        try:
            applied = cluster.apply_dry_run(doc)
        except ApiException as e:
            refused.append(f"{what}: HTTP {e.status}: {e.body}")
            continue
        except LookupError as e:
            refused.append(f"{what}: {e}")
            continue
        # The server answered with the object it would have stored.
        if applied.get("kind") != doc["kind"] or applied["metadata"]["name"] != doc["metadata"]["name"]:
            refused.append(f"{what}: unexpected answer {applied.get('kind')} {applied['metadata']}")
    return refused


@pytest.mark.parametrize("case", CASES)
def test_every_object_passes_server_side_dry_run(cluster, case):
    docs = render(CASES[case], release=RELEASE, namespace=NAMESPACE, kubeconfig=cluster.kubeconfig)
    assert any(d["kind"] == "Deployment" for _, d in docs)
    for _, d in docs:
        if d["kind"] == "PodDisruptionBudget":
            assert d["apiVersion"] == "policy/v1beta1", "1.20 serves no policy/v1"
    assert apply_all(cluster, docs) == []
    # Dry run: nothing was stored.
    for _, d in docs:
        assert not cluster.exists(d), f"{d['kind']} {d['metadata']['name']} was created"


def test_cluster_aware_render_equals_offline_render_but_for_capabilities(cluster):
    values = CASES["fully-loaded"]
    online = render(values, release=RELEASE, namespace=NAMESPACE, kubeconfig=cluster.kubeconfig)
    offline = render(values, release=RELEASE, namespace=NAMESPACE)
    for (_, a), (_, b) in zip(online, offline, strict=True):
        if a["kind"] == "PodDisruptionBudget":
            assert (a["apiVersion"], b["apiVersion"]) == ("policy/v1beta1", "policy/v1")
            a, b = dict(a, apiVersion=None), dict(b, apiVersion=None)
        assert a == b


def test_the_dry_run_does_refuse_what_the_server_does_not_take(cluster):
    """The check can fail: an offline render targets a recent Kubernetes (policy/v1), which
    a 1.20 apiserver does not serve; and a Deployment with an unknown field is refused."""
    offline = render(CASES["ha-monitoring"], release=RELEASE, namespace=NAMESPACE)
    pdbs = [(s, d) for s, d in offline if d["kind"] == "PodDisruptionBudget"]
    assert len(apply_all(cluster, pdbs)) == 1

    (source, deployment), *_ = [(s, d) for s, d in offline if d["kind"] == "Deployment"]
    broken = dict(deployment, spec=dict(deployment["spec"], replicaz=2))
    refused = apply_all(cluster, [(source, broken)])
    assert len(refused) == 1 and "replicaz" in refused[0], refused
