//! The Prometheus text exposition format (version 0.0.4), written by hand: what the
//! relay exposes is a few counters, gauges and histograms read from the shared
//! counters at each scrape, and the format's rules for them fit in this file (a client
//! library would bring its own registry of live metrics, which the relay does not
//! have: its numbers live in shared memory). `promtool check metrics` and a real
//! Prometheus validate the output in the tests.
//!
//! Rules kept here: one `# HELP` and one `# TYPE` line per family, before its samples
//! and written once; label values escaped (`\\`, `\"`, `\n`); help text escaped
//! (`\\`, `\n`); histogram buckets cumulative, ending with `le="+Inf"` equal to the
//! count, followed by `_sum` and `_count`.

use std::fmt::Write;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape's text, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Every sample written after it
    /// (until the next family) must carry this name (or, for a histogram, the name with
    /// its `_bucket`, `_sum` and `_count` suffixes, which [`Exposition::histogram`] writes).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name}");
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.name());
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        self.number(value);
        self.out.push('\n');
    }

    /// One histogram: `buckets` are `(upper bound, observations at most that bound)`,
    /// bounds increasing and counts cumulative; `count` is all observations (the
    /// `+Inf` bucket) and `sum` their total.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let mut le = String::new();
        let mut last = 0u64;
        for (bound, cumulative) in buckets {
            // Counts read from the workers' words one by one may be caught between two
            // stores: never let a bucket fall below the previous one.
            last = last.max(*cumulative);
            le.clear();
            push_number(&mut le, *bound);
            self.bucket(name, labels, &le, last);
        }
        let count = count.max(last);
        self.bucket(name, labels, "+Inf", count);
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.out.push(' ');
        self.number(sum);
        let _ = write!(self.out, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    fn bucket(&mut self, name: &str, labels: &[(&str, &str)], le: &str, n: u64) {
        let _ = write!(self.out, "{name}_bucket");
        self.labels(labels, Some(le));
        let _ = writeln!(self.out, " {n}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|le| ("le", le));
        for (i, (key, value)) in labels.iter().copied().chain(le).enumerate() {
            debug_assert!(valid_name(key), "bad label name {key}");
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(key);
            self.out.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn number(&mut self, value: f64) {
        push_number(&mut self.out, value);
    }

    /// The text, ready to serve.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes a sample value as the format spells it: integers without a fraction, the
/// infinities as `+Inf`/`-Inf`, not-a-number as `NaN`.
fn push_number(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Display for f64 prints the shortest text that reads back to the same value,
        // and no exponent: what Prometheus parses.
        let _ = write!(out, "{value}");
    }
}

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (labels take no `:`, which the
/// relay's names never use).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_family_with_escaped_labels_and_help() {
        let mut e = Exposition::new();
        e.family(
            "tcprelay_accepted_total",
            Kind::Counter,
            "Clients accepted.\nA \\ here",
        );
        e.sample(
            "tcprelay_accepted_total",
            &[("listener", "a\"b\\c\nd")],
            3.0,
        );
        e.sample("tcprelay_accepted_total", &[], 0.5);
        assert_eq!(
            e.finish(),
            "# HELP tcprelay_accepted_total Clients accepted.\\nA \\\\ here\n\
             # TYPE tcprelay_accepted_total counter\n\
             tcprelay_accepted_total{listener=\"a\\\"b\\\\c\\nd\"} 3\n\
             tcprelay_accepted_total 0.5\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut e = Exposition::new();
        e.family("t_seconds", Kind::Histogram, "h");
        e.histogram(
            "t_seconds",
            &[("remote", "r")],
            &[(0.001, 1), (0.5, 1), (10.0, 3)],
            7.25,
            4,
        );
        let text = e.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "t_seconds_bucket{remote=\"r\",le=\"0.001\"} 1",
                "t_seconds_bucket{remote=\"r\",le=\"0.5\"} 1",
                "t_seconds_bucket{remote=\"r\",le=\"10\"} 3",
                "t_seconds_bucket{remote=\"r\",le=\"+Inf\"} 4",
                "t_seconds_sum{remote=\"r\"} 7.25",
                "t_seconds_count{remote=\"r\"} 4",
            ]
        );
    }

    #[test]
    fn buckets_never_decrease_and_inf_is_never_below_the_last() {
        let mut e = Exposition::new();
        e.family("t", Kind::Histogram, "h");
        e.histogram("t", &[], &[(1.0, 5), (2.0, 4)], 5.0, 3);
        let text = e.finish();
        assert!(text.contains("t_bucket{le=\"2\"} 5\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("t_count 5\n"), "{text}");
    }

    #[test]
    fn special_values_are_spelled_as_the_format_wants() {
        let mut s = String::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e21, 0.1, 12.0] {
            push_number(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "+Inf -Inf NaN 1000000000000000000000 0.1 12 ");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("tcprelay_bytes_total"));
        assert!(valid_name("_x:y"));
        assert!(!valid_name("9x"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
