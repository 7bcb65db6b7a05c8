#!/usr/bin/env python3
"""Lint and render charts/juju-secrets-operator with Helm's Go SDK (helm-python-sdk).

Not part of CI (the package is a third-party binding with an 85 MB native library); run by
hand after changing the chart. Exits non-zero on a lint error, a render error, a rendered
document that is not YAML, or a missing object.
"""

import pathlib
import sys

import helm_python as helm
import yaml

CHART = pathlib.Path(__file__).resolve().parent / "juju-secrets-operator"

CASES = {
    "defaults": (None, {"ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1, "ConfigMap": 0}),
    "restricted": (
        {
            "watchNamespaces": ["team-a", "team-b"],
            "tenancy": {"policy": {"namespaces": {"team-a": ["admin/dev"], "*": []}}},
            "serviceAccount": {"create": False, "name": "existing"},
            "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
        },
        {"ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 3, "ConfigMap": 1, "ServiceAccount": 0},
    ),
}


def main() -> int:
    failed = False
    with helm.Chart.load(str(CHART)) as chart:
        if len(chart.crds) != 3:
            print(f"expected 3 CRDs, found {len(chart.crds)}")
            failed = True
        for name, (values, counts) in CASES.items():
            lint = helm.lint(str(CHART), values, strict=True, namespace="juju-system")
            if lint["errors"] or any(m["severity"] > 1 for m in lint["messages"]):
                print(f"{name}: lint: {lint}")
                failed = True
            rendered = chart.render(values, name="jso", namespace="juju-system", is_install=True)
            kinds: dict[str, int] = {}
            for path, text in rendered.items():
                if path.endswith("NOTES.txt"):
                    continue
                for doc in yaml.safe_load_all(text):
                    if doc:
                        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
            for kind, count in counts.items():
                if kinds.get(kind, 0) != count:
                    print(f"{name}: expected {count} {kind}, rendered {kinds}")
                    failed = True
            if kinds.get("Deployment") != 1:
                print(f"{name}: expected one Deployment, rendered {kinds}")
                failed = True
            print(f"{name}: ok {sorted(kinds.items())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
