//! The field-by-field comparison of two plans. Every struct of the plan is
//! destructured without `..` on the OLD side, so a field added to the plan does not
//! compile until it is compared here (and given the moment it takes effect, read
//! from the runtime: `listen.rs`'s `refresh` for kept sockets, `master/reload.rs` for
//! what the master applies, `main.rs` for what it reads at start only).

use std::fmt::Display;

use tcprelay_plan::{
    AcceptProxy, Balance, Check, Control, Expect, Keepalive, Listener, Metrics, Plan, Relay,
    Remote, RemoteTls, Route, RouteMode, Secret, Spawnd, Sticky, Syslog, Tls,
};
use tcprelay_plan::{Discovered, Lookup, Resolve};

use super::report::{Change, Effect, FieldChange, ItemChange};

/// The changes found, before certificates, ACL and sessions are added.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub listeners: Vec<ItemChange>,
    pub remotes: Vec<ItemChange>,
    pub discovered: Vec<ItemChange>,
    pub settings: Vec<FieldChange>,
    pub notes: Vec<String>,
}

/// Collects the fields that differ.
struct Fields<'a> {
    out: &'a mut Vec<FieldChange>,
    notes: &'a mut Vec<String>,
    /// Prefixed to the notes' subject: `remote 10.0.0.1:80/TCP: `.
    whose: String,
}

impl Fields<'_> {
    fn push(&mut self, field: &str, old: Option<String>, new: Option<String>, effect: Effect) {
        self.out.push(FieldChange {
            field: field.to_string(),
            old,
            new,
            effect,
            note: None,
        });
    }

    /// Compares one value; `show` writes it as a configuration would.
    fn value<T: PartialEq>(
        &mut self,
        field: &str,
        old: &T,
        new: &T,
        effect: Effect,
        show: impl Fn(&T) -> Option<String>,
    ) -> bool {
        if old == new {
            return false;
        }
        self.push(field, show(old), show(new), effect);
        true
    }

    /// Adds a note to the last change.
    fn note(&mut self, note: impl Into<String>) {
        if let Some(last) = self.out.last_mut() {
            last.note = Some(note.into());
        }
    }

    /// A passphrase: compared, never shown. A redacted one (the running relay's)
    /// cannot be compared: a note says so and it is not a change.
    fn secret(&mut self, field: &str, old: Option<&Secret>, new: Option<&Secret>, effect: Effect) {
        match (old, new) {
            (None, None) => {}
            (Some(a), Some(b)) if a.is_redacted() || b.is_redacted() => self.notes.push(format!(
                "{}{field}: not compared (the running relay does not give out secrets)",
                self.whose
            )),
            (Some(a), Some(b)) => {
                if a != b {
                    self.push(field, Some("set".into()), Some("changed".into()), effect);
                }
            }
            (a, b) => {
                let show = |s: Option<&Secret>| s.map(|_| "set".to_string());
                self.push(field, show(a), show(b), effect);
            }
        }
    }
}

fn text(v: &impl Display) -> Option<String> {
    Some(v.to_string())
}

fn opt<T: Display>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

fn yes_no(v: &bool) -> Option<String> {
    Some(if *v { "yes" } else { "no" }.to_string())
}

/// Seconds, with what 0 means for this field.
fn seconds(zero: &'static str) -> impl Fn(&u32) -> Option<String> {
    move |v| {
        Some(match v {
            0 => format!("0 ({zero})"),
            v => format!("{v} s"),
        })
    }
}

fn auto(what: &'static str) -> impl Fn(&u32) -> Option<String> {
    move |v| {
        Some(match v {
            0 => format!("0 (auto: {what})"),
            v => v.to_string(),
        })
    }
}

fn sticky(s: &Option<Sticky>) -> Option<String> {
    s.map(|s| {
        let Sticky { period_s, size } = s;
        format!("period {period_s} s size {size}")
    })
}

fn escaped(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// A listener's identity, as the runtime's `Bound::serves` sees it (address and
/// protocol): `127.0.0.1:80/TCP`; a Unix socket's is its path, `unix:/run/x.sock`
/// (with `/SCTP` after it in the unlikely case it says so).
pub(super) fn listener_key(l: &Listener) -> String {
    match (&l.address, l.protocol) {
        (tcprelay_plan::ListenAddress::Unix(_), tcprelay_plan::Protocol::Tcp) => {
            l.address.to_string()
        }
        (address, protocol) => format!("{address}/{protocol}"),
    }
}

/// The items of two lists paired: `(old index, new index)`, one side `None` for an
/// item only the other has.
type Pairs = Vec<(Option<usize>, Option<usize>)>;

/// Pairs the items of `old` and `new` with equal keys, in order (the n-th of a key
/// with the n-th): `(old index, new index)` for the kept ones.
fn pair<T>(old: &[T], new: &[T], key: impl Fn(&T) -> String) -> Pairs {
    let mut taken = vec![false; new.len()];
    let mut out = Vec::new();
    for (i, item) in old.iter().enumerate() {
        let k = key(item);
        let j = (0..new.len()).find(|&j| !taken[j] && key(&new[j]) == k);
        if let Some(j) = j {
            taken[j] = true;
        }
        out.push((Some(i), j));
    }
    for (j, _) in taken.iter().enumerate().filter(|(_, t)| !**t) {
        out.push((None, Some(j)));
    }
    out
}

/// Compares two plans (everything but the ACL and the certificates' contents).
pub(super) fn compare(old: &Plan, new: &Plan) -> Found {
    let Plan {
        // These name the input; the runtime uses none of them. Shown in the heading.
        source: _,
        spawnd_id: _,
        tcprelay_id: _,
        env,
        spawnd,
        relay,
    } = old;
    let mut found = Found::default();
    listeners(&spawnd.listeners, &new.spawnd.listeners, &mut found);
    remotes(relay, &new.relay, &mut found);
    discovered(relay, &new.relay, &mut found);
    let mut fields = Fields {
        out: &mut found.settings,
        notes: &mut found.notes,
        whose: String::new(),
    };
    setenv(env, &new.env, &mut fields);
    spawnd_fields(spawnd, &new.spawnd, &mut fields);
    relay_fields(relay, &new.relay, &mut fields);
    found
}

fn listeners(old: &[Listener], new: &[Listener], found: &mut Found) {
    let pairs = pair(old, new, listener_key);
    for &(i, j) in &pairs {
        let (key, change, socket, fields) = match (i, j) {
            (Some(i), Some(j)) => {
                let mut out = Vec::new();
                let mut fields = Fields {
                    out: &mut out,
                    notes: &mut found.notes,
                    whose: format!("listener {}: ", listener_key(&old[i])),
                };
                listener(&old[i], &new[j], &mut fields);
                if out.is_empty() {
                    continue;
                }
                (listener_key(&old[i]), Change::Changed, "kept", out)
            }
            (Some(i), None) => (listener_key(&old[i]), Change::Removed, "closed", Vec::new()),
            (None, Some(j)) => (listener_key(&new[j]), Change::Added, "bound", Vec::new()),
            (None, None) => continue,
        };
        found.listeners.push(ItemChange {
            key,
            change,
            old_index: i,
            new_index: j,
            socket: Some(socket),
            fields,
            active_sessions: None,
        });
    }
    order(
        "listener order",
        &pairs,
        old,
        listener_key,
        Effect::None,
        found,
    );
}

/// When the kept items come in another order: a change of its own.
fn order<T>(
    field: &str,
    pairs: &[(Option<usize>, Option<usize>)],
    old: &[T],
    key: impl Fn(&T) -> String,
    effect: Effect,
    found: &mut Found,
) {
    let mut kept: Vec<(usize, usize)> = pairs.iter().filter_map(|&(i, j)| Some((i?, j?))).collect();
    let old_order: Vec<String> = kept.iter().map(|&(i, _)| key(&old[i])).collect();
    kept.sort_by_key(|&(_, j)| j);
    let new_order: Vec<String> = kept.iter().map(|&(i, _)| key(&old[i])).collect();
    if old_order != new_order {
        found.settings.push(FieldChange {
            field: field.to_string(),
            old: Some(old_order.join(", ")),
            new: Some(new_order.join(", ")),
            effect,
            note: None,
        });
    }
}

fn keepalive(prefix: &str, old: &Keepalive, new: &Keepalive, effect: Effect, f: &mut Fields) {
    let Keepalive {
        count,
        idle,
        interval,
    } = old;
    f.value(
        &format!("{prefix}tcp keepalive count"),
        count,
        &new.count,
        effect,
        opt,
    );
    f.value(
        &format!("{prefix}tcp keepalive idle"),
        idle,
        &new.idle,
        effect,
        |v| v.map(|v| format!("{v} s")),
    );
    f.value(
        &format!("{prefix}tcp keepalive interval"),
        interval,
        &new.interval,
        effect,
        |v| v.map(|v| format!("{v} s")),
    );
}

/// A listener kept across the reload (same address and protocol).
fn listener(old: &Listener, new: &Listener, f: &mut Fields) {
    let Listener {
        address: _,
        protocol: _,
        tls,
        backlog,
        overload_backlog,
        realm,
        keepalive: ka,
        mode,
        accept_proxy,
        tls_versions,
        tls_auto,
        dscp,
        vrf,
        owner,
        group,
        bind_retry_delay,
        sticky: sticky_cache,
    } = old;
    f.value("tls", tls, &new.tls, Effect::NewSessions, yes_no);
    let versions = |v: &Vec<tcprelay_plan::TlsVersion>| {
        Some(if v.is_empty() {
            "TLSv1.2,TLSv1.3 (the default)".to_string()
        } else {
            v.iter().map(|v| v.name()).collect::<Vec<_>>().join(",")
        })
    };
    f.value(
        "tls versions",
        tls_versions,
        &new.tls_versions,
        Effect::NewSessions,
        versions,
    );
    f.value(
        "tls auto",
        tls_auto,
        &new.tls_auto,
        Effect::NewSessions,
        yes_no,
    );
    f.value("backlog", backlog, &new.backlog, Effect::Socket, text);
    f.value(
        "overload backlog",
        overload_backlog,
        &new.overload_backlog,
        Effect::Reload,
        text,
    );
    f.value("realm", realm, &new.realm, Effect::None, opt);
    keepalive("", ka, &new.keepalive, Effect::Socket, f);
    if f.value("mode", mode, &new.mode, Effect::Socket, |m| {
        m.map(|m| format!("{m:04o}"))
    }) && new.mode.is_none()
    {
        f.note("the kept socket file keeps its mode");
    }
    accept(accept_proxy, &new.accept_proxy, f);
    if f.value("dscp", dscp, &new.dscp, Effect::Socket, opt) {
        f.note("and the remote sockets of new sessions");
    }
    f.value("vrf", vrf, &new.vrf, Effect::Socket, opt);
    for (field, old, new) in [
        ("userid", owner, &new.owner),
        ("groupid", group, &new.group),
    ] {
        if f.value(field, old, new, Effect::Socket, opt) {
            f.note("a chown of the kept socket, which fails once privileges are dropped (logged; the reload goes on)");
        }
    }
    f.value(
        "bind retry delay",
        bind_retry_delay,
        &new.bind_retry_delay,
        Effect::Bind,
        |v| v.map(|v| format!("{v} s")),
    );
    f.value(
        "sticky cache",
        sticky_cache,
        &new.sticky,
        Effect::NewSessions,
        sticky,
    );
}

fn accept(old: &Option<AcceptProxy>, new: &Option<AcceptProxy>, f: &mut Fields) {
    let version = |a: &Option<AcceptProxy>| {
        Some(match a {
            None => "no".to_string(),
            Some(a) => format!("{:?}", a.version).to_lowercase(),
        })
    };
    let effect = Effect::NewSessions;
    match (old, new) {
        (Some(old), Some(new)) => {
            let AcceptProxy {
                version: v,
                from,
                timeout_ms,
            } = old;
            f.value("accept proxy", v, &new.version, effect, |v| {
                Some(format!("{v:?}").to_lowercase())
            });
            let nets = |n: &Vec<tcprelay_plan::Network>| {
                Some(if n.is_empty() {
                    "any peer".to_string()
                } else {
                    n.iter()
                        .map(tcprelay_plan::Network::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
            };
            f.value("accept proxy from", from, &new.from, effect, nets);
            f.value(
                "accept proxy timeout",
                timeout_ms,
                &new.timeout_ms,
                effect,
                |v| Some(format!("{v} ms")),
            );
        }
        _ => {
            f.value("accept proxy", old, new, effect, version);
        }
    }
}

fn setenv(old: &[(String, String)], new: &[(String, String)], f: &mut Fields) {
    // The last value of a name is the one set.
    let last = |env: &[(String, String)], name: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in old.iter().chain(new) {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let before = f.out.len();
    for name in names {
        let (a, b) = (last(old, name), last(new, name));
        if f.value(
            &format!("setenv {name}"),
            &a,
            &b,
            Effect::Reload,
            Clone::clone,
        ) && b.is_none()
        {
            f.note("stays set in the master, and so in new workers, until restart");
        }
    }
    if f.out.len() == before && old != new {
        let all = |env: &[(String, String)]| {
            Some(
                env.iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        };
        f.value(
            "setenv (order or repeats)",
            &old.to_vec(),
            &new.to_vec(),
            Effect::None,
            |e| all(e),
        );
    }
}

fn syslog(prefix: &str, old: &Syslog, new: &Syslog, effect: Effect, f: &mut Fields) {
    let Syslog {
        ident,
        facility,
        severity,
    } = old;
    f.value(
        &format!("{prefix}syslog ident"),
        ident,
        &new.ident,
        effect,
        |v| Some(v.clone()),
    );
    f.value(
        &format!("{prefix}syslog facility"),
        facility,
        &new.facility,
        effect,
        |v| Some(v.name().to_string()),
    );
    f.value(
        &format!("{prefix}syslog level"),
        severity,
        &new.severity,
        effect,
        |v| Some(v.name().to_string()),
    );
}

fn spawnd_fields(old: &Spawnd, new: &Spawnd, f: &mut Fields) {
    let Spawnd {
        listeners: _,
        users_min,
        users_max,
        servers_min,
        servers_max,
        background,
        pidfile,
        user,
        group,
        working_directory,
        acl: _,
        overload,
        keepalive: ka,
        single_process,
        syslog: log,
        debug,
        tcp_bufsize,
        sticky: sticky_cache,
        proctitle,
        control,
        metrics,
        log_format,
    } = old;
    f.value(
        "users min",
        users_min,
        &new.users_min,
        Effect::NewSessions,
        text,
    );
    f.value(
        "users max",
        users_max,
        &new.users_max,
        Effect::NewSessions,
        auto("the open-file limit"),
    );
    f.value(
        "servers min",
        servers_min,
        &new.servers_min,
        Effect::Reload,
        auto("one per processor, at least 2"),
    );
    f.value(
        "servers max",
        servers_max,
        &new.servers_max,
        Effect::Reload,
        auto("8, or servers min if higher"),
    );
    f.value(
        "background",
        background,
        &new.background,
        Effect::Restart,
        yes_no,
    );
    f.value("pidfile", pidfile, &new.pidfile, Effect::Restart, opt);
    f.value("user", user, &new.user, Effect::Restart, opt);
    f.value("group", group, &new.group, Effect::Restart, opt);
    f.value(
        "working directory",
        working_directory,
        &new.working_directory,
        Effect::Restart,
        opt,
    );
    f.value("overload", overload, &new.overload, Effect::Reload, |v| {
        Some(format!("{v:?}").to_lowercase())
    });
    keepalive("", ka, &new.keepalive, Effect::Socket, f);
    f.value(
        "single process",
        single_process,
        &new.single_process,
        Effect::None,
        yes_no,
    );
    syslog("spawnd section's ", log, &new.syslog, Effect::Restart, f);
    f.value("debug", debug, &new.debug, Effect::Restart, |v| {
        Some(format!("{v:#x}"))
    });
    if f.value(
        "tcp bufsize",
        tcp_bufsize,
        &new.tcp_bufsize,
        Effect::Socket,
        |v| v.map(|v| v.to_string()),
    ) {
        f.note(match new.tcp_bufsize {
            Some(_) => "and the remote sockets of new sessions",
            None => "kept sockets keep the sizes set (the kernel has no way back to auto-tuning); new sockets get the kernel's",
        });
    }
    f.value(
        "sticky cache",
        sticky_cache,
        &new.sticky,
        Effect::NewSessions,
        sticky,
    );
    f.value("proctitle", proctitle, &new.proctitle, Effect::Reload, opt);
    control_fields(control, &new.control, f);
    f.value("metrics", metrics, &new.metrics, Effect::Reload, |m| {
        Some(match m {
            None => "no".to_string(),
            Some(m) => {
                let Metrics { address, port } = m;
                std::net::SocketAddr::new(*address, *port).to_string()
            }
        })
    });
    if f.value(
        "log format",
        log_format,
        &new.log_format,
        Effect::NewSessions,
        text,
    ) {
        f.note("the new workers' lines; the master's own at restart");
    }
}

fn control_fields(old: &Option<Control>, new: &Option<Control>, f: &mut Fields) {
    let effect = Effect::Reload;
    match (old, new) {
        (Some(old), Some(new)) => {
            let Control { path, mode, group } = old;
            f.value("control path", path, &new.path, effect, |p| {
                Some(p.clone().unwrap_or_else(|| "the default path".to_string()))
            });
            f.value("control mode", mode, &new.mode, effect, |m| {
                Some(format!("{m:04o}"))
            });
            f.value("control group", group, &new.group, effect, opt);
        }
        _ => {
            f.value("control", old, new, effect, |c| {
                Some(match c {
                    None => "no".to_string(),
                    Some(c) => c
                        .path
                        .clone()
                        .unwrap_or_else(|| "the default path".to_string()),
                })
            });
        }
    }
}

fn relay_fields(old: &Relay, new: &Relay, f: &mut Fields) {
    let Relay {
        remotes: _,
        local_address,
        rebalance,
        retire,
        idle_timeout,
        silent_timeout,
        connect_timeout,
        tls_handshake_timeout,
        half_close_timeout,
        drain_timeout,
        drain_generations,
        connection_log,
        syslog: log,
        tls,
        balance,
        routes,
        discovered,
        resolve,
    } = old;
    let n = Effect::NewSessions;
    // Issue 18's settings, each shown whole until its own comparison is written.
    if f.value("balance", balance, &new.balance, n, |v| Some(v.to_string())) {
        f.note("sessions open go on with their remote; new sessions are balanced the new way");
    }
    route_fields(routes, &new.routes, f);
    // Compared by name in `discovered` (the list of `compare`).
    let _ = discovered;
    resolve_fields(resolve, &new.resolve, f);
    f.value("local address", local_address, &new.local_address, n, opt);
    f.value("rebalance", rebalance, &new.rebalance, n, opt);
    f.value("retire", retire, &new.retire, n, opt);
    f.value(
        "idle timeout",
        idle_timeout,
        &new.idle_timeout,
        n,
        seconds("never"),
    );
    f.value(
        "silent timeout",
        silent_timeout,
        &new.silent_timeout,
        n,
        seconds("never"),
    );
    f.value(
        "connect timeout",
        connect_timeout,
        &new.connect_timeout,
        n,
        seconds("never"),
    );
    f.value(
        "tls handshake timeout",
        tls_handshake_timeout,
        &new.tls_handshake_timeout,
        n,
        seconds("never"),
    );
    f.value(
        "half close timeout",
        half_close_timeout,
        &new.half_close_timeout,
        n,
        seconds("never"),
    );
    if f.value(
        "drain timeout",
        drain_timeout,
        &new.drain_timeout,
        Effect::Reload,
        seconds("until they end"),
    ) {
        f.note("NEW's value bounds the generation this reload replaces (and brings older drains' deadlines forward)");
    }
    if f.value(
        "drain generations",
        drain_generations,
        &new.drain_generations,
        Effect::Reload,
        text,
    ) {
        f.note("NEW's value caps the old generations left draining by this reload");
    }
    f.value(
        "connection log",
        connection_log,
        &new.connection_log,
        n,
        yes_no,
    );
    syslog("", log, &new.syslog, n, f);
    listener_tls(tls, &new.tls, f);
}

/// A route as the diff names it: by its server names (the same names in another
/// order are the same route), `route (default)` for the one without.
fn route_key(route: &Route) -> String {
    if route.names.is_empty() {
        return "route (default)".to_string();
    }
    let mut names = route.names.clone();
    names.sort();
    format!("route {}", names.join(" "))
}

/// SNI routes compared by their names: added, removed, and for the same names
/// their mode, certificate and balance. The new workers route by the new plan
/// (new sessions); a route's certificate is loaded by the master at the reload.
fn route_fields(old: &[Route], new: &[Route], f: &mut Fields) {
    let n = Effect::NewSessions;
    let mode = |m: &RouteMode| {
        Some(match m {
            RouteMode::Terminate => "terminate".to_string(),
            RouteMode::Passthrough => "passthrough".to_string(),
        })
    };
    for o in old {
        let key = route_key(o);
        let Some(m) = new.iter().find(|r| route_key(r) == key) else {
            f.push(&key, mode(&o.mode), None, n);
            continue;
        };
        let Route {
            names: _,
            mode: old_mode,
            tls,
            balance,
        } = o;
        f.value(&format!("{key} mode"), old_mode, &m.mode, n, mode);
        // The file (a passphrase of the running relay is redacted: not compared).
        let file = |t: &Option<Tls>| t.as_ref().map(|t| t.cert_file.clone());
        f.value(
            &format!("{key} tls cert-file"),
            &file(tls),
            &file(&m.tls),
            Effect::Reload,
            |p| Some(p.clone().unwrap_or_else(|| "the section's".to_string())),
        );
        f.value(&format!("{key} balance"), balance, &m.balance, n, |b| {
            Some(match b {
                None => "the section's".to_string(),
                Some(Balance::LeastConn) => "least-conn".to_string(),
                Some(Balance::Source) => "source".to_string(),
                Some(Balance::SourceSticky) => "source sticky".to_string(),
            })
        });
    }
    for m in new {
        let key = route_key(m);
        if !old.iter().any(|r| route_key(r) == key) {
            f.push(&key, None, mode(&m.mode), n);
        }
    }
}

/// The listeners' TLS material (the tcprelay section's `tls cert-file`...): the
/// master builds a new TLS context from the files at the reload.
fn listener_tls(old: &Option<Tls>, new: &Option<Tls>, f: &mut Fields) {
    let effect = Effect::Reload;
    let none = Tls {
        cert_file: String::new(),
        key_file: String::new(),
        passphrase: None,
    };
    let Tls {
        cert_file,
        key_file,
        passphrase,
    } = old.as_ref().unwrap_or(&none);
    let new_tls = new.as_ref().unwrap_or(&none);
    let path = |p: &String| (!p.is_empty()).then(|| p.clone());
    f.value("tls cert-file", cert_file, &new_tls.cert_file, effect, path);
    f.value("tls key-file", key_file, &new_tls.key_file, effect, path);
    f.secret(
        "tls passphrase",
        passphrase.as_ref(),
        new_tls.passphrase.as_ref(),
        effect,
    );
}

/// The items of two lists paired by `key` ([`pair`]): each added, removed, or
/// changed as `compare` finds (the notes of a kept one say `what KEY: `), and the
/// pairs, in order.
fn keyed_changes<T>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    what: &str,
    notes: &mut Vec<String>,
    compare: impl Fn(usize, usize, &mut Fields),
) -> (Vec<ItemChange>, Pairs) {
    let pairs = pair(old, new, &key);
    let mut changes = Vec::new();
    for &(i, j) in &pairs {
        let (key, change, fields) = match (i, j) {
            (Some(i), Some(j)) => {
                let mut out = Vec::new();
                let mut fields = Fields {
                    out: &mut out,
                    notes: &mut *notes,
                    whose: format!("{what} {}: ", key(&old[i])),
                };
                compare(i, j, &mut fields);
                if out.is_empty() {
                    continue;
                }
                (key(&old[i]), Change::Changed, out)
            }
            (Some(i), None) => (key(&old[i]), Change::Removed, Vec::new()),
            (None, Some(j)) => (key(&new[j]), Change::Added, Vec::new()),
            (None, None) => continue,
        };
        changes.push(ItemChange {
            key,
            change,
            old_index: i,
            new_index: j,
            socket: None,
            fields,
            active_sessions: None,
        });
    }
    (changes, pairs)
}

/// The route a remote serves, by the route's names ([`route_key`]): a route keeps
/// its remotes whatever the order of the routes in the file.
fn route_of(relay: &Relay, route: Option<u32>) -> String {
    route
        .and_then(|i| relay.routes.get(i as usize))
        .map_or("the default route".to_string(), route_key)
}

/// A remote's route, compared by the route's names.
fn remote_route(old: &Relay, new: &Relay, of: (&Remote, &Remote), f: &mut Fields) {
    f.value(
        "route",
        &route_of(old, of.0.route),
        &route_of(new, of.1.route),
        Effect::NewSessions,
        |label| Some(label.clone()),
    );
}

fn remotes(old_relay: &Relay, new_relay: &Relay, found: &mut Found) {
    let (old, new) = (&old_relay.remotes, &new_relay.remotes);
    let compare = |i: usize, j: usize, f: &mut Fields| {
        remote_route(old_relay, new_relay, (&old[i], &new[j]), f);
        remote(&old[i], &new[j], f);
    };
    let (changes, pairs) =
        keyed_changes(old, new, Remote::key, "remote", &mut found.notes, compare);
    found.remotes.extend(changes);
    order(
        "remote order",
        &pairs,
        old,
        Remote::key,
        Effect::NewSessions,
        found,
    );
    if let Some(last) = found
        .settings
        .last_mut()
        .filter(|c| c.field == "remote order")
    {
        last.note = Some("the first in order wins a tie of the balancing".to_string());
    }
}

/// A discovered name's identity: `NAME:PORT/PROTOCOL (A/AAAA)`, `NAME/PROTOCOL (SRV)`.
pub(super) fn discovered_key(d: &Discovered) -> String {
    match d.lookup {
        Lookup::Address { port } => format!("{}:{port}/{} (A/AAAA)", d.name, d.template.protocol),
        Lookup::Srv => format!("{}/{} (SRV)", d.name, d.template.protocol),
    }
}

/// The names resolved at run time, paired by name, lookup and protocol; a kept one's
/// template compared as a remote (its settings reach the remotes found for it with
/// the new generation). The order matters to nothing: the runtime appends what it
/// finds.
fn discovered(old_relay: &Relay, new_relay: &Relay, found: &mut Found) {
    let (old, new) = (&old_relay.discovered, &new_relay.discovered);
    let compare = |i: usize, j: usize, fields: &mut Fields| {
        let Discovered {
            name: _,
            lookup: _,
            template,
        } = &old[i];
        remote_route(old_relay, new_relay, (template, &new[j].template), fields);
        remote(template, &new[j].template, fields);
    };
    let (changes, _) = keyed_changes(old, new, discovered_key, "name", &mut found.notes, compare);
    found.discovered.extend(changes);
}

/// The resolver settings: the new generation's resolver process uses them, and
/// resolves every name again before the reload completes.
fn resolve_fields(old: &Resolve, new: &Resolve, f: &mut Fields) {
    let Resolve {
        nameservers,
        timeout_ms,
        attempts,
        interval_s,
        interval_min_s,
        interval_max_s,
        start_empty,
    } = old;
    let e = Effect::Reload;
    f.value(
        "resolvers nameserver",
        nameservers,
        &new.nameservers,
        e,
        |v| {
            Some(if v.is_empty() {
                "the system's (/etc/resolv.conf)".to_string()
            } else {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        },
    );
    let ms = |v: &u32| Some(format!("{v} ms"));
    f.value("resolvers timeout", timeout_ms, &new.timeout_ms, e, ms);
    f.value("resolvers attempts", attempts, &new.attempts, e, text);
    f.value("resolve interval", interval_s, &new.interval_s, e, |v| {
        Some(v.map_or("the records' TTL".to_string(), |s| format!("{s} s")))
    });
    let secs = |v: &u32| Some(format!("{v} s"));
    f.value(
        "resolve interval min",
        interval_min_s,
        &new.interval_min_s,
        e,
        secs,
    );
    f.value(
        "resolve interval max",
        interval_max_s,
        &new.interval_max_s,
        e,
        secs,
    );
    f.value("resolve start", start_empty, &new.start_empty, e, |v| {
        Some(if *v { "wait" } else { "fail" }.to_string())
    });
}

fn remote(old: &Remote, new: &Remote, f: &mut Fields) {
    let Remote {
        address: _,
        protocol: _,
        weight,
        send_proxy,
        tls,
        check,
        // By the route's names, which this remote alone does not know: remote_route.
        route: _,
    } = old;
    if f.value("weight", weight, &new.weight, Effect::NewSessions, text) {
        f.note("an operator's `ctl drain` or `ctl weight` of this remote ends: it gets its plan's weight, enabled");
    }
    f.value(
        "send proxy",
        send_proxy,
        &new.send_proxy,
        Effect::NewSessions,
        |v| Some(v.map_or("no".to_string(), |v| format!("{v:?}").to_lowercase())),
    );
    remote_tls(tls, &new.tls, f);
    health(check, &new.check, f);
}

fn remote_tls(old: &Option<RemoteTls>, new: &Option<RemoteTls>, f: &mut Fields) {
    let effect = Effect::NewSessions;
    let (Some(old), Some(new)) = (old, new) else {
        // TLS turned on or off: the settings of the side that has it.
        let show = |t: &Option<RemoteTls>| {
            Some(match t {
                None => "no".to_string(),
                Some(t) => format!(
                    "yes (sni {}, verify {}, ca-file {}, cert-file {})",
                    t.sni.as_deref().unwrap_or("none"),
                    if t.verify { "yes" } else { "no" },
                    t.ca_file.as_deref().unwrap_or("the system's store"),
                    t.cert_file.as_deref().unwrap_or("none"),
                ),
            })
        };
        f.value("tls", old, new, effect, show);
        return;
    };
    let RemoteTls {
        sni,
        verify,
        ca_file,
        cert_file,
        key_file,
        passphrase,
    } = old;
    f.value("tls sni", sni, &new.sni, effect, opt);
    f.value("tls verify", verify, &new.verify, effect, yes_no);
    f.value("tls ca-file", ca_file, &new.ca_file, effect, |v| {
        Some(
            v.clone()
                .unwrap_or_else(|| "the system's store".to_string()),
        )
    });
    f.value("tls cert-file", cert_file, &new.cert_file, effect, opt);
    f.value("tls key-file", key_file, &new.key_file, effect, opt);
    f.secret(
        "tls passphrase",
        passphrase.as_ref(),
        new.passphrase.as_ref(),
        effect,
    );
}

fn health(old: &Option<Check>, new: &Option<Check>, f: &mut Fields) {
    let effect = Effect::Reload;
    let (Some(old), Some(new)) = (old, new) else {
        f.value("check", old, new, effect, |c| {
            Some(c.as_ref().map_or("no".to_string(), |c| {
                format!(
                    "interval {} ms timeout {} ms rise {} fall {}",
                    c.interval_ms, c.timeout_ms, c.rise, c.fall
                )
            }))
        });
        return;
    };
    let Check {
        interval_ms,
        timeout_ms,
        rise,
        fall,
        send,
        expect,
        tls,
    } = old;
    let ms = |v: &u32| Some(format!("{v} ms"));
    f.value("check interval", interval_ms, &new.interval_ms, effect, ms);
    f.value("check timeout", timeout_ms, &new.timeout_ms, effect, ms);
    f.value("check rise", rise, &new.rise, effect, text);
    f.value("check fall", fall, &new.fall, effect, text);
    f.value("check send", send, &new.send, effect, |v| {
        v.as_deref().map(escaped)
    });
    f.value("check expect", expect, &new.expect, effect, |v| {
        v.as_ref().map(|e| match e {
            Expect::Bytes(b) => escaped(b),
            Expect::Regex(r) => format!("regex {r:?}"),
        })
    });
    f.value("check tls", tls, &new.tls, effect, yes_no);
}
