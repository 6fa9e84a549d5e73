//! `wxsync identity`: what the last re-link left to a person, in words.
//!
//! Old rows whose candidates are the same rows at the same scores are
//! look-alikes of each other and make one block, so each look-alike set is
//! shown once. A block says when its rows cannot be told apart, shows what
//! each row has (remark, alias, groups, first seen) and what differs
//! between them, and the command that decides. Session user names, which
//! mean nothing to a person, are left to `--json`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::store::{Shown, Undecided};
use crate::telemetry::escape;
use crate::wording::plural;

/// Scores closer than this are the same (they are printed to 0.1 bit).
const TIE_BITS: f64 = 0.05;

/// The listing of `undecided` (old rows in `contact_id` order, each with
/// its candidates best first).
pub fn render(undecided: &[Undecided]) -> String {
    let mut out = String::new();
    if undecided.is_empty() {
        out.push_str("Every contact the last re-link could match is linked; nothing to decide.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{} of the previous login could not be told apart with confidence:",
        plural(undecided.len() as i64, "row")
    );
    for block in blocks(undecided) {
        out.push('\n');
        block_text(&mut out, &block);
    }
    out.push_str(
        "\nScores are in bits: each bit doubles the odds that two rows are one contact. \
         A row left undecided stays marked deleted, and its contact keeps its new contact_id.\n",
    );
    out
}

/// Old rows grouped with those whose candidates are the same rows at the
/// same scores.
fn blocks(undecided: &[Undecided]) -> Vec<Vec<&Undecided>> {
    let mut blocks: Vec<Vec<&Undecided>> = Vec::new();
    for u in undecided {
        match blocks.iter_mut().find(|b| same_candidates(b[0], u)) {
            Some(b) => b.push(u),
            None => blocks.push(vec![u]),
        }
    }
    blocks
}

fn same_candidates(a: &Undecided, b: &Undecided) -> bool {
    a.kind == b.kind
        && a.candidates.len() == b.candidates.len()
        && a.candidates
            .iter()
            .zip(&b.candidates)
            .all(|(x, y)| x.0.contact_id == y.0.contact_id && (x.1 - y.1).abs() < TIE_BITS)
}

fn block_text(out: &mut String, block: &[&Undecided]) {
    let first = block[0];
    let kind = &first.kind;
    let (best, evidence) = (first.candidates[0].1, &first.candidates[0].2);
    let (tied, others): (Vec<_>, Vec<_>) =
        first.candidates.iter().partition(|c| best - c.1 < TIE_BITS);
    let olds: Vec<&Shown> = block.iter().map(|u| &u.old).collect();
    let news: Vec<&Shown> = tied.iter().map(|c| &c.0).collect();
    if olds.len() == 1 && news.len() == 1 {
        let _ = writeln!(out, "{kind} {}:", quoted(&first.old.nick_name));
        let _ = writeln!(out, "  earlier {}", describe(&first.old));
        for (row, score, evidence) in &first.candidates {
            let _ = writeln!(out, "  now     {}", describe(row));
            let _ = writeln!(out, "          {score:.1} bits: {evidence}");
        }
        let _ = writeln!(
            out,
            "  To decide: if #{new} is this {kind}, `wxsync identity link {old} {new}`; if \
             not, leave it.",
            old = first.old.contact_id,
            new = news[0].contact_id
        );
        return;
    }
    let _ = writeln!(
        out,
        "{kind} {}: {} and {} look alike and cannot be told apart: each pair scores {best:.1} \
         bits ({evidence}).",
        quoted(&first.old.nick_name),
        plural(olds.len() as i64, "earlier row"),
        plural(news.len() as i64, "current contact"),
    );
    for row in &olds {
        let _ = writeln!(out, "  earlier {}", describe(row));
    }
    for row in &news {
        let _ = writeln!(out, "  now     {}", describe(row));
    }
    let _ = writeln!(out, "  {}", differences(&olds, &news));
    for (row, score, evidence) in &others {
        let _ = writeln!(out, "  also    {}", describe(row));
        let _ = writeln!(out, "          {score:.1} bits: {evidence}");
    }
    let _ = writeln!(
        out,
        "  To decide: match what you know of each contact in WeChat (a chat, the groups above) \
         with each earlier row's history (`SELECT at, change, field, old_value, new_value FROM \
         contact_changes WHERE contact_id = {old}`), then link each earlier row to its contact: \
         `wxsync identity link {old} {new}`. If you cannot tell, leave them: each keeps a row \
         of its own and nothing is lost.",
        old = olds[0].contact_id,
        new = news[0].contact_id
    );
}

/// `#372 "Zoe", remark "…", alias "…", first seen …, groups: …`.
fn describe(row: &Shown) -> String {
    let mut text = format!("#{} {}", row.contact_id, quoted(&row.nick_name));
    if !row.remark_name.is_empty() {
        let _ = write!(text, ", remark {}", quoted(&row.remark_name));
    }
    if !row.alias.is_empty() {
        let _ = write!(text, ", alias {}", quoted(&row.alias));
    }
    let _ = write!(text, ", first seen {}", when(&row.first_seen_at));
    if let Some(at) = &row.deleted_at {
        let _ = write!(text, ", marked deleted {}", when(at));
    }
    if !row.groups.is_empty() {
        let groups: Vec<String> = row.groups.iter().map(|g| group_name(g)).collect();
        let _ = write!(text, ", in {}", groups.join(", "));
    }
    text
}

/// What tells the earlier rows apart and the current ones, in words.
fn differences(olds: &[&Shown], news: &[&Shown]) -> String {
    let sides: Vec<&[&Shown]> = [olds, news].into_iter().filter(|s| s.len() > 1).collect();
    let (same, differ): (Vec<_>, Vec<_>) = sides
        .iter()
        .map(|rows| (ids(rows), side_differences(rows)))
        .partition(|(_, d)| d.is_empty());
    let mut text: Vec<String> = differ
        .into_iter()
        .map(|(ids, d)| format!("What differs between {ids}: {}.", d.join("; ")))
        .collect();
    if !same.is_empty() {
        let ids: Vec<String> = same.into_iter().map(|(ids, _)| ids).collect();
        text.push(format!(
            "Nothing wxsync knows tells {} apart.",
            ids.join(", nor ")
        ));
    }
    text.join(" ")
}

/// "#3 and #4".
fn ids(rows: &[&Shown]) -> String {
    let ids: Vec<String> = rows.iter().map(|r| format!("#{}", r.contact_id)).collect();
    ids.join(" and ")
}

/// A field a person can compare, and how it reads.
type Field = (&'static str, fn(&Shown) -> String);

/// What tells the rows of one side apart: one phrase per field.
fn side_differences(rows: &[&Shown]) -> Vec<String> {
    let ids: Vec<String> = rows.iter().map(|r| format!("#{}", r.contact_id)).collect();
    let mut parts = Vec::new();
    let fields: [Field; 4] = [
        ("nick name", |r| quoted(&r.nick_name)),
        ("remark", |r| quoted(&r.remark_name)),
        ("alias", |r| quoted(&r.alias)),
        ("first seen", |r| when(&r.first_seen_at)),
    ];
    for (name, value) in fields {
        let values: Vec<String> = rows.iter().map(|r| value(r)).collect();
        if values.iter().any(|v| *v != values[0]) {
            let each: Vec<String> = ids
                .iter()
                .zip(&values)
                .map(|(id, v)| format!("{id} {v}"))
                .collect();
            parts.push(format!("{name} ({})", each.join(", ")));
        }
    }
    let in_all: BTreeSet<&String> = rows[0]
        .groups
        .iter()
        .filter(|g| rows.iter().all(|r| r.groups.contains(g)))
        .collect();
    let only: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let own: Vec<String> = r
                .groups
                .iter()
                .filter(|g| !in_all.contains(g))
                .map(|g| group_name(g))
                .collect();
            (!own.is_empty()).then(|| format!("#{} also in {}", r.contact_id, own.join(", ")))
        })
        .collect();
    if !only.is_empty() {
        parts.push(format!("groups ({})", only.join("; ")));
    }
    parts
}

fn quoted(s: &str) -> String {
    format!("{:?}", escape(s))
}

fn group_name(name: &str) -> String {
    if name.is_empty() {
        "an unnamed group".to_owned()
    } else {
        quoted(name)
    }
}

/// `2026-12-04T09:00:12.345Z` → `2026-12-04 09:00` (UTC).
fn when(at: &str) -> String {
    match at.get(..16) {
        Some(minute) => format!("{} UTC", minute.replacen('T', " ", 1)),
        None => at.to_owned(),
    }
}
