//! The Helm chart (`charts/juju-secrets-operator`) ships the generated CRDs and matches the
//! crate. Rendering is not checked here (no `helm` on the build machines); see the chart's
//! README for how it was checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use juju_secrets_operator::crd;
use serde_json::Value;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/juju-secrets-operator")
}

fn yaml_file(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_in(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// The chart's `crds/` is a symbolic link to the generated `crds/` (Helm follows it when
/// loading, linting and packaging), so the chart can never ship stale CRDs.
#[test]
fn chart_ships_the_generated_crds() {
    let link = chart_dir().join("crds");
    assert!(
        link.symlink_metadata().unwrap().file_type().is_symlink(),
        "charts/juju-secrets-operator/crds must stay a link to ../../crds"
    );
    let generated = files_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"));
    let in_chart = files_in(&link);
    assert!(
        generated == in_chart,
        "charts/juju-secrets-operator/crds/ differs from crds/"
    );
    let expected: Vec<String> = crd::files().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(in_chart.keys().cloned().collect::<Vec<_>>(), expected);
}

#[test]
fn chart_version_follows_the_crate() {
    let chart = yaml_file(&chart_dir().join("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "juju-secrets-operator");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn chart_defaults_are_locked_down() {
    let values = yaml_file(&chart_dir().join("values.yaml"));
    let pod = &values["podSecurityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["runAsUser"], 65532);
    let container = &values["securityContext"];
    assert_eq!(container["readOnlyRootFilesystem"], true);
    assert_eq!(container["allowPrivilegeEscalation"], false);
    assert_eq!(container["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["seccompProfile"]["type"], "RuntimeDefault");
    // Empty policy = allow all, as the operator's own default.
    assert_eq!(values["tenancy"]["policy"], serde_json::json!({}));
    assert_eq!(values["metrics"]["port"], 8080);
    // One replica by default; leader election (on by default) makes more safe.
    assert_eq!(values["replicaCount"], 1);
    assert_eq!(values["leaderElection"]["enabled"], true);
}

#[test]
fn chart_rbac_covers_every_kind_with_status_and_finalizers() {
    let rbac = std::fs::read_to_string(chart_dir().join("templates/clusterrole.yaml")).unwrap();
    for crd in crd::all() {
        assert_eq!(crd.spec.group, "secrets.juju.is", "{}", rbac);
        let plural = &crd.spec.names.plural;
        for resource in [
            format!("\"{plural}\""),
            format!("{plural}/status"),
            format!("{plural}/finalizers"),
        ] {
            assert!(
                rbac.contains(&resource),
                "clusterrole.yaml lacks {resource}"
            );
        }
    }
}

#[test]
fn chart_deployment_probes_the_operators_health_endpoints() {
    let deployment =
        std::fs::read_to_string(chart_dir().join("templates/deployment.yaml")).unwrap();
    for needle in [
        "path: /healthz",
        "path: /readyz",
        "type: Recreate",
        "replicas: {{ .Values.replicaCount }}",
        "- run",
        "JUJU_CONNECTION_SECRET",
        "--tenancy-policy=",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle}"
        );
    }
}
