//! The master's control socket (`tcprelay ctl`): bound at start and re-bound by a
//! reload that changes `control`, driven by the master's loop, and the answers to its
//! requests (schema in `docs/control.md`).
//!
//! A `reload` request is answered when the reload has ended ([`Master::compiled`]):
//! its client waits in `reload_waiters` meanwhile (the server times it out after
//! [`crate::ctl::server::ANSWER_WITHIN`], longer than a compile may run). Requests
//! that come while a compile runs wait for that compile's outcome.

use super::{Master, Worker, CTL_TOKENS};
use crate::ctl::server::error_line;
use crate::ctl::{self, ClientId, ControlServer, Incoming, Request};
use crate::stats::{RemoteKey, Snapshot};
use crate::tls_context::{CertificateUse, Certificates};
use crate::{notice, warn};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Instant, SystemTime};
use tcprelay_plan::{Control, Plan};

/// The plan's hash as `tcprelay ctl status` and the metrics show it: the CRC-32 of
/// its encoded body, the checksum a plan file's header holds, 8 hexadecimal digits.
pub(super) fn plan_hash(plan: &Plan) -> String {
    let bytes = tcprelay_plan::encode(plan, "");
    let crc = bytes
        .get(12..16)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes);
    format!("{crc:08x}")
}

/// Binds the control socket `control` asks for: `Ok(None)` for `control = no`, for
/// no default path on this machine, or for a default path another running relay
/// answers on (each with one warning line); an error for a socket that cannot be
/// bound (an explicit path in use included).
pub(super) fn bind(control: Option<&Control>) -> Result<Option<ControlServer>, String> {
    let Some(control) = control else {
        return Ok(None);
    };
    let env = ctl::current_env();
    let Some((path, default)) = ctl::resolve(control.path.as_deref(), &env) else {
        warn!(
            "no control socket: neither RUNTIME_DIRECTORY nor XDG_RUNTIME_DIR is set; \
             give one with `control = {{ path = ... }}` in the spawnd section"
        );
        return Ok(None);
    };
    if default && answers(&path) {
        warn!(
            "control socket {} belongs to another running relay: this one runs without a \
             control socket; give it its own with `control = {{ path = ... }}` in the spawnd section",
            path.display()
        );
        return Ok(None);
    }
    ControlServer::bind(&path, control.mode, control.group.as_deref(), default).map(Some)
}

/// Whether a relay answers on the socket at `path`.
fn answers(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
        && std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// What a reload does to the control socket: nothing, or the new one in place of the
/// running one (bound before anything else changes: failing, the reload fails).
pub(super) enum Rebind {
    Keep,
    /// The same path: the running socket gets this mode and group.
    Access(u32, Option<String>),
    Replace(Option<ControlServer>),
}

impl Master {
    /// Registers the control socket bound at start.
    pub(super) fn register_ctl(&mut self) -> Result<(), String> {
        if let Some(server) = &mut self.ctl {
            server
                .register(self.poll.registry(), CTL_TOKENS)
                .map_err(|e| format!("cannot watch the control socket: {e}"))?;
        }
        Ok(())
    }

    /// After the process has gone to the background: the socket file is this
    /// process's to remove at exit.
    pub fn daemonized(&mut self) {
        for server in [&mut self.ctl, &mut self.old_ctl].into_iter().flatten() {
            server.adopt();
        }
    }

    /// For a reload to `plan`: the control socket it needs, bound now when its
    /// settings changed (a new path), or the running socket's mode and group changed
    /// in place (the same path).
    pub(super) fn rebind_ctl(&self, plan: &Plan) -> Result<Rebind, String> {
        let (old, new) = (&self.plan.spawnd.control, &plan.spawnd.control);
        if old == new {
            return Ok(Rebind::Keep);
        }
        if let (Some(server), Some(control)) = (&self.ctl, new) {
            let env = ctl::current_env();
            let same = ctl::resolve(control.path.as_deref(), &env)
                .is_some_and(|(path, _)| path == server.path());
            if same {
                // The group is checked now, so that a bad one fails the reload.
                if let Some(group) = &control.group {
                    crate::os::group_id(group).map_err(|e| {
                        format!("control socket {}: group: {e}", server.path().display())
                    })?;
                }
                return Ok(Rebind::Access(control.mode, control.group.clone()));
            }
        }
        bind(new.as_ref()).map(Rebind::Replace)
    }

    /// Puts a reload's new control socket in place; the old one is kept aside until
    /// the reload's waiters are answered ([`Master::answer_reload`]).
    pub(super) fn install_ctl(&mut self, rebind: Rebind) {
        let mut server = match rebind {
            Rebind::Keep => return,
            Rebind::Access(mode, group) => {
                if let Some(s) = &self.ctl {
                    if let Err(e) = s.set_access(mode, group.as_deref()) {
                        warn!("{e}");
                    }
                }
                return;
            }
            Rebind::Replace(server) => server,
        };
        if let Some(mut old) = self.ctl.take() {
            old.deregister(self.poll.registry());
            self.old_ctl = Some(old);
        }
        if let Some(s) = &mut server {
            if let Err(e) = s.register(self.poll.registry(), CTL_TOKENS) {
                warn!(
                    "cannot watch the control socket {}: {e}",
                    s.path().display()
                );
                server = None;
            }
        }
        if let Some(s) = &server {
            notice!("control socket now at {}", s.path().display());
        }
        self.ctl = server;
    }

    /// Readiness of one of the control socket's tokens.
    pub(super) fn on_ctl_event(&mut self, token: mio::Token) {
        let Some(server) = &mut self.ctl else {
            return;
        };
        let incoming = server.on_event(self.poll.registry(), token, Instant::now());
        for request in incoming {
            self.on_request(request);
        }
    }

    /// Times the control clients out when one is due.
    pub(super) fn sweep_ctl(&mut self) {
        let now = Instant::now();
        let Some(server) = self
            .ctl
            .as_mut()
            .filter(|s| s.next_deadline().is_some_and(|t| t <= now))
        else {
            return;
        };
        let incoming = server.sweep(self.poll.registry(), now);
        for request in incoming {
            self.on_request(request);
        }
    }

    fn answer(&mut self, client: ClientId, line: &str) {
        if let Some(server) = &mut self.ctl {
            server.answer(self.poll.registry(), client, line);
        }
    }

    fn on_request(&mut self, Incoming { client, request }: Incoming) {
        match request {
            Request::Status => {
                let line = self.status().to_string();
                self.answer(client, &line);
            }
            Request::Remotes => {
                let line = self.remotes().to_string();
                self.answer(client, &line);
            }
            Request::Plan => {
                let line = self.plan_answer().to_string();
                self.answer(client, &line);
            }
            Request::Reload => {
                if self.stopping {
                    self.answer(client, &error_line("the relay is stopping: no reload"));
                    return;
                }
                self.reload_waiters.push(client);
                // A compile under way: this request gets its outcome.
                if self.compiling.is_none() {
                    self.reload();
                }
            }
            Request::Stop => {
                let message = if self.stopping {
                    "stopping now: the sessions left are closed"
                } else {
                    "stopping: the workers finish their sessions, then the relay exits"
                };
                let line = json!({ "ok": true, "message": message }).to_string();
                self.answer(client, &line);
                self.stop();
            }
            Request::Sessions { limit } => {
                // Answered once every worker has, or after the gathering's time limit.
                self.request_sessions(limit, move |master, answer| {
                    master.answer(client, &answer.to_string());
                });
            }
            Request::Drain(remote) => {
                let outcome = self.drain_remote(&remote);
                self.answer_outcome(client, outcome);
            }
            Request::Enable(remote) => {
                let outcome = self.enable_remote(&remote);
                self.answer_outcome(client, outcome);
            }
            Request::Weight(remote, weight) => {
                let outcome = self.weight_remote(&remote, weight);
                self.answer_outcome(client, outcome);
            }
        }
    }

    /// The answer to a command that changes something: its message, or its error.
    fn answer_outcome(&mut self, client: ClientId, outcome: Result<String, String>) {
        let line = match outcome {
            Ok(message) => json!({ "ok": true, "message": message }).to_string(),
            Err(error) => error_line(&error),
        };
        self.answer(client, &line);
    }

    /// A reload has ended: every `tcprelay ctl reload` waiting for it gets its
    /// outcome (`Ok`: what now runs; `Err`: why the plan was refused, every line),
    /// then the control socket a reload replaced is closed.
    pub(super) fn answer_reload(&mut self, outcome: Result<String, String>) {
        let line = match outcome {
            Ok(message) => json!({ "ok": true, "message": message }).to_string(),
            Err(error) => error_line(&error),
        };
        // A socket the reload replaced is gone from its path before anyone hears
        // of the outcome (its clients are answered on it all the same).
        if let Some(old) = &self.old_ctl {
            old.unlink();
        }
        let waiters = std::mem::take(&mut self.reload_waiters);
        for client in waiters {
            // A waiter of a socket the reload replaced is on the old one.
            let server = match &mut self.old_ctl {
                Some(old) if old.waits(client) => old,
                _ => match &mut self.ctl {
                    Some(s) => s,
                    None => continue,
                },
            };
            server.answer(self.poll.registry(), client, &line);
        }
        self.old_ctl = None;
    }

    /// A reload abandoned by a stop: its waiters are told.
    pub(super) fn abandon_reload(&mut self) {
        if !self.reload_waiters.is_empty() {
            self.answer_reload(Err(
                "the relay is stopping: the reload was abandoned".to_string()
            ));
        }
    }

    /// The generations that have workers, newest first.
    fn generations_newest_first(&self) -> Vec<u64> {
        let mut generations: Vec<u64> = self.workers.values().map(|w| w.generation).collect();
        generations.sort_unstable_by(|a, b| b.cmp(a));
        generations.dedup();
        generations
    }

    /// The answer to `status`.
    pub(super) fn status(&self) -> Value {
        let now = Instant::now();
        let generations: Vec<Value> = self
            .generations_newest_first()
            .into_iter()
            .map(|generation| {
                let mut ws: Vec<&Worker> = self
                    .workers
                    .values()
                    .filter(|w| w.generation == generation)
                    .collect();
                ws.sort_by_key(|w| w.pid);
                let active = generation == self.generation && !self.stopping;
                let workers: Vec<Value> = ws
                    .iter()
                    .map(|w| {
                        json!({
                            "pid": w.pid,
                            "state": self.worker_state(w),
                            "sessions": self.held(w),
                        })
                    })
                    .collect();
                json!({
                    "generation": generation,
                    "state": if active { "active" } else { "draining" },
                    "sessions": ws.iter().map(|w| self.held(w)).sum::<u64>(),
                    "drain_deadline_s": self
                        .drain_deadline(generation)
                        .map(|t| t.saturating_duration_since(now).as_secs()),
                    "workers": workers,
                })
            })
            .collect();
        let sessions: u64 = self.workers.values().map(|w| self.held(w)).sum();
        let snapshot = self.stats.as_ref().map(crate::stats::Registry::snapshot);
        let total = |f: fn(&Snapshot) -> u64| snapshot.as_ref().map_or(0, f);
        json!({
            "ok": true,
            "pid": std::process::id(),
            "uptime_s": now.duration_since(self.started).as_secs(),
            "plan": { "source": self.source.to_string(), "hash": self.plan_hash },
            "generation": self.generation,
            "generations": generations,
            "sessions": sessions,
            "draining": self.stopping,
            "drain_deadline_s": self
                .stop_deadline
                .map(|t| t.saturating_duration_since(now).as_secs()),
            "totals": {
                "accepted": total(|s| s.totals.accepted),
                "refused_acl": total(|s| s.totals.denied),
                "refused_proxy": total(|s| s.totals.proxy_refused),
                "refused_sni": total(|s| s.totals.sni_refused.iter().sum()),
                "refused_sni_reasons": crate::stats::SniRefusal::ALL
                    .iter()
                    .map(|&why| {
                        let n = snapshot.as_ref().map_or(0, |s| s.totals.sni_refused[why as usize]);
                        (why.name().to_string(), json!(n))
                    })
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
                "shed_overload": total(|s| s.totals.shed),
                "sticky_hits": total(|s| s.totals.sticky_hits),
                "sticky_misses": total(|s| s.totals.sticky_misses),
                "sticky_handoffs": total(|s| s.totals.handoffs_passed),
                "sticky_handoffs_returned": total(|s| s.totals.handoffs_returned),
                "sticky_handoffs_closed": total(|s| s.totals.handoffs_closed),
                "tls_handshakes": total(|s| s.totals.tls_handshakes),
                "tls_failures": total(|s| s.totals.tls_failures),
                "bytes_in": total(|s| s.totals.bytes_to_remote),
                "bytes_out": total(|s| s.totals.bytes_to_client),
            },
        })
    }

    fn worker_state(&self, w: &Worker) -> &'static str {
        if w.leaving {
            if w.generation == self.generation && !self.stopping {
                "retiring"
            } else {
                "draining"
            }
        } else if w.full {
            "full"
        } else {
            "accepting"
        }
    }

    /// The answer to `remotes`: the current plan's remotes, in its order, then the
    /// remotes found by DNS, in the order the workers append them (each with the
    /// name it came from and whether it is retired from the name's set).
    pub(super) fn remotes(&self) -> Value {
        let snapshot = self.stats.as_ref().map(crate::stats::Registry::snapshot);
        let now = SystemTime::now();
        let mut remotes: Vec<Value> = self
            .plan
            .relay
            .remotes
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let admin = self.remote_admin(index);
                let health = self.remote_health(index);
                remote_row(r, admin, health, snapshot.as_ref(), now)
            })
            .collect();
        for found in self.discovered_remotes() {
            let steering = match &self.steering {
                Some(table) if found.slot != 0 => table.read(found.slot),
                _ => crate::steering::Admin::default(),
            };
            let admin = (
                steering.drained,
                steering.weight.unwrap_or(found.remote.weight),
                steering.changed,
            );
            let health = self.slot_health(found.slot, found.remote.check.is_some());
            let mut row = remote_row(&found.remote, admin, health, snapshot.as_ref(), now);
            let name = self
                .plan
                .relay
                .discovered
                .get(found.name)
                .map_or("", |d| d.name.as_str());
            if !found.live {
                // No new session, whatever its checks or steering say.
                row["state"] = json!("retired");
                row["why"] = json!("no longer in its name's DNS answer");
            }
            row["discovered"] = json!({ "name": name, "retired": !found.live });
            remotes.push(row);
        }
        json!({ "ok": true, "remotes": remotes })
    }
}

/// One remote's entry in the `remotes` answer: `admin` its steering (drained, its
/// weight now, when it last changed), `health` its checks' state if it is checked.
fn remote_row(
    r: &tcprelay_plan::Remote,
    admin: (bool, u32, Option<SystemTime>),
    health: Option<crate::health::Health>,
    snapshot: Option<&Snapshot>,
    now: SystemTime,
) -> Value {
    let (drained, weight, steered) = admin;
    let key = RemoteKey::of(r);
    let entry = snapshot.and_then(|s| s.remotes.iter().find(|e| e.key == Some(key)));
    let dead = entry.filter(|e| {
        e.dead_marks > 0 && !health.is_some_and(|h| h.clears_marks_since(e.dead_since))
    });
    let seconds_since = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs();
    let dead_ago = dead.and_then(|e| e.dead_since).map(seconds_since);
    let steered_ago = steered.map(seconds_since);
    let health_ago = health.and_then(|h| h.changed).map(seconds_since);
    // The last change known: a dead mark, the operator's steering, or the checks
    // taking it down or bringing it up.
    let ago = [dead_ago, steered_ago, health_ago]
        .into_iter()
        .flatten()
        .min();
    let (state, why) = if drained {
        let since = steered_ago.map_or(String::new(), |s| format!(" {s} s ago"));
        ("drained", Some(format!("drained by the operator{since}")))
    } else if let Some(h) = health.filter(|h| h.down) {
        let last = h.last.map_or("failed", |l| l.name());
        (
            "down",
            Some(format!("health check: {last} ({} in a row)", h.streak)),
        )
    } else if let Some(e) = dead {
        let why = match dead_ago {
            Some(s) => format!("marked dead by {} worker(s) {s} s ago", e.dead_marks),
            None => format!("marked dead by {} worker(s)", e.dead_marks),
        };
        ("down", Some(why))
    } else {
        ("up", None)
    };
    let field = |f: fn(&crate::stats::RemoteEntry) -> u64| entry.map_or(0, f);
    json!({
        "remote": r.address.to_string(),
        "protocol": r.protocol.to_string().to_ascii_lowercase(),
        "state": state,
        "why": why,
        "sessions": field(|e| e.sessions),
        "connections": field(|e| e.connections),
        "failures": field(|e| e.connect_failures),
        "tls_failures": field(|e| e.tls_failures),
        "bytes_in": field(|e| e.bytes_to_remote),
        "bytes_out": field(|e| e.bytes_to_client),
        "weight": weight,
        "changed_ago_s": ago,
        "check": health.map(|h| check_json(&h, now)),
    })
}

impl Master {
    /// The answer to `plan`: the running plan, redacted, the certificates its
    /// generation loaded, and the sessions now (schema in docs/control.md).
    pub(super) fn plan_answer(&self) -> Value {
        plan_json(
            &self.plan,
            self.generation,
            &self.plan_hash,
            &self.certificates,
            self.sessions_now(),
        )
    }

    /// The sessions worker `w` holds now: what it last published on the load board
    /// (every turn of its loop), else what it last reported (its `Load` frames, sent
    /// when it fills up or has room again; at its end, the board's last count).
    fn held(&self, w: &Worker) -> u64 {
        match (&self.board, w.seat) {
            (Some(board), Some(seat)) => u64::from(board.held(seat)),
            _ => u64::from(w.sessions),
        }
    }

    /// The `sessions` object of the `plan` answer: the sessions by generation
    /// (newest first), by remote and by listener (the running plan's in its order,
    /// then those only older generations' plans still have).
    fn sessions_now(&self) -> Value {
        let now = Instant::now();
        let generations: Vec<Value> = self
            .generations_newest_first()
            .into_iter()
            .map(|generation| {
                let sessions: u64 = self
                    .workers
                    .values()
                    .filter(|w| w.generation == generation)
                    .map(|w| self.held(w))
                    .sum();
                json!({
                    "generation": generation,
                    "sessions": sessions,
                    "draining": generation != self.generation || self.stopping,
                    "drain_deadline_s": self
                        .drain_deadline(generation)
                        .map(|t| t.saturating_duration_since(now).as_secs()),
                })
            })
            .collect();
        let total: u64 = self.workers.values().map(|w| self.held(w)).sum();
        let snapshot = self.stats.as_ref().map(crate::stats::Registry::snapshot);
        let mut remotes: Vec<Value> = Vec::new();
        let mut listeners: Vec<Value> = Vec::new();
        let plan_remotes: Vec<RemoteKey> =
            self.plan.relay.remotes.iter().map(RemoteKey::of).collect();
        let plan_listeners: Vec<&tcprelay_plan::ListenAddress> = self
            .plan
            .spawnd
            .listeners
            .iter()
            .map(|l| &l.address)
            .collect();
        let entries = snapshot
            .as_ref()
            .map(|s| s.remotes.as_slice())
            .unwrap_or(&[]);
        for key in &plan_remotes {
            let active = entries
                .iter()
                .find(|e| e.key.as_ref() == Some(key))
                .map_or(0, |e| e.sessions);
            remotes.push(json!({ "remote": key.to_string(), "active": active, "in_plan": true }));
        }
        for entry in entries.iter().filter(|e| e.in_use) {
            if let Some(key) = entry.key.as_ref().filter(|k| !plan_remotes.contains(k)) {
                remotes.push(
                    json!({ "remote": key.to_string(), "active": entry.sessions, "in_plan": false }),
                );
            }
        }
        let entries = snapshot
            .as_ref()
            .map(|s| s.listeners.as_slice())
            .unwrap_or(&[]);
        for address in &plan_listeners {
            if listeners
                .iter()
                .any(|l| l["listener"] == address.to_string())
            {
                continue;
            }
            let active = entries
                .iter()
                .find(|e| e.key.as_ref() == Some(*address))
                .map_or(0, |e| e.sessions);
            listeners.push(
                json!({ "listener": address.to_string(), "active": active, "in_plan": true }),
            );
        }
        for entry in entries.iter().filter(|e| e.in_use) {
            if let Some(key) = entry.key.as_ref().filter(|k| !plan_listeners.contains(k)) {
                listeners.push(
                    json!({ "listener": key.to_string(), "active": entry.sessions, "in_plan": false }),
                );
            }
        }
        json!({
            "total": total,
            "generations": generations,
            "remotes": remotes,
            "listeners": listeners,
        })
    }
}

/// The `plan` answer for `plan`, the running generation's number, the plan's hash,
/// the certificates loaded and the `sessions` object: the plan with every secret
/// replaced by `<redacted>` ([`Plan::redacted`]), the certificates as PEM (no key
/// ever reaches [`Certificates`]).
fn plan_json(
    plan: &Plan,
    generation: u64,
    plan_hash: &str,
    certificates: &Certificates,
    sessions: Value,
) -> Value {
    let plan = match serde_json::to_value(plan.redacted()) {
        Ok(plan) => plan,
        // The plan's types all map to JSON; kept as an answer rather than a panic.
        Err(e) => {
            return json!({ "ok": false, "error": format!("cannot write the plan as JSON: {e}") })
        }
    };
    let certificates: Vec<Value> = certificates
        .files()
        .iter()
        .map(|f| {
            let uses: Vec<Value> = f
                .uses
                .iter()
                .map(|u| match u {
                    CertificateUse::Listener => json!({ "as": "listener" }),
                    CertificateUse::Ca(remote) => json!({ "as": "ca", "remote": remote }),
                    CertificateUse::Client(remote) => json!({ "as": "client", "remote": remote }),
                    CertificateUse::Route(route) => json!({ "as": "route", "route": route }),
                })
                .collect();
            json!({ "file": f.file, "pem": f.pem, "uses": uses })
        })
        .collect();
    json!({
        "ok": true,
        "format": tcprelay_plan::FORMAT_VERSION,
        "generation": generation,
        "plan_hash": plan_hash,
        "plan": plan,
        "certificates": certificates,
        "sessions": sessions,
    })
}

/// A checked remote's `check` object in the `remotes` answer (docs/control.md).
fn check_json(h: &crate::health::Health, now: SystemTime) -> Value {
    let results: serde_json::Map<String, Value> = crate::health::Outcome::ALL
        .iter()
        .zip(h.counts)
        .map(|(o, n)| (o.name().to_string(), json!(n)))
        .collect();
    json!({
        "state": if h.down { "down" } else { "up" },
        "last": h.last.map(|l| l.name()),
        "duration_us": h.last.map(|_| u64::try_from(h.duration.as_micros()).unwrap_or(u64::MAX)),
        "checked_ago_s": h.at.map(|t| now.duration_since(t).unwrap_or_default().as_secs()),
        "in_a_row": h.streak,
        "results": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls_context::test_certs::{self, Certs, PASSPHRASE};
    use tcprelay_plan::{RemoteTls, Secret};

    /// A plan with passphrases everywhere a plan holds one: the answer names none,
    /// says `<redacted>` in their place, and its `plan` reads back (serde) as the
    /// redacted plan, field for field: what `tcprelay-cc diff --running` compares.
    #[test]
    fn the_plan_answer_holds_no_passphrase_and_reads_back_as_the_redacted_plan() {
        let c = Certs::new();
        let remote = RemoteTls {
            sni: Some("localhost".into()),
            verify: true,
            ca_file: Some(c.path("cert.pem")),
            cert_file: Some(c.path("cert.pem")),
            key_file: Some(c.path("enc-key.pem")),
            passphrase: Some(Secret::new(PASSPHRASE)),
        };
        let relay = test_certs::relay(
            Some(c.tls("cert.pem", "enc-key.pem", Some(PASSPHRASE))),
            vec![Some(remote), None],
        );
        let plan = test_certs::plan(true, relay);
        let tls = crate::tls_context::for_plan(&plan).expect("the material loads");
        let answer = plan_json(&plan, 7, "0badc0de", &tls.certificates, json!({}));
        let line = answer.to_string();
        assert!(!line.contains(PASSPHRASE), "{line}");
        assert!(!line.contains("PRIVATE KEY"), "{line}");
        assert_eq!(line.matches("\"<redacted>\"").count(), 2, "{line}");
        assert_eq!(answer["ok"], true);
        assert_eq!(answer["format"], tcprelay_plan::FORMAT_VERSION);
        assert_eq!(answer["generation"], 7);
        assert_eq!(answer["plan_hash"], "0badc0de");
        let back: Plan = serde_json::from_value(answer["plan"].clone()).expect("a plan");
        assert_eq!(back, plan.redacted());
        // One file, with its three uses; the certificate as PEM.
        let files = answer["certificates"].as_array().expect("an array");
        assert_eq!(files.len(), 1, "{line}");
        assert_eq!(files[0]["file"], c.path("cert.pem"));
        assert_eq!(
            files[0]["pem"].as_str().unwrap().as_bytes(),
            c.cert.to_pem().unwrap().as_slice()
        );
        assert_eq!(
            files[0]["uses"],
            json!([
                { "as": "listener" },
                { "as": "ca", "remote": "127.0.0.1:1000/TCP" },
                { "as": "client", "remote": "127.0.0.1:1000/TCP" },
            ])
        );
    }
}
