//! Profile mode (`WXSYNC_BENCH_PROFILE=1`): each `wxsync sync` of the first
//! size runs under `perf record` (CPU-clock samples of that process alone,
//! with DWARF call graphs), and `perf report` is read three ways: CPU per
//! thread, the heaviest of wxsync's own functions with everything they call
//! (plus SQLite's statement execution, futex waits and wakes between
//! threads, and page faults), and self time by what the code does.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// `perf record` options: the sample rate and DWARF unwinding (the release
/// build has no frame pointers; async Rust stacks are deep).
pub const RECORD: &[&str] = &[
    "record",
    "--quiet",
    "-F",
    "499",
    "--call-graph",
    "dwarf,16384",
];

/// Frames outside wxsync worth showing with what they call.
const MARKERS: &[(&str, &str)] = &[
    ("sqlite3_step", "SQLite executing statements"),
    ("do_futex", "threads waiting on / waking each other (futex)"),
    ("exc_page_fault", "page faults (memory growing)"),
];
/// wxsync frames below this share are left out.
const MIN_SHARE: f64 = 2.0;

/// Self-time symbol patterns, first match wins, and the name of what they
/// do. What is left and has no `::` is C code, nearly all of it SQLite
/// (bundled and statically linked: its internal functions share no prefix).
const CATEGORIES: &[(&str, &[&str])] = &[
    ("kernel", &["[k]"]),
    (
        "malloc / free",
        &[
            "malloc",
            "free",
            "realloc",
            "_int_",
            "unlink_chunk",
            "__rust_alloc",
            "__rust_dealloc",
            "__rust_realloc",
            "alloc::alloc::",
            "alloc::raw_vec",
        ],
    ),
    (
        "memcpy / memcmp",
        &["memcpy", "memmove", "memset", "memcmp"],
    ),
    ("sqlx", &["sqlx"]),
    ("serde_json", &["serde_json", "serde::", "serde_core"]),
    ("BTreeMap / HashMap", &["alloc::collections", "hashbrown"]),
    (
        "HTTP and async runtime",
        &[
            "hyper", "tokio", "reqwest", "h2::", "http::", "futures", "mio::", "flume", "flate2",
            "miniz",
        ],
    ),
    ("wxsync's own code", &["wxsync"]),
];
const C_CODE: &str = "C code (SQLite)";

/// Records `perf stat -e task-clock true` to tell whether perf can run here.
pub fn available() -> Result<(), String> {
    let out = Command::new("perf")
        .args(["stat", "-e", "task-clock", "true"])
        .output()
        .map_err(|e| format!("perf is not installed ({e})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "perf cannot sample here: {}",
            err.lines().next().unwrap_or("")
        ));
    }
    Ok(())
}

/// The three readings of one recording, as indented text.
pub fn summarize(data: &Path) -> anyhow::Result<String> {
    let mut out = String::from("  CPU by thread:\n");
    for (pct, comm) in report(data, &["--no-children", "--sort", "comm"], 0.5)? {
        out.push_str(&format!("    {pct:5.1} %  {comm}\n"));
    }

    out.push_str("  with everything they call (inclusive):\n");
    let mut seen = Vec::new();
    for (pct, sym) in report(data, &["--children", "--sort", "sym"], 1.0)? {
        let name = short(&sym);
        let label = match MARKERS.iter().find(|(m, _)| name == *m) {
            Some((m, what)) => format!("{m}: {what}"),
            None if name.starts_with("wxsync::") && pct >= MIN_SHARE => name,
            None => continue,
        };
        if !seen.contains(&label) {
            out.push_str(&format!("    {pct:5.1} %  {label}\n"));
            seen.push(label);
        }
    }

    out.push_str("  self time by what the code does:\n");
    let mut shares = vec![0.0; CATEGORIES.len() + 2];
    for (pct, sym) in report(data, &["--no-children", "--sort", "sym"], 0.0)? {
        let slot = CATEGORIES
            .iter()
            .position(|(_, pats)| pats.iter().any(|p| sym.contains(p)))
            .unwrap_or(if sym.contains("::") {
                CATEGORIES.len() + 1
            } else {
                CATEGORIES.len()
            });
        shares[slot] += pct;
    }
    let mut lines: Vec<(f64, &str)> = shares
        .into_iter()
        .zip(
            CATEGORIES
                .iter()
                .map(|(name, _)| *name)
                .chain([C_CODE, "other Rust code"]),
        )
        .collect();
    lines.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (pct, name) in lines {
        out.push_str(&format!("    {pct:5.1} %  {name}\n"));
    }
    Ok(out)
}

/// `perf report`'s flat lines: (percent, key), the first percent column.
fn report(data: &Path, how: &[&str], limit: f64) -> anyhow::Result<Vec<(f64, String)>> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "-q", "-g", "none", "--percent-limit"])
        .arg(limit.to_string())
        .args(how)
        .arg("-i")
        .arg(data)
        .output()
        .context("cannot run perf report")?;
    if !out.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (pct, rest) = line.trim().split_once('%')?;
            let pct = pct.trim().parse().ok()?;
            // With --children a second (self) percent column follows.
            let rest = match rest.trim().split_once('%') {
                Some((selfpct, key)) if selfpct.trim().parse::<f64>().is_ok() => key,
                _ => rest,
            };
            Some((pct, rest.trim().to_string()))
        })
        .collect())
}

/// A symbol without its kind tag, closure and hash suffixes, and with long
/// generic paths cut.
fn short(sym: &str) -> String {
    let mut sym = sym.trim_start_matches("[.] ").trim_start_matches("[k] ");
    while let Some(s) = sym.strip_suffix("::{{closure}}") {
        sym = s;
    }
    let sym = match sym.rfind("::h") {
        Some(i) if sym[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => &sym[..i],
        _ => sym,
    };
    if sym.chars().count() > 100 {
        let cut: String = sym.chars().take(97).collect();
        format!("{cut}...")
    } else {
        sym.to_string()
    }
}
