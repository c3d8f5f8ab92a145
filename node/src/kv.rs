//! The key-value state machine.
