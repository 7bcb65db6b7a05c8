//! Building the desired content of a JujuSecret from its sources: literal `data`, a
//! referenced Kubernetes Secret, and generated values.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use rand::Rng;
use rand::distr::Uniform;
use sha2::Sha256;

use super::outcome::Problem;
use crate::crd::secret::{Charset, Generator, JujuSecret};
use juju_client::content::{SecretContent, SecretValue, is_valid_key};

/// Why the content could not be built. Names keys and objects, never values.
#[derive(Debug, thiserror::Error)]
pub enum ContentProblem {
    /// The referenced Secret does not exist.
    #[error("Secret {namespace}/{name} not found")]
    SecretMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A mapped key is not in the referenced Secret.
    #[error("key {key:?} not found in Secret {namespace}/{name}")]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// A key breaks Juju's key rule, or two sources give the same key.
    #[error("{0}")]
    Invalid(String),
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The values a lost generated Secret held could not be read back from Juju.
    #[error("{}", .0.message)]
    Juju(Box<Problem>),
}

impl ContentProblem {
    /// True for problems the user fixes by creating or changing a source.
    pub fn is_source_missing(&self) -> bool {
        matches!(self, Self::SecretMissing { .. } | Self::KeyMissing { .. })
    }
}

/// Label on the Secrets that hold generated values.
pub const GENERATED_LABEL: &str = "secrets.juju.is/generated-for";
const ROTATION_ANNOTATION_PREFIX: &str = "secrets.juju.is/rotation.";

/// Name of the Secret that keeps the generated values of a JujuSecret.
pub fn generated_secret_name(jujusecret: &str) -> String {
    format!("{jujusecret}-juju-generated")
}

fn add(
    content: &mut SecretContent,
    key: &str,
    value: SecretValue,
    source: &str,
) -> Result<(), ContentProblem> {
    if !is_valid_key(key) {
        return Err(ContentProblem::Invalid(format!(
            "key {key:?} from {source} not valid: Juju keys match ^([a-z](?:-?[a-z0-9]){{2,}})$"
        )));
    }
    if content.get(key).is_some() {
        return Err(ContentProblem::Invalid(format!(
            "key {key:?} is given by more than one source"
        )));
    }
    content.insert(key, value);
    Ok(())
}

/// Where a pass reads the Kubernetes Secrets its content comes from, and whether it may
/// store generated values.
#[derive(Debug, Default)]
pub struct Sources {
    /// Secrets that stand in for the API's, by (namespace, name): the Secrets of the
    /// manifests a plan reads, which applying them would write.
    pub overrides: BTreeMap<(String, String), Secret>,
    /// A plan: nothing is written. A value that applying would generate is a fresh
    /// random one held in memory only (it differs from what Juju has, as the one
    /// generated on apply would).
    pub preview: bool,
}

impl Sources {
    /// What the operator's passes use: the API's Secrets, generated values stored.
    pub const APPLY: Sources = Sources {
        overrides: BTreeMap::new(),
        preview: false,
    };

    async fn get(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Secret>, kube::Error> {
        if let Some(s) = self.overrides.get(&(namespace.to_owned(), name.to_owned())) {
            return Ok(Some(s.clone()));
        }
        Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
    }
}

/// The content of the Juju secret the ownership record says is the object's, read only
/// if needed: where the values generated for it are when their Kubernetes Secret lost
/// them.
pub type InJuju<'a> = BoxFuture<'a, Result<SecretContent, Problem>>;

/// Collects the desired content from `data` and `secretRef`; the generated values are
/// added by [`add_generated`] once the pass knows which secret is the object's.
pub async fn desired_content(
    client: &kube::Client,
    js: &JujuSecret,
    sources: &Sources,
) -> Result<SecretContent, ContentProblem> {
    let namespace = js.namespace().unwrap_or_default();
    let mut content = SecretContent::new();
    if let Some(data) = &js.spec.data {
        for (k, v) in data {
            add(&mut content, k, SecretValue::from(v.as_str()), "data")?;
        }
    }
    if let Some(source) = &js.spec.secret_ref {
        let secret = sources
            .get(client, &namespace, &source.name)
            .await?
            .ok_or_else(|| ContentProblem::SecretMissing {
                namespace: namespace.clone(),
                name: source.name.clone(),
            })?;
        let data = secret_data(&secret);
        let origin = format!("Secret {}", source.name);
        match source.keys.as_deref() {
            None | Some([]) => {
                for (k, v) in data {
                    add(&mut content, &k, v, &origin)?;
                }
            }
            Some(mappings) => {
                for m in mappings {
                    let value =
                        data.get(&m.key)
                            .cloned()
                            .ok_or_else(|| ContentProblem::KeyMissing {
                                namespace: namespace.clone(),
                                name: source.name.clone(),
                                key: m.key.clone(),
                            })?;
                    add(
                        &mut content,
                        m.as_.as_deref().unwrap_or(&m.key),
                        value,
                        &origin,
                    )?;
                }
            }
        }
    }
    Ok(content)
}

/// Adds the generated values to `content`. They are created (and stored in the
/// Kubernetes Secret [`generated_secret_name`]) before they are used, so a crash can
/// never lose a value that reached Juju. A value the Secret lost (the Secret deleted by
/// hand, or a key removed from it) while its rotation stands is taken from the object's
/// own secret in Juju (`in_juju`), if it is one this generator could have made, and
/// stored again: no new value, no new revision.
pub async fn add_generated(
    content: &mut SecretContent,
    client: &kube::Client,
    js: &JujuSecret,
    field_manager: &str,
    sources: &Sources,
    in_juju: Option<InJuju<'_>>,
) -> Result<(), ContentProblem> {
    if let Some(generators) = js.spec.generate.as_deref().filter(|g| !g.is_empty()) {
        let values =
            generated_values(client, js, generators, field_manager, sources, in_juju).await?;
        for (k, v) in values {
            add(content, &k, v, "generate")?;
        }
    }
    Ok(())
}

/// `data` and `stringData` of a Secret as read from the API (the API server folds
/// `stringData` into `data`; both are read for safety).
fn secret_data(secret: &Secret) -> BTreeMap<String, SecretValue> {
    let mut out: BTreeMap<String, SecretValue> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretValue::new(v.0.clone())))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), SecretValue::from(v.as_str()));
    }
    out
}

async fn generated_values(
    client: &kube::Client,
    js: &JujuSecret,
    generators: &[Generator],
    field_manager: &str,
    sources: &Sources,
    mut in_juju: Option<InJuju<'_>>,
) -> Result<BTreeMap<String, SecretValue>, ContentProblem> {
    let namespace = js.namespace().unwrap_or_default();
    let name = generated_secret_name(&js.name_any());
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let existing = sources.get(client, &namespace, &name).await?;
    let stored = existing.as_ref().map(secret_data).unwrap_or_default();
    let annotations = existing
        .as_ref()
        .map(|s| s.annotations().clone())
        .unwrap_or_default();

    let mut held = None;
    let mut values = BTreeMap::new();
    let mut changed = false;
    let mut wanted_annotations = BTreeMap::new();
    let keys: BTreeSet<&str> = generators.iter().map(|g| g.key.as_str()).collect();
    for g in generators {
        let marker = rotation_marker(g);
        let annotation = format!("{ROTATION_ANNOTATION_PREFIX}{}", g.key);
        let recorded = annotations.get(&annotation);
        let value = match (stored.get(&g.key), recorded) {
            (Some(v), Some(m)) if *m == marker => v.clone(),
            // Lost from the Secret while its rotation stands (no marker: the Secret is
            // gone, or the key never had one).
            (None, m) if m.is_none_or(|m| *m == marker) => {
                changed = true;
                match lost_value(g, &mut in_juju, &mut held).await? {
                    Some(v) => v,
                    None => generate(g),
                }
            }
            _ => {
                changed = true;
                generate(g)
            }
        };
        wanted_annotations.insert(annotation, marker);
        values.insert(g.key.clone(), value);
    }
    if stored.keys().any(|k| !keys.contains(k.as_str())) {
        changed = true;
    }
    if (changed || existing.is_none()) && !sources.preview {
        let owner = js.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
        let mut secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                owner_references: Some(owner),
                annotations: Some(wanted_annotations),
                labels: Some(BTreeMap::from([(
                    GENERATED_LABEL.to_owned(),
                    js.name_any(),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        secret.data = Some(
            values
                .iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.expose().to_vec())))
                .collect(),
        );
        api.patch(
            &name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    }
    Ok(values)
}

/// The value of `g`'s key in the object's secret in Juju (read once per pass, only when
/// a value is lost), if this generator could have made it: its length and alphabet.
async fn lost_value(
    g: &Generator,
    in_juju: &mut Option<InJuju<'_>>,
    held: &mut Option<SecretContent>,
) -> Result<Option<SecretValue>, ContentProblem> {
    if held.is_none()
        && let Some(read) = in_juju.take()
    {
        *held = Some(read.await.map_err(|p| ContentProblem::Juju(Box::new(p)))?);
    }
    Ok(held
        .as_ref()
        .and_then(|content| content.get(&g.key))
        .filter(|v| fits(g, v))
        .cloned())
}

/// Whether `g` could have generated `value`.
fn fits(g: &Generator, value: &SecretValue) -> bool {
    let chars = alphabet(g.charset);
    let bytes = value.expose();
    usize::try_from(g.length).is_ok_and(|n| n == bytes.len())
        && bytes.iter().all(|b| chars.contains(b))
}

/// What decides whether a stored value is still the one wanted: the rotation request
/// and the shape of the value.
fn rotation_marker(g: &Generator) -> String {
    format!(
        "{}:{}:{:?}",
        g.rotation.as_deref().unwrap_or(""),
        g.length,
        g.charset
    )
}

fn alphabet(charset: Charset) -> &'static [u8] {
    match charset {
        Charset::Alphanumeric => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        Charset::Symbols => {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!@#%^*+="
        }
        Charset::Hex => b"0123456789abcdef",
    }
}

/// A random value from the OS-seeded thread RNG.
fn generate(g: &Generator) -> SecretValue {
    let chars = alphabet(g.charset);
    let mut rng = rand::rng();
    let value: Vec<u8> = match Uniform::new(0, chars.len()) {
        Ok(dist) => (0..g.length).map(|_| chars[rng.sample(dist)]).collect(),
        Err(_) => Vec::new(),
    };
    SecretValue::new(value)
}

/// Keyed MAC of content (HMAC-SHA256 over the Juju checksum input), recorded in status
/// to tell "content the operator wrote" from drift, without revealing the content.
pub fn content_mac(key: &[u8], content: &SecretContent) -> String {
    checksum_mac(key, &content.juju_checksum())
}

/// The keyed MAC of content whose Juju checksum is `checksum` (Juju 3.6 reports it in
/// every listing): equal to [`content_mac`] of that content.
pub fn checksum_mac(key: &[u8], checksum: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(checksum.as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_follow_length_and_alphabet() {
        let g = Generator {
            key: "password".into(),
            length: 40,
            charset: Charset::Hex,
            rotation: None,
        };
        let v = generate(&g);
        assert_eq!(v.expose().len(), 40);
        assert!(v.expose().iter().all(|b| b"0123456789abcdef".contains(b)));
        assert_ne!(generate(&g), v, "two draws differ");
    }

    #[test]
    fn a_value_is_taken_back_only_if_its_generator_could_have_made_it() {
        let g = Generator {
            key: "password".into(),
            length: 8,
            charset: Charset::Hex,
            rotation: None,
        };
        assert!(fits(&g, &generate(&g)));
        assert!(fits(&g, &SecretValue::from("0123abcd")));
        assert!(
            !fits(&g, &SecretValue::from("changeme")),
            "outside the alphabet"
        );
        assert!(!fits(&g, &SecretValue::from("0123abc")), "too short");
        assert!(!fits(&g, &SecretValue::from("0123abcde")), "too long");
    }

    #[tokio::test]
    async fn a_lost_value_reads_juju_once_and_only_when_needed() {
        let g = |key: &str| Generator {
            key: key.into(),
            length: 4,
            charset: Charset::Hex,
            rotation: None,
        };
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let read = || -> InJuju<'_> {
            Box::pin(async {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut c = SecretContent::new();
                c.insert("one", "abcd");
                c.insert("two", "not hex");
                Ok(c)
            })
        };
        let (mut in_juju, mut held) = (Some(read()), None);
        let one = lost_value(&g("one"), &mut in_juju, &mut held)
            .await
            .unwrap();
        assert_eq!(
            one.as_ref().map(|v| v.expose().to_vec()),
            Some(b"abcd".to_vec())
        );
        let two = lost_value(&g("two"), &mut in_juju, &mut held)
            .await
            .unwrap();
        assert!(two.is_none(), "a value the generator could not have made");
        let three = lost_value(&g("three"), &mut in_juju, &mut held)
            .await
            .unwrap();
        assert!(three.is_none(), "a key Juju does not hold");
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Nothing to read from (no secret of the object's): nothing taken back.
        let (mut none, mut held) = (None, None);
        assert!(
            lost_value(&g("one"), &mut none, &mut held)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_mac_is_keyed_and_does_not_reveal_the_content() {
        let mut c = SecretContent::new();
        c.insert("password", "hunter2");
        let a = content_mac(b"key-one-key-one-key-one-key-one!", &c);
        let b = content_mac(b"key-two-key-two-key-two-key-two!", &c);
        assert_ne!(a, b);
        assert!(a.starts_with("hmac-sha256:"));
        assert!(!a.contains(&c.juju_checksum()));
        assert_eq!(a, content_mac(b"key-one-key-one-key-one-key-one!", &c));
    }

    #[test]
    fn rotation_marker_changes_with_rotation_and_shape() {
        let mut g = Generator {
            key: "password".into(),
            length: 32,
            charset: Charset::Alphanumeric,
            rotation: None,
        };
        let first = rotation_marker(&g);
        g.rotation = Some("2026-11".into());
        assert_ne!(rotation_marker(&g), first);
    }
}
