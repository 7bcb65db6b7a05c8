//! Reading the manifests a plan is about: files, directories (recursively, `.yaml`,
//! `.yml` and `.json` files, as `kubectl apply -f DIR -R` reads them) or `-` for standard
//! input; YAML streams of many documents and `List` objects.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::Value;

use crate::crd::backend::JujuSecretBackend;
use crate::crd::grant::JujuSecretGrant;
use crate::crd::secret::JujuSecret;

/// The objects of a manifest set the plan reads; others are counted and left alone.
#[derive(Debug, Default)]
pub struct Manifests {
    /// JujuSecrets, in the order read.
    pub secrets: Vec<JujuSecret>,
    /// JujuSecretGrants.
    pub grants: Vec<JujuSecretGrant>,
    /// JujuSecretBackends.
    pub backends: Vec<JujuSecretBackend>,
    /// Secrets (content sources applying the set would write), by (namespace, name).
    pub sources: BTreeMap<(String, String), Secret>,
    /// Objects of other kinds, which the plan says nothing about.
    pub other: usize,
}

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was read.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML, or not a valid object of its kind.
    #[error("{path}: document {index}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The document's place in the file, from 1.
        index: usize,
        /// What is wrong (never a value of the document).
        message: String,
    },
}

const GROUP_VERSION: &str = "secrets.juju.is/v1alpha1";

impl Manifests {
    /// Reads every path (`-`: standard input); objects without a namespace get
    /// `namespace`.
    pub fn read(paths: &[PathBuf], namespace: &str) -> Result<Self, ManifestError> {
        let mut out = Manifests::default();
        for path in paths {
            if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|source| ManifestError::Io {
                        path: "standard input".into(),
                        source,
                    })?;
                out.add_stream("standard input", &text, namespace)?;
            } else {
                out.add_path(path, namespace, true)?;
            }
        }
        Ok(out)
    }

    fn add_path(&mut self, path: &Path, namespace: &str, named: bool) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            entries.sort();
            for entry in entries {
                self.add_path(&entry, namespace, false)?;
            }
            return Ok(());
        }
        let manifest = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        // A file named on the command line is read whatever its name; in a directory,
        // only manifests.
        if !named && !manifest {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        self.add_stream(&path.display().to_string(), &text, namespace)
    }

    /// Adds the objects of a YAML (or JSON) stream.
    pub fn add_stream(
        &mut self,
        path: &str,
        text: &str,
        namespace: &str,
    ) -> Result<(), ManifestError> {
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let invalid = |message: String| ManifestError::Invalid {
                path: path.to_owned(),
                index: i + 1,
                message,
            };
            let value =
                Value::deserialize(document).map_err(|e| invalid(redact(&e.to_string())))?;
            if value.is_null() {
                continue;
            }
            self.add_object(value, namespace).map_err(invalid)?;
        }
        Ok(())
    }

    fn add_object(&mut self, mut value: Value, namespace: &str) -> Result<(), String> {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind == "List" {
            let items = value
                .get_mut("items")
                .and_then(Value::as_array_mut)
                .map(std::mem::take)
                .unwrap_or_default();
            for item in items {
                self.add_object(item, namespace)?;
            }
            return Ok(());
        }
        let namespaced = kind != "JujuSecretBackend";
        if namespaced
            && value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .is_none()
            && let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
        // serde's messages name fields and types, never the value that failed.
        let typed =
            |e: serde_json::Error| format!("not a valid {kind}: {}", redact(&e.to_string()));
        match (api_version.as_str(), kind.as_str()) {
            (GROUP_VERSION, "JujuSecret") => {
                self.secrets
                    .push(serde_json::from_value(value).map_err(typed)?);
            }
            (GROUP_VERSION, "JujuSecretGrant") => {
                self.grants
                    .push(serde_json::from_value(value).map_err(typed)?);
            }
            (GROUP_VERSION, "JujuSecretBackend") => {
                self.backends
                    .push(serde_json::from_value(value).map_err(typed)?);
            }
            ("v1", "Secret") => {
                let secret: Secret = serde_json::from_value(value).map_err(typed)?;
                let key = (
                    secret.metadata.namespace.clone().unwrap_or_default(),
                    secret.metadata.name.clone().unwrap_or_default(),
                );
                self.sources.insert(key, secret);
            }
            _ => self.other += 1,
        }
        Ok(())
    }
}

/// Parser messages quote the text they failed on (`invalid type: string "hunter2"`);
/// a manifest's text may be a secret value, so quoted text is cut out. serde quotes a
/// string with `{:?}`, escaping quotes and backslashes inside it: an escaped character
/// does not end the quote.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    let mut escaped = false;
    for c in message.chars() {
        match open {
            None if c == '"' || c == '`' => {
                open = Some(c);
                out.push_str("\"…");
            }
            None => out.push(c),
            Some(_) if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => {
                open = None;
                out.push('"');
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SET: &str = r#"
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecret
metadata: {name: db}
spec: {model: admin/dev, data: {password: hunter2}}
---
apiVersion: v1
kind: Secret
metadata: {name: src, namespace: team-b}
stringData: {token: abc}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: List
items:
- apiVersion: secrets.juju.is/v1alpha1
  kind: JujuSecretGrant
  metadata: {name: g, namespace: team-b}
  spec: {secretRef: {name: db}, applications: [wordpress]}
- apiVersion: secrets.juju.is/v1alpha1
  kind: JujuSecretBackend
  metadata: {name: vault}
  spec: {backendType: vault, config: {endpoint: "https://vault:8200"}}
"#;

    #[test]
    fn a_stream_yields_each_kind_with_its_namespace() {
        let mut m = Manifests::default();
        m.add_stream("set.yaml", SET, "team-a").unwrap();
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(m.secrets[0].metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(m.grants[0].metadata.namespace.as_deref(), Some("team-b"));
        assert_eq!(m.backends[0].metadata.namespace, None, "cluster-scoped");
        assert!(
            m.sources
                .contains_key(&("team-b".to_owned(), "src".to_owned()))
        );
        assert_eq!(m.other, 1);
    }

    #[test]
    fn an_invalid_document_is_named_without_its_values() {
        let bad = "apiVersion: secrets.juju.is/v1alpha1\nkind: JujuSecret\nmetadata: {name: x}\nspec: {model: [\"hunter2\"]}\n";
        let e = Manifests::default()
            .add_stream("bad.yaml", bad, "ns")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("bad.yaml: document 1: not a valid JujuSecret"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    /// serde quotes a value with `{:?}`: a quote inside it comes out escaped (`\"`) and
    /// must not end the part that is cut out.
    #[test]
    fn a_value_with_quotes_in_it_is_cut_out_whole() {
        for value in [
            r#"ab"cd hunter2"#,
            r#"ab\"cd hunter2"#,
            "ab`cd hunter2",
            r#"x\"#,
        ] {
            let bad = format!(
                "apiVersion: secrets.juju.is/v1alpha1\nkind: JujuSecret\nmetadata: {{name: x}}\nspec: {{model: admin/dev, data: {}}}\n",
                serde_json::to_string(value).unwrap()
            );
            let e = Manifests::default()
                .add_stream("bad.yaml", &bad, "ns")
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a valid JujuSecret"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("cd"), "{e}");
            assert!(e.contains("expected"), "the rest of the message stays: {e}");
        }
    }

    #[test]
    fn directories_are_read_recursively_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.yaml"), SET).unwrap();
        std::fs::write(dir.path().join("a.yml"), SET).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let m = Manifests::read(&[dir.path().to_owned()], "team-a").unwrap();
        assert_eq!(m.secrets.len(), 2);
    }
}
