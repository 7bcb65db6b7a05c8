//! Secrets v2 (model connection): user secrets and their grants.

use std::fmt;

use super::{error_results, string_results};
use crate::JujuClient;
use crate::content::{ContentError, ContentLimits, SecretContent};
use crate::error::{ApiError, Error, Result};
use crate::wire;

const FACADE: &str = "Secrets";
/// User secrets need v2; v1 has none of the user-secret methods.
const VERSIONS: &[u32] = &[2];

/// A secret's URI. Juju answers with the short form `secret:<id>`; the full form
/// `secret://<model-uuid>/<id>` names the hosting model too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretUri {
    id: String,
    source_uuid: Option<String>,
}

impl SecretUri {
    /// Parses `secret:<id>`, `secret://<uuid>/<id>` or a bare ID, with Juju's rules.
    pub fn parse(input: &str) -> std::result::Result<Self, ApiError> {
        let invalid = || ApiError::new("not valid", format!("secret URI {input:?} not valid"));
        let rest = match input.split_once(':') {
            Some(("secret", rest)) => rest,
            Some(_) => return Err(invalid()),
            None => input,
        };
        let (source_uuid, id) = match rest.strip_prefix("//") {
            Some(hosted) => {
                let (host, id) = hosted.split_once('/').ok_or_else(invalid)?;
                if !super::model_manager::is_uuid(host) {
                    return Err(ApiError::new(
                        "not valid",
                        format!("host controller UUID {host:?} not valid"),
                    ));
                }
                (Some(host.to_owned()), id)
            }
            None => (None, rest),
        };
        if !is_secret_id(id) {
            return Err(invalid());
        }
        Ok(Self {
            id: id.to_owned(),
            source_uuid,
        })
    }

    /// The 20-character ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `secret:<id>`.
    pub fn short(&self) -> String {
        format!("secret:{}", self.id)
    }

    /// `secret://<model-uuid>/<id>`.
    pub fn full(&self, model_uuid: &str) -> String {
        format!(
            "secret://{}/{}",
            self.source_uuid.as_deref().unwrap_or(model_uuid),
            self.id
        )
    }
}

impl fmt::Display for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secret:{}", self.id)
    }
}

/// True for a Juju secret ID: 20 characters of lower-case base32hex (`0-9a-v`) whose
/// last character carries only one data bit (`0` or `g`).
pub fn is_secret_id(id: &str) -> bool {
    id.len() == 20
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
        && matches!(id.as_bytes().last(), Some(b'0' | b'g'))
}

/// Which secret a call is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSelector {
    /// By URI (stable across renames).
    Uri(SecretUri),
    /// By name (Juju's label).
    Label(String),
}

impl SecretSelector {
    fn uri_and_label(&self) -> (String, &str) {
        match self {
            SecretSelector::Uri(uri) => (uri.short(), ""),
            SecretSelector::Label(label) => (String::new(), label),
        }
    }
}

/// A user secret to create.
#[derive(Clone, Debug)]
pub struct NewSecret {
    /// The secret's name (Juju's label), unique per model.
    pub label: Option<String>,
    /// Free text (the CLI's `--info`).
    pub description: Option<String>,
    /// The first revision's content.
    pub content: SecretContent,
}

/// Changes to one user secret. `None` leaves a field as it is.
#[derive(Clone, Debug)]
pub struct SecretUpdate {
    /// The secret to change.
    pub secret: SecretSelector,
    /// New name.
    pub label: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Turn auto-prune on or off.
    pub auto_prune: Option<bool>,
    /// New content: the complete key set of the next revision.
    pub content: Option<SecretContent>,
}

impl SecretUpdate {
    /// An update of `secret` that changes nothing yet.
    pub fn of(secret: SecretSelector) -> Self {
        Self {
            secret,
            label: None,
            description: None,
            auto_prune: None,
            content: None,
        }
    }
}

/// A removal of a whole secret or of some revisions.
#[derive(Clone, Debug)]
pub struct SecretRemoval {
    /// The secret.
    pub secret: SecretSelector,
    /// Only these revisions; `None` removes the secret.
    pub revisions: Option<Vec<u64>>,
}

/// Filter of [`JujuClient::list_secrets`]; fields combine with AND.
#[derive(Clone, Debug, Default)]
pub struct SecretFilter {
    /// Only this secret.
    pub uri: Option<SecretUri>,
    /// Only secrets with this label.
    pub label: Option<String>,
    /// Only this revision (every matched secret must have it).
    pub revision: Option<u64>,
    /// Only secrets owned by this tag, e.g. `model-<uuid>` for user secrets.
    pub owner_tag: Option<String>,
}

impl SecretFilter {
    /// The user secrets of a model (charm-owned secrets left out).
    pub fn user_secrets(model_uuid: &str) -> Self {
        Self {
            owner_tag: Some(format!("model-{model_uuid}")),
            ..Self::default()
        }
    }
}

/// One revision of a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionInfo {
    /// Revision number.
    pub revision: u64,
    /// Backend holding it (`internal`, `<model>-local`, a user backend, `unknown`).
    pub backend_name: Option<String>,
}

/// A view grant on a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessInfo {
    /// e.g. `application-mysql`.
    pub target_tag: String,
    /// e.g. `model-<uuid>`.
    pub scope_tag: String,
    /// `view`.
    pub role: String,
}

impl AccessInfo {
    /// The application name when the grant targets an application.
    pub fn application(&self) -> Option<&str> {
        self.target_tag.strip_prefix("application-")
    }
}

/// A secret as ListSecrets reports it.
#[derive(Clone, Debug)]
pub struct SecretInfo {
    /// URI, short form.
    pub uri: SecretUri,
    /// Owner, `model-<uuid>` for user secrets.
    pub owner_tag: String,
    /// Name (label), if any.
    pub label: Option<String>,
    /// Description, if any.
    pub description: Option<String>,
    /// Latest revision number (never decreases).
    pub latest_revision: u64,
    /// Juju 3.6+: SHA-256 of the latest revision's content (see
    /// [`SecretContent::juju_checksum`]); `None` before 3.6.
    pub latest_revision_checksum: Option<String>,
    /// Creation time, RFC 3339.
    pub create_time: Option<String>,
    /// Last update time, RFC 3339.
    pub update_time: Option<String>,
    /// Existing revisions, sorted by number.
    pub revisions: Vec<RevisionInfo>,
    /// With `show_secrets`: the content, or why it could not be read.
    pub value: Option<std::result::Result<SecretContent, ApiError>>,
    /// View grants.
    pub access: Vec<AccessInfo>,
}

impl SecretInfo {
    fn from_wire(r: wire::ListSecretResult) -> Result<Self> {
        let protocol = |detail: String| Error::Protocol {
            facade: FACADE,
            method: "ListSecrets",
            detail,
        };
        let uri = SecretUri::parse(&r.uri).map_err(|e| protocol(e.message))?;
        let mut revisions: Vec<RevisionInfo> = r
            .revisions
            .unwrap_or_default()
            .into_iter()
            .map(|rev| RevisionInfo {
                revision: rev.revision,
                backend_name: rev.backend_name,
            })
            .collect();
        // Juju sorts revisions as strings (1, 10, 2); numbers are what users mean.
        revisions.sort_by_key(|rev| rev.revision);
        let value = match r.value {
            None => None,
            Some(v) => Some(match (v.error, v.data) {
                (Some(e), _) if e.is_error() => Err(e.into()),
                (_, data) => SecretContent::from_wire(&data.unwrap_or_default()).map_err(
                    |e: ContentError| {
                        ApiError::new("not valid", format!("content of {} from Juju: {e}", r.uri))
                    },
                ),
            }),
        };
        Ok(Self {
            uri,
            owner_tag: r.owner_tag,
            label: r.label.filter(|l| !l.is_empty()),
            description: r.description.filter(|d| !d.is_empty()),
            latest_revision: r.latest_revision,
            latest_revision_checksum: r.latest_revision_checksum.filter(|c| !c.is_empty()),
            create_time: r.create_time,
            update_time: r.update_time,
            revisions,
            value,
            access: r
                .access
                .unwrap_or_default()
                .into_iter()
                .map(|a| AccessInfo {
                    target_tag: a.target_tag,
                    scope_tag: a.scope_tag,
                    role: a.role,
                })
                .collect(),
        })
    }
}

impl JujuClient {
    /// Creates user secrets in one call. Content is checked against Juju's rules for
    /// this controller's version first; if any item breaks them nothing is sent.
    /// Returns one result per item: the new URI or Juju's error for that item.
    pub async fn create_secrets(
        &self,
        model_uuid: &str,
        secrets: &[NewSecret],
    ) -> Result<Vec<std::result::Result<SecretUri, ApiError>>> {
        let limits = self.model_content_limits(model_uuid).await?;
        for s in secrets {
            s.content.validate(limits)?;
        }
        let params = wire::CreateSecretArgs {
            args: secrets
                .iter()
                .map(|s| wire::CreateSecretArg {
                    description: s.description.as_deref(),
                    label: s.label.as_deref(),
                    content: wire::ContentParams {
                        data: Some(&s.content),
                    },
                    owner_tag: "",
                })
                .collect(),
        };
        let answer: wire::StringResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "CreateSecrets", &params)
            .await?;
        let results = string_results(FACADE, "CreateSecrets", answer, secrets.len())?;
        results
            .into_iter()
            .map(|r| match r {
                Ok(uri) => SecretUri::parse(&uri).map(Ok).map_err(|e| Error::Protocol {
                    facade: FACADE,
                    method: "CreateSecrets",
                    detail: e.message,
                }),
                Err(e) => Ok(Err(e)),
            })
            .collect()
    }

    /// Applies several updates in one call; one result per item.
    ///
    /// Juju 3.6.15+ may fail such a call as a whole when one item names a secret that
    /// does not exist (juju-api.md §5.4); callers that cannot rule that out should
    /// retry the items one by one after a top-level error.
    pub async fn update_secrets(
        &self,
        model_uuid: &str,
        updates: &[SecretUpdate],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let limits: ContentLimits = self.model_content_limits(model_uuid).await?;
        for u in updates {
            if let Some(content) = &u.content {
                content.validate(limits)?;
            }
        }
        let params = wire::UpdateUserSecretArgs {
            args: updates
                .iter()
                .map(|u| {
                    let (uri, existing_label) = u.secret.uri_and_label();
                    wire::UpdateUserSecretArg {
                        description: u.description.as_deref(),
                        label: u.label.as_deref(),
                        content: wire::ContentParams {
                            data: u.content.as_ref(),
                        },
                        uri,
                        existing_label,
                        auto_prune: u.auto_prune,
                    }
                })
                .collect(),
        };
        let answer: wire::ErrorResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "UpdateSecrets", &params)
            .await?;
        error_results(FACADE, "UpdateSecrets", answer, updates.len())
    }

    /// Removes secrets or some of their revisions; one result per item.
    pub async fn remove_secrets(
        &self,
        model_uuid: &str,
        removals: &[SecretRemoval],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        // An empty list would read as "no revisions given" and remove the whole secret.
        if removals
            .iter()
            .any(|r| r.revisions.as_ref().is_some_and(Vec::is_empty))
        {
            return Err(Error::Config(
                "an empty revision list would remove the whole secret; pass None to mean that"
                    .into(),
            ));
        }
        let params = wire::DeleteSecretArgs {
            args: removals
                .iter()
                .map(|r| {
                    let (uri, label) = r.secret.uri_and_label();
                    wire::DeleteSecretArg {
                        uri,
                        label,
                        revisions: r.revisions.as_deref(),
                    }
                })
                .collect(),
        };
        let answer: wire::ErrorResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "RemoveSecrets", &params)
            .await?;
        error_results(FACADE, "RemoveSecrets", answer, removals.len())
    }

    /// Lists the secrets of a model matching `filter`, with their content when
    /// `show_secrets` is set (that needs model admin).
    pub async fn list_secrets(
        &self,
        model_uuid: &str,
        filter: &SecretFilter,
        show_secrets: bool,
    ) -> Result<Vec<SecretInfo>> {
        let params = wire::ListSecretsArgs {
            show_secrets,
            filter: wire::SecretsFilter {
                uri: filter.uri.as_ref().map(SecretUri::short),
                label: filter.label.as_deref(),
                revision: filter.revision,
                owner_tag: filter.owner_tag.clone(),
            },
        };
        let answer: wire::ListSecretResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "ListSecrets", &params)
            .await?;
        answer
            .results
            .unwrap_or_default()
            .into_iter()
            .map(SecretInfo::from_wire)
            .collect()
    }

    /// Grants `applications` view access to a secret; one result per application,
    /// in order. A missing application fails only its own item.
    pub async fn grant_secret(
        &self,
        model_uuid: &str,
        secret: &SecretSelector,
        applications: &[String],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        self.grant_or_revoke(model_uuid, "GrantSecret", secret, applications)
            .await
    }

    /// Revokes view access; revoking a grant that does not exist succeeds.
    pub async fn revoke_secret(
        &self,
        model_uuid: &str,
        secret: &SecretSelector,
        applications: &[String],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        self.grant_or_revoke(model_uuid, "RevokeSecret", secret, applications)
            .await
    }

    async fn grant_or_revoke(
        &self,
        model_uuid: &str,
        method: &'static str,
        secret: &SecretSelector,
        applications: &[String],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let (uri, label) = secret.uri_and_label();
        let params = wire::GrantRevokeUserSecretArg {
            uri,
            label,
            applications,
        };
        let answer: wire::ErrorResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, method, &params)
            .await?;
        error_results(FACADE, method, answer, applications.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_uris_parse_in_every_form() {
        let short = SecretUri::parse("secret:9fvb66662rqormfsip9g").unwrap();
        assert_eq!(short.id(), "9fvb66662rqormfsip9g");
        assert_eq!(short.short(), "secret:9fvb66662rqormfsip9g");
        let full =
            SecretUri::parse("secret://26e9b4dd-e657-4a2c-8f25-222c879fd45d/9fvb66662rqormfsip9g")
                .unwrap();
        assert_eq!(full.id(), short.id());
        assert_eq!(
            full.full("ignored"),
            "secret://26e9b4dd-e657-4a2c-8f25-222c879fd45d/9fvb66662rqormfsip9g"
        );
        assert_eq!(SecretUri::parse("9fvb66662rqormfsip9g").unwrap(), short);
    }

    #[test]
    fn bad_uris_get_juju_messages() {
        let e = SecretUri::parse("secret:nope").unwrap_err();
        assert_eq!(e.message, "secret URI \"secret:nope\" not valid");
        assert_eq!(e.code.as_wire(), "not valid");
        // Last character must carry a single data bit.
        assert!(SecretUri::parse("secret:9fvb66662rqormfsip9h").is_err());
        // Characters beyond base32hex.
        assert!(SecretUri::parse("secret:9fvb66662rqormfsipwg").is_err());
        let e = SecretUri::parse("secret://not-a-uuid/9fvb66662rqormfsip9g").unwrap_err();
        assert_eq!(e.message, "host controller UUID \"not-a-uuid\" not valid");
        assert!(SecretUri::parse("vault:9fvb66662rqormfsip9g").is_err());
    }
}
