//! The human rendering of a [`Report`]: one section per area, a line per change with
//! when it takes effect, the live sessions paragraph last. docs/diff.md shows it.

use std::fmt::Write;

use super::report::{CertSide, Change, FieldChange, ItemChange, Report, SideInfo};
use crate::tlscheck::utc_text;

fn side(s: &SideInfo) -> String {
    match s.kind {
        "running" => format!(
            "the running relay (control socket {}, generation {}, plan {}, from {})",
            s.input,
            s.generation.unwrap_or_default(),
            s.plan_hash.as_deref().unwrap_or("?"),
            s.source
        ),
        kind => format!("{} ({kind})", s.input),
    }
}

fn value(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("none")
}

fn field(out: &mut String, indent: &str, f: &FieldChange) {
    let _ = write!(
        out,
        "{indent}{}: {} -> {} ({})",
        f.field,
        value(&f.old),
        value(&f.new),
        f.effect.words()
    );
    if let Some(note) = &f.note {
        let _ = write!(out, "; {note}");
    }
    out.push('\n');
}

fn mark(change: Change) -> char {
    match change {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Changed => '~',
    }
}

fn item(out: &mut String, i: &ItemChange) {
    let _ = write!(out, "  {} {}", mark(i.change), i.key);
    match i.socket {
        Some("kept") => out.push_str(": socket kept"),
        Some("bound") => out.push_str(": bound at reload"),
        Some("closed") => out.push_str(": closed at reload"),
        _ => {}
    }
    if let Some(n) = i.active_sessions {
        let _ = write!(
            out,
            " ({n} session{} open now)",
            if n == 1 { "" } else { "s" }
        );
    }
    out.push('\n');
    for f in &i.fields {
        field(out, "      ", f);
    }
}

fn certs(out: &mut String, label: &str, s: &CertSide) {
    let _ = writeln!(out, "      {label} {} (read {}):", s.file, s.read);
    if let Some(e) = &s.error {
        let _ = writeln!(out, "        {e}");
    }
    if s.certificates.is_empty() && s.error.is_none() {
        let _ = writeln!(out, "        no certificate");
    }
    for c in &s.certificates {
        let _ = writeln!(
            out,
            "        {}; issuer {}; valid {} to {}; sha256 {}",
            c.subject,
            c.issuer,
            utc_text(c.not_before),
            utc_text(c.not_after),
            c.sha256
        );
    }
}

/// The report as text for a terminal.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "old: {}", side(&r.old));
    let _ = writeln!(out, "new: {}", side(&r.new));
    if !r.changed {
        out.push_str("\nno change: a reload from old to new changes nothing\n");
    }
    if !r.listeners.is_empty() {
        out.push_str("\nlisteners (same address and protocol: the socket is kept):\n");
        r.listeners.iter().for_each(|i| item(&mut out, i));
    }
    if !r.remotes.is_empty() {
        out.push_str("\nremotes:\n");
        r.remotes.iter().for_each(|i| item(&mut out, i));
    }
    if !r.discovered.is_empty() {
        out.push_str("\nnames resolved at run time (their remotes follow the records):\n");
        r.discovered.iter().for_each(|i| item(&mut out, i));
    }
    if !r.acl.is_empty() {
        out.push_str("\nacl (first match wins):\n");
        for line in &r.acl {
            // Numbered from 1, as `route` and `explain` number rules (the JSON from 0).
            let _ = writeln!(out, "  {} #{} {}", line.op, line.index + 1, line.rule);
        }
    }
    if !r.certificates.is_empty() {
        out.push_str("\ncertificates:\n");
        for c in &r.certificates {
            let _ = writeln!(out, "  {} {}", mark(c.change), c.role);
            if let Some(s) = &c.old {
                certs(&mut out, "old", s);
            }
            if let Some(s) = &c.new {
                certs(&mut out, "new", s);
            }
        }
    }
    if !r.settings.is_empty() {
        out.push_str("\nsettings:\n");
        r.settings.iter().for_each(|f| field(&mut out, "  ", f));
    }
    if !r.sessions.summary.is_empty() {
        out.push_str("\nlive sessions:\n");
        for line in &r.sessions.summary {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !r.notes.is_empty() {
        out.push_str("\nnotes:\n");
        for note in &r.notes {
            let _ = writeln!(out, "  {note}");
        }
    }
    out
}
