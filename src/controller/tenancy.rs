//! Tenancy: which namespaces may target which Juju models.
//!
//! The Juju credentials belong to the operator, so a namespace must not reach a model
//! just by naming it. The cluster admin gives a policy file (`--tenancy-policy`, a
//! ConfigMap in the Helm chart):
//!
//! ```yaml
//! namespaces:
//!   team-a: ["admin/dev"]          # owner/name or model UUID; "*" means any model
//!   team-b: ["admin/staging", "6f1c2a8e-0c55-4b7e-9d8e-2f0b1f3c4d5e"]
//!   "*": []                        # namespaces not listed; absent means none
//! ```
//!
//! Without a policy file every namespace may use every model (a single-team install).
//! With one, anything not listed is forbidden.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use juju_client::{Model, ModelSpec};

/// Any namespace / any model.
const WILDCARD: &str = "*";

/// The policy as written in the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    namespaces: BTreeMap<String, Vec<String>>,
}

/// Which namespaces may target which models.
#[derive(Clone, Debug)]
pub enum TenancyPolicy {
    /// Every namespace may use every model.
    AllowAll,
    /// Namespace → allowed model patterns (`owner/name`, a UUID, or `*`).
    Restricted(BTreeMap<String, Vec<String>>),
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read tenancy policy {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("invalid tenancy policy {path}: {detail}")]
    Invalid {
        /// File path.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl TenancyPolicy {
    /// Loads a policy file (YAML or JSON).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|detail| PolicyError::Invalid {
            path: path.display().to_string(),
            detail,
        })
    }

    /// Parses the policy text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        for (ns, models) in &file.namespaces {
            for m in models {
                if m != WILDCARD
                    && !matches!(
                        ModelSpec::parse(m),
                        ModelSpec::Uuid(_) | ModelSpec::Qualified { .. }
                    )
                {
                    return Err(format!(
                        "namespace {ns:?}: model {m:?} must be written owner/name or as a UUID"
                    ));
                }
            }
        }
        Ok(Self::Restricted(file.namespaces))
    }

    /// The model patterns that apply to `namespace`, or `None` when all are allowed.
    fn patterns(&self, namespace: &str) -> Option<&[String]> {
        match self {
            TenancyPolicy::AllowAll => None,
            TenancyPolicy::Restricted(map) => Some(
                map.get(namespace)
                    .or_else(|| map.get(WILDCARD))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            ),
        }
    }

    /// Decides before any Juju call, from the model as written in the spec, when that
    /// is possible. `Some(answer)` is final; `None` means the model must be resolved
    /// first (the spec names it in another form than the policy) and
    /// [`TenancyPolicy::allows_model`] decides.
    pub fn precheck(&self, namespace: &str, spec_model: &str, juju_user: &str) -> Option<bool> {
        let patterns = self.patterns(namespace)?;
        if patterns.is_empty() {
            return Some(false);
        }
        if patterns.iter().any(|p| p == WILDCARD) {
            return Some(true);
        }
        let written = match ModelSpec::parse(spec_model) {
            ModelSpec::Uuid(u) => u,
            ModelSpec::Qualified { owner, name } => format!("{owner}/{name}"),
            ModelSpec::Name(name) => format!("{juju_user}/{name}"),
        };
        if patterns.iter().any(|p| p.eq_ignore_ascii_case(&written)) {
            return Some(true);
        }
        None
    }

    /// Decides for a resolved model.
    pub fn allows_model(&self, namespace: &str, model: &Model) -> bool {
        match self.patterns(namespace) {
            None => true,
            Some(patterns) => patterns.iter().any(|p| {
                p == WILDCARD || p.eq_ignore_ascii_case(&model.uuid) || *p == model.qualified_name()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6f1c2a8e-0c55-4b7e-9d8e-2f0b1f3c4d5e";

    fn model(owner: &str, name: &str, uuid: &str) -> Model {
        Model {
            name: name.into(),
            owner: owner.into(),
            uuid: uuid.into(),
            model_type: "iaas".into(),
        }
    }

    #[test]
    fn without_a_policy_everything_is_allowed() {
        let p = TenancyPolicy::AllowAll;
        assert_eq!(p.precheck("any", "admin/dev", "admin"), None);
        assert!(p.allows_model("any", &model("admin", "dev", UUID)));
    }

    #[test]
    fn a_policy_allows_only_what_it_lists() {
        let p = TenancyPolicy::parse(&format!(
            "namespaces:\n  team-a: [admin/dev]\n  team-b: [\"{UUID}\"]\n  ops: [\"*\"]\n"
        ))
        .unwrap();
        assert_eq!(p.precheck("team-a", "dev", "admin"), Some(true));
        assert_eq!(p.precheck("team-a", "admin/dev", "admin"), Some(true));
        // Another form of the same model needs resolution.
        assert_eq!(p.precheck("team-a", UUID, "admin"), None);
        assert!(p.allows_model("team-a", &model("admin", "dev", UUID)));
        assert!(!p.allows_model("team-a", &model("admin", "prod", "x")));
        assert!(p.allows_model("team-b", &model("bob", "whatever", UUID)));
        assert_eq!(p.precheck("ops", "bob/prod", "admin"), Some(true));
        // Unlisted namespaces get nothing when there is no "*" entry.
        assert_eq!(p.precheck("stranger", "admin/dev", "admin"), Some(false));
        assert!(!p.allows_model("stranger", &model("admin", "dev", UUID)));
    }

    #[test]
    fn the_wildcard_namespace_is_the_default() {
        let p = TenancyPolicy::parse("namespaces:\n  \"*\": [admin/sandbox]\n").unwrap();
        assert_eq!(p.precheck("anyone", "admin/sandbox", "admin"), Some(true));
        assert!(!p.allows_model("anyone", &model("admin", "dev", UUID)));
    }

    #[test]
    fn bare_names_and_unknown_keys_are_refused() {
        assert!(TenancyPolicy::parse("namespaces:\n  a: [dev]\n").is_err());
        assert!(TenancyPolicy::parse("namespace:\n  a: [admin/dev]\n").is_err());
    }
}
