//! wxsync keeps a WeChat account's address book in a local SQLite file.
//!
//! Data flows one way: wire bytes ([`webwx`]) → decoded records ([`contact`])
//! → rows ([`store`]). [`sync`] is one full sync, [`daemon`] keeps the cache
//! fresh between them, and `simulator` (the default-on cargo feature of that
//! name) is a loopback WeChat Web server that the tests, the benchmarks and
//! `wxsync demo` run against; outside tests, only the `demo` and `simulate`
//! commands use it.
//!
//! The modules are layered; each uses only modules of the layers below it
//! (`tests/layering.rs` fails on any circle):
//!
//! 1. foundations, which use no other module: `simulator`, [`backoff`],
//!    [`memory`], [`telemetry`], [`shutdown`] (SIGTERM/SIGINT), [`wording`]
//!    (errors and counts in words);
//! 2. [`webwx`]: the protocol client (its tests run against the simulator);
//! 3. [`contact`]: decoded records;
//! 4. [`identity`]: the pure matcher of who is who across two logins;
//! 5. [`store`]: the SQLite cache, which asks the matcher when it re-links;
//! 6. [`sync`], [`avatars`], [`export`], and [`undecided`] (what a re-link
//!    left to a person, in words);
//! 7. [`config`] (the file, read into each module's options) and [`cli`];
//! 8. [`app`]: the opened config, store and client;
//! 9. [`daemon`] and [`health`];
//! 10. [`commands`]: one function per subcommand, which `main` calls.

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
pub mod shutdown;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod undecided;
pub mod webwx;
pub mod wording;
