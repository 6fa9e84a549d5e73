//! The peer: wechat4u 0.7.14 from npm, run by `wechat4u_fetch.js` against the
//! same simulator in the same run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::child::Work;

pub const VERSION: &str = "0.7.14";

/// What the script printed, plus the node process's own peak RSS.
#[derive(Debug, Deserialize)]
pub struct Fetch {
    pub fetch_ms: f64,
    pub groups: u64,
    pub groups_with_members: u64,
    pub memberships: u64,
    pub errors: Vec<String>,
    #[serde(skip)]
    pub max_rss_kib: u64,
}

impl Fetch {
    pub fn wall(&self) -> Duration {
        Duration::from_secs_f64(self.fetch_ms / 1e3)
    }
}

/// Where wechat4u is installed: a cache under the target directory, filled
/// with npm on first use. `Err` says why the peer cannot run.
pub fn install() -> Result<PathBuf, String> {
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wechat4u-{VERSION}"));
    let modules = prefix.join("node_modules");
    if modules.join("wechat4u").join("package.json").exists() {
        return Ok(modules);
    }
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!("{tool} (Node.js) is not installed"));
        }
    }
    eprintln!(
        "installing wechat4u {VERSION} with npm into {}",
        prefix.display()
    );
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(format!("wechat4u@{VERSION}"))
        .output()
        .map_err(|e| format!("npm did not run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "npm install wechat4u@{VERSION} failed: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    Ok(modules)
}

/// One fetch; `every_group` chunks wechat4u's group batch call by 50.
pub async fn fetch(
    work: &Work,
    modules: &Path,
    sim: &url::Url,
    every_group: bool,
) -> anyhow::Result<Fetch> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/perf/wechat4u_fetch.js");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .env("SIM_URL", sim.as_str())
        .env("NODE_PATH", modules);
    if every_group {
        cmd.arg("--every-group");
    }
    let done = work.run_command("wechat4u", cmd).await?;
    let line = done.stdout.lines().last().unwrap_or("");
    let mut fetch: Fetch = serde_json::from_str(line)
        .with_context(|| format!("wechat4u printed no result: {}", done.stderr.trim()))?;
    if fetch.groups == 0 {
        bail!("wechat4u loaded no group: {}", done.stderr.trim());
    }
    fetch.max_rss_kib = done.max_rss_kib;
    Ok(fetch)
}
