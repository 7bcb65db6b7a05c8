//! The container image (`Dockerfile`). No container engine runs on the build machines, so
//! the image is not built here; these tests check what can be checked without one: the
//! Dockerfile's shape, and that the operator binary needs no library beyond what the
//! runtime base image (distroless `cc`: glibc, libgcc, libm) ships.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

/// Instructions (keyword, arguments) with continuation lines joined and comments dropped.
fn instructions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile().lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let text = std::mem::take(&mut current);
        if let Some((kw, rest)) = text.split_once(char::is_whitespace) {
            out.push((kw.to_uppercase(), rest.trim().to_owned()));
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_with_a_distroless_non_root_runtime() {
    let ins = instructions();
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "expected a build and a runtime stage: {froms:?}"
    );
    assert!(froms[0].contains(" AS build"), "{}", froms[0]);
    assert!(
        froms[1].starts_with("gcr.io/distroless/"),
        "runtime stage is not distroless: {}",
        froms[1]
    );
    // The last USER of the runtime stage is a numeric, non-root uid:gid.
    let runtime_start = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let user = ins[runtime_start..]
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .expect("runtime stage sets USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let uid: u32 = uid.parse().expect("numeric uid");
    let gid: u32 = gid.parse().expect("numeric gid");
    assert!(uid != 0 && gid != 0, "USER {user} is root");
    // The chart runs the pod as the same user.
    let values = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/juju-secrets-operator/values.yaml"),
    )
    .unwrap();
    assert!(values.contains(&format!("runAsUser: {uid}")));
    // The build is reproducible from the lock file and builds only the operator.
    let run = ins
        .iter()
        .find(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .expect("a cargo build step");
    for flag in ["--release", "--locked", "--bin juju-secrets-operator"] {
        assert!(
            run.1.contains(flag),
            "cargo build without {flag}: {}",
            run.1
        );
    }
    let entrypoint = ins
        .iter()
        .rfind(|(k, _)| k == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert!(
        entrypoint
            .1
            .contains("/usr/local/bin/juju-secrets-operator")
    );
}

#[test]
fn dockerfile_carries_the_oci_labels() {
    let labels: String = instructions()
        .into_iter()
        .filter(|(k, _)| k == "LABEL")
        .map(|(_, a)| a)
        .collect::<Vec<_>>()
        .join(" ");
    for key in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.description",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.base.name",
    ] {
        assert!(labels.contains(&format!("{key}=")), "missing label {key}");
    }
    assert!(labels.contains(&format!(
        "org.opencontainers.image.licenses=\"{}\"",
        env!("CARGO_PKG_LICENSE")
    )));
}

/// distroless `cc` ships glibc (libc, libm, the loader) and libgcc_s and nothing else: a
/// new dynamic dependency (OpenSSL, say) would start in CI and fail in the image.
#[test]
fn operator_binary_needs_only_what_distroless_cc_ships() {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(env!("CARGO_BIN_EXE_juju-secrets-operator"))
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!("readelf failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => panic!("readelf (binutils) is needed for this test: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{needed:?}");
    let shipped = [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    ];
    for lib in &needed {
        assert!(
            shipped.contains(lib),
            "the operator links {lib}, which distroless/cc does not ship ({needed:?})"
        );
    }
}
