//! The checked-in `crds/` match the Rust types, and the generated schemas say what the
//! API promises (names, scope, printer columns, CEL rules, status subresource).
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use juju_secrets_operator::crd;
use serde_json::Value;

#[test]
fn checked_in_crds_are_generated_from_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let files = crd::files().unwrap();
    let mut stale = Vec::new();
    for (name, yaml) in &files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(found) if &found == yaml => {}
            _ => stale.push(name.clone()),
        }
    }
    let on_disk = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        stale.is_empty() && on_disk == files.len(),
        "crds/ is stale ({stale:?}); regenerate with: cargo run -- crds --out-dir crds"
    );
}

fn crd_json(kind: &str) -> Value {
    let crd = crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(crd).unwrap()
}

fn rules(schema: &Value) -> Vec<String> {
    schema["x-kubernetes-validations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["rule"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn jujusecret_has_names_columns_and_rules() {
    let crd = crd_json("JujuSecret");
    assert_eq!(crd["metadata"]["name"], "jujusecrets.secrets.juju.is");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "jsec");
    assert_eq!(crd["spec"]["names"]["categories"][0], "juju");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Model", "Secret", "Revision", "Ready", "Reason", "Age"]
    );
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(rules(spec).iter().any(|r| r.contains("has(self.data)")));
    assert!(rules(&spec["properties"]["model"]).contains(&"self == oldSelf".to_owned()));
    assert!(rules(&spec["properties"]["data"])[0].contains("^([a-z](?:-?[a-z0-9]){2,})$"));
    assert_eq!(
        spec["properties"]["deletionPolicy"]["enum"],
        serde_json::json!(["Delete", "Retain"])
    );
    assert_eq!(
        spec["properties"]["managementPolicy"]["enum"],
        serde_json::json!(["Full", "CreateOnly", "ObserveOnly"])
    );
    assert_eq!(spec["properties"]["autoPrune"]["default"], true);
    assert!(
        spec["properties"]["model"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("owner/name")),
        "fields carry their doc comments for kubectl explain"
    );
}

#[test]
fn grant_and_backend_have_their_scope_and_short_names() {
    let grant = crd_json("JujuSecretGrant");
    assert_eq!(grant["spec"]["scope"], "Namespaced");
    assert_eq!(grant["spec"]["names"]["shortNames"][0], "jsg");
    let backend = crd_json("JujuSecretBackend");
    assert_eq!(backend["spec"]["scope"], "Cluster");
    assert_eq!(backend["spec"]["names"]["shortNames"][0], "jsb");
    let spec = &backend["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["backendType"]["enum"],
        serde_json::json!(["vault", "kubernetes"])
    );
}

#[test]
fn key_rule_in_the_schema_is_the_one_the_client_enforces() {
    assert_eq!(crd::secret::KEY_RULE, "^([a-z](?:-?[a-z0-9]){2,})$");
    for key in ["abc", "db-password", "ab", "a--b", "Key"] {
        let re = regex_lite_match(key);
        assert_eq!(re, juju_client::content::is_valid_key(key), "{key}");
    }
}

/// The key rule evaluated independently of the client's implementation.
fn regex_lite_match(key: &str) -> bool {
    let bytes = key.as_bytes();
    if bytes.first().is_none_or(|b| !b.is_ascii_lowercase())
        || key.ends_with('-')
        || key.contains("--")
    {
        return false;
    }
    key.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && key.bytes().filter(|b| *b != b'-').count() >= 3
}
