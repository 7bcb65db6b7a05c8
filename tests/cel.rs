//! What the checked-in CRDs (`crds/`) make an apiserver refuse, checked without one.
//!
//! The test apiserver (Kubernetes 1.20) ignores `x-kubernetes-validations`, so the CEL rules
//! are evaluated here with kube-cel, the engine behind kube's `cel` feature: it walks the
//! `openAPIV3Schema` of each generated CRD file, applies the schema defaults, and evaluates
//! every rule at the node that declares it, with `oldSelf` bound on updates. Next to it a
//! small checker enforces the OpenAPI keywords the CRDs use (`enum`, `pattern`, lengths,
//! bounds, `required`, unknown fields), which every apiserver runs. Together they answer
//! "would the apiserver admit this object?" for the schema as shipped, not for the Rust
//! types.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use kube_cel::{ErrorKind, Validator};
use serde_json::{Map, Value, json};

/// The keys of Juju's rule `^([a-z](?:-?[a-z0-9]){2,})$` (juju-api.md §6.2).
const GOOD_KEYS: [&str; 4] = ["abc", "pw1", "a-bc", "db-password"];
const BAD_KEYS: [&str; 8] = ["ab", "a-b", "1abc", "-abc", "abc-", "a--b", "my_key", "Key"];
const KEY_RULE_MESSAGE: &str = "keys must match Juju's rule";

/// One kind as the checked-in CRD declares it.
struct Kind {
    kind: &'static str,
    schema: Value,
}

impl Kind {
    fn load(kind: &'static str, plural: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crds")
            .join(format!("{plural}.secrets.juju.is.yaml"));
        let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(crd["spec"]["names"]["kind"], kind, "{}", path.display());
        let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        assert!(schema.is_object(), "{} has no schema", path.display());
        Self { kind, schema }
    }

    fn secret() -> Self {
        Self::load("JujuSecret", "jujusecrets")
    }

    fn grant() -> Self {
        Self::load("JujuSecretGrant", "jujusecretgrants")
    }

    fn backend() -> Self {
        Self::load("JujuSecretBackend", "jujusecretbackends")
    }

    fn object(&self, name: &str, spec: &Value) -> Value {
        json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": self.kind,
            "metadata": {"name": name},
            "spec": spec,
        })
    }

    /// What a create of an object named `name` with `spec` would be refused for.
    fn create_named(&self, name: &str, spec: Value) -> Verdict {
        self.admit(&self.object(name, &spec), None)
    }

    fn create(&self, spec: Value) -> Verdict {
        self.create_named("example", spec)
    }

    /// What an update from `old` to `new` would be refused for.
    fn update(&self, old: Value, new: Value) -> Verdict {
        self.admit(
            &self.object("example", &new),
            Some(&self.object("example", &old)),
        )
    }

    fn admit(&self, object: &Value, old: Option<&Value>) -> Verdict {
        let mut errors = Vec::new();
        check_openapi(&self.schema, object, "", true, &mut errors);
        let structurally_valid = errors.is_empty();
        if let Err(cel) = Validator::new().validate(&self.schema, object, old) {
            for e in cel.into_vec() {
                match e.kind {
                    ErrorKind::ValidationFailure => {}
                    // A rule that cannot be evaluated on a value the schema already refuses
                    // (e.g. `duration()` of a string failing the pattern) is refused by
                    // the apiserver too; anywhere else it is a broken rule.
                    ErrorKind::EvaluationError if !structurally_valid => {}
                    _ => panic!(
                        "rule {:?} at {:?} cannot be evaluated: {}",
                        e.rule, e.field_path, e.message
                    ),
                }
                errors.push(format!("{}: {}", e.field_path, e.message));
            }
        }
        Verdict(errors)
    }
}

/// The reasons an object would be refused; empty when it would be admitted.
#[derive(Debug)]
struct Verdict(Vec<String>);

impl Verdict {
    #[track_caller]
    fn admitted(&self) {
        assert!(self.0.is_empty(), "refused: {:?}", self.0);
    }

    /// Refused, and one of the reasons is at `path` and mentions `message`.
    #[track_caller]
    fn refused(&self, path: &str, message: &str) {
        assert!(
            self.0
                .iter()
                .any(|e| e.starts_with(&format!("{path}:")) && e.contains(message)),
            "expected a refusal at {path} mentioning {message:?}, got {:?}",
            self.0
        );
    }
}

/// The OpenAPI v3 keywords the CRDs use, checked as the apiserver's schema validation
/// does (after pruning would have dropped nothing: an unknown field is reported, so a typo
/// in a test object cannot pass for an accepted value).
fn check_openapi(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<String>) {
    let mut fail = |message: String| errors.push(format!("{path}: {message}"));
    if value.is_null() {
        if schema["nullable"] != true {
            fail("must not be null".to_owned());
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        fail(format!("must be of type {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        fail(format!(
            "Unsupported value {value}: supported values {allowed:?}"
        ));
    }
    if let Some(s) = value.as_str() {
        let length = s.chars().count() as u64;
        if let Some(pattern) = schema["pattern"].as_str()
            && !regex::Regex::new(pattern).unwrap().is_match(s)
        {
            fail(format!("should match '{pattern}'"));
        }
        if schema["minLength"].as_u64().is_some_and(|min| length < min) {
            fail(format!(
                "should be at least {} chars long",
                schema["minLength"]
            ));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
            fail(format!("may not be longer than {}", schema["maxLength"]));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            fail(format!(
                "should be greater than or equal to {}",
                schema["minimum"]
            ));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            fail(format!(
                "should be less than or equal to {}",
                schema["maximum"]
            ));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|max| items.len() as u64 > max)
        {
            fail(format!("must have at most {} items", schema["maxItems"]));
        }
        if schema["minItems"]
            .as_u64()
            .is_some_and(|min| (items.len() as u64) < min)
        {
            fail(format!("must have at least {} items", schema["minItems"]));
        }
        if schema["x-kubernetes-list-type"] == "set" {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    fail(format!("Duplicate value: {item}"));
                }
            }
        }
        for (i, item) in items.iter().enumerate() {
            check_openapi(
                &schema["items"],
                item,
                &format!("{path}[{i}]"),
                false,
                errors,
            );
        }
        return;
    }
    let Some(object) = value.as_object() else {
        return;
    };
    if schema["maxProperties"]
        .as_u64()
        .is_some_and(|max| object.len() as u64 > max)
    {
        fail(format!(
            "must have at most {} properties",
            schema["maxProperties"]
        ));
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap();
        if !object.contains_key(name) {
            fail(format!("Required value: {name}"));
        }
    }
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    for (name, child) in object {
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if let Some(child_schema) = properties.get(name) {
            check_openapi(child_schema, child, &child_path, false, errors);
        } else if schema["additionalProperties"].is_object() {
            check_openapi(
                &schema["additionalProperties"],
                child,
                &child_path,
                false,
                errors,
            );
        } else if root && ["apiVersion", "kind", "metadata"].contains(&name.as_str()) {
            // Validated by the apiserver itself, outside the CRD schema.
        } else if schema["x-kubernetes-preserve-unknown-fields"] != true {
            errors.push(format!("{child_path}: unknown field"));
        }
    }
}

/// Every `(path, rule)` in a schema, `path` in the form of the error field paths.
fn rules_in(schema: &Value, path: &str, found: &mut BTreeSet<(String, String)>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        found.insert((path.to_owned(), rule["rule"].as_str().unwrap().to_owned()));
    }
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        rules_in(child, &child_path, found);
    }
    if schema["items"].is_object() {
        rules_in(&schema["items"], &format!("{path}[]"), found);
    }
    if schema["additionalProperties"].is_object() {
        rules_in(&schema["additionalProperties"], &format!("{path}.*"), found);
    }
}

fn secret_spec(extra: Value) -> Value {
    let mut spec = json!({"model": "admin/dev", "data": {"password": "s3cret"}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    spec
}

/// A spec whose only content is a `secretRef` mapping one key to `as_`.
fn secret_ref_spec(as_: &str) -> Value {
    json!({
        "model": "admin/dev",
        "secretRef": {"name": "db", "keys": [{"key": "PASSWORD", "as": as_}]},
    })
}

/// A spec whose only content is a generated value under `key`.
fn generated_spec(key: &str) -> Value {
    json!({"model": "admin/dev", "generate": [{"key": key, "length": 24}]})
}

// ---------------------------------------------------------------------------------------
// The rules are the ones these tests cover.

#[test]
fn every_rule_in_the_crds_is_one_these_tests_cover() {
    let key_rule = "self.matches('^([a-z](?:-?[a-z0-9]){2,})$')";
    let expected: [(&str, &[(&str, &str)]); 3] = [
        (
            "JujuSecret",
            &[
                (
                    "spec",
                    "self.managementPolicy == 'ObserveOnly' || (has(self.data) && size(self.data) > 0) || \
                     has(self.secretRef) || (has(self.generate) && size(self.generate) > 0)",
                ),
                (
                    "spec.data",
                    "self.all(k, k.matches('^([a-z](?:-?[a-z0-9]){2,})$'))",
                ),
                ("spec.generate[].key", key_rule),
                ("spec.model", "self == oldSelf"),
                ("spec.secretRef.keys[].as", key_rule),
            ],
        ),
        (
            "JujuSecretGrant",
            &[
                ("spec", "has(self.secretRef) != has(self.external)"),
                (
                    "spec",
                    "!has(self.config) || self.config.all(c, c.application in self.applications)",
                ),
                ("spec.external", "has(self.name) != has(self.uri)"),
            ],
        ),
        (
            "JujuSecretBackend",
            &[
                (
                    "",
                    "has(self.spec.name) || (self.metadata.name != 'internal' && \
                     self.metadata.name != 'auto')",
                ),
                ("spec.name", "self != 'internal' && self != 'auto'"),
                (
                    "spec.tokenRotateInterval",
                    "self == '0' || duration(self) == duration('0s') || \
                     duration(self) >= duration('1h')",
                ),
            ],
        ),
    ];
    for (kind, rules) in expected {
        let schema = match kind {
            "JujuSecret" => Kind::secret(),
            "JujuSecretGrant" => Kind::grant(),
            _ => Kind::backend(),
        }
        .schema;
        let mut found = BTreeSet::new();
        rules_in(&schema, "", &mut found);
        let expected: BTreeSet<(String, String)> = rules
            .iter()
            .map(|(p, r)| ((*p).to_owned(), (*r).to_owned()))
            .collect();
        assert_eq!(
            found, expected,
            "{kind}: the CRD's rules changed; test the new rule in tests/cel.rs and list it here"
        );
    }
}

#[test]
fn every_rule_compiles_with_the_kubernetes_cel_libraries() {
    for kind in [Kind::secret(), Kind::grant(), Kind::backend()] {
        let compiled = kube_cel::compile_schema(&kind.schema);
        assert!(
            !compiled.has_errors(),
            "{}: {:?}",
            kind.kind,
            compiled.compilation_errors()
        );
    }
}

// ---------------------------------------------------------------------------------------
// JujuSecret

#[test]
fn jujusecret_examples_from_the_design_are_admitted() {
    let secret = Kind::secret();
    secret.create(secret_spec(json!({}))).admitted();
    secret
        .create(json!({
            "model": "6f1c3a52-2b8e-4c1a-9a55-0d2c6f1b7e10",
            "name": "db-credentials",
            "description": "Database credentials",
            "data": {"username": "app"},
            "secretRef": {"name": "db"},
            "generate": [{"key": "password", "length": 32, "charset": "Symbols", "rotation": "2026-01"}],
            "autoPrune": false,
            "deletionPolicy": "Retain",
            "managementPolicy": "CreateOnly",
            "adopt": true,
            "suspend": false,
            "refreshInterval": "1h30m",
        }))
        .admitted();
}

#[test]
fn jujusecret_data_keys_follow_jujus_key_rule() {
    let secret = Kind::secret();
    for key in GOOD_KEYS {
        secret
            .create(secret_spec(json!({"data": {key: "v"}})))
            .admitted();
    }
    for key in BAD_KEYS {
        secret
            .create(secret_spec(json!({"data": {"fine-key": "v", key: "v"}})))
            .refused("spec.data", KEY_RULE_MESSAGE);
    }
}

#[test]
fn jujusecret_secret_ref_target_keys_follow_jujus_key_rule() {
    let secret = Kind::secret();
    for key in GOOD_KEYS {
        secret.create(secret_ref_spec(key)).admitted();
    }
    for key in BAD_KEYS {
        secret
            .create(secret_ref_spec(key))
            .refused("spec.secretRef.keys[0].as", KEY_RULE_MESSAGE);
    }
    // The source key is a Kubernetes Secret key, not a Juju key: any name is fine, and
    // without `as` the operator checks the key when it reads the Secret.
    secret
        .create(
            json!({"model": "m", "secretRef": {"name": "db", "keys": [{"key": "DB_PASSWORD"}]}}),
        )
        .admitted();
}

#[test]
fn jujusecret_generated_keys_follow_jujus_key_rule() {
    let secret = Kind::secret();
    for key in GOOD_KEYS {
        secret.create(generated_spec(key)).admitted();
    }
    for key in BAD_KEYS {
        secret
            .create(generated_spec(key))
            .refused("spec.generate[0].key", KEY_RULE_MESSAGE);
    }
}

#[test]
fn jujusecret_needs_at_least_one_content_source() {
    let secret = Kind::secret();
    let none = "at least one content source is required";
    secret
        .create(json!({"model": "admin/dev"}))
        .refused("spec", none);
    secret
        .create(json!({"model": "admin/dev", "data": {}}))
        .refused("spec", none);
    secret
        .create(json!({"model": "admin/dev", "generate": []}))
        .refused("spec", none);
    secret
        .create(json!({"model": "admin/dev", "secretRef": {"name": "db"}}))
        .admitted();
    secret.create(generated_spec("password")).admitted();
    secret
        .create(json!({"model": "admin/dev", "data": {"password": ""}}))
        .admitted();
    // Observing needs no content: the operator never writes.
    secret
        .create(json!({"model": "admin/dev", "managementPolicy": "ObserveOnly"}))
        .admitted();
    secret
        .create(json!({"model": "admin/dev", "managementPolicy": "CreateOnly"}))
        .refused("spec", none);
}

#[test]
fn jujusecret_model_cannot_change_but_everything_else_can() {
    let secret = Kind::secret();
    let old = secret_spec(json!({}));
    secret
        .update(old.clone(), secret_spec(json!({"model": "admin/prod"})))
        .refused("spec.model", "model is immutable");
    secret
        .update(
            old.clone(),
            secret_spec(json!({"name": "renamed", "data": {"other": "x"}, "suspend": true})),
        )
        .admitted();
    // An update that keeps the model passes the transition rule.
    secret.update(old.clone(), old).admitted();
}

#[test]
fn jujusecret_policies_refuse_unknown_values() {
    let secret = Kind::secret();
    for (field, good, bad) in [
        ("deletionPolicy", ["Delete", "Retain"].as_slice(), "Orphan"),
        (
            "managementPolicy",
            ["Full", "CreateOnly", "ObserveOnly"].as_slice(),
            "full",
        ),
    ] {
        for value in good {
            secret.create(secret_spec(json!({field: value}))).admitted();
        }
        secret
            .create(secret_spec(json!({field: bad})))
            .refused(&format!("spec.{field}"), "Unsupported value");
    }
    secret
        .create(generated_spec("password").tap(|s| s["generate"][0]["charset"] = json!("Emoji")))
        .refused("spec.generate[0].charset", "Unsupported value");
}

#[test]
fn jujusecret_refresh_interval_is_a_duration() {
    let secret = Kind::secret();
    for good in ["30s", "10m", "1h", "1h30m", "90m", "500ms"] {
        secret
            .create(secret_spec(json!({"refreshInterval": good})))
            .admitted();
    }
    for bad in ["", "10", "10 m", "1d", "-1m", "m", "1h-30m", "PT1H", "1.5h"] {
        secret
            .create(secret_spec(json!({"refreshInterval": bad})))
            .refused("spec.refreshInterval", "should match");
    }
}

#[test]
fn jujusecret_generated_length_and_counts_are_bounded() {
    let secret = Kind::secret();
    for (length, ok) in [(7, false), (8, true), (4096, true), (4097, false)] {
        let verdict = secret
            .create(generated_spec("password").tap(|s| s["generate"][0]["length"] = json!(length)));
        if ok {
            verdict.admitted();
        } else {
            verdict.refused("spec.generate[0].length", "than or equal to");
        }
    }
    let many: Map<String, Value> = (0..257).map(|i| (format!("key{i}"), json!("v"))).collect();
    secret
        .create(secret_spec(json!({"data": many})))
        .refused("spec.data", "at most 256 properties");
}

// ---------------------------------------------------------------------------------------
// JujuSecretGrant

#[test]
fn grant_names_exactly_one_secret() {
    let grant = Kind::grant();
    let one = "exactly one of secretRef or external";
    grant
        .create(json!({"secretRef": {"name": "db"}, "applications": ["app"]}))
        .admitted();
    grant
        .create(json!({"external": {"model": "admin/dev", "name": "db"}, "applications": ["app"]}))
        .admitted();
    grant
        .create(json!({"applications": ["app"]}))
        .refused("spec", one);
    grant
        .create(json!({
            "secretRef": {"name": "db"},
            "external": {"model": "admin/dev", "name": "db"},
            "applications": ["app"],
        }))
        .refused("spec", one);
}

#[test]
fn grant_config_entries_name_listed_applications() {
    let grant = Kind::grant();
    let listed = "every config entry's application must be listed in applications";
    let spec = |config: Value| json!({"secretRef": {"name": "db"}, "applications": ["wordpress", "mysql"], "config": config});
    grant
        .create(spec(json!([
            {"application": "wordpress", "option": "db-password"},
            {"application": "mysql", "option": "root-password", "overwrite": true},
        ])))
        .admitted();
    grant
        .create(json!({"secretRef": {"name": "db"}, "applications": ["wordpress"]}))
        .admitted();
    grant
        .create(spec(json!([{"application": "other", "option": "x"}])))
        .refused("spec", listed);
    grant
        .create(spec(json!([{"application": "mysql"}])))
        .refused("spec.config[0]", "option");
}

#[test]
fn grant_external_secret_is_named_by_exactly_one_of_name_or_uri() {
    let grant = Kind::grant();
    let one = "exactly one of name or uri";
    let external = |e: Value| json!({"external": e, "applications": ["app"]});
    grant
        .create(external(
            json!({"model": "admin/dev", "uri": "secret:d1bq9rjg6hp4c0bnnjrg"}),
        ))
        .admitted();
    grant
        .create(external(json!({"model": "admin/dev"})))
        .refused("spec.external", one);
    grant
        .create(external(
            json!({"model": "admin/dev", "name": "db", "uri": "secret:d1bq9rjg6hp4c0bnnjrg"}),
        ))
        .refused("spec.external", one);
}

#[test]
fn grant_applications_are_a_non_empty_set() {
    let grant = Kind::grant();
    grant
        .create(json!({"secretRef": {"name": "db"}, "applications": ["a", "a"]}))
        .refused("spec.applications", "Duplicate value");
    grant
        .create(json!({"secretRef": {"name": "db"}}))
        .refused("spec", "Required value: applications");
}

// ---------------------------------------------------------------------------------------
// JujuSecretBackend

fn backend_spec(extra: Value) -> Value {
    let mut spec = json!({"backendType": "vault", "config": {"endpoint": "https://vault:8200"}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    spec
}

#[test]
fn backend_refuses_the_reserved_names() {
    let backend = Kind::backend();
    let reserved = "reserved backend names";
    for name in ["internal", "auto"] {
        backend
            .create(backend_spec(json!({"name": name})))
            .refused("spec.name", reserved);
        // The name defaults to metadata.name, so that must not be reserved either...
        backend
            .create_named(name, backend_spec(json!({})))
            .refused("", reserved);
        // ...unless spec.name says otherwise.
        backend
            .create_named(name, backend_spec(json!({"name": "vault-1"})))
            .admitted();
    }
    backend
        .create(backend_spec(json!({"name": "internal-vault"})))
        .admitted();
    backend
        .create_named("vault", backend_spec(json!({})))
        .admitted();
}

#[test]
fn backend_can_be_renamed() {
    let backend = Kind::backend();
    backend
        .update(
            backend_spec(json!({"name": "vault-1"})),
            backend_spec(json!({"name": "vault-2"})),
        )
        .admitted();
}

#[test]
fn backend_type_refuses_unknown_values() {
    let backend = Kind::backend();
    for good in ["vault", "kubernetes"] {
        backend
            .create(backend_spec(json!({"backendType": good})))
            .admitted();
    }
    for bad in ["Vault", "internal", "aws"] {
        backend
            .create(backend_spec(json!({"backendType": bad})))
            .refused("spec.backendType", "Unsupported value");
    }
}

#[test]
fn backend_token_rotation_is_off_or_at_least_an_hour() {
    let backend = Kind::backend();
    for good in [
        "0",
        "0s",
        "0h",
        "1h",
        "24h",
        "60m",
        "3600s",
        "3600000ms",
        "1h0m1s",
    ] {
        backend
            .create(backend_spec(json!({"tokenRotateInterval": good})))
            .admitted();
    }
    for short in ["59m", "3599s", "30m59s", "1ms"] {
        backend
            .create(backend_spec(json!({"tokenRotateInterval": short})))
            .refused("spec.tokenRotateInterval", "0 (no rotation) or at least 1h");
    }
    for malformed in ["", "1d", "-1h", "h", "00", "1.5h"] {
        backend
            .create(backend_spec(json!({"tokenRotateInterval": malformed})))
            .refused("spec.tokenRotateInterval", "should match");
    }
}

/// `value.tap(|v| …)`: a modified copy, for one-line variations of a fixture.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
