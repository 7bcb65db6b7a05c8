//! The health checks shipped for GitOps tools (deploy/argocd, deploy/flux): the Argo CD
//! ConfigMap embeds the one script unchanged for each kind, and both checks give the
//! verdict the README promises for each state of a status. The end-to-end tests run
//! the same checks on statuses the operator wrote (tests/e2e_grants_backends.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "e2e/health.rs"]
mod health;

use serde_json::{Value, json};

const KINDS: [&str; 3] = ["JujuSecret", "JujuSecretGrant", "JujuSecretBackend"];

fn object(kind: &str, generation: i64, status: Option<Value>) -> Value {
    let mut o = json!({
        "apiVersion": "secrets.juju.is/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "team-a", "generation": generation},
        "spec": {},
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    o
}

fn ready(status: &str, reason: &str, observed: i64) -> Value {
    json!({
        "observedGeneration": observed,
        "conditions": [{"type": "Ready", "status": status, "reason": reason,
                        "message": "words", "lastTransitionTime": "2026-12-06T00:00:00Z",
                        "observedGeneration": observed}],
    })
}

#[test]
fn argo_cd_configmap_embeds_the_script_for_each_kind() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/argocd/argocd-cm-health.yaml"),
    )
    .unwrap();
    let cm: Value = serde_yaml_ng::from_str(&text).unwrap();
    let script = health::argo_script();
    for kind in KINDS {
        let key = format!("resource.customizations.health.secrets.juju.is_{kind}");
        assert_eq!(cm["data"][&key].as_str(), Some(script.as_str()), "{key}");
    }
}

#[test]
fn each_state_gets_its_verdict_from_both_tools() {
    for kind in KINDS {
        let cases = [
            // (status, Argo CD, Flux)
            (None, "Progressing", "inProgress"),
            (Some(ready("True", "Synced", 2)), "Healthy", "current"),
            (
                Some(ready("True", "Synced", 1)),
                "Progressing",
                "inProgress",
            ),
            (Some(ready("False", "Conflict", 2)), "Degraded", "failed"),
            (
                Some(ready("False", "JujuUnavailable", 2)),
                "Degraded",
                "failed",
            ),
            (
                Some(ready("False", "SecretNotReady", 2)),
                "Progressing",
                "inProgress",
            ),
            (
                Some(ready("False", "ApplicationNotFound", 2)),
                "Progressing",
                "inProgress",
            ),
            (Some(ready("False", "Suspended", 2)), "Suspended", "current"),
        ];
        for (status, argo, flux) in cases {
            let what = format!("{kind} {status:?}");
            let o = object(kind, 2, status);
            assert_eq!(health::argo(&o).0, argo, "Argo CD: {what}");
            assert_eq!(health::flux(&o), flux, "Flux: {what}");
        }
    }
}

#[test]
fn a_suspended_secret_says_what_resuming_would_do() {
    let mut status = ready("False", "Suspended", 3);
    status["plan"] = json!({"action": "Update", "changes": ["content"],
                            "keysChanged": ["password"], "keysAdded": ["port"]});
    let (verdict, message) = health::argo(&object("JujuSecret", 3, Some(status)));
    assert_eq!(verdict, "Suspended");
    assert_eq!(
        message,
        "Suspended; resuming would update content (keysChanged: password; keysAdded: port)"
    );
}
