//! Runs the health checks the project ships for GitOps tools on an object as the
//! apiserver returns it: Argo CD's Lua script (`deploy/argocd/health.lua`, run by Lua 5.1,
//! the language of Argo CD's gopher-lua) and Flux's `healthCheckExprs`
//! (`deploy/flux/kustomization-health.yaml`, evaluated with the cel crate, with the
//! object's top-level fields as variables, as kustomize-controller binds them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Argo CD health script.
pub fn argo_script() -> String {
    std::fs::read_to_string(repo().join("deploy/argocd/health.lua")).unwrap()
}

/// A Lua table constructor for a JSON value.
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\0' => out.push_str("\\0"),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "[{}] = {}",
                    lua_literal(&Value::String(k.clone())),
                    lua_literal(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Argo CD's verdict on `obj`: (health status, message).
pub fn argo(obj: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal function health()\n{}\nend\nlocal hs = health()\nio.write(hs.status, \"\\t\", hs.message or \"\")\n",
        lua_literal(obj),
        argo_script()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.lua");
    std::fs::write(&file, program).unwrap();
    let out = Command::new("lua5.1")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run lua5.1 ({e}); install Debian's lua5.1 package (scripts/test.sh does)"
            )
        });
    assert!(
        out.status.success(),
        "the health script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\t').unwrap_or((text.as_str(), ""));
    (status.to_owned(), message.to_owned())
}

/// The `healthCheckExprs` entry for `kind`.
fn flux_exprs(kind: &str) -> Value {
    let path = repo().join("deploy/flux/kustomization-health.yaml");
    let doc: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(Path::new(&path)).unwrap()).unwrap();
    doc["spec"]["healthCheckExprs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no healthCheckExprs for {kind}"))
}

/// Evaluates one expression; `None` when it cannot be evaluated (a field is missing:
/// Flux keeps waiting).
fn eval(expr: &str, obj: &Value) -> Option<bool> {
    let program = cel::Program::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
    let mut ctx = cel::Context::default();
    for (k, v) in obj.as_object().unwrap() {
        ctx.add_variable(k.as_str(), v.clone()).unwrap();
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Some(b),
        Ok(other) => panic!("{expr} gave {other:?}, not a bool"),
        Err(_) => None,
    }
}

/// Flux's verdict on `obj`: `inProgress`, `failed` or `current` (in that order, as
/// kustomize-controller evaluates them); `inProgress` when none holds or an expression
/// cannot be evaluated yet.
pub fn flux(obj: &Value) -> &'static str {
    let exprs = flux_exprs(obj["kind"].as_str().unwrap());
    for (field, verdict) in [
        ("inProgress", "inProgress"),
        ("failed", "failed"),
        ("current", "current"),
    ] {
        match eval(exprs[field].as_str().unwrap(), obj) {
            Some(true) => return verdict,
            Some(false) => {}
            None => return "inProgress",
        }
    }
    "inProgress"
}
