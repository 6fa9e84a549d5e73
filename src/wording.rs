//! How wxsync words things for a person: an error with its causes on one
//! line, and a count with its noun.

/// An error and its causes on one line, each cause once: error types that
/// already quote their source in their message do not repeat it.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// "1 row", "2 rows".
pub fn plural(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_names_each_cause_once() {
        /// An error that quotes its source, as most of wxsync's do.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read config file x.toml: {0}")]
        struct Read(#[source] std::io::Error);

        let e = anyhow::Error::new(Read(std::io::Error::other("disk full"))).context("starting");
        assert_eq!(
            one_line(&e),
            "starting: cannot read config file x.toml: disk full"
        );
    }
}
