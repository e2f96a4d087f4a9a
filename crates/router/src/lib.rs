//! The Mirsal router (being built).
