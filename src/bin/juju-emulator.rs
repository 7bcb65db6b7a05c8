//! Juju controller emulator binary.
fn main() {}
