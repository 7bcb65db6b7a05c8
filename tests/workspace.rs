//! The workspace's arrows point one way: the operator and the emulator depend on the Juju
//! client; the client depends on nothing Kubernetes; the operator's binary contains no
//! emulator code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The normal (non-dev, non-build) dependencies of `package`, as package names.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_operator_depends_on_the_client_and_never_on_the_emulator() {
    let deps = normal_dependencies("juju-secrets-operator");
    assert!(deps.contains("juju-client"), "{deps:?}");
    assert!(!deps.contains("juju-emulator"), "{deps:?}");
    assert!(!deps.contains("jso-bench"), "{deps:?}");
    // The emulator's own dependencies (certificate generation) stay out too.
    assert!(!deps.contains("rcgen"), "{deps:?}");
}

#[test]
fn the_client_knows_nothing_of_kubernetes_or_the_operator() {
    let deps = normal_dependencies("juju-client");
    for forbidden in [
        "kube",
        "kube-client",
        "kube-runtime",
        "kube-core",
        "k8s-openapi",
        "juju-secrets-operator",
        "juju-emulator",
    ] {
        assert!(
            !deps.contains(forbidden),
            "juju-client depends on {forbidden}"
        );
    }
    assert!(deps.contains("tokio-tungstenite"), "{deps:?}");
}

#[test]
fn the_emulator_depends_on_the_client_never_on_the_operator() {
    let deps = normal_dependencies("juju-emulator");
    assert!(deps.contains("juju-client"), "{deps:?}");
    for forbidden in ["juju-secrets-operator", "kube", "k8s-openapi"] {
        assert!(
            !deps.contains(forbidden),
            "juju-emulator depends on {forbidden}"
        );
    }
}

/// The symbol table of the operator binary names the client's functions and none of the
/// emulator's (Rust symbols carry their crate's name).
#[test]
fn the_operator_binary_contains_no_emulator_code() {
    let binary = std::fs::read(Path::new(env!("CARGO_BIN_EXE_juju-secrets-operator"))).unwrap();
    let contains = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"juju_client"),
        "the check would not see a crate's symbols"
    );
    assert!(
        !contains(b"juju_emulator"),
        "the operator binary links the emulator"
    );
}
