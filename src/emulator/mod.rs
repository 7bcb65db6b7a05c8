//! Juju controller emulator.
