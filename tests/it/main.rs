//! Integration tests: the real `wxsync` binary (and library) against the
//! simulator over real HTTP, each with its own SQLite file in a temp dir.

mod avatars;
mod check;
mod daemon;
mod faults;
mod helpers;
mod history;
mod hook;
mod identity;
mod incomplete;
mod login;
mod members;
mod ops;
mod output;
mod push;
mod sync;
