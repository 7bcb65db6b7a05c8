#!/usr/bin/env python3
"""Render charts/juju-secrets-operator with Helm's own engine (PyPI helm-python-sdk, which
embeds Helm v4's Go template engine, sprig functions and values.schema.json validation).

As a command, writes the release's objects (no CRDs, no NOTES.txt) into one multi-document
YAML file, in Helm's install order:

    python tests/chart/render.py --release jso --namespace e2e-system \\
        --values-json '{"watchNamespaces": []}' --out target/chart/e2e.yaml

Offline (the default), Helm renders as `helm template` does: no cluster is contacted, and
.Capabilities are Helm's defaults (a recent Kubernetes, group versions only). With
--kubeconfig, the chart is rendered the way `helm install --dry-run=server` does, with the
cluster's real Kubernetes version and API versions (nothing is created or stored).

The functions are used by tests/chart as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "juju-secrets-operator"

# Helm's install order (pkg/release/util/kind_sorter.go), for the kinds this chart can
# render; anything else goes last, as in Helm.
INSTALL_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
]


def _order(item: tuple[str, dict[str, Any]]) -> tuple[int, str, str]:
    source, doc = item
    kind = doc.get("kind", "")
    rank = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
    return (rank, source, doc.get("metadata", {}).get("name", ""))


def split_documents(rendered: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(template path, object) for every non-empty YAML document of a render, NOTES.txt
    left out, in Helm's install order."""
    docs = []
    for source, text in rendered.items():
        if source.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((source, doc))
    return sorted(docs, key=_order)


def manifest_documents(manifest: str) -> list[tuple[str, dict[str, Any]]]:
    """The same for a release manifest (one string, `# Source:` comments)."""
    docs = []
    for part in manifest.split("\n---"):
        source = ""
        for line in part.splitlines():
            if line.startswith("# Source: "):
                source = line[len("# Source: ") :].strip()
                break
        doc = yaml.safe_load(part)
        if doc:
            docs.append((source, doc))
    return sorted(docs, key=_order)


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = "jso",
    namespace: str = "juju-system",
    kubeconfig: str | os.PathLike[str] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The release's objects (no CRDs, no NOTES.txt). Raises helm_python.HelmError (e.g.
    HelmValuesError for values the schema rejects, HelmRenderError for a `required` or
    `fail`)."""
    with helm.Chart.load(str(CHART_DIR)) as chart:
        if kubeconfig is None:
            rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
            return split_documents(rendered)
        # Config.render is cluster-aware only for `lookup`; its .Capabilities stay Helm's
        # defaults. An install with dry_run="server" asks the cluster for its version and
        # API versions (as `helm install --dry-run=server`), stores no release, creates
        # nothing, and skips crds/.
        with helm.Config(kubeconfig_path=os.fspath(kubeconfig), namespace=namespace) as cfg:
            release_summary = cfg.install(
                chart, release, values, namespace=namespace, dry_run="server"
            )
        return manifest_documents(release_summary["manifest"])


def to_yaml(docs: list[tuple[str, dict[str, Any]]]) -> str:
    parts = []
    for source, doc in docs:
        parts.append(f"---\n# Source: {source}\n" + yaml.safe_dump(doc, sort_keys=False))
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", default="jso", help="release name (default jso)")
    parser.add_argument("--namespace", required=True, help="release namespace")
    parser.add_argument(
        "--values-json", default=None, help="values as one JSON object (like --set-json)"
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="render against this cluster's version and API versions (default: offline)",
    )
    parser.add_argument("--out", required=True, help="file to write ('-': stdout)")
    args = parser.parse_args(argv)

    values = json.loads(args.values_json) if args.values_json else None
    if values is not None and not isinstance(values, dict):
        parser.error("--values-json must be a JSON object")
    try:
        docs = render(
            values, release=args.release, namespace=args.namespace, kubeconfig=args.kubeconfig
        )
    except helm.HelmError as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    text = to_yaml(docs)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        kinds: dict[str, int] = {}
        for _, doc in docs:
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
        print(f"render.py: wrote {out} ({summary})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
