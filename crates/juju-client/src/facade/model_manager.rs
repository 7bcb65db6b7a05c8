//! ModelManager (v9/v10, controller connection): finding a model's UUID.

use crate::JujuClient;
use crate::error::{Error, Result, WireError};
use crate::wire;

const FACADE: &str = "ModelManager";
const VERSIONS: &[u32] = &[9, 10];

/// A model visible to the logged-in user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Model name, unique per owner.
    pub name: String,
    /// Owner's user name (without `user-`).
    pub owner: String,
    /// Model UUID.
    pub uuid: String,
    /// `iaas` or `caas`.
    pub model_type: String,
}

impl Model {
    /// `owner/name`, as the Juju CLI writes it.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// How a user names a model: a UUID, `owner/name` or a bare name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    /// A model UUID.
    Uuid(String),
    /// `owner/name`.
    Qualified {
        /// Owner user name.
        owner: String,
        /// Model name.
        name: String,
    },
    /// A bare name.
    Name(String),
}

impl ModelSpec {
    /// Parses the forms users write.
    pub fn parse(spec: &str) -> Self {
        let spec = spec.trim();
        if is_uuid(spec) {
            return Self::Uuid(spec.to_ascii_lowercase());
        }
        match spec.split_once('/') {
            Some((owner, name)) => Self::Qualified {
                owner: owner.to_owned(),
                name: name.to_owned(),
            },
            None => Self::Name(spec.to_owned()),
        }
    }
}

/// True for the 8-4-4-4-12 hex form of a UUID.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

impl JujuClient {
    /// Every model the logged-in user can see (`ListModels`).
    pub async fn list_models(&self) -> Result<Vec<Model>> {
        let params = wire::EntityTag {
            tag: format!("user-{}", self.options().username),
        };
        let list: wire::UserModelList = self
            .controller()?
            .call(FACADE, VERSIONS, "ListModels", &params)
            .await?;
        Ok(list
            .user_models
            .unwrap_or_default()
            .into_iter()
            .map(|m| Model {
                owner: m
                    .model
                    .owner_tag
                    .strip_prefix("user-")
                    .unwrap_or(&m.model.owner_tag)
                    .to_owned(),
                name: m.model.name,
                uuid: m.model.uuid,
                model_type: m.model.model_type,
            })
            .collect())
    }

    /// Details of one model (`ModelInfo`): confirms the user can read it and reports
    /// the model's agent version. An unknown model and one the user cannot read both
    /// come back as Juju's `permission denied` (`unauthorized access`).
    pub async fn model_info(&self, model_uuid: &str) -> Result<(Model, Option<String>)> {
        let params = wire::Entities {
            entities: vec![wire::EntityTag {
                tag: format!("model-{model_uuid}"),
            }],
        };
        let answer: wire::ModelInfoResults = self
            .controller()?
            .call(FACADE, VERSIONS, "ModelInfo", &params)
            .await?;
        let protocol = |detail: &str| Error::Protocol {
            facade: FACADE,
            method: "ModelInfo",
            detail: detail.to_owned(),
        };
        let item = answer
            .results
            .into_iter()
            .next()
            .ok_or_else(|| protocol("no result"))?;
        if let Some(e) = item.error.filter(WireError::is_error) {
            return Err(Error::Api {
                facade: FACADE,
                method: "ModelInfo",
                source: e.into(),
            });
        }
        let info = item.result.ok_or_else(|| protocol("result missing"))?;
        let model = Model {
            owner: info
                .owner_tag
                .strip_prefix("user-")
                .unwrap_or(&info.owner_tag)
                .to_owned(),
            name: info.name,
            uuid: info.uuid,
            model_type: info.model_type,
        };
        Ok((model, info.agent_version))
    }

    /// Resolves a model given as UUID, `owner/name` or bare name to the model.
    ///
    /// A bare name means the logged-in user's model of that name, as in the Juju CLI.
    /// When the user owns none but other owners do, the answer is
    /// [`Error::AmbiguousModel`] listing their `owner/name` forms, never a guess.
    pub async fn resolve_model(&self, spec: &str) -> Result<Model> {
        let models = self.list_models().await?;
        let not_found = || Error::ModelNotFound {
            model: spec.to_owned(),
        };
        match ModelSpec::parse(spec) {
            ModelSpec::Uuid(uuid) => models
                .into_iter()
                .find(|m| m.uuid == uuid)
                .ok_or_else(not_found),
            ModelSpec::Qualified { owner, name } => models
                .into_iter()
                .find(|m| m.owner == owner && m.name == name)
                .ok_or_else(not_found),
            ModelSpec::Name(name) => {
                let mut matches: Vec<Model> =
                    models.into_iter().filter(|m| m.name == name).collect();
                if let Some(own) = matches
                    .iter()
                    .position(|m| m.owner == self.options().username)
                {
                    return Ok(matches.swap_remove(own));
                }
                // Never guess another owner's model: name the candidates instead.
                if matches.is_empty() {
                    Err(not_found())
                } else {
                    Err(Error::AmbiguousModel {
                        model: spec.to_owned(),
                        candidates: matches.iter().map(Model::qualified_name).collect(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_parse_like_the_cli() {
        assert_eq!(
            ModelSpec::parse("26E9B4DD-e657-4a2c-8f25-222c879fd45d"),
            ModelSpec::Uuid("26e9b4dd-e657-4a2c-8f25-222c879fd45d".into())
        );
        assert_eq!(
            ModelSpec::parse("admin/dev"),
            ModelSpec::Qualified {
                owner: "admin".into(),
                name: "dev".into()
            }
        );
        assert_eq!(ModelSpec::parse("dev"), ModelSpec::Name("dev".into()));
        assert!(!is_uuid("26e9b4dd-e657-4a2c-8f25-222c879fd45"));
    }
}
