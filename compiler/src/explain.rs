//! `tcprelay-cc explain`: a plan file in readable form. Secrets are printed through
//! their `Display`, which redacts them, so no code path here can leak one.

use std::fmt::Write;
use tcprelay_plan::{decode, Check, Expect, Keepalive, ListenAddress, Plan, Remote};

/// Decodes and validates `bytes` and renders the plan; the error is one line.
pub fn explain(bytes: &[u8]) -> Result<String, String> {
    let (header, plan) = decode(bytes).map_err(|e| e.to_string())?;
    plan.validate()
        .map_err(|e| format!("plan fails validation: {e}"))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan format {} written by tcprelay-cc {}{}",
        header.format_version,
        header.compiler_version,
        if header.has_secret {
            " (holds a secret)"
        } else {
            ""
        }
    );
    render(&plan, &mut out);
    Ok(out)
}

fn keepalive(k: &Keepalive) -> String {
    let show = |v: Option<u32>| v.map_or("default".to_string(), |v| v.to_string());
    format!(
        "count {}, idle {}, interval {}",
        show(k.count),
        show(k.idle),
        show(k.interval)
    )
}

fn render(plan: &Plan, out: &mut String) {
    let s = &plan.spawnd;
    let r = &plan.relay;
    let _ = writeln!(out, "source: {}", plan.source);
    let _ = writeln!(
        out,
        "sections: spawnd = {}, tcprelay = {}",
        plan.spawnd_id, plan.tcprelay_id
    );
    for (name, value) in &plan.env {
        let _ = writeln!(out, "setenv {name} = {value}");
    }
    let _ = writeln!(out, "\nspawnd:");
    for (i, l) in s.listeners.iter().enumerate() {
        let address = match &l.address {
            ListenAddress::Inet(sa) => sa.to_string(),
            ListenAddress::Unix(path) => format!("unix:{path}"),
        };
        let _ = write!(
            out,
            "  listener #{}: {address} {}{} backlog {} overload backlog {}",
            i + 1,
            l.protocol,
            if l.tls { " tls" } else { "" },
            l.backlog,
            l.overload_backlog
        );
        if let Some(mode) = l.mode {
            let _ = write!(out, " mode {mode:04o}");
        }
        let _ = writeln!(out, ", keepalive {}", keepalive(&l.keepalive));
        if let Some(p) = &l.accept_proxy {
            let from: Vec<String> = p
                .from
                .iter()
                .map(|n| format!("{}/{}", n.address, n.prefix))
                .collect();
            let _ = writeln!(
                out,
                "    accept proxy {} from {}, timeout {} ms",
                format!("{:?}", p.version).to_lowercase(),
                if from.is_empty() {
                    "any peer".to_string()
                } else {
                    from.join(" ")
                },
                p.timeout_ms
            );
        }
        if let Some(line) = listener_extras(l) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let auto = |n: u32, what: &str| {
        if n == 0 {
            format!("auto ({what})")
        } else {
            n.to_string()
        }
    };
    let _ = writeln!(
        out,
        "  users min {} max {}",
        s.users_min,
        auto(s.users_max, "the open-file limit")
    );
    let _ = writeln!(
        out,
        "  servers min {} max {}",
        auto(s.servers_min, "one per processor, at least 2"),
        auto(s.servers_max, "8 or servers min")
    );
    let _ = writeln!(
        out,
        "  background {}, single process {}",
        s.background, s.single_process
    );
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let _ = writeln!(
        out,
        "  pidfile {}, user {}, group {}, working directory {}",
        opt(&s.pidfile),
        opt(&s.user),
        opt(&s.group),
        opt(&s.working_directory)
    );
    for rule in &s.acl {
        let _ = writeln!(out, "  acl {rule}");
    }
    let _ = writeln!(
        out,
        "  overload {:?}, debug {:#x}, keepalive {}",
        s.overload,
        s.debug,
        keepalive(&s.keepalive)
    );
    let _ = writeln!(
        out,
        "  tcp bufsize {}, sticky cache {}, proctitle {}",
        s.tcp_bufsize
            .map_or_else(|| "default".to_string(), |n| n.to_string()),
        sticky(s.sticky),
        opt(&s.proctitle)
    );
    let _ = writeln!(
        out,
        "  syslog ident {}, facility {}, severity {}",
        s.syslog.ident,
        s.syslog.facility.name(),
        s.syslog.severity.name()
    );
    let _ = writeln!(
        out,
        "  control socket {}",
        match &s.control {
            None => "none".to_string(),
            Some(c) => format!(
                "{} mode {:04o}{}",
                c.path
                    .as_deref()
                    .unwrap_or("default (the runtime directory's ctl)"),
                c.mode,
                c.group
                    .as_ref()
                    .map_or(String::new(), |g| format!(" group {g}"))
            ),
        }
    );
    let _ = writeln!(
        out,
        "  metrics {}, log format {}",
        s.metrics
            .map_or("none".to_string(), |m| m.socket_addr().to_string()),
        s.log_format
    );
    let _ = writeln!(out, "\ntcprelay:");
    for (i, remote) in r.remotes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  remote #{}: {} {} weight {}",
            i + 1,
            remote.address,
            remote.protocol,
            remote.weight
        );
        if let (Some(route), false) = (remote.route, r.routes.is_empty()) {
            let _ = writeln!(out, "    of route #{}", route + 1);
        }
        remote_extras(remote, out);
    }
    for (i, route) in r.routes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  route #{}: {}, {}{}{}",
            i + 1,
            if route.names.is_empty() {
                "the default route".to_string()
            } else {
                format!("sni {}", route.names.join(" "))
            },
            match route.mode {
                tcprelay_plan::RouteMode::Terminate => "terminate",
                tcprelay_plan::RouteMode::Passthrough => "passthrough",
            },
            route.tls.as_ref().map_or(String::new(), |t| format!(
                ", tls cert-file {}",
                t.cert_file
            )),
            route
                .balance
                .map_or(String::new(), |b| format!(", balance {b:?}")),
        );
    }
    if !r.routes.is_empty() && tcprelay_plan::sni::default_route(r) == Some(None) {
        let _ = writeln!(
            out,
            "  the remotes of no route are the default route (clients without SNI or with a name no route has)"
        );
    }
    discovered(r, out);
    let show = |v: Option<u64>| v.map_or("unset".to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "  local address {}",
        r.local_address.map_or("-".to_string(), |a| a.to_string())
    );
    let _ = writeln!(
        out,
        "  balance {}{}",
        r.balance,
        match r.balance {
            tcprelay_plan::Balance::LeastConn => "",
            tcprelay_plan::Balance::Source => " (a consistent hash of the client's address)",
            tcprelay_plan::Balance::SourceSticky =>
                " (the sticky cache's remote, else a consistent hash of the client's address)",
        }
    );
    let _ = writeln!(
        out,
        "  rebalance {}, retire {}, idle timeout {}, silent timeout {}",
        show(r.rebalance),
        show(r.retire),
        seconds(r.idle_timeout),
        seconds(r.silent_timeout)
    );
    let _ = writeln!(
        out,
        "  connect timeout {}, tls handshake timeout {}, half close timeout {}",
        seconds(r.connect_timeout),
        seconds(r.tls_handshake_timeout),
        seconds(r.half_close_timeout)
    );
    let _ = writeln!(
        out,
        "  drain timeout {}, drain generations {}, connection log {}",
        seconds(r.drain_timeout),
        r.drain_generations,
        if r.connection_log { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "  syslog ident {}, facility {}, severity {}",
        r.syslog.ident,
        r.syslog.facility.name(),
        r.syslog.severity.name()
    );
    if let Some(tls) = &r.tls {
        let _ = writeln!(
            out,
            "  tls cert-file {}, key-file {}, passphrase {}",
            tls.cert_file,
            tls.key_file,
            tls.passphrase
                .as_ref()
                .map_or("-".to_string(), |p| p.to_string())
        );
    }
}

/// The names resolved at run time, each with its template's settings, and the
/// resolver settings (when there is a name, or they are not the defaults).
fn discovered(r: &tcprelay_plan::Relay, out: &mut String) {
    use tcprelay_plan::{Lookup, Resolve};
    for (i, d) in r.discovered.iter().enumerate() {
        let t = &d.template;
        let _ = match d.lookup {
            Lookup::Address { port } => writeln!(
                out,
                "  discovered #{}: {} (A and AAAA records, resolved at run time) port {port} {} weight {}",
                i + 1,
                d.name,
                t.protocol,
                t.weight
            ),
            Lookup::Srv => writeln!(
                out,
                "  discovered #{}: {} (SRV records, resolved at run time: ports and weights from the records) {}",
                i + 1,
                d.name,
                t.protocol
            ),
        };
        remote_extras(t, out);
    }
    let v = &r.resolve;
    if r.discovered.is_empty() && *v == Resolve::default() {
        return;
    }
    let servers = if v.nameservers.is_empty() {
        "the system's (/etc/resolv.conf)".to_string()
    } else {
        let list: Vec<String> = v.nameservers.iter().map(|n| n.to_string()).collect();
        list.join(", ")
    };
    let interval = v.interval_s.map_or_else(
        || {
            format!(
                "the records' TTL within {}..{} s",
                v.interval_min_s, v.interval_max_s
            )
        },
        |s| format!("every {s} s"),
    );
    let _ = writeln!(
        out,
        "  resolvers {servers}, timeout {} ms, attempts {}",
        v.timeout_ms, v.attempts
    );
    let _ = writeln!(
        out,
        "  resolve interval {interval}, start {}",
        if v.start_empty {
            "wait (a name not resolved yet has no remotes)"
        } else {
            "fail (every name must resolve)"
        }
    );
}

/// A remote's PROXY header, TLS and health check, a line each when set.
fn remote_extras(remote: &Remote, out: &mut String) {
    if let Some(v) = remote.send_proxy {
        let _ = writeln!(out, "    send proxy {}", format!("{v:?}").to_lowercase());
    }
    if let Some(tls) = &remote.tls {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        let _ = writeln!(
            out,
            "    tls sni {}, verify {}, ca-file {}, cert-file {}, key-file {}, passphrase {}",
            show(&tls.sni),
            if tls.verify { "yes" } else { "no" },
            tls.ca_file.as_deref().unwrap_or("- (the system's store)"),
            show(&tls.cert_file),
            show(&tls.key_file),
            tls.passphrase
                .as_ref()
                .map_or("-".to_string(), |p| p.to_string())
        );
    }
    if let Some(c) = &remote.check {
        let _ = writeln!(out, "    check {}", check(c));
    }
}

fn check(c: &Check) -> String {
    let bytes = |b: &[u8]| format!("\"{}\"", b.escape_ascii());
    let mut s = format!(
        "interval {} ms, timeout {} ms, rise {}, fall {}, tls {}",
        c.interval_ms,
        c.timeout_ms,
        c.rise,
        c.fall,
        if c.tls { "yes" } else { "no" }
    );
    if let Some(send) = &c.send {
        let _ = write!(s, ", send {}", bytes(send));
    }
    match &c.expect {
        Some(Expect::Bytes(b)) => {
            let _ = write!(s, ", expect {}", bytes(b));
        }
        Some(Expect::Regex(r)) => {
            let _ = write!(s, ", expect regex {r:?}");
        }
        None => {}
    }
    s
}

/// A timeout in seconds, 0 = never.
/// A sticky cache's settings, or `off`.
fn sticky(s: Option<tcprelay_plan::Sticky>) -> String {
    s.map_or_else(
        || "off".to_string(),
        |s| format!("period {} s size {}", s.period_s, s.size),
    )
}

/// A listener's settings beyond its address, when it has any: TLS versions, DSCP,
/// VRF, owner, bind retry and sticky cache.
fn listener_extras(l: &tcprelay_plan::Listener) -> Option<String> {
    let mut parts = Vec::new();
    if l.tls && (l.tls_auto || !l.tls_versions.is_empty()) {
        let mut v: Vec<&str> = l.tls_versions.iter().map(|v| v.name()).collect();
        if v.is_empty() {
            v = vec!["TLSv1.2", "TLSv1.3"];
        }
        parts.push(format!(
            "tls {}{}",
            v.join(","),
            if l.tls_auto { " or plain (auto)" } else { "" }
        ));
    }
    if let Some(d) = l.dscp {
        parts.push(format!("dscp {d}"));
    }
    if let Some(v) = &l.vrf {
        parts.push(format!("vrf {v}"));
    }
    if l.owner.is_some() || l.group.is_some() {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        parts.push(format!("owner {} group {}", show(&l.owner), show(&l.group)));
    }
    if let Some(d) = l.bind_retry_delay {
        parts.push(format!("bind retry every {d} s"));
    }
    if l.sticky.is_some() {
        parts.push(format!("sticky cache {}", sticky(l.sticky)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn seconds(secs: u32) -> String {
    if secs == 0 {
        "never".to_string()
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_familys_listener_and_relay_settings_are_shown() {
        let src = "debug = NET\nproctitle = edge\nid = spawnd { tcp bufsize = 4k sticky cache period = 60\n\
                   listen = { port = 1 tls = TLSv1.3,auto dscp = 46 vrf = blue bind retry delay = 5 sticky cache period = 9 sticky cache size = 8 }\n\
                   listen = { path = /tmp/s userid = nobody } }\n\
                   id = tcprelay { tls cert-file = /nonexistent/c.pem remote = { address = 10.0.0.1 port = 2 } }";
        let (plan, diags) = crate::compile(src, "x.cfg", &crate::Selection::default());
        let plan = plan.unwrap_or_else(|| panic!("{diags:#?}"));
        let text = explain(&tcprelay_plan::encode(&plan, crate::VERSION)).expect("explains");
        for line in [
            "    tls TLSv1.3 or plain (auto), dscp 46, vrf blue, bind retry every 5 s, sticky cache period 9 s size 8",
            "    owner nobody group -",
            "  tcp bufsize 4096, sticky cache period 60 s size 1024, proctitle edge",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(text.contains(", debug 0x1000, "), "{text}");
    }

    #[test]
    fn routes_and_their_remotes_are_shown() {
        let src = "id = spawnd { listen = { port = 1 tls = yes } }\n\
                   id = tcprelay { route = { sni = a.example sni = *.b.example mode = passthrough remote = { address = 10.0.0.1 port = 2 } }\n\
                   route = { mode = passthrough remote = { address = 10.0.0.2 port = 2 } } }";
        let (plan, diags) = crate::compile(src, "x.cfg", &crate::Selection::default());
        let plan = plan.unwrap_or_else(|| panic!("{diags:#?}"));
        let text = explain(&tcprelay_plan::encode(&plan, crate::VERSION)).expect("explains");
        for line in [
            "    of route #1",
            "    of route #2",
            "  route #1: sni a.example *.b.example, passthrough",
            "  route #2: the default route, passthrough",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn proxy_tls_and_checks_are_shown_and_the_remote_passphrase_redacted() {
        let src = "id = spawnd { listen = { port = 1 haproxy = yes accept proxy from = 10.0.0.0/8 } }\n\
                   id = tcprelay { remote = { address = 10.0.0.1 port = 2 send proxy = v2\n\
                   tls = yes tls verify = no tls cert-file = /nonexistent/c.pem tls passphrase = S3cr3tPa55\n\
                   check = { send = \"PING\\r\\n\" expect = \"+PONG\" } } }";
        let (plan, diags) = crate::compile(src, "x.cfg", &crate::Selection::default());
        let plan = plan.unwrap_or_else(|| panic!("{diags:#?}"));
        let text = explain(&tcprelay_plan::encode(&plan, crate::VERSION)).expect("explains");
        for line in [
            "    accept proxy any from 10.0.0.0/8, timeout 5000 ms",
            "    send proxy v2",
            "    tls sni -, verify no, ca-file - (the system's store), cert-file /nonexistent/c.pem, key-file /nonexistent/c.pem, passphrase <redacted>",
            "    check interval 2000 ms, timeout 1000 ms, rise 2, fall 3, tls yes, send \"PING\\r\\n\", expect \"+PONG\"",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(!text.contains("S3cr3tPa55"), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "  tcp bufsize default, sticky cache off, proctitle -"),
            "{text}"
        );
        assert!(text.starts_with("plan format 4 written by tcprelay-cc"));
        assert!(text.lines().next().unwrap().ends_with("(holds a secret)"));
    }

    #[test]
    fn discovered_names_and_the_resolver_settings_are_shown() {
        let src = "id = spawnd { listen = { port = 1 } }\n\
                   id = tcprelay { resolvers = { nameserver = 127.0.0.1:5353 attempts = 3 } resolve interval = 30\n\
                   remote = { address = db.example port = 5432 weight = 2 tls = yes }\n\
                   remote = { srv = _redis._tcp.example.com send proxy = v1 } }";
        let (plan, diags) = crate::compile(src, "x.cfg", &crate::Selection::default());
        let plan = plan.unwrap_or_else(|| panic!("{diags:#?}"));
        let text = explain(&tcprelay_plan::encode(&plan, crate::VERSION)).expect("explains");
        for line in [
            "  discovered #1: db.example (A and AAAA records, resolved at run time) port 5432 TCP weight 2",
            "    tls sni db.example, verify yes, ca-file - (the system's store), cert-file -, key-file -, passphrase -",
            "  discovered #2: _redis._tcp.example.com (SRV records, resolved at run time: ports and weights from the records) TCP",
            "    send proxy v1",
            "  resolvers 127.0.0.1:5353, timeout 2000 ms, attempts 3",
            "  resolve interval every 30 s, start fail (every name must resolve)",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        // Without names and with the default settings, no resolver lines.
        let src = "id = spawnd { listen = { port = 1 } } id = tcprelay { remote = { address = 10.0.0.1 port = 2 } }";
        let (plan, _) = crate::compile(src, "x.cfg", &crate::Selection::default());
        let text =
            explain(&tcprelay_plan::encode(&plan.unwrap(), crate::VERSION)).expect("explains");
        assert!(!text.contains("resolve"), "{text}");
    }
}
