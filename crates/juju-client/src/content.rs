//! Secret content: values that never print, and Juju's client-side content rules.
//!
//! A [`SecretValue`] holds raw bytes, is wiped from memory when dropped, and prints as
//! `<redacted>` in `Debug`. It only leaves the process base64-encoded inside a request
//! frame (Juju wants standard base64 per value, juju-api.md §6.1). Juju's server does not
//! check keys or sizes of user secrets, its clients do; [`SecretContent::validate`]
//! applies the same rules before anything is sent.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regex::Regex;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// One secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Decodes a base64 value as found on the wire.
    pub fn from_base64(encoded: &str) -> Result<Self, ContentError> {
        BASE64
            .decode(encoded.as_bytes())
            .map(Self)
            .map_err(|_| ContentError::NotBase64)
    }

    /// The raw bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The standard base64 encoding sent to Juju.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Length of the base64 encoding without building it.
    pub fn encoded_len(&self) -> usize {
        self.0.len().div_ceil(3) * 4
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&str> for SecretValue {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl From<String> for SecretValue {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

/// The content of one secret revision: key → value. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretContent(BTreeMap<String, SecretValue>);

impl SecretContent {
    /// Empty content.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<SecretValue>) {
        self.0.insert(key.into(), value.into());
    }

    /// Looks up a key.
    pub fn get(&self, key: &str) -> Option<&SecretValue> {
        self.0.get(key)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Key/value pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes the wire form (key → base64).
    pub fn from_wire(data: &BTreeMap<String, String>) -> Result<Self, ContentError> {
        data.iter()
            .map(|(k, v)| {
                SecretValue::from_base64(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|_| ContentError::ValueNotBase64 { key: k.clone() })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Self)
    }

    /// Juju 3.6's `latest-revision-checksum` of this content: lower-case hex SHA-256 of
    /// the compact JSON of the base64 map with sorted keys (juju-api.md §5.6). Lets a
    /// caller detect drift without asking Juju for the values.
    pub fn juju_checksum(&self) -> String {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(go_json_of_map(
            self.0.iter().map(|(k, v)| (k.as_str(), v.to_base64())),
        ));
        hex::encode(hasher.finalize())
    }

    /// Checks Juju's client-side rules: the content is not empty, every key matches
    /// `^([a-z](?:-?[a-z0-9]){2,})$`, and the sizes stay within `limits`.
    pub fn validate(&self, limits: ContentLimits) -> Result<(), ContentError> {
        if self.0.is_empty() {
            return Err(ContentError::Empty);
        }
        let mut total = 0usize;
        for (key, value) in &self.0 {
            validate_key(key)?;
            let size = limits.measure(value);
            if size > limits.per_value {
                return Err(ContentError::ValueTooLarge {
                    key: key.clone(),
                    size,
                    limit: limits.per_value,
                    measure: limits.measure,
                });
            }
            total += size;
        }
        if total > limits.total {
            return Err(ContentError::TooLarge {
                size: total,
                limit: limits.total,
                measure: limits.measure,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for SecretContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl FromIterator<(String, SecretValue)> for SecretContent {
    fn from_iter<T: IntoIterator<Item = (String, SecretValue)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Serialize for SecretContent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Compact JSON of a string map as Go's `encoding/json` writes it (sorted keys,
/// HTML-safe escaping of `<`, `>` and `&`).
fn go_json_of_map<'a>(entries: impl Iterator<Item = (&'a str, String)>) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_go_json_string(&mut out, k);
        out.push(':');
        push_go_json_string(&mut out, &v);
    }
    out.push('}');
    out.into_bytes()
}

fn push_go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

static KEY_RULE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([a-z](?:-?[a-z0-9]){2,})$").ok());

/// True when `key` satisfies Juju's secret key rule.
pub fn is_valid_key(key: &str) -> bool {
    KEY_RULE.as_ref().is_some_and(|re| re.is_match(key))
}

/// Checks one key against Juju's rule.
pub fn validate_key(key: &str) -> Result<(), ContentError> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(ContentError::InvalidKey {
            key: key.to_owned(),
        })
    }
}

/// What a size limit is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeMeasure {
    /// The value as given (Juju clients before 3.6.9).
    Raw,
    /// The base64 encoding of the value (Juju 3.6.9+).
    Base64,
}

/// Juju's client-side content size limits, which depend on the Juju version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentLimits {
    /// Largest value.
    pub per_value: usize,
    /// Largest sum over all values.
    pub total: usize,
    /// What is measured.
    pub measure: SizeMeasure,
}

impl ContentLimits {
    /// Juju 3.6.9 and later: 1,000,000 bytes of base64, per value and in total.
    pub const JUJU_3_6_9: Self = Self {
        per_value: 1_000_000,
        total: 1_000_000,
        measure: SizeMeasure::Base64,
    };
    /// Juju 3.3.2 – 3.6.8: 8 KiB per value, 64 KiB in total, raw.
    pub const JUJU_3_3_2: Self = Self {
        per_value: 8192,
        total: 65536,
        measure: SizeMeasure::Raw,
    };
    /// Juju up to 3.3.1: 5 KiB per value, 64 KiB in total, raw.
    pub const JUJU_3_3_0: Self = Self {
        per_value: 5120,
        total: 65536,
        measure: SizeMeasure::Raw,
    };

    /// The limits Juju's own client applies for a controller of `server_version`
    /// (e.g. `3.6.14`). Unparsable versions get the newest limits.
    pub fn for_server_version(server_version: &str) -> Self {
        let mut parts = server_version
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        let patch = parts.next().unwrap_or(0);
        match (major, minor, patch) {
            (0, 0, 0) => Self::JUJU_3_6_9,
            v if v >= (3, 6, 9) => Self::JUJU_3_6_9,
            v if v >= (3, 3, 2) => Self::JUJU_3_3_2,
            _ => Self::JUJU_3_3_0,
        }
    }

    fn measure(&self, value: &SecretValue) -> usize {
        match self.measure {
            SizeMeasure::Raw => value.expose().len(),
            SizeMeasure::Base64 => value.encoded_len(),
        }
    }
}

impl Default for ContentLimits {
    fn default() -> Self {
        Self::JUJU_3_6_9
    }
}

/// Why content was refused before it was sent. Names keys, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// No keys at all (Juju: `empty secret value not valid`).
    #[error("empty secret value not valid")]
    Empty,
    /// A key breaks Juju's key rule.
    #[error("key {key:?} not valid")]
    InvalidKey {
        /// The offending key.
        key: String,
    },
    /// One value is larger than allowed.
    #[error("{}secret content for key {key:?} too large: {size} bytes (limit {limit})", measure_prefix(*.measure))]
    ValueTooLarge {
        /// Key of the value.
        key: String,
        /// Its measured size.
        size: usize,
        /// The limit.
        limit: usize,
        /// What was measured.
        measure: SizeMeasure,
    },
    /// All values together are larger than allowed.
    #[error("{}secret content too large: {size} bytes (limit {limit})", measure_prefix(*.measure))]
    TooLarge {
        /// Measured total.
        size: usize,
        /// The limit.
        limit: usize,
        /// What was measured.
        measure: SizeMeasure,
    },
    /// A value on the wire was not base64.
    #[error("secret value for key {key:?} is not valid base64")]
    ValueNotBase64 {
        /// Key of the value.
        key: String,
    },
    /// A value given as base64 did not decode.
    #[error("secret value is not valid base64")]
    NotBase64,
}

fn measure_prefix(measure: SizeMeasure) -> &'static str {
    match measure {
        SizeMeasure::Raw => "",
        SizeMeasure::Base64 => "base64 encoded ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rule_matches_juju_examples() {
        for ok in ["abc", "pw1", "a-bc", "db-password"] {
            assert!(is_valid_key(ok), "{ok} should be accepted");
        }
        for bad in [
            "ab", "a-b", "1abc", "-abc", "abc-", "a--b", "my_key", "Key", "",
        ] {
            assert!(!is_valid_key(bad), "{bad} should be refused");
        }
    }

    #[test]
    fn checksum_matches_juju_reference() {
        // juju-api.md §5.6: the checksum of a real ListSecrets example.
        let mut c = SecretContent::new();
        c.insert("username", "admin");
        c.insert("password", "rotated-token");
        assert_eq!(
            c.juju_checksum(),
            "79c19799bdc30e17dc7c8636f595a1a3d05dcf23068fb358ff93c199a16148e8"
        );
    }

    #[test]
    fn debug_never_shows_values() {
        let mut c = SecretContent::new();
        c.insert("password", "hunter2-very-secret");
        let shown = format!("{c:?} {:?}", c.get("password"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password"));
    }

    #[test]
    fn serializes_values_as_standard_base64() {
        let mut c = SecretContent::new();
        c.insert("username", "admin");
        c.insert("password", "hunter2");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"password":"aHVudGVyMg==","username":"YWRtaW4="}"#);
        let wire: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
        assert_eq!(SecretContent::from_wire(&wire).unwrap(), c);
    }

    #[test]
    fn sizes_are_checked_per_version() {
        let mut c = SecretContent::new();
        c.insert("big", vec![b'x'; 9000]);
        assert!(c.validate(ContentLimits::JUJU_3_6_9).is_ok());
        let err = c
            .validate(ContentLimits::for_server_version("3.5.4"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret content for key \"big\" too large: 9000 bytes (limit 8192)"
        );

        let mut c = SecretContent::new();
        c.insert("big", vec![0u8; 750_000]);
        // Exactly 1,000,000 bytes once encoded: still allowed.
        assert!(
            c.validate(ContentLimits::for_server_version("3.6.14"))
                .is_ok()
        );
        c.insert("big", vec![0u8; 750_001]);
        let err = c
            .validate(ContentLimits::for_server_version("3.6.14"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "base64 encoded secret content for key \"big\" too large: 1000004 bytes (limit 1000000)"
        );

        let mut c = SecretContent::new();
        for i in 0..3 {
            c.insert(format!("key{i}"), vec![0u8; 300_000]);
        }
        assert!(matches!(
            c.validate(ContentLimits::JUJU_3_6_9),
            Err(ContentError::TooLarge {
                size: 1_200_000,
                ..
            })
        ));
        assert_eq!(
            ContentLimits::for_server_version("3.3.1"),
            ContentLimits::JUJU_3_3_0
        );
        assert_eq!(
            ContentLimits::for_server_version("3.6.8"),
            ContentLimits::JUJU_3_3_2
        );
    }

    #[test]
    fn empty_and_bad_keys_are_refused() {
        assert_eq!(
            SecretContent::new().validate(ContentLimits::default()),
            Err(ContentError::Empty)
        );
        let mut c = SecretContent::new();
        c.insert("Bad_Key", "v");
        assert_eq!(
            c.validate(ContentLimits::default())
                .unwrap_err()
                .to_string(),
            "key \"Bad_Key\" not valid"
        );
    }
}
