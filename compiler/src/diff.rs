//! `tcprelay-cc diff OLD NEW`: what a reload from one plan to another changes, for
//! operators and for deploy scripts (exit status 0 no change, 1 changes, 2 errors).
//!
//! Each side is a plan file, a configuration compiled on the fly, or (`--running`)
//! the plan the running master holds, asked of its control socket (`running.rs`).
//! The comparison (`compare.rs`) goes through every field of the plan, and says for
//! each change when it takes effect: on the listening socket the master keeps, for
//! the new generation's sessions, in the master at the reload, or only at restart.
//! The access rules are compared as ordered lists (`acl.rs`), certificate files by
//! their certificates' facts (`certs.rs`), never a key or a passphrase. The result
//! is a [`Report`], printed for people (`human.rs`) or as JSON (docs/diff.md).

mod acl;
mod certs;
mod compare;
mod human;
mod report;
pub mod running;

#[cfg(test)]
mod tests;

pub use certs::Loaded;
pub use human::render;
pub use report::{
    AclLine, CertChange, CertSide, Change, Effect, FieldChange, Generation, ItemChange, Report,
    Sessions, SideInfo,
};
pub use running::Running;

use tcprelay_plan::Plan;

use crate::input::Input;
use crate::{diag, Selection};

/// One side of a diff: its plan and where it came from.
#[derive(Debug, Clone)]
pub struct Side {
    pub info: SideInfo,
    pub plan: Plan,
    /// The running relay's certificates and sessions (`--running` only).
    pub running: Option<Running>,
}

impl Side {
    /// The running relay's side.
    pub fn running(running: Running) -> Side {
        Side {
            info: SideInfo {
                kind: "running",
                input: running.socket.display().to_string(),
                source: running.plan.source.clone(),
                spawnd_id: running.plan.spawnd_id.clone(),
                tcprelay_id: running.plan.tcprelay_id.clone(),
                generation: Some(running.generation),
                plan_hash: Some(running.plan_hash.clone()),
            },
            plan: running.plan.clone(),
            running: Some(running),
        }
    }

    fn of(kind: &'static str, input: &str, plan: Plan) -> Side {
        Side {
            info: SideInfo {
                kind,
                input: input.to_string(),
                source: plan.source.clone(),
                spawnd_id: plan.spawnd_id.clone(),
                tcprelay_id: plan.tcprelay_id.clone(),
                generation: None,
                plan_hash: None,
            },
            plan,
            running: None,
        }
    }
}

/// Why an input gave no plan: the text to print on standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

/// Loads one side ([`crate::input::load`]): a plan file, or a configuration
/// compiled with `selection` (its diagnostics rendered, `color` or not). A
/// configuration's warnings come back with the side, to be printed.
pub fn load(input: &str, selection: &Selection, color: bool) -> Result<(Side, String), LoadError> {
    match crate::input::load(input, selection)
        .map_err(|e| LoadError(format!("tcprelay-cc: {e}\n")))?
    {
        Input::Plan(plan) => Ok((Side::of("plan", input, *plan), String::new())),
        Input::Config(compiled) => {
            let text = diag::render::human_map(&compiled.diags, &compiled.map, color);
            match compiled.plan {
                Some(plan) => Ok((Side::of("configuration", input, plan), text)),
                None => Err(LoadError(format!(
                    "{text}tcprelay-cc: {input} has errors: nothing compared\n"
                ))),
            }
        }
    }
}

/// Compares two sides.
pub fn diff(old: &Side, new: &Side) -> Report {
    let found = compare::compare(&old.plan, &new.plan);
    let running = old.running.as_ref();
    let loaded = running.map(|r| r.certificates.as_slice());
    let mut report = Report {
        changed: false,
        old: old.info.clone(),
        new: new.info.clone(),
        listeners: found.listeners,
        remotes: found.remotes,
        discovered: found.discovered,
        acl: acl::diff(&old.plan.spawnd.acl, &new.plan.spawnd.acl),
        certificates: certs::compare(&old.plan, &new.plan, loaded),
        settings: found.settings,
        sessions: Sessions::default(),
        notes: found.notes,
    };
    report.changed = !(report.listeners.is_empty()
        && report.remotes.is_empty()
        && report.discovered.is_empty()
        && report.acl.is_empty()
        && report.certificates.is_empty()
        && report.settings.is_empty());
    if old.running.is_none() && shares_a_certificate_file(&old.plan, &new.plan) {
        report.notes.push(
            "certificate files are read now for both sides: a file replaced on disk since the relay \
             loaded it shows only with --running"
                .to_string(),
        );
    }
    if let Some(counts) = running.and_then(|r| r.sessions.as_ref()) {
        for item in &mut report.remotes {
            if item.change != Change::Added {
                item.active_sessions = counts.on_remote(&item.key);
            }
        }
        for item in &mut report.listeners {
            if item.change != Change::Added {
                item.active_sessions = counts.on_listener(&item.key);
            }
        }
        report.sessions.total = Some(counts.total);
        report.sessions.generations = counts.generations.clone();
    }
    report.sessions.summary = live_sessions(&report, &new.plan, running);
    if !report.changed {
        // Nothing changes for them; the running relay's counts are still said.
        report
            .sessions
            .summary
            .retain(|line| line.starts_with("The running relay"));
    }
    report
}

/// Whether both plans name one certificate file (listener or remote, CA files too).
fn shares_a_certificate_file(old: &Plan, new: &Plan) -> bool {
    let files = |p: &Plan| -> Vec<String> {
        let mut v: Vec<String> = p.relay.tls.iter().map(|t| t.cert_file.clone()).collect();
        let templates = p.relay.discovered.iter().map(|d| &d.template);
        for tls in p
            .relay
            .remotes
            .iter()
            .chain(templates)
            .filter_map(|r| r.tls.as_ref())
        {
            v.extend(tls.cert_file.iter().cloned());
            v.extend(tls.ca_file.iter().cloned());
        }
        v
    };
    let theirs = files(new);
    files(old).iter().any(|f| theirs.contains(f))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the reload means for the sessions open at its time, in sentences.
fn live_sessions(report: &Report, new: &Plan, running: Option<&Running>) -> Vec<String> {
    let mut out = Vec::new();
    let drain = match new.relay.drain_timeout {
        0 => "until they end (NEW has no drain timeout)".to_string(),
        s => format!("until they end or for at most {s} s (NEW's drain timeout)"),
    };
    out.push(format!(
        "New sessions get NEW's plan (a new generation of workers). The old generation stops \
         accepting and keeps all its sessions, on every listener and remote, removed ones \
         included, with OLD's settings, {drain}; at most {} old generation(s) drain at once \
         (NEW's drain generations), the oldest beyond closing its sessions at once.",
        new.relay.drain_generations
    ));
    let generation = running.map(|r| r.generation);
    for item in report
        .remotes
        .iter()
        .filter(|i| i.change == Change::Removed)
    {
        out.push(match (item.active_sessions, generation) {
            (Some(n), Some(g)) => format!(
                "{} on remote {}, which NEW removes, stay in generation {g} (and older) until they end.",
                plural(n as usize, "session", "sessions"),
                item.key
            ),
            _ => format!(
                "Sessions on remote {}, which NEW removes, stay with the old generation until they end.",
                item.key
            ),
        });
    }
    let closed: Vec<&str> = report
        .listeners
        .iter()
        .filter(|i| i.change == Change::Removed)
        .map(|i| i.key.as_str())
        .collect();
    for item in report
        .listeners
        .iter()
        .filter(|i| i.change == Change::Removed)
    {
        if let (Some(n), Some(g)) = (item.active_sessions, generation) {
            out.push(format!(
                "{} accepted by listener {}, which NEW removes, stay in generation {g} (and older) until they end.",
                plural(n as usize, "session", "sessions"),
                item.key
            ));
        }
    }
    if !closed.is_empty() {
        out.push(format!(
            "The master closes the socket of {} at the reload: connections waiting in its queue, \
             not yet accepted, are reset; its open sessions stay with the old generation.",
            closed.join(", ")
        ));
    }
    let kept: Vec<&str> = report
        .listeners
        .iter()
        .filter(|i| i.change == Change::Changed)
        .map(|i| i.key.as_str())
        .collect();
    if !kept.is_empty() {
        out.push(format!(
            "The master keeps the socket of {}, with its queue: no waiting connection is lost.",
            kept.join(", ")
        ));
    }
    let restart: Vec<&str> = report
        .settings
        .iter()
        .filter(|f| f.effect == Effect::Restart)
        .map(|f| f.field.as_str())
        .collect();
    if !restart.is_empty() {
        out.push(format!(
            "A reload does not apply {}: restart the relay for {}.",
            restart.join(", "),
            if restart.len() == 1 { "it" } else { "them" }
        ));
    }
    if let (Some(r), Some(counts)) = (running, running.and_then(|r| r.sessions.as_ref())) {
        let draining: Vec<String> = counts
            .generations
            .iter()
            .filter(|g| g.draining)
            .map(|g| {
                format!(
                    "{} ({})",
                    g.generation,
                    plural(g.sessions as usize, "session", "sessions")
                )
            })
            .collect();
        out.push(format!(
            "The running relay has {} now, in generation {}{}.",
            plural(counts.total as usize, "session", "sessions"),
            r.generation,
            if draining.is_empty() {
                String::new()
            } else {
                format!(" and the draining generation(s) {}", draining.join(", "))
            }
        ));
    }
    out
}

/// The report as one JSON object (docs/diff.md's schema).
pub fn json(report: &Report) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
