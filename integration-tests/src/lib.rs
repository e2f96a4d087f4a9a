//! Fixtures for the integration tests (being built).
