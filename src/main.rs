//! Command-line entry point of the operator.
#![forbid(unsafe_code)]

fn main() {
    println!("juju-secrets-operator {}", env!("CARGO_PKG_VERSION"));
}
