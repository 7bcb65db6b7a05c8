//! The RPC envelope: request parsing with Go's decoding rules, error values and response
//! frames.
//!
//! Go decodes struct fields case-insensitively, treats `null` as "absent" and ignores
//! unknown members. [`Params`] gives handlers that view of a JSON object; map-valued
//! members (secret data, backend config) keep their keys exactly as sent.

use serde::Serialize;
use serde_json::{Map, Value};

/// Error code for "not found".
pub const CODE_NOT_FOUND: &str = "not found";
/// Error code for "already exists".
pub const CODE_ALREADY_EXISTS: &str = "already exists";
/// Error code for failed logins and every "permission denied".
pub const CODE_UNAUTHORIZED: &str = "unauthorized access";
/// Error code for validation failures built with NotValid.
pub const CODE_NOT_VALID: &str = "not valid";
/// Error code for operations the server refuses on principle.
pub const CODE_NOT_SUPPORTED: &str = "not supported";
/// Error code for unknown facades, versions and methods.
pub const CODE_NOT_IMPLEMENTED: &str = "not implemented";
/// Error code for an unknown model UUID in the URL.
pub const CODE_MODEL_NOT_FOUND: &str = "model not found";

/// An error as Juju reports it: the full message and an error code (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcError {
    /// The error text, annotations included.
    pub message: String,
    /// The error code; `""` when the Go error carried no type.
    pub code: String,
}

impl RpcError {
    /// An error with the given message and code.
    pub fn new(message: impl Into<String>, code: &str) -> Self {
        Self {
            message: message.into(),
            code: code.to_owned(),
        }
    }

    /// An error without a code, as built by Go's `errors.New`.
    pub fn plain(message: impl Into<String>) -> Self {
        Self::new(message, "")
    }

    /// `<what> not found`, code `not found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(message, CODE_NOT_FOUND)
    }

    /// `<what> not valid`, code `not valid`.
    pub fn not_valid(message: impl Into<String>) -> Self {
        Self::new(message, CODE_NOT_VALID)
    }

    /// `permission denied`, code `unauthorized access`.
    pub fn permission_denied() -> Self {
        Self::new("permission denied", CODE_UNAUTHORIZED)
    }

    /// The result item form: `{"message": .., "code": ..}`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("message".into(), Value::String(self.message.clone()));
        m.insert("code".into(), Value::String(self.code.clone()));
        Value::Object(m)
    }
}

/// Looks up `name` in a JSON object the way Go's decoder does: an exact match first, then a
/// case-insensitive one. `null` counts as absent.
pub fn lookup<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let found = match obj.get(name) {
        Some(v) => Some(v),
        None => obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v),
    };
    found.filter(|v| !v.is_null())
}

/// The error Go's JSON decoder reports for a value of the wrong type.
fn type_error(value: &Value, want: &str, field: &str) -> RpcError {
    let got = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    RpcError::plain(format!(
        "json: cannot unmarshal {got} into Go struct field .{field} of type {want}"
    ))
}

/// A read-only view of a request object (`params` or one of its nested structs).
#[derive(Clone, Copy)]
pub struct Params<'a> {
    obj: Option<&'a Map<String, Value>>,
}

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

impl<'a> Params<'a> {
    /// Wraps a value; anything but an object (including `null`) reads as empty.
    pub fn new(value: Option<&'a Value>) -> Self {
        Self {
            obj: value.and_then(Value::as_object),
        }
    }

    /// Checks that the value is an object (or absent/null), as Go requires for a struct.
    pub fn from_value(value: Option<&'a Value>, what: &str) -> Result<Self, RpcError> {
        match value {
            None | Some(Value::Null) | Some(Value::Object(_)) => Ok(Self::new(value)),
            Some(other) => Err(type_error(other, what, what)),
        }
    }

    fn map(&self) -> &'a Map<String, Value> {
        match self.obj {
            Some(m) => m,
            None => EMPTY.get_or_init(Map::new),
        }
    }

    /// The raw member, `None` when absent or `null`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        lookup(self.map(), name)
    }

    /// A string member; absent or `null` gives `None`.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(type_error(other, "string", name)),
        }
    }

    /// A string member with Go's zero value `""`.
    pub fn str(&self, name: &str) -> Result<String, RpcError> {
        Ok(self.opt_str(name)?.unwrap_or_default())
    }

    /// A bool member; absent or `null` gives `None`.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(type_error(other, "bool", name)),
        }
    }

    /// A bool member with Go's zero value `false`.
    pub fn bool(&self, name: &str) -> Result<bool, RpcError> {
        Ok(self.opt_bool(name)?.unwrap_or(false))
    }

    /// An integer member; absent or `null` gives `None`.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| type_error(v, "int64", name)),
            Some(other) => Err(type_error(other, "int64", name)),
        }
    }

    /// A nested struct member.
    pub fn obj(&self, name: &str) -> Result<Params<'a>, RpcError> {
        Params::from_value(self.get(name), name)
    }

    /// A map member (keys kept as sent); absent or `null` gives `None`.
    pub fn opt_map(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(type_error(other, "map", name)),
        }
    }

    /// A list member; absent or `null` gives an empty list.
    pub fn list(&self, name: &str) -> Result<&'a [Value], RpcError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a.as_slice()),
            Some(other) => Err(type_error(other, "slice", name)),
        }
    }

    /// A list of structs.
    pub fn list_of_objs(&self, name: &str) -> Result<Vec<Params<'a>>, RpcError> {
        self.list(name)?
            .iter()
            .map(|v| Params::from_value(Some(v), name))
            .collect()
    }

    /// A list of strings; `null` entries read as `""`.
    pub fn list_of_strs(&self, name: &str) -> Result<Vec<String>, RpcError> {
        self.list(name)?
            .iter()
            .map(|v| match v {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(other, "string", name)),
            })
            .collect()
    }

    /// A list of integers, or `None` when absent or `null`.
    pub fn opt_list_of_i64(&self, name: &str) -> Result<Option<Vec<i64>>, RpcError> {
        if self.get(name).is_none() {
            return Ok(None);
        }
        self.list(name)?
            .iter()
            .map(|v| v.as_i64().ok_or_else(|| type_error(v, "int", name)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// One parsed request frame.
#[derive(Debug, Clone)]
pub struct Request {
    /// The correlation id to echo.
    pub request_id: u64,
    /// Facade name.
    pub facade: String,
    /// Facade version.
    pub version: i64,
    /// Object id (watchers).
    pub id: String,
    /// Method name.
    pub method: String,
    /// The `params` member as received; `None` when absent.
    pub params: Option<Value>,
}

impl Request {
    /// Parses a text frame. A frame whose `request-id` is missing or 0 is read in the legacy
    /// CamelCase format (`RequestId`, `Type`, ...), which the case-insensitive lookup covers.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let Value::Object(obj) = value else {
            return Err("request is not a JSON object".into());
        };
        let mut request_id = lookup(&obj, "request-id").and_then(Value::as_u64);
        if request_id.unwrap_or(0) == 0 {
            request_id = lookup(&obj, "RequestId").and_then(Value::as_u64);
        }
        let string = |name: &str| {
            lookup(&obj, name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            request_id: request_id.unwrap_or(0),
            facade: string("type"),
            version: lookup(&obj, "version").and_then(Value::as_i64).unwrap_or(0),
            id: string("id"),
            method: string("request"),
            params: obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("params"))
                .map(|(_, v)| v.clone()),
        })
    }

    /// A view of the params object.
    pub fn params(&self) -> Result<Params<'_>, RpcError> {
        Params::from_value(self.params.as_ref(), "params")
    }
}

/// The response frame, members in the order Go writes them.
#[derive(Serialize)]
struct ResponseFrame<'a> {
    #[serde(rename = "request-id")]
    request_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "error-code", skip_serializing_if = "str::is_empty")]
    error_code: &'a str,
    response: &'a Value,
}

/// Serializes a response frame, with the trailing newline Go's `WriteJSON` adds.
pub fn encode_response(request_id: u64, outcome: &Result<Value, RpcError>) -> String {
    let empty = Value::Object(Map::new());
    let frame = match outcome {
        Ok(v) => ResponseFrame {
            request_id,
            error: None,
            error_code: "",
            response: v,
        },
        Err(e) => ResponseFrame {
            request_id,
            error: Some(&e.message),
            error_code: &e.code,
            response: &empty,
        },
    };
    let mut text = serde_json::to_string(&frame).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// An empty object, the response of void methods.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

/// Serializes a response body type to a JSON value.
pub fn to_value<T: Serialize>(body: &T) -> Result<Value, RpcError> {
    serde_json::to_value(body).map_err(|e| RpcError::plain(format!("encoding response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_null_is_absent() {
        let v: Value = serde_json::json!({"Id": "1", "filter": null});
        let p = Params::new(Some(&v));
        assert_eq!(p.str("id").unwrap(), "1");
        assert!(p.get("filter").is_none());
        assert!(p.obj("filter").is_ok());
    }

    #[test]
    fn error_frame_has_empty_response_and_no_empty_code() {
        let text = encode_response(3, &Err(RpcError::plain("boom")));
        assert_eq!(
            text,
            "{\"request-id\":3,\"error\":\"boom\",\"response\":{}}\n"
        );
        let text = encode_response(4, &Err(RpcError::permission_denied()));
        assert!(text.contains("\"error-code\":\"unauthorized access\""));
    }

    #[test]
    fn legacy_request_id_is_read() {
        let r = Request::parse(r#"{"RequestId":7,"Type":"Pinger","Version":1,"Request":"Ping"}"#)
            .unwrap();
        assert_eq!(r.request_id, 7);
        assert_eq!(r.facade, "Pinger");
        assert!(r.params.is_none());
    }
}
