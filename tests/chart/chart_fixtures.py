"""Fixtures for the Helm chart tests: a real kube-apiserver (scripts/kube-apiserver.sh,
Kubernetes 1.20) with the release namespaces, the chart's CRDs and a ServiceMonitor CRD
installed, and a client that applies objects with server-side dry run.

Not a conftest.py on purpose: tests/python imports its own conftest by module name
("conftest"), which a second conftest.py in the same pytest run would shadow. Test modules
import these fixtures by name instead (pytest then registers them for that module); the test
modules' directory is on sys.path (pytest's default "prepend" import mode), so `render` and
`chart_cases` import as top-level modules. Nothing here needs the Juju emulator.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_cases import NAMESPACE, WATCHED

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBE_SCRIPT = REPO_ROOT / "scripts" / "kube-apiserver.sh"

# Just enough of the Prometheus Operator's CRD for ServiceMonitor objects to be accepted.
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def environment_unavailable(reason: str):
    """Fail when the test environment is required (scripts/test.sh sets JSO_REQUIRE_E2E=1),
    else skip."""
    if os.environ.get("JSO_REQUIRE_E2E") == "1":
        pytest.fail(f"{reason} (JSO_REQUIRE_E2E=1: not skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kube_apiserver():
    """A kube-apiserver of our own, stopped at the end of the session; yields the path of
    its admin kubeconfig."""
    if shutil.which("etcd") is None:
        environment_unavailable("etcd is not installed (run `scripts/kube-apiserver.sh build`)")
    binary = subprocess.run(
        ["bash", str(KUBE_SCRIPT), "path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.access(binary, os.X_OK):
        # `start` would build it (minutes, apt-get): leave that to scripts/test.sh.
        environment_unavailable(
            f"kube-apiserver not built at {binary} (run `scripts/kube-apiserver.sh build`)"
        )
    run_dir = Path(tempfile.mkdtemp(prefix="jso-chart-kube-"))
    try:
        started = subprocess.run(
            ["bash", str(KUBE_SCRIPT), "start", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=90,
            stdin=subprocess.DEVNULL,
        )
        if started.returncode != 0:
            environment_unavailable(
                f"kube-apiserver did not start: {started.stderr.strip()[-2000:]}"
            )
        yield run_dir / "kubeconfig"
    finally:
        subprocess.run(["bash", str(KUBE_SCRIPT), "stop", str(run_dir)], check=False)
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class Cluster:
    """A client of the test apiserver that speaks raw REST (discovery, create, apply)."""

    kubeconfig: Path
    api: Any  # kubernetes.client.ApiClient

    def call(self, method: str, path: str, *, body=None, query=None, content_type=None):
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        return self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params=headers,
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=True,
            _request_timeout=30,
        )

    def resource_path(self, doc: dict, default_namespace: str | None = None) -> str:
        """The REST path of `doc`, found by discovery (so a kind or version the server does
        not serve raises ApiException 404 or LookupError)."""
        api_version, kind = doc["apiVersion"], doc["kind"]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        listing = self.call("GET", base)
        for r in listing["resources"]:
            if r["kind"] == kind and "/" not in r["name"]:
                break
        else:
            raise LookupError(f"{api_version} {kind}: not served by this apiserver")
        name = doc["metadata"]["name"]
        if r["namespaced"]:
            ns = doc["metadata"].get("namespace") or default_namespace
            return f"{base}/namespaces/{ns}/{r['name']}/{name}"
        return f"{base}/{r['name']}/{name}"

    def create(self, doc: dict) -> None:
        path = self.resource_path(doc)
        self.call("POST", path.rsplit("/", 1)[0], body=doc)

    def apply_dry_run(self, doc: dict, default_namespace: str | None = None) -> dict:
        """Server-side apply with dryRun=All: admission, validation and defaulting run,
        nothing is stored."""
        return self.call(
            "PATCH",
            self.resource_path(doc, default_namespace),
            body=doc,
            query=[("dryRun", "All"), ("fieldManager", "helm")],
            content_type="application/apply-patch+yaml",
        )

    def exists(self, doc: dict, default_namespace: str | None = None) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.call("GET", self.resource_path(doc, default_namespace))
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def wait_established(self, crd_name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            crd = self.call(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}"
            )
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {crd_name} not established: {conditions}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def cluster(kube_apiserver) -> Cluster:
    """The apiserver with, for real: the release and watched namespaces, the chart's CRDs
    (crds/) and a minimal ServiceMonitor CRD."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kube_apiserver))
    c = Cluster(kubeconfig=kube_apiserver, api=api)
    for ns in [NAMESPACE, *WATCHED]:
        c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    crds = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "crds").glob("*.yaml"))]
    assert len(crds) == 3, "crds/ should hold the three CRDs"
    # Created (POST), not applied: Kubernetes 1.20 drops the CEL rules
    # (x-kubernetes-validations) it does not know, where server-side apply would refuse them.
    for crd in [*crds, SERVICE_MONITOR_CRD]:
        c.create(crd)
    for crd in [*crds, SERVICE_MONITOR_CRD]:
        c.wait_established(crd["metadata"]["name"])
    yield c
    api.close()
