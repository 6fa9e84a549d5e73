//! Where one run's wall time went, from the protocol client's debug line per
//! reply (`reply endpoint=… bytes=… ms=…`, logged when the whole body has
//! arrived) and the child's rusage: start-up before the first request, time
//! waiting on the server, client work between replies (decoding, merging),
//! and what follows the last reply (decoding it, the database write, exit).

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::child::Finished;

#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    pub wall: Duration,
    pub cpu: Duration,
    pub replies: usize,
    pub bytes: u64,
    pub startup: Duration,
    pub waiting: Duration,
    pub between: Duration,
    pub after_last: Duration,
    pub lock: Duration,
}

struct Reply {
    at: SystemTime,
    bytes: u64,
    ms: u64,
}

fn parse(line: &str) -> Option<Reply> {
    if !line.contains(" reply ") {
        return None;
    }
    let at: DateTime<Utc> = line.split_whitespace().next()?.parse().ok()?;
    let field = |name: &str| -> Option<u64> {
        let rest = &line[line.find(&format!(" {name}="))? + name.len() + 2..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some(Reply {
        at: at.into(),
        bytes: field("bytes")?,
        ms: field("ms")?,
    })
}

pub fn of(run: &Finished) -> Phases {
    let replies: Vec<Reply> = run.stderr.lines().filter_map(parse).collect();
    let mut p = Phases {
        wall: run.wall,
        cpu: run.cpu,
        replies: replies.len(),
        bytes: replies.iter().map(|r| r.bytes).sum(),
        waiting: Duration::from_millis(replies.iter().map(|r| r.ms).sum()),
        lock: run.lock,
        ..Phases::default()
    };
    let since_start = |t: SystemTime| t.duration_since(run.started).unwrap_or_default();
    if let (Some(first), Some(last)) = (replies.first(), replies.last()) {
        let first_sent = since_start(first.at).saturating_sub(Duration::from_millis(first.ms));
        let last_in = since_start(last.at);
        p.startup = first_sent;
        p.between = last_in.saturating_sub(first_sent).saturating_sub(p.waiting);
        p.after_last = run.wall.saturating_sub(last_in);
    }
    p
}
