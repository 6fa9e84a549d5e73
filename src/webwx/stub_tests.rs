//! End-to-end tests against a stub server.
