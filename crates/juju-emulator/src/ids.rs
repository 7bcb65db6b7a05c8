//! Identifiers, checksums and timestamps in Juju's formats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};

use super::rpc::RpcError;

/// The base32hex lower-case alphabet xid uses.
const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Makes a new secret ID the way Juju 3.6.14 does (an xid): 4-byte big-endian Unix time,
/// 5 bytes of machine and process identity (random here) and a 3-byte counter.
pub fn new_secret_id() -> String {
    let mut raw = [0u8; 12];
    let secs = u32::try_from(jiff::Timestamp::now().as_second()).unwrap_or(u32::MAX);
    raw[..4].copy_from_slice(&secs.to_be_bytes());
    let identity: [u8; 5] = rand::random();
    raw[4..9].copy_from_slice(&identity);
    if COUNTER.load(Ordering::Relaxed) == 0 {
        let start: u32 = rand::random::<u32>() & 0x00ff_ffff;
        let _ = COUNTER.compare_exchange(0, start | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let count = COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    raw[9..].copy_from_slice(&count[1..]);
    encode_xid(&raw)
}

/// Encodes 12 bytes as 20 base32hex characters (the last one carries a single bit).
fn encode_xid(raw: &[u8; 12]) -> String {
    let mut out = String::with_capacity(20);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in raw {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32HEX[((acc >> bits) & 0x1f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32HEX[((acc << (5 - bits)) & 0x1f) as usize]));
    }
    out
}

/// Whether `id` is a well-formed xid: 20 characters from `0-9a-v`, ending in `0` or `g`.
pub fn is_valid_secret_id(id: &str) -> bool {
    id.len() == 20
        && id.bytes().all(|c| BASE32HEX.contains(&c))
        && matches!(id.as_bytes().last(), Some(b'0' | b'g'))
}

/// Parses a secret URI (`secret:<id>`, `secret://<uuid>/<id>` or a bare ID) into its ID.
pub fn parse_secret_uri(input: &str) -> Result<String, RpcError> {
    let invalid = || RpcError::not_valid(format!("secret URI {input:?} not valid"));
    let rest = match input.split_once(':') {
        Some(("secret", rest)) => rest,
        Some(_) => return Err(invalid()),
        None => input,
    };
    let id = match rest.strip_prefix("//") {
        Some(hosted) => {
            let (host, id) = hosted.split_once('/').ok_or_else(invalid)?;
            if uuid::Uuid::parse_str(host).is_err() {
                return Err(RpcError::plain(format!(
                    "host controller UUID {host:?} not valid"
                )));
            }
            id
        }
        None => rest,
    };
    if is_valid_secret_id(id) {
        Ok(id.to_owned())
    } else {
        Err(invalid())
    }
}

/// The short URI form the server prints.
pub fn short_uri(id: &str) -> String {
    format!("secret:{id}")
}

/// A new secret backend ID: 24 hex characters, like a Mongo ObjectId.
pub fn new_backend_id() -> String {
    let raw: [u8; 12] = rand::random();
    hex::encode(raw)
}

/// A random password for a seeded user.
pub fn new_password() -> String {
    let raw: [u8; 16] = rand::random();
    hex::encode(raw)
}

/// The SHA-256 checksum Juju 3.6 records for a revision's content: the hex digest of the
/// `data` map serialized by Go's encoding/json (sorted keys, compact, HTML-safe escaping).
pub fn content_checksum(data: &BTreeMap<String, String>) -> String {
    let mut text = String::from("{");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        go_json_string(&mut text, k);
        text.push(':');
        go_json_string(&mut text, v);
    }
    text.push('}');
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Writes `s` as a JSON string with Go's default (HTML-safe) escaping.
fn go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Now, in UTC, cut to whole seconds, as RFC 3339 (`2025-01-10T09:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Now, in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

/// Go's zero time as RFC 3339.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats a nanosecond duration the way Go's `time.Duration.String` does.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
    } else {
        let h = u / 3_600_000_000_000;
        u %= 3_600_000_000_000;
        let m = u / 60_000_000_000;
        u %= 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fraction(u, 1_000_000_000));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

/// `value / scale` with the fractional part trimmed of trailing zeros.
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_juju_for_the_documented_example() {
        let data = BTreeMap::from([
            ("username".to_owned(), "YWRtaW4=".to_owned()),
            ("password".to_owned(), "cm90YXRlZC10b2tlbg==".to_owned()),
        ]);
        assert_eq!(
            content_checksum(&data),
            "79c19799bdc30e17dc7c8636f595a1a3d05dcf23068fb358ff93c199a16148e8"
        );
    }

    #[test]
    fn checksum_uses_go_html_safe_escaping() {
        let mut out = String::new();
        go_json_string(&mut out, "<a&b>\u{1}\n");
        assert_eq!(out, "\"\\u003ca\\u0026b\\u003e\\u0001\\n\"");
    }

    #[test]
    fn new_secret_ids_are_valid_xids() {
        for _ in 0..200 {
            let id = new_secret_id();
            assert!(is_valid_secret_id(&id), "{id}");
        }
        assert_ne!(new_secret_id(), new_secret_id());
    }

    #[test]
    fn secret_id_validation_rejects_bad_shapes() {
        assert!(is_valid_secret_id("9fvb66662rqormfsip9g"));
        assert!(is_valid_secret_id("9fvb66662rqormfsip90"));
        assert!(!is_valid_secret_id("9fvb66662rqormfsip9h"));
        assert!(!is_valid_secret_id("9fvb66662rqormfsip9"));
        assert!(!is_valid_secret_id("9fvb66662rqormfsipwg"));
        assert!(!is_valid_secret_id("9FVB66662RQORMFSIP9G"));
    }

    #[test]
    fn secret_uris_parse_in_all_forms() {
        let id = "9fvb66662rqormfsip9g";
        assert_eq!(parse_secret_uri(id).unwrap(), id);
        assert_eq!(parse_secret_uri(&format!("secret:{id}")).unwrap(), id);
        assert_eq!(
            parse_secret_uri(&format!(
                "secret://26e9b4dd-e657-4a2c-8f25-222c879fd45d/{id}"
            ))
            .unwrap(),
            id
        );
        let err = parse_secret_uri("secret:nope").unwrap_err();
        assert_eq!(err.message, "secret URI \"secret:nope\" not valid");
        assert_eq!(err.code, "not valid");
        let err = parse_secret_uri(&format!("secret://host/{id}")).unwrap_err();
        assert_eq!(err.message, "host controller UUID \"host\" not valid");
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(go_duration(600_000_000_000), "10m0s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(-2_000), "-2µs");
    }

    #[test]
    fn timestamps_have_second_precision() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
