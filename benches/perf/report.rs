//! The printed result: the machine, one table of every measure against its
//! target, where each run's time went, and the notes a reader
//! needs to trust the figures.

use std::fmt::Write;
use std::time::Duration;

use crate::{Options, Sample, SizeResult, account, cache, machine, remark};

/// Peak RSS target, MB (10^6 bytes), and how much a larger account may add.
const RSS_TARGET_MB: f64 = 48.0;
const RSS_FLAT: f64 = 1.15;
/// A re-link sync may take this many times the cold sync of the account.
const RELINK_VS_COLD: f64 = 2.0;

pub struct Machine {
    date: String,
    cores: usize,
    cpu: String,
    load_before: String,
    load_after: String,
    commit: String,
    took: Duration,
}

impl Machine {
    pub fn now() -> Machine {
        let commit = std::process::Command::new("git")
            .args([
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "describe",
                "--always",
                "--dirty",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: machine::cpu_model(),
            load_before: machine::load_average(),
            load_after: String::new(),
            commit,
            took: Duration::ZERO,
        }
    }

    pub fn finish(mut self, took: Duration) -> Machine {
        self.load_after = machine::load_average();
        self.took = took;
        self
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    group(d.as_millis() as i64) + " ms"
}

/// 1234567 → "1,234,567".
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

fn median(mut walls: Vec<Duration>) -> Duration {
    walls.sort();
    walls[walls.len() / 2]
}

/// The run whose wall time is the median.
fn median_run(samples: &[Sample]) -> &Sample {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.phases.wall);
    sorted[sorted.len() / 2]
}

fn wall_of(samples: &[Sample]) -> Duration {
    median_run(samples).phases.wall
}

fn max_rss<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> u64 {
    samples.into_iter().map(|s| s.rss_kib).max().unwrap_or(0)
}

fn max_lock(samples: &[&Sample]) -> Duration {
    samples
        .iter()
        .map(|s| s.phases.lock)
        .max()
        .unwrap_or_default()
}

/// The longest `sync_runs.write_lock_ms`, or "n/a" while wxsync records none.
fn reported_lock(samples: &[&Sample]) -> String {
    samples
        .iter()
        .filter_map(|s| s.run.as_ref()?.write_lock_ms)
        .max()
        .map_or_else(|| "n/a".into(), |ms| group(ms) + " ms")
}

fn lock_cell<'a>(samples: impl IntoIterator<Item = &'a Sample>, limit_ms: u128) -> String {
    let samples: Vec<&Sample> = samples.into_iter().collect();
    let samples = samples.as_slice();
    let seen = max_lock(samples);
    format!(
        "{} {} (wxsync: {})",
        millis(seen),
        mark(seen.as_millis() <= limit_ms),
        reported_lock(samples)
    )
}

/// The re-link syncs of one size.
fn relink_samples(r: &SizeResult) -> impl Iterator<Item = &Sample> {
    r.relinks.iter().flat_map(|l| &l.samples)
}

fn peer_wall(r: &SizeResult) -> Option<Duration> {
    let p = r.peer.as_ref().ok()?;
    Some(median(p.every.iter().map(|f| f.wall()).collect()))
}

pub fn render(m: &Machine, opts: &Options, results: &[SizeResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wxsync benchmark, {}: {} cores, {}; wxsync {}; load average {} before, {} after; took {:.0} s",
        m.date,
        m.cores,
        m.cpu,
        m.commit,
        m.load_before,
        m.load_after,
        m.took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "1× = 5,000 friends, 125 officials, 300 groups × {} members; pause between batch calls 0; \
         repeated measures are the median of {} runs\n",
        account::GROUP_SIZE,
        opts.repeat
    );

    if opts.profile {
        let _ = writeln!(
            out,
            "PROFILE MODE: the first size's `wxsync sync` runs ran under perf record; \
             their times and peak RSS (perf's own included) are not comparable.\n"
        );
    }
    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, target: &str, cell: &dyn Fn(&SizeResult) -> String| {
        rows.push((
            name.to_string(),
            target.to_string(),
            results.iter().map(cell).collect(),
        ));
    };
    let base_rss_cold = results.first().map_or(0, |r| max_rss(&r.cold));
    let base_rss_none = results.first().map_or(0, |r| max_rss(&r.no_change));
    let rss_cell = |kib: u64, base: u64| {
        let ok = mb(kib) <= RSS_TARGET_MB && kib as f64 <= base as f64 * RSS_FLAT;
        format!("{:.0} MB {}", mb(kib), mark(ok))
    };

    row("cold full sync", "", &|r| secs(wall_of(&r.cold)));
    row(
        "  ÷ wechat4u's full fetch (every group)",
        "≤ 1.0",
        &|r| match peer_wall(r) {
            Some(p) => {
                let x = wall_of(&r.cold).as_secs_f64() / p.as_secs_f64();
                format!("{x:.2} {}", mark(x <= 1.0))
            }
            None => "n/a".into(),
        },
    );
    row("  ÷ fetch only", "≤ 1.3", &|r| {
        let x = wall_of(&r.cold).as_secs_f64() / wall_of(&r.fetch).as_secs_f64();
        format!("{x:.2} {}", mark(x <= 1.3))
    });
    row("no-change sync", "", &|r| secs(wall_of(&r.no_change)));
    row("  ÷ fetch only", "≤ 1.1", &|r| {
        let x = wall_of(&r.no_change).as_secs_f64() / wall_of(&r.fetch).as_secs_f64();
        format!("{x:.2} {}", mark(x <= 1.1))
    });
    row("  rows rewritten (wxsync's count)", "0", &|r| {
        let most = r
            .no_change
            .iter()
            .filter_map(|s| s.rewritten)
            .max()
            .unwrap_or(0);
        let said = r
            .no_change
            .iter()
            .filter_map(|s| Some(cache::reported_writes(s.run.as_ref()?)))
            .max()
            .unwrap_or(0);
        format!("{} {} ({})", group(most), mark(most == 0), group(said))
    });
    row("1 % changed sync", "", &|r| secs(r.one_percent.phases.wall));
    row(
        "  rows rewritten / rows changed (wxsync's count)",
        "equal",
        &|r| {
            let rewritten = r.one_percent.rewritten.unwrap_or(0);
            let said = r.one_percent.run.as_ref().map_or(0, cache::reported_writes);
            format!(
                "{} / {} {} ({})",
                group(rewritten),
                group(r.changed),
                mark(rewritten == r.changed),
                group(said)
            )
        },
    );
    for (i, rate) in crate::RELINK_RATES.into_iter().enumerate() {
        let pct = rate * 100.0;
        row(&format!("re-link sync, {pct:.0} % changed"), "", &|r| {
            secs(wall_of(&r.relinks[i].samples))
        });
        row(
            "  ÷ cold full sync",
            &format!("≤ {RELINK_VS_COLD:.1}"),
            &|r| {
                let x =
                    wall_of(&r.relinks[i].samples).as_secs_f64() / wall_of(&r.cold).as_secs_f64();
                format!("{x:.2} {}", mark(x <= RELINK_VS_COLD))
            },
        );
        row(
            "  membership rows written / changed + renamed",
            "≤",
            &|r| {
                let l = &r.relinks[i];
                let written = l.samples[0].member_writes.unwrap_or(0);
                let bound = (l.truth.changed + l.truth.renamed) as i64;
                format!(
                    "{} / {} + {} {}",
                    group(written),
                    group(l.truth.changed as i64),
                    group(l.truth.renamed as i64),
                    mark(written <= bound)
                )
            },
        );
    }
    row("fetch only (the floor)", "", &|r| secs(wall_of(&r.fetch)));
    row("write lock, longest: cold", "≤ 500 ms", &|r| {
        lock_cell(&r.cold, 500)
    });
    row("write lock, longest: no-change", "≤ 100 ms", &|r| {
        lock_cell(&r.no_change, 100)
    });
    row("write lock, longest: 1 % changed", "≤ 100 ms", &|r| {
        lock_cell(std::slice::from_ref(&r.one_percent), 100)
    });
    row("write lock, longest: re-link", "≤ 500 ms", &|r| {
        lock_cell(relink_samples(r), 500)
    });
    row("peak RSS of `wxsync sync`: cold", "≤ 48 MB, flat", &|r| {
        rss_cell(max_rss(&r.cold), base_rss_cold)
    });
    row(
        "peak RSS of `wxsync sync`: no-change",
        "≤ 48 MB, flat",
        &|r| rss_cell(max_rss(&r.no_change), base_rss_none),
    );
    let base_rss_relink = results.first().map_or(0, |r| max_rss(relink_samples(r)));
    row(
        "peak RSS of `wxsync sync`: re-link",
        "≤ 48 MB, flat",
        &|r| rss_cell(max_rss(relink_samples(r)), base_rss_relink),
    );
    row("RSS of `wxsync run` after its re-link", "≤ 48 MB", &|r| {
        format!(
            "{:.0} MB {}",
            mb(r.daemon_rss_kib),
            mark(mb(r.daemon_rss_kib) <= RSS_TARGET_MB)
        )
    });
    row("peak RSS of `wxsync sync`: fetch only", "", &|r| {
        format!("{:.0} MB", mb(max_rss(&r.fetch)))
    });
    row("remark op latency p50 / p95", "p95 ≤ 1.2 s", &|r| {
        let l: &remark::Latency = &r.remark;
        format!(
            "{:.2} / {:.2} s {}",
            l.p50.as_secs_f64(),
            l.p95.as_secs_f64(),
            mark(l.p95 <= Duration::from_millis(1200) && l.not_done == 0)
        )
    });
    row("`wxsync avatars` after the cold sync, pause 0s", "", &|r| {
        let a = &r.avatars;
        format!(
            "{}: {} of {} stored, {} requests",
            secs(a.wall),
            group(a.stored),
            group(a.contacts),
            group(a.requests as i64)
        )
    });
    row("  ÷ cold full sync", "< 1.5", &|r| {
        let x = r.avatars.wall.as_secs_f64() / wall_of(&r.cold).as_secs_f64();
        format!("{x:.2} {}", mark(x < 1.5))
    });
    row("  peak RSS", "≤ 48 MB", &|r| {
        let mb = mb(r.avatars.rss_kib);
        format!("{mb:.0} MB {}", mark(mb <= RSS_TARGET_MB))
    });
    row("  write lock, longest", "≤ 20 ms", &|r| {
        format!(
            "{} {}",
            millis(r.avatars.lock),
            mark(r.avatars.lock <= Duration::from_millis(20))
        )
    });
    row("  a second `wxsync avatars`: requests", "0", &|r| {
        format!(
            "{} {} ({})",
            r.avatars.again,
            mark(r.avatars.again == 0),
            secs(r.avatars.again_wall)
        )
    });
    row(
        "wechat4u 0.7.14 full fetch, every group (peer)",
        "",
        &|r| match &r.peer {
            Ok(p) => {
                let rss = p.every.iter().map(|f| f.max_rss_kib).max().unwrap_or(0);
                format!(
                    "{}, {:.0} MB",
                    secs(peer_wall(r).unwrap_or_default()),
                    mb(rss)
                )
            }
            Err(_) => "n/a".into(),
        },
    );
    row(
        "wechat4u 0.7.14 as shipped (peer)",
        "",
        &|r| match &r.peer {
            Ok(p) => format!(
                "{}, {:.0} MB",
                secs(p.stock.wall()),
                mb(p.stock.max_rss_kib)
            ),
            Err(_) => "n/a".into(),
        },
    );

    let mut header = vec!["measure".to_string(), "target".to_string()];
    header.extend(results.iter().map(|r| format!("{}×", r.scale)));
    let table: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.into_iter().map(|(name, target, cells)| {
            let mut line = vec![name, target];
            line.extend(cells);
            line
        }))
        .collect();
    out.push_str(&markdown(&table));

    let _ = writeln!(
        out,
        "\nWhere the time went (the median run of each; from wxsync's per-reply debug lines and its rusage):\n"
    );
    let mut phases = vec![vec![
        "run".to_string(),
        "wall".into(),
        "CPU".into(),
        "start-up".into(),
        "waiting on replies".into(),
        "between replies".into(),
        "after the last reply".into(),
        "of which write lock".into(),
    ]];
    for r in results {
        let relinks = r.relinks.iter().map(|l| {
            (
                format!("re-link, {:.0} %", l.rate * 100.0),
                median_run(&l.samples),
            )
        });
        for (name, s) in [
            ("cold".to_string(), median_run(&r.cold)),
            ("fetch only".into(), median_run(&r.fetch)),
            ("no-change".into(), median_run(&r.no_change)),
            ("1 % changed".into(), &r.one_percent),
        ]
        .into_iter()
        .chain(relinks)
        {
            let p = &s.phases;
            phases.push(vec![
                format!("{} {name}", format_args!("{}×", r.scale)),
                secs(p.wall),
                secs(p.cpu),
                secs(p.startup),
                format!(
                    "{} ({} replies, {:.0} MB)",
                    secs(p.waiting),
                    p.replies,
                    p.bytes as f64 / 1e6
                ),
                secs(p.between),
                secs(p.after_last),
                secs(p.lock),
            ]);
        }
    }
    out.push_str(&markdown(&phases));

    let _ = writeln!(out, "\nNotes:");
    for r in results {
        let _ = writeln!(
            out,
            "- {}×: simulator account {} (every group {} members); \
             the cold sync stored {} contacts, {} groups, {} memberships.",
            r.scale,
            r.shape,
            account::GROUP_SIZE,
            group(r.cold[0].run.as_ref().map_or(0, |x| x.contacts)),
            group(r.cold[0].run.as_ref().map_or(0, |x| x.groups)),
            group(r.cold[0].run.as_ref().map_or(0, |x| x.memberships)),
        );
        let _ = writeln!(out, "  1 % changed: {}.", r.churned);
        for l in &r.relinks {
            let run = l.samples[0].run.as_ref();
            let _ = writeln!(
                out,
                "  Re-link after {:.0} % changed: {}; linked {}, left unlinked {}; {} history rows.",
                l.rate * 100.0,
                l.churned,
                group(run.map_or(0, |x| x.relinked)),
                group(run.map_or(0, |x| x.unlinked)),
                group(l.samples[0].history.unwrap_or(0)),
            );
        }
        let walls = |samples: &[Sample]| {
            let walls: Vec<String> = samples.iter().map(|s| secs(s.phases.wall)).collect();
            walls.join(", ")
        };
        let relinks: Vec<String> = r
            .relinks
            .iter()
            .map(|l| {
                format!(
                    "re-link after {:.0} %: {}",
                    l.rate * 100.0,
                    walls(&l.samples)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  Each timed run, in order (the first on the cache, the others on copies): cold {}; {}.",
            walls(&r.cold),
            relinks.join("; ")
        );
        let hist = r.one_percent.history.unwrap_or(0);
        let _ = writeln!(
            out,
            "  History rows (contact_changes) written: {} by the 1 % sync, {} by a no-change sync.",
            group(hist),
            group(
                r.no_change
                    .iter()
                    .filter_map(|s| s.history)
                    .max()
                    .unwrap_or(0)
            )
        );
        let l = &r.remark;
        let _ = writeln!(
            out,
            "  Remark edits: {} queued at {}/s; max {:.2} s; {} not done; {} INSERTs met \"database is locked\" \
             and were retried; {} full syncs started meanwhile.",
            l.queued,
            remark::RATE_PER_SEC,
            l.max.as_secs_f64(),
            l.not_done,
            l.locked,
            r.remark_syncs
        );
        match &r.peer {
            Ok(p) => {
                let e = &p.every[0];
                let errors: usize =
                    p.every.iter().map(|f| f.errors.len()).sum::<usize>() + p.stock.errors.len();
                let _ = writeln!(
                    out,
                    "  wechat4u: every group: {} of {} groups with members, {} memberships; \
                     as shipped: {} groups with members, {} memberships (one unchunked batch call, \
                     the server answers 50); {} errors.",
                    e.groups_with_members,
                    e.groups,
                    group(e.memberships as i64),
                    p.stock.groups_with_members,
                    group(p.stock.memberships as i64),
                    errors
                );
            }
            Err(why) => {
                let _ = writeln!(out, "  wechat4u: n/a: {why}");
            }
        }
    }
    let _ = writeln!(
        out,
        "- Rows rewritten are counted by triggers (INSERT/UPDATE/DELETE on contacts and \
         memberships) on a copy of the cache taken before the sync, in the same sync run again \
         on that copy afterwards; the timed run has no trigger. Rows changed compare the data \
         (timestamps aside) before and after. The write lock is watched from outside on the \
         WAL index (`-shm`) every 1 ms; \"wxsync:\" is the longest sync_runs.write_lock_ms."
    );
    for r in results {
        for (label, summary) in &r.profiles {
            let _ = writeln!(
                out,
                "\nCPU profile of `wxsync sync`, {label} (perf, CPU-clock samples):\n{summary}"
            );
        }
    }
    out
}

fn markdown(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String]| {
        let cells: Vec<String> = (0..cols)
            .map(|c| {
                let s = r.get(c).map_or("", String::as_str);
                format!("{s}{}", " ".repeat(width[c] - s.chars().count()))
            })
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&rows[0]);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for r in &rows[1..] {
        out.push_str(&line(r));
    }
    out
}
