"""values.schema.json: Helm refuses bad values at render, install and lint; the schema and
the chart's README cover every value of values.yaml."""

from __future__ import annotations

import json
import re

import helm_python as helm
import pytest
import yaml
from chart_cases import CASES, NAMESPACE, RELEASE
from render import CHART_DIR, render

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

# (values, the JSON pointer the error must name)
BAD = {
    "logFormat xml": ({"logFormat": "xml"}, "/logFormat"),
    "replicaCount 0": ({"replicaCount": 0}, "/replicaCount"),
    "replicaCount not a number": ({"replicaCount": "2"}, "/replicaCount"),
    "unknown top-level key": ({"replicas": 2}, "additional properties 'replicas'"),
    "misspelt nested key": ({"leaderElection": {"enable": True}}, "/leaderElection"),
    "unknown connection key": ({"juju": {"connectionSecret": {"secret": "x"}}}, "/juju/connectionSecret"),
    "refreshInterval with words": ({"refreshInterval": "10 minutes"}, "/refreshInterval"),
    "refreshInterval without unit": ({"refreshInterval": "600"}, "/refreshInterval"),
    "leaseDuration without unit": ({"leaderElection": {"leaseDuration": "15"}}, "/leaderElection/leaseDuration"),
    "leaseDuration under 3s": ({"leaderElection": {"leaseDuration": "2s"}}, "/leaderElection/leaseDuration"),
    "leaseDuration under 3s in ms": ({"leaderElection": {"leaseDuration": "2999ms"}}, "/leaderElection/leaseDuration"),
    "leaseDuration over 1h": ({"leaderElection": {"leaseDuration": "61m"}}, "/leaderElection/leaseDuration"),
    "leaseDuration over 1h in s": ({"leaderElection": {"leaseDuration": "3601s"}}, "/leaderElection/leaseDuration"),
    "leaseDuration 2h": ({"leaderElection": {"leaseDuration": "2h"}}, "/leaderElection/leaseDuration"),
    "leaseDuration 0s": ({"leaderElection": {"leaseDuration": "0s"}}, "/leaderElection/leaseDuration"),
    "leaderElection.enabled as string": ({"leaderElection": {"enabled": "true"}}, "/leaderElection/enabled"),
    "metrics.port 0": ({"metrics": {"port": 0}}, "/metrics/port"),
    "metrics.port too high": ({"metrics": {"port": 70000}}, "/metrics/port"),
    "serviceMonitor interval": ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "/metrics/serviceMonitor/interval"),
    "watchNamespaces not DNS labels": ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    "watchNamespaces as a string": ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
    "pullPolicy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "endpoint without port": ({"juju": {"connectionSecret": {"endpoints": ["controller"]}}}, "/juju/connectionSecret/endpoints/0"),
    "minAvailable words": ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
    "minAvailable negative": ({"podDisruptionBudget": {"minAvailable": -1}}, "/podDisruptionBudget/minAvailable"),
    "tenancy unknown key": ({"tenancy": {"policy": {"namespace": {}}}}, "/tenancy/policy"),
    "tenancy model without owner": ({"tenancy": {"policy": {"namespaces": {"team-a": ["dev"]}}}}, "/tenancy/policy/namespaces/team-a/0"),
    "extraEnv without name": ({"extraEnv": [{"value": "1"}]}, "/extraEnv/0"),
    "pod labels not strings": ({"podLabels": {"tier": 1}}, "/podLabels/tier"),
}

GOOD = {
    "refreshInterval in ms": {"refreshInterval": "1500ms"},
    "refreshInterval in hours": {"refreshInterval": "1h"},
    "leaseDuration 3s (the shortest)": {"leaderElection": {"leaseDuration": "3s"}},
    "leaseDuration 3000ms": {"leaderElection": {"leaseDuration": "3000ms"}},
    "leaseDuration 15s (the default)": {"leaderElection": {"leaseDuration": "15s"}},
    "leaseDuration 60m": {"leaderElection": {"leaseDuration": "60m"}},
    "leaseDuration 3600s": {"leaderElection": {"leaseDuration": "3600s"}},
    "leaseDuration 1h (the longest)": {"leaderElection": {"leaseDuration": "1h"}},
    "minAvailable percent": {"podDisruptionBudget": {"minAvailable": "50%"}},
    "minAvailable zero": {"podDisruptionBudget": {"minAvailable": 0}},
    "model UUID and wildcard": {"tenancy": {"policy": {"namespaces": {"a": ["6f1c2a8e-0c55-4b7e-9d8e-2f0b1f3c4d5e", "*"], "*": []}}}},
    "external Juju user": {"tenancy": {"policy": {"namespaces": {"a": ["bob@external/prod"]}}}},
    "hostname endpoint": {"juju": {"connectionSecret": {"endpoints": ["juju.example.com:17070"]}}},
}


@pytest.mark.parametrize("values, where", BAD.values(), ids=BAD.keys())
def test_schema_rejects(values, where):
    with pytest.raises(helm.HelmValuesError) as err:
        render(values, release=RELEASE, namespace=NAMESPACE)
    assert where in str(err.value)
    with helm.Chart.load(str(CHART_DIR)) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)


@pytest.mark.parametrize("case", ["logFormat xml", "replicaCount 0", "unknown top-level key"])
def test_lint_reports_schema_errors(case):
    values, where = BAD[case]
    report = helm.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE)
    assert any(where in e for e in report["errors"]), report


@pytest.mark.parametrize("values", GOOD.values(), ids=GOOD.keys())
def test_schema_accepts(values):
    render(values, release=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("case", CASES)
def test_schema_accepts_every_case(case):
    with helm.Chart.load(str(CHART_DIR)) as chart:
        chart.validate_schema(CASES[case])


def test_schema_is_draft_07_and_closed():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False


def _value_paths(values: dict, schema: dict, prefix: str = "") -> list[str]:
    """Every value of values.yaml as a dotted path: objects the chart owns (closed in the
    schema) are walked into; Kubernetes objects passed through (resources, affinity, ...) and
    free-form maps count as one value."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        props = schema.get("properties", {})
        assert key in props, f"values.yaml has {path}, values.schema.json does not"
        sub = props[key]
        assert "type" in sub or "oneOf" in sub, f"{path}: no type in values.schema.json"
        paths.append(path)
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            paths.extend(_value_paths(value, sub, path + "."))
    return paths


def _declared(schema: dict, prefix: str = ""):
    """Every value values.schema.json declares, as a dotted path."""
    for key, sub in schema.get("properties", {}).items():
        yield f"{prefix}{key}"
        if sub.get("additionalProperties") is False:
            yield from _declared(sub, f"{prefix}{key}.")


# Declared but absent from values.yaml (optional settings).
OPTIONAL = {
    "tenancy.policy.namespaces",
    "livenessProbe.successThreshold",
    "livenessProbe.terminationGracePeriodSeconds",
    "readinessProbe.successThreshold",
    "readinessProbe.terminationGracePeriodSeconds",
}


def test_schema_declares_every_value_and_nothing_else():
    paths = set(_value_paths(DEFAULTS, SCHEMA))
    assert set(_declared(SCHEMA)) - paths == OPTIONAL


def test_readme_documents_every_value():
    readme = (CHART_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    paths = _value_paths(DEFAULTS, SCHEMA)
    leaves = [p for p in paths if not any(q.startswith(p + ".") for q in paths)]
    missing = []
    for path in leaves:
        parts = path.split(".")
        # A row may document an object as a whole (e.g. `livenessProbe`).
        if not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            missing.append(path)
    assert not missing, f"charts/juju-secrets-operator/README.md has no row for {missing}"
    unknown = documented - set(_declared(SCHEMA))
    assert not unknown, f"README documents values that do not exist: {unknown}"
