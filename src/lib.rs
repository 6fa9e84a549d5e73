//! wxsync keeps a WeChat account's address book in a local SQLite file.
//!
//! Data flows one way: wire bytes ([`webwx`]) → decoded records ([`contact`])
//! → rows ([`store`]). [`sync`] is one full sync, [`daemon`] keeps the cache
//! fresh between them, and `simulator` (the default-on cargo feature of that
//! name) is a loopback WeChat Web server that the tests, the benchmarks and
//! `wxsync demo` run against; nothing else in the crate depends on it.

pub mod app;
pub mod avatars;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contact;
pub mod daemon;
pub mod export;
pub mod health;
pub mod identity;
pub mod memory;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webwx;
