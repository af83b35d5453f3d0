//! The check stage's tests: configuration text in, diagnostics (code, severity, the
//! exact text under the span) and plan fields out, through the whole pipeline.

use crate::ast::Span;
use crate::diag::{Code, Diagnostic, Severity};
use crate::Selection;
use tcprelay_plan::{ListenAddress, Plan};

/// Compiles `src` with the default selection (`spawnd`, `tcprelay`).
pub(crate) fn compile(src: &str) -> (Option<Plan>, Vec<Diagnostic>) {
    compile_with(src, &Selection::default())
}

pub(crate) fn compile_with(src: &str, sel: &Selection) -> (Option<Plan>, Vec<Diagnostic>) {
    let (plan, diags) = crate::compile(src, "test.cfg", sel);
    if let Some(plan) = &plan {
        assert_eq!(plan.validate(), Ok(()));
    }
    (plan, diags)
}

/// The source text under `span`.
fn at(src: &str, span: Span) -> &str {
    &src[span.range()]
}

/// The one diagnostic with `code`, which must have `severity` and sit on `text`.
#[track_caller]
fn expect<'d>(
    src: &str,
    diags: &'d [Diagnostic],
    code: Code,
    severity: Severity,
    text: &str,
) -> &'d Diagnostic {
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "expected one {code}, got {diags:#?}");
    let d = found[0];
    assert_eq!(d.severity, severity, "{d:#?}");
    assert_eq!(at(src, d.span), text, "{d:#?}");
    assert!(!d.message.ends_with('.'), "{}", d.message);
    assert!(
        d.message.starts_with(|c: char| !c.is_ascii_uppercase()),
        "{}",
        d.message
    );
    d
}

#[track_caller]
fn error<'d>(src: &str, diags: &'d [Diagnostic], code: Code, text: &str) -> &'d Diagnostic {
    expect(src, diags, code, Severity::Error, text)
}

#[track_caller]
fn warning<'d>(src: &str, diags: &'d [Diagnostic], code: Code, text: &str) -> &'d Diagnostic {
    expect(src, diags, code, Severity::Warning, text)
}

/// The text of the first secondary label.
fn secondary<'s>(src: &'s str, d: &Diagnostic) -> &'s str {
    at(src, d.labels[0].span)
}

/// A config with a working tcprelay section and `spawnd` as given.
fn with_spawnd(spawnd: &str) -> String {
    format!(
        "id = spawnd {{\n{spawnd}\n}}\nid = tcprelay {{\n remote = {{ address = 10.0.0.1 port = 22 }}\n}}\n"
    )
}

/// A config with one plain listener and `tcprelay` as given.
fn with_relay(relay: &str) -> String {
    format!("id = spawnd {{\n listen = {{ port = 2222 }}\n}}\nid = tcprelay {{\n{relay}\n}}\n")
}

/// Compiles and requires that there is no diagnostic at all.
#[track_caller]
fn clean(src: &str) -> Plan {
    let (plan, diags) = compile(src);
    assert!(diags.is_empty(), "{diags:#?}");
    plan.expect("a plan")
}

const MANUAL_SAMPLE: &str = "#!/usr/local/sbin/spawnd
id = spawnd {
    listen = { port = 2222 }
    listen = { address = ::0 port = 2222 }
    listen = { ::0 port = 2224 }
    listen = { port = 2225 tls = yes }
    spawn {
        users max = 4000
        users min = 10
        servers min = 1
        servers max = 20
    }
}

id = tcprelay {
        remote = { address = 169.254.1.2 port = 22 }
        ssl cert = /some/where/sample.pem
        ssl passphrase =  12345
}
";

#[test]
fn the_manuals_sample_configuration_compiles() {
    let src = MANUAL_SAMPLE;
    let (plan, diags) = compile(src);
    let plan = plan.unwrap_or_else(|| panic!("{diags:#?}"));
    assert_eq!(plan.spawnd.listeners.len(), 4);
    let addrs: Vec<String> = plan
        .spawnd
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(
        addrs,
        ["0.0.0.0:2222", "[::]:2222", "[::]:2224", "0.0.0.0:2225"]
    );
    assert!(plan.spawnd.listeners[3].tls);
    assert_eq!((plan.spawnd.users_min, plan.spawnd.users_max), (10, 4000));
    assert_eq!((plan.spawnd.servers_min, plan.spawnd.servers_max), (1, 20));
    let tls = plan.relay.tls.as_ref().expect("tls");
    assert_eq!(tls.cert_file, "/some/where/sample.pem");
    assert_eq!(tls.key_file, "/some/where/sample.pem");
    assert_eq!(tls.passphrase.as_ref().map(|p| p.expose()), Some("12345"));
    assert_eq!(plan.relay.remotes[0].address.to_string(), "169.254.1.2:22");

    let deprecated: Vec<&str> = diags
        .iter()
        .filter(|d| d.code == Code::Deprecated)
        .map(|d| at(src, d.span))
        .collect();
    assert_eq!(deprecated, ["ssl cert", "ssl passphrase"]);
    let d = warning(
        src,
        &diags,
        Code::CertificateUnreadable,
        "/some/where/sample.pem",
    );
    assert!(d.notes[0].contains("checked again when tcprelay starts"));
    let d = warning(src, &diags, Code::OverlappingListener, "listen");
    assert_eq!(d.span.start, src.find("listen = { address").unwrap());
    assert_eq!(
        d.labels[0].span.start,
        src.find("listen = { port = 2222").unwrap()
    );
    assert!(d.notes[0].contains("v6-only"));
    assert_eq!(diags.len(), 4, "{diags:#?}");
    assert!(diags.iter().all(|d| !d.message.contains("12345")));
}

#[test]
fn a_minimal_config_gets_the_defaults() {
    let plan = clean(&with_spawnd("listen = { port = 2222 }"));
    let s = &plan.spawnd;
    assert_eq!(s.listeners.len(), 1);
    let l = &s.listeners[0];
    assert_eq!(
        l.address,
        ListenAddress::Inet("0.0.0.0:2222".parse().unwrap())
    );
    assert_eq!(l.protocol, tcprelay_plan::Protocol::Tcp);
    assert!(!l.tls);
    assert_eq!((l.backlog, l.overload_backlog), (128, 128));
    assert_eq!((l.realm.clone(), l.mode), (None, None));
    use tcprelay_plan::defaults::*;
    assert_eq!((s.users_min, s.users_max), (USERS_MIN, USERS_MAX));
    assert_eq!((s.servers_min, s.servers_max), (SERVERS_MIN, SERVERS_MAX));
    assert!(s.listeners.iter().all(|l| l.bind_retry_delay.is_none()));
    assert_eq!(s.overload, tcprelay_plan::Overload::Queue);
    assert!(!s.background && !s.single_process);
    assert_eq!(s.syslog, tcprelay_plan::Syslog::default_for("tcprelay"));
    let r = &plan.relay;
    assert_eq!(r.remotes[0].weight, 1);
    assert_eq!(r.remotes[0].protocol, tcprelay_plan::Protocol::Tcp);
    assert_eq!((r.rebalance, r.retire, r.idle_timeout), (None, None, 0));
    assert_eq!(r.syslog, tcprelay_plan::Syslog::default_for("tcprelay"));
    assert!(r.tls.is_none() && r.local_address.is_none());
    assert!(plan.env.is_empty());
    assert_eq!(
        (plan.spawnd_id.as_str(), plan.tcprelay_id.as_str()),
        ("spawnd", "tcprelay")
    );
    assert_eq!(plan.source, "test.cfg");
}

#[test]
fn every_setting_reaches_the_plan() {
    let src = "setenv IO_POLL_MECHANISM = 8
setenv LANG = C
id = spawnd {
    background = yes
    pidfile = /run/tcprelay.pid
    single process = on
    user = nobody
    group = nogroup
    working directory = /tmp
    acl = permit 10.0.0.0/8
    acl = deny not ::1
    bind retry delay = 3
    overload = close
    debug = 2
    tcp keepalive count = 3
    tcp keepalive idle = 60
    syslog ident = spawnd
    syslog facility = local0
    syslog level = debug
    listen = { address = 127.0.0.1 port = ssh backlog = 10 protocol = sctp tcp keepalive idle = 5 }
    listen = { path = /run/relay.sock mode = 0660 overload backlog = 7 }
    spawn = { users min = 1 users max = 2 instances min = 3 instances max = 4 overload = reset }
}
id = tcprelay {
    remote = { address = [::1] port = 8080 weight = 3 protocol = TCP }
    remote = { address = 10.0.0.2 port = 8081 }
    local address = 10.0.0.9
    rebalance = 100
    retire = 1000
    idle timeout = 30
    syslog severity = warn
}
";
    let (plan, diags) = compile(src);
    // The only findings: `single process` has no effect in the runtime, and the
    // IPv4 `local address` does not apply to the IPv6 remote.
    let texts: Vec<&str> = diags.iter().map(|d| &src[d.span.range()]).collect();
    assert_eq!(texts, ["single process", "10.0.0.9"], "{diags:#?}");
    assert!(diags
        .iter()
        .all(|d| d.code == Code::Ignored && !d.is_error()));
    let plan = plan.expect("a plan");
    assert_eq!(
        plan.env,
        [
            ("IO_POLL_MECHANISM".into(), "8".into()),
            ("LANG".into(), "C".into())
        ]
    );
    let s = &plan.spawnd;
    assert!(s.background && s.single_process);
    assert_eq!(s.pidfile.as_deref(), Some("/run/tcprelay.pid"));
    assert_eq!(
        (s.user.as_deref(), s.group.as_deref()),
        (Some("nobody"), Some("nogroup"))
    );
    assert_eq!(s.working_directory.as_deref(), Some("/tmp"));
    assert_eq!(s.acl.len(), 2);
    assert!(s.acl[0].permit && !s.acl[0].negate && s.acl[0].prefix == 8);
    assert!(!s.acl[1].permit && s.acl[1].negate && s.acl[1].prefix == 128);
    assert_eq!((s.listeners[0].bind_retry_delay, s.debug), (Some(3), 2));
    // `overload` inside `spawn` takes precedence over the section's.
    assert_eq!(s.overload, tcprelay_plan::Overload::Reset);
    assert_eq!(
        (s.users_min, s.users_max, s.servers_min, s.servers_max),
        (1, 2, 3, 4)
    );
    assert_eq!(s.syslog.ident, "spawnd");
    assert_eq!(s.syslog.facility, tcprelay_plan::Facility::Local0);
    assert_eq!(s.syslog.severity, tcprelay_plan::Severity::Debug);
    let l = &s.listeners[0];
    assert_eq!(l.address.to_string(), "127.0.0.1:22");
    assert_eq!((l.backlog, l.overload_backlog), (10, 10));
    assert_eq!(l.protocol, tcprelay_plan::Protocol::Sctp);
    // The listener's keepalive overrides the section's field by field.
    assert_eq!(
        (l.keepalive.count, l.keepalive.idle, l.keepalive.interval),
        (Some(3), Some(5), None)
    );
    let u = &s.listeners[1];
    assert_eq!(u.address, ListenAddress::Unix("/run/relay.sock".into()));
    assert_eq!(
        (u.mode, u.backlog, u.overload_backlog),
        (Some(0o660), 128, 7)
    );
    assert_eq!(u.keepalive.idle, Some(60));
    let r = &plan.relay;
    assert_eq!(r.remotes[0].address.to_string(), "[::1]:8080");
    assert_eq!(r.remotes[0].weight, 3);
    assert_eq!(r.local_address, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(
        (r.rebalance, r.retire, r.idle_timeout),
        (Some(100), Some(1000), 30)
    );
    assert_eq!(r.syslog.ident, "tcprelay");
    assert_eq!(r.syslog.severity, tcprelay_plan::Severity::Warning);
}

#[test]
fn one_section_can_play_both_roles() {
    let src = "id = both {
    listen = { port = 2222 }
    remote = { address = 10.0.0.1 port = 22 }
    syslog ident = relay
}
";
    let sel = Selection {
        spawnd_id: "both".into(),
        tcprelay_id: "both".into(),
    };
    let (plan, diags) = compile_with(src, &sel);
    assert!(diags.is_empty(), "{diags:#?}");
    let plan = plan.unwrap();
    assert_eq!(plan.spawnd.syslog.ident, "relay");
    assert_eq!(plan.relay.syslog.ident, "relay");
    assert_eq!(plan.relay.remotes.len(), 1);
}

#[test]
fn sections_not_selected_are_not_checked() {
    let src = format!(
        "{}id = other {{ listen = {{ port = nonsense }} remote = {{ }} }}\n",
        with_spawnd("listen = { port = 2222 }")
    );
    clean(&src);
}

// ---- sections ----

#[test]
fn e0010_unknown_section_suggests_the_nearest_id() {
    let src = "id = spawnd { listen = { port = 1 } }\nid = tcprelya { remote = { address = 10.0.0.1 port = 2 } }\n";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    let d = error(src, &diags, Code::UnknownSection, "spawnd");
    assert_eq!(d.message, "no section `tcprelay` in this file");
    assert_eq!(d.help.as_deref(), Some("did you mean `tcprelya`?"));
}

#[test]
fn e0010_lists_the_ids_when_none_is_close() {
    let src = "id = spawnd { listen = { port = 1 } }\n";
    let sel = Selection {
        spawnd_id: "spawnd".into(),
        tcprelay_id: "zzz".into(),
    };
    let (_, diags) = compile_with(src, &sel);
    let d = error(src, &diags, Code::UnknownSection, "spawnd");
    assert_eq!(
        d.help.as_deref(),
        Some("the sections in this file are `spawnd`")
    );
}

#[test]
fn e0010_in_a_file_without_sections() {
    let src = "setenv A = b\n";
    let (_, diags) = compile(src);
    let found: Vec<_> = diags
        .iter()
        .filter(|d| d.code == Code::UnknownSection)
        .collect();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|d| d.span == Span::new(0, 0)));
}

#[test]
fn e0011_duplicate_section() {
    let src = format!(
        "{}id = spawnd {{ }}\n",
        with_spawnd("listen = { port = 1 }")
    );
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::DuplicateSection, "spawnd");
    assert_eq!(d.span.start, src.rfind("spawnd").unwrap());
    assert_eq!(d.labels[0].span.start, src.find("spawnd").unwrap());
    assert_eq!(d.labels[0].message, "first defined here");
}

#[test]
fn e0011_a_selected_section_twice_around_foreign_ones() {
    // A selected id twice is still E0011, once; another program's sections between,
    // repeated or holding what tcprelay would refuse, are no concern of it.
    let src = format!(
        "{}id = tac_plus {{ key = \"}}\" }}\nid tac_plus {{ = = }}\nid spawnd {{ }}\n",
        with_spawnd("listen = { port = 1 }")
    );
    let (_, diags) = compile(&src);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = error(&src, &diags, Code::DuplicateSection, "spawnd");
    assert_eq!(d.span.start, src.rfind("spawnd").unwrap());
}

#[test]
fn e0012_directive_in_the_other_section() {
    let src = "id = spawnd {
    listen = { port = 1 }
    remote = { address = 10.0.0.1 port = 2 }
}
id = tcprelay {
    remote = { address = 10.0.0.1 port = 2 }
    background = yes
}
";
    let (_, diags) = compile(src);
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::WrongSection)
        .collect();
    assert_eq!(found.len(), 2, "{diags:#?}");
    assert_eq!(at(src, found[0].span), "remote");
    assert_eq!(
        found[0].message,
        "`remote` is a tcprelay directive, but section `spawnd` is the spawnd section"
    );
    assert_eq!(
        found[0].help.as_deref(),
        Some("move it into section `tcprelay`")
    );
    assert_eq!(at(src, found[1].span), "background");
    assert_eq!(
        found[1].help.as_deref(),
        Some("move it into section `spawnd`")
    );
}

// ---- setenv ----

#[test]
fn e0042_invalid_setenv_name_and_poll_mechanism() {
    let src = format!(
        "setenv IO_POLL_MECHANISM = 3\nsetenv 9LIVES = x\n{}",
        with_spawnd("listen = { port = 1 }")
    );
    let (_, diags) = compile(&src);
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::InvalidSetenv)
        .collect();
    assert_eq!(found.len(), 2, "{diags:#?}");
    assert_eq!(at(&src, found[0].span), "3");
    assert!(found[0]
        .help
        .as_deref()
        .unwrap()
        .contains("4 = epoll, 8 = poll, 16 = select, 64 = io_uring (Linux)"));
    assert_eq!(at(&src, found[1].span), "9LIVES");
    // io_uring's number is a mechanism (whether the kernel allows it is known only
    // where the plan runs).
    let src = format!(
        "setenv IO_POLL_MECHANISM = 64\n{}",
        with_spawnd("listen = { port = 1 }")
    );
    let (_, diags) = compile(&src);
    assert!(
        !diags.iter().any(|d| d.code == Code::InvalidSetenv),
        "{diags:#?}"
    );
}

#[test]
fn e0028_setenv_twice_later_wins() {
    let src = format!(
        "setenv A = 1\nsetenv B = 2\nsetenv A = 3\n{}",
        with_spawnd("listen = { port = 1 }")
    );
    let (plan, diags) = compile(&src);
    let d = warning(&src, &diags, Code::DuplicateDirective, "A");
    assert_eq!(d.span.start, src.rfind("A =").unwrap());
    assert_eq!(d.labels[0].span.start, src.find("A =").unwrap());
    assert_eq!(
        plan.unwrap().env,
        [("A".into(), "3".into()), ("B".into(), "2".into())]
    );
}

// ---- scalars ----

#[test]
fn e0028_scalar_twice_later_wins() {
    let src = with_spawnd(
        "listen = { port = 1 }\nsyslog level = info\nsyslog severity = err\ndebug = 1\ndebug = 2",
    );
    let (plan, diags) = compile(&src);
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::DuplicateDirective)
        .collect();
    // `debug` is not a duplicate: each applies over the one before, as the
    // original's debug flags do.
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert!(found.iter().all(|d| d.severity == Severity::Warning));
    assert_eq!(at(&src, found[0].span), "syslog severity");
    assert_eq!(secondary(&src, found[0]), "syslog level");
    assert_eq!(found[0].labels[0].message, "first set here");
    let plan = plan.unwrap();
    assert_eq!(plan.spawnd.debug, 3);
    assert_eq!(plan.spawnd.syslog.severity, tcprelay_plan::Severity::Err);
}

#[test]
fn repeatable_directives_are_not_duplicates() {
    let plan = clean(&with_spawnd(
        "listen = { port = 1 }\nlisten = { port = 2 }\nacl = permit 10.0.0.0/8\nacl = permit 192.168.0.0/16\nspawn = { users min = 1 }\nspawn = { users max = 2 }",
    ));
    assert_eq!(plan.spawnd.listeners.len(), 2);
    assert_eq!(plan.spawnd.acl.len(), 2);
    assert_eq!((plan.spawnd.users_min, plan.spawnd.users_max), (1, 2));
}

/// A `users max` below the default `users min` (20) with no `users min` written:
/// the minimum follows it, no E0036 about a number the operator never wrote.
#[test]
fn a_default_users_min_follows_a_lower_users_max() {
    let plan = clean(&with_spawnd(
        "listen = { port = 1 }\nspawn = { users max = 3 }",
    ));
    assert_eq!((plan.spawnd.users_min, plan.spawnd.users_max), (3, 3));
    let plan = clean(&with_spawnd(
        "listen = { port = 1 }\nspawn = { users max = 400 }",
    ));
    assert_eq!(
        (plan.spawnd.users_min, plan.spawnd.users_max),
        (tcprelay_plan::defaults::USERS_MIN, 400)
    );
}

#[test]
fn e0040_deprecated_spellings_still_take_effect() {
    let src = with_relay("remote = { address = 10.0.0.1 port = 2 }\nretire limit = 5");
    let (plan, diags) = compile(&src);
    let d = warning(&src, &diags, Code::Deprecated, "retire limit");
    assert_eq!(d.message, "`retire limit` is deprecated");
    assert_eq!(d.help.as_deref(), Some("write `retire` instead"));
    assert_eq!(plan.unwrap().relay.retire, Some(5));
}

#[test]
fn e0022_invalid_address() {
    let src = with_relay("remote = { address = 10.0.0.256 port = 2 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::InvalidAddress, "10.0.0.256");
    assert_eq!(
        d.help.as_deref(),
        Some("an IPv4 address is four numbers from 0 to 255, such as `192.0.2.1`")
    );
}

#[test]
fn e0023_invalid_port_and_unknown_service() {
    let src = with_relay("remote = { address = 10.0.0.1 port = 65536 }\nremote = { address = 10.0.0.1 port = no-such-service }");
    let (_, diags) = compile(&src);
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::InvalidPort)
        .collect();
    assert_eq!(found.len(), 2, "{diags:#?}");
    assert_eq!(at(&src, found[0].span), "65536");
    assert_eq!(at(&src, found[1].span), "no-such-service");
    assert_eq!(found[1].message, "unknown service name `no-such-service`");
}

#[test]
fn e0024_invalid_number_names_the_range() {
    let src = with_relay("remote = { address = 10.0.0.1 port = 2 }\nidle timeout = 5m");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::InvalidNumber, "5m");
    // A timeout takes no `k`/`m`/`g` suffix: the original read `5m` as 5 x 1024^2.
    assert_eq!(d.message, "`5m` is not a number of seconds");
    assert!(d.notes[0].contains("meant 5242880 seconds"), "{d:#?}");
    assert_eq!(
        d.help.as_deref(),
        Some("write the number of seconds; for 5 minutes write `300`")
    );
    let src = with_relay("remote = { address = 10.0.0.1 port = 2 }\nrebalance = 100x");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::InvalidNumber, "100x");
    assert_eq!(
        d.message,
        "`100x` is not a number from 1 to 18446744073709551615"
    );
}

#[test]
fn e0024_invalid_mode() {
    let src = with_spawnd("listen = { path = /tmp/s mode = 0999 }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidNumber, "0999");
}

#[test]
fn e0025_weight_zero_and_e0024_weight_not_a_number() {
    let src = with_relay("remote = { address = 10.0.0.1 port = 2 weight = 0 }\nremote = { address = 10.0.0.2 port = 2 weight = heavy }");
    let (_, diags) = compile(&src);
    let d = warning(&src, &diags, Code::InvalidWeight, "0");
    assert_eq!(d.message, "weight `0` is less than 1; it is taken as 1");
    let d = error(&src, &diags, Code::InvalidNumber, "heavy");
    assert_eq!(d.message, "`heavy` is not a number from 0 to 4294967295");
}

#[test]
fn e0026_invalid_bool() {
    let src = with_spawnd("listen = { port = 1 tls = perhaps }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::InvalidBool, "perhaps");
    assert_eq!(d.message, "expected `yes` or `no`, found `perhaps`");
}

#[test]
fn e0027_invalid_choices_suggest() {
    let src = with_spawnd(
        "listen = { port = 1 protocol = UPD }\nsyslog facility = daemn\nsyslog level = verbose\noverload = drop",
    );
    let (_, diags) = compile(&src);
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::InvalidChoice)
        .collect();
    let texts: Vec<&str> = found.iter().map(|d| at(&src, d.span)).collect();
    assert_eq!(texts, ["UPD", "daemn", "verbose", "drop"]);
    assert_eq!(found[1].help.as_deref(), Some("did you mean `DAEMON`?"));
    assert!(found[3]
        .help
        .as_deref()
        .unwrap()
        .contains("`queue`, `close`, `reset`"));
}

#[test]
fn e0044_zero_counts() {
    let src = "id = spawnd {
    listen = { port = 1 }
    spawn = { users max = 0 servers max = 0 }
}
id = tcprelay {
    remote = { address = 10.0.0.1 port = 2 }
    rebalance = 0
    retire = 0
}
";
    let (_, diags) = compile(src);
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == Code::ZeroCount).collect();
    assert_eq!(found.len(), 4, "{diags:#?}");
    let lines: Vec<&str> = found
        .iter()
        .map(|d| src[..d.span.end].lines().last().unwrap().trim())
        .collect();
    assert_eq!(
        lines,
        [
            "spawn = { users max = 0",
            "spawn = { users max = 0 servers max = 0",
            "rebalance = 0",
            "retire = 0"
        ]
    );
    assert!(found.iter().all(|d| at(src, d.span) == "0"));
    // A zero maximum is not also reported as a range problem.
    assert!(!diags
        .iter()
        .any(|d| d.code == Code::UsersRange || d.code == Code::ServersRange));
}

#[test]
fn e0045_invalid_acl() {
    let src = with_spawnd("listen = { port = 1 }\nacl = permit 10.0.0.0/33");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidAcl, "10.0.0.0/33");
}

// ---- strings the operating system gets (E0046) ----

/// Configurations with `value` (written as it stands, quotes included) in each place
/// whose string reaches a system call, with a name for the place.
fn os_string_places(value: &str) -> Vec<(&'static str, String)> {
    let listen = "listen = { port = 1 }";
    vec![
        (
            "setenv",
            format!("setenv TZ = {value}\n{}", with_spawnd(listen)),
        ),
        (
            "pidfile",
            with_spawnd(&format!("{listen}\npidfile = {value}")),
        ),
        ("user", with_spawnd(&format!("{listen}\nuser = {value}"))),
        ("group", with_spawnd(&format!("{listen}\ngroup = {value}"))),
        (
            "working directory",
            with_spawnd(&format!("{listen}\nworking directory = {value}")),
        ),
        (
            "spawnd syslog ident",
            with_spawnd(&format!("{listen}\nsyslog ident = {value}")),
        ),
        (
            "tcprelay syslog ident",
            with_relay(&format!(
                "remote = {{ address = 10.0.0.1 port = 2 }}\nsyslog ident = {value}"
            )),
        ),
        (
            "socket path",
            with_spawnd(&format!("listen = {{ path = {value} }}")),
        ),
        (
            "tls cert-file",
            tls_config(&format!("tls cert-file = {value}")),
        ),
        (
            "tls key-file",
            tls_config(&format!(
                "tls cert-file = /nonexistent/c.pem\ntls key-file = {value}"
            )),
        ),
        (
            "tls passphrase",
            tls_config(&format!(
                "tls cert-file = /nonexistent/c.pem\ntls passphrase = {value}"
            )),
        ),
        // The files and passphrase of a TLS remote (issue 15).
        (
            "remote tls ca-file",
            tls_remote(&format!("tls ca-file = {value}")),
        ),
        (
            "remote tls cert-file",
            tls_remote(&format!("tls cert-file = {value}")),
        ),
        (
            "remote tls key-file",
            tls_remote(&format!(
                "tls cert-file = /nonexistent/c.pem tls key-file = {value}"
            )),
        ),
        (
            "remote tls passphrase",
            tls_remote(&format!(
                "tls cert-file = /nonexistent/c.pem\ntls passphrase = {value}"
            )),
        ),
    ]
}

/// A config whose one remote has TLS (unverified) and `tls` as given.
fn tls_remote(tls: &str) -> String {
    with_relay(&format!(
        "remote = {{ address = 10.0.0.1 port = 2 tls = yes tls verify = no\n{tls} }}"
    ))
}

#[test]
fn e0046_a_nul_byte_in_any_string_the_system_gets_is_an_error_at_the_value() {
    // The two ways a NUL gets into a value: the raw byte inside quotes, and a
    // backslash before it (any escaped character stands for itself). A word cannot
    // hold one (E0001, below), and `\0` is the character 0.
    for value in ["\"/tmp/sec\0ret\"", "\"/tmp/sec\\\0ret\""] {
        for (place, src) in os_string_places(value) {
            let (plan, diags) = compile(&src);
            assert!(plan.is_none(), "{place}: a plan with a NUL byte");
            // One error, at the value, and nothing made up from the lost value
            // (a TLS listener "without a certificate", a key "without a passphrase").
            let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
            assert_eq!(errors.len(), 1, "{place}: {diags:#?}");
            let d = error(&src, &diags, Code::NotForTheOs, value);
            assert!(d.message.contains("contains a NUL byte"), "{place}: {d:#?}");
            assert_eq!(
                d.help.as_deref(),
                Some("a NUL byte (\\0) ends a string for the operating system; remove it"),
                "{place}"
            );
            let said = format!("{} {} {:?} {:?}", d.message, d.label, d.notes, d.help);
            if place.ends_with("tls passphrase") {
                assert!(
                    !said.contains("sec"),
                    "{place}: the passphrase shows: {said}"
                );
            } else {
                // Where the invisible byte is.
                assert_eq!(d.notes, ["it follows `/tmp/sec` in the value"], "{place}");
            }
        }
    }
    // The same values without the NUL compile (the TLS files are absent here: a
    // warning).
    for (place, src) in os_string_places("\"/tmp/secret\"") {
        let (plan, diags) = compile(&src);
        assert!(
            !diags.iter().any(|d| d.code == Code::NotForTheOs),
            "{place}: {diags:#?}"
        );
        if !place.starts_with("tls") {
            assert!(plan.is_some(), "{place}: {diags:#?}");
        }
    }
    // Unquoted, a NUL is not part of any value.
    let src = with_spawnd("listen = { port = 1 }\npidfile = /tmp/a\0b");
    let (plan, diags) = compile(&src);
    assert!(plan.is_none());
    error(&src, &diags, Code::InvalidToken, "\0");
    assert!(!diags.iter().any(|d| d.code == Code::NotForTheOs));
}

#[test]
fn e0046_empty_paths_and_account_names() {
    for (place, src) in os_string_places("\"\"") {
        let (plan, diags) = compile(&src);
        match place {
            // Any text will do, the empty one too.
            "setenv"
            | "spawnd syslog ident"
            | "tcprelay syslog ident"
            | "tls passphrase"
            | "remote tls passphrase" => {
                assert!(
                    !diags.iter().any(|d| d.code == Code::NotForTheOs),
                    "{place}"
                )
            }
            // E0022 and E0033 say it already.
            "socket path" => {
                error(&src, &diags, Code::InvalidAddress, "\"\"");
            }
            "tls cert-file"
            | "tls key-file"
            | "remote tls ca-file"
            | "remote tls cert-file"
            | "remote tls key-file" => assert!(
                diags.iter().any(|d| d.code == Code::CertificateUnreadable
                    && d.is_error()
                    && at(&src, d.span) == "\"\""),
                "{place}: {diags:#?}"
            ),
            _ => {
                assert!(plan.is_none(), "{place}");
                let d = error(&src, &diags, Code::NotForTheOs, "\"\"");
                assert!(d.message.ends_with(" is empty"), "{place}: {d:#?}");
            }
        }
    }
}

#[test]
fn e0046_a_socket_path_longer_than_a_socket_address_holds() {
    let max = tcprelay_plan::OsText::UNIX_PATH_MAX;
    let fits = format!("/{}", "s".repeat(max - 1));
    let plan = clean(&with_spawnd(&format!("listen = {{ path = {fits} }}")));
    assert_eq!(plan.spawnd.listeners[0].address, ListenAddress::Unix(fits));
    let long = format!("/{}", "s".repeat(max));
    let src = with_spawnd(&format!("listen = {{ path = {long} }}"));
    let (plan, diags) = compile(&src);
    assert!(plan.is_none());
    let d = error(&src, &diags, Code::NotForTheOs, &long);
    assert_eq!(
        d.message,
        format!("the socket path is {} bytes long", max + 1)
    );
    assert_eq!(
        d.label,
        format!("a Unix socket path can have at most {max} bytes")
    );
}

// ---- spawn ----

#[test]
fn e0036_users_min_above_max() {
    let src = with_spawnd("listen = { port = 1 }\nspawn = { users min = 50 users max = 40 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::UsersRange, "50");
    assert_eq!(secondary(&src, d), "40");
}

#[test]
fn a_minimum_against_a_default_maximum_is_no_error() {
    // `users max` and `servers max` default to what the running machine allows
    // (0 in the plan), and a default `servers min` never exceeds `servers max`.
    for spawn in [
        "spawn = { users min = 61 }",
        "spawn = { instances max = 1 }",
        "spawn = { servers min = 12 }",
    ] {
        let src = with_spawnd(&format!("listen = {{ port = 1 }}\n{spawn}"));
        let (plan, diags) = compile(&src);
        assert!(
            diags.iter().all(|d| d.severity != Severity::Error),
            "{spawn}: {diags:?}"
        );
        assert!(plan.is_some(), "{spawn}");
    }
}

#[test]
fn worker_counts_above_the_relays_limit_are_refused() {
    // A configuration must not make the master fork without bound.
    for (spawn, value) in [
        ("spawn = { servers max = 5000 }", "5000"),
        ("spawn = { servers min = 1025 servers max = 1024 }", "1025"),
    ] {
        let src = with_spawnd(&format!("listen = {{ port = 1 }}\n{spawn}"));
        let (plan, diags) = compile(&src);
        let d = error(&src, &diags, Code::InvalidNumber, value);
        assert!(d.message.contains("from"), "{}", d.message);
        assert!(plan.is_none());
    }
}

#[test]
fn e0037_servers_min_above_max() {
    let src = with_spawnd("listen = { port = 1 }\nspawn = { servers min = 3 instances max = 2 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::ServersRange, "3");
    assert_eq!(secondary(&src, d), "2");
}

#[test]
fn e0041_exec_realm_and_mode_have_no_effect() {
    let src = with_spawnd(
        "listen = { port = 1 realm = r mode = 0600 }\nspawn = { exec /usr/local/libexec/tcprelay }",
    );
    let (plan, diags) = compile(&src);
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == Code::Ignored).collect();
    let texts: Vec<&str> = found.iter().map(|d| at(&src, d.span)).collect();
    assert_eq!(texts, ["realm", "mode", "exec"]);
    assert!(found.iter().all(|d| d.severity == Severity::Warning));
    assert_eq!(
        found[2].message,
        "spawnd is built into tcprelay; `exec` has no effect"
    );
    assert!(plan.is_some());
}

// ---- listeners ----

#[test]
fn e0021_listener_without_port() {
    let src = with_spawnd("listen = { address = 10.0.0.1 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::MissingPort, "listen");
    assert_eq!(d.label, "this listener has no port");
    assert_eq!(d.help.as_deref(), Some("add `port = N`"));
}

#[test]
fn e0029_bare_address_and_address() {
    let src = with_spawnd("listen = { ::0 address = ::1 port = 1 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::ConflictingAddress, "address");
    assert_eq!(secondary(&src, d), "::0");
}

#[test]
fn e0029_path_and_port() {
    let src = with_spawnd("listen = { path = /tmp/s port = 1 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::ConflictingAddress, "port");
    assert_eq!(secondary(&src, d), "path");
}

#[test]
fn e0030_duplicate_listeners() {
    let src = with_spawnd(
        "listen = { address = 0.0.0.0 port = 1 }\nlisten = { port = 1 }\nlisten = { path = /tmp/s }\nlisten = { path = /tmp/s }",
    );
    let (_, diags) = compile(&src);
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::DuplicateListener)
        .collect();
    assert_eq!(found.len(), 2, "{diags:#?}");
    for d in &found {
        assert_eq!(at(&src, d.span), "listen");
        assert_eq!(d.labels[0].message, "first listener on this address");
    }
    let starts: Vec<usize> = src.match_indices("listen").map(|(i, _)| i).collect();
    assert_eq!(
        (found[0].span.start, found[0].labels[0].span.start),
        (starts[1], starts[0])
    );
    assert_eq!(
        (found[1].span.start, found[1].labels[0].span.start),
        (starts[3], starts[2])
    );
}

#[test]
fn e0031_wildcard_and_specific_address_overlap() {
    let src = with_spawnd("listen = { address = 127.0.0.1 port = 1 }\nlisten = { port = 1 }\nlisten = { address = ::1 port = 1 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::OverlappingListener, "listen");
    let starts: Vec<usize> = src.match_indices("listen").map(|(i, _)| i).collect();
    assert_eq!(
        (d.span.start, d.labels[0].span.start),
        (starts[1], starts[0])
    );
}

#[test]
fn e0031_v6_and_v4_wildcards_is_a_warning() {
    let src = with_spawnd("listen = { address = :: port = 1 }\nlisten = { port = 1 }");
    let (plan, diags) = compile(&src);
    let d = warning(&src, &diags, Code::OverlappingListener, "listen");
    assert_eq!(
        d.notes,
        ["tcprelay binds IPv6 listeners v6-only, so both bind"]
    );
    assert_eq!(plan.unwrap().spawnd.listeners.len(), 2);
}

#[test]
fn e0039_no_listener() {
    let src = with_spawnd("background = no");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::NoListener, "spawnd");
}

// ---- remotes ----

#[test]
fn e0020_and_e0021_remote_without_address_or_port() {
    let src = with_relay("remote = { weight = 2 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::MissingAddress, "remote");
    assert_eq!(d.label, "this remote has no address");
    let d = error(&src, &diags, Code::MissingPort, "remote");
    assert_eq!(d.label, "this remote has no port");
}

#[test]
fn e0038_no_remote() {
    let src = with_relay("idle timeout = 5");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::NoRemote, "tcprelay");
}

// ---- TLS ----

#[test]
fn e0032_tls_listener_without_certificate() {
    let src = "id = spawnd { listen = { port = 1 tls = yes } }\nid = tcprelay { remote = { address = 10.0.0.1 port = 2 } }\n";
    let (_, diags) = compile(src);
    let d = error(src, &diags, Code::TlsWithoutCertificate, "yes");
    assert_eq!(
        d.help.as_deref(),
        Some("add `tls cert-file = /path/to/cert.pem` to section `tcprelay`")
    );
}

#[test]
fn e0043_certificate_without_tls_listener() {
    let src =
        with_relay("remote = { address = 10.0.0.1 port = 2 }\ntls cert-file = /nonexistent/c.pem");
    let (plan, diags) = compile(&src);
    warning(&src, &diags, Code::TlsUnused, "tls cert-file");
    warning(
        &src,
        &diags,
        Code::CertificateUnreadable,
        "/nonexistent/c.pem",
    );
    assert!(plan.is_some());
}

/// A certificate, its key, a second key, and the first key encrypted with `sekrit`,
/// written to a temporary directory.
struct TlsFiles {
    _dir: tempfile::TempDir,
    cert: String,
    key: String,
    other_key: String,
    encrypted_key: String,
}

fn tls_files() -> TlsFiles {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let new_key = || PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let key = new_key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "test").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    // A year: a certificate that expires within 30 days is warned about (E0080).
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let encrypted = key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"sekrit")
        .unwrap();
    TlsFiles {
        cert: write("cert.pem", cert.to_pem().unwrap()),
        key: write("key.pem", key.private_key_to_pem_pkcs8().unwrap()),
        other_key: write("other.pem", new_key().private_key_to_pem_pkcs8().unwrap()),
        encrypted_key: write("enc.pem", encrypted),
        _dir: dir,
    }
}

fn tls_config(tcprelay: &str) -> String {
    format!(
        "id = spawnd {{ listen = {{ port = 1 tls = yes }} }}\nid = tcprelay {{\n remote = {{ address = 10.0.0.1 port = 2 }}\n{tcprelay}\n}}\n"
    )
}

#[test]
fn tls_material_that_matches_compiles() {
    let f = tls_files();
    let src = tls_config(&format!(
        "tls cert-file = {}\ntls key-file = {}\ntls passphrase = sekrit",
        f.cert, f.encrypted_key
    ));
    let plan = clean(&src);
    let tls = plan.relay.tls.clone().unwrap();
    assert_eq!(
        (tls.cert_file, tls.key_file),
        (f.cert.clone(), f.encrypted_key.clone())
    );
    assert!(plan.has_secret());
    let src = tls_config(&format!(
        "tls cert-file = {}\ntls key-file = {}",
        f.cert, f.key
    ));
    assert!(!clean(&src).has_secret());
}

#[test]
fn e0033_unreadable_certificate_is_an_error() {
    let f = tls_files();
    let src = tls_config(&format!("tls cert-file = {}", f.other_key));
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::CertificateUnreadable, &f.other_key);
}

#[test]
fn e0033_absent_key_file_points_at_the_key() {
    let f = tls_files();
    let src = tls_config(&format!(
        "tls cert-file = {}\ntls keyfile = /nonexistent/k.pem",
        f.cert
    ));
    let (plan, diags) = compile(&src);
    warning(
        &src,
        &diags,
        Code::CertificateUnreadable,
        "/nonexistent/k.pem",
    );
    assert!(plan.is_some());
}

#[test]
fn e0034_key_mismatch() {
    let f = tls_files();
    let src = tls_config(&format!(
        "tls cert-file = {}\ntls key-file = {}",
        f.cert, f.other_key
    ));
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::KeyMismatch, &f.other_key);
    assert_eq!(secondary(&src, d), f.cert);
}

#[test]
fn e0035_bad_passphrase_never_shows_the_passphrase() {
    let f = tls_files();
    let src = tls_config(&format!(
        "tls cert-file = {}\ntls key-file = {}\ntls passphrase = \"hunter2 is wrong\"",
        f.cert, f.encrypted_key
    ));
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::BadPassphrase, "\"hunter2 is wrong\"");
    let all = format!("{diags:?}");
    assert!(!all.contains("hunter2"), "{all}");
    assert!(d.notes.iter().all(|n| !n.contains("hunter2")));
}

#[test]
fn e0035_encrypted_key_without_passphrase() {
    let f = tls_files();
    let src = tls_config(&format!(
        "tls cert-file = {}\ntls key-file = {}",
        f.cert, f.encrypted_key
    ));
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::BadPassphrase, &f.encrypted_key);
    assert_eq!(d.help.as_deref(), Some("add `tls passphrase = ...`"));
}

// ---- the whole ----

#[test]
fn every_problem_of_a_file_is_reported_in_one_run() {
    let src = "setenv 1X = y
id = spawnd {
    listen = { address = 300.1.1.1 port = 1 }
    listen = { address = 10.0.0.1 }
    spawn = { users min = 9 users max = 3 }
    background = maybe
}
id = tcprelay {
    remote = { address = 10.0.0.1 port = 0 weight = 0 }
    remote = { port = 22 }
    rebalance = 0
    tls passphrase = topsecret
}
";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    let mut codes: Vec<&str> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code.as_str())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["E0020", "E0021", "E0022", "E0023", "E0026", "E0036", "E0042", "E0044"],
        "{diags:#?}"
    );
    // A weight of 0 is taken as 1, as the original did.
    warning(src, &diags, Code::InvalidWeight, "0");
    warning(src, &diags, Code::TlsUnused, "tls passphrase");
    assert!(!format!("{diags:?}").contains("topsecret"));
}

#[test]
fn a_large_config_checks_in_linear_time() {
    // 100,000 lines: 20,000 listeners of five lines each, all distinct.
    let mut src = String::from("id = spawnd {\n");
    for i in 0..20_000u32 {
        let ip = format!("10.{}.{}.1", i / 250, i % 250);
        src.push_str(&format!(
            "listen = {{\n address = {ip}\n port = {}\n backlog = 5\n}}\n",
            1000 + i % 50
        ));
    }
    src.push_str("}\nid = tcprelay { remote = { address = 10.0.0.1 port = 2 } }\n");
    let (file, mut diags) = crate::parse(&src, &Selection::default());
    let started = std::time::Instant::now();
    let model = crate::check(&file.unwrap(), &Selection::default(), &mut diags);
    let elapsed = started.elapsed();
    assert!(diags.is_empty(), "{:?}", &diags[..diags.len().min(3)]);
    assert_eq!(model.unwrap().spawnd.listeners.len(), 20_000);
    // Generous even for a debug build; a quadratic check takes minutes here.
    assert!(elapsed.as_secs() < 10, "{elapsed:?}");
}

#[test]
fn thousands_of_findings_are_collected_in_linear_time() {
    // 20,000 listeners without a port, 2,000 of them with a misspelled key: every
    // "missing port" is checked against the blocks with a syntax error (to drop the
    // cascades), and every misspelled key against the items of every block. Both
    // were a search per finding through the whole section: minutes at twice the
    // size, still a minute at this one; a few seconds in a debug build now, so the
    // bound below tells the two apart with room for a busy machine.
    let mut src = String::from("id = spawnd {\n");
    for i in 0..20_000u32 {
        let typo = if i % 10 == 0 { " backlg = 5" } else { "" };
        src.push_str(&format!(
            "listen = {{ address = 10.{}.{}.1{typo} }}\n",
            i / 250,
            i % 250
        ));
    }
    src.push_str("}\nid = tcprelay { remote = { address = 10.0.0.1 port = 2 } }\n");
    let started = std::time::Instant::now();
    let (plan, diags) = crate::compile(&src, "big.cfg", &Selection::default());
    let elapsed = started.elapsed();
    assert!(plan.is_none());
    let count = |code| diags.iter().filter(|d| d.code == code).count();
    assert_eq!(count(Code::UnexpectedToken), 2_000);
    // The blocks with a typo get no "missing port" on top.
    assert_eq!(count(Code::MissingPort), 18_000);
    // Generous even for a debug build on a busy machine.
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
}

#[test]
fn secrets_can_be_blanked_out_of_the_source() {
    let src = "id = spawnd { listen = { port = 1 } }\nid = tcprelay {\n ssl passphrase = \"pä55\"\n}\nid = other { tls passphrase = x }\n";
    let spans = crate::lexer::secret_spans(src);
    assert_eq!(spans.len(), 2);
    let red = super::redact(src, &spans);
    assert_eq!(red.len(), src.len());
    assert!(
        !red.contains("pä55") && red.contains("ssl passphrase = ******"),
        "{red}"
    );
    assert!(red.contains("tls passphrase = *"));
}

#[test]
fn redacting_keeps_every_offset_and_line() {
    let src = "a = pä55\r\nb = \"x\ny\"\nc = 1";
    let spans = [
        Span::new(13, 200),
        Span::new(4, 9),
        Span::new(6, 7),
        Span::new(5, 6),
        Span::new(2, 2),
    ];
    let red = super::redact(src, &spans);
    assert_eq!(red.len(), src.len());
    // Overlapping, unsorted, past the end, inside a character: each byte once.
    assert_eq!(red, "a = *****\r\nb ****\n**\n*****");
    assert_eq!(red.lines().count(), src.lines().count());
}

#[test]
fn a_local_address_of_the_other_family_is_warned_about() {
    let src = "id = spawnd { listen = { address = 127.0.0.1 port = 1 } }\n\
               id = tcprelay {\n  local address = 10.0.0.9\n  \
               remote = { address = ::1 port = 2 }\n  remote = { address = 2001:db8::1 port = 2 }\n}\n";
    let (plan, diags) = compile(src);
    assert!(plan.is_some(), "a warning only");
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == Code::Ignored).collect();
    assert_eq!(found.len(), 1, "{diags:?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert_eq!(at(src, found[0].span), "10.0.0.9");
    assert!(
        found[0].message.contains("2 IPv6 remotes"),
        "{}",
        found[0].message
    );
    // Same family: nothing to say.
    let (_, same) = compile(
        "id = spawnd { listen = { address = 127.0.0.1 port = 1 } }\n\
         id = tcprelay { local address = 10.0.0.9 remote = { address = 10.0.0.1 port = 2 } }\n",
    );
    assert!(same.iter().all(|d| d.code != Code::Ignored), "{same:?}");
}

#[test]
fn issue_14_defaults_are_those_of_the_design() {
    // Written out, not taken from `defaults`: the shared design fixes them.
    let plan = clean(&with_spawnd("listen = { port = 2222 }"));
    let s = &plan.spawnd;
    assert_eq!(
        s.control,
        Some(tcprelay_plan::Control {
            path: None,
            mode: 0o600,
            group: None
        })
    );
    assert_eq!(s.metrics, None);
    assert_eq!(s.log_format, tcprelay_plan::LogFormat::Text);
    let r = &plan.relay;
    assert_eq!((r.connect_timeout, r.tls_handshake_timeout), (10, 10));
    assert_eq!((r.half_close_timeout, r.drain_timeout), (0, 0));
    assert_eq!(r.drain_generations, 8);
    assert!(r.connection_log);
}

#[test]
fn issue_14_settings_reach_the_plan() {
    let src = "id = spawnd {
    listen = { address = 127.0.0.1 port = 2222 }
    control = { path = /run/x/ctl group = wheel }
    metrics = { address = ::1 port = 2222 }
    log format = LogFmt
}
id = tcprelay {
    remote = { address = 10.0.0.1 port = 22 }
    connect timeout = 3
    tls handshake timeout = 4
    half close timeout = 5
    drain timeout = 6
    drain generations = 7
    connection log = no
}
";
    let plan = clean(src);
    let s = &plan.spawnd;
    // A group without a mode: the group may use the socket too.
    assert_eq!(
        s.control,
        Some(tcprelay_plan::Control {
            path: Some("/run/x/ctl".into()),
            mode: 0o660,
            group: Some("wheel".into())
        })
    );
    assert_eq!(
        s.metrics.map(|m| m.socket_addr()),
        Some("[::1]:2222".parse().unwrap())
    );
    assert_eq!(s.log_format, tcprelay_plan::LogFormat::Logfmt);
    let r = &plan.relay;
    assert_eq!(
        (
            r.connect_timeout,
            r.tls_handshake_timeout,
            r.half_close_timeout,
            r.drain_timeout,
            r.drain_generations,
            r.connection_log
        ),
        (3, 4, 5, 6, 7, false)
    );

    let plan = clean(&with_spawnd(
        "listen = { port = 2222 }\ncontrol = no\nmetrics { port = 9100 }",
    ));
    assert_eq!(plan.spawnd.control, None);
    assert_eq!(
        plan.spawnd.metrics.map(|m| m.socket_addr()),
        Some("127.0.0.1:9100".parse().unwrap())
    );
    let plan = clean(&with_spawnd(
        "listen = { port = 2222 }\ncontrol = { mode = 0640 group = 0 }",
    ));
    assert_eq!(
        plan.spawnd.control.unwrap().mode,
        0o640,
        "a mode given wins"
    );
}

#[test]
fn e0044_timeouts_that_must_be_at_least_one() {
    for key in [
        "connect timeout",
        "tls handshake timeout",
        "drain generations",
    ] {
        let src = with_relay(&format!(
            " remote = {{ address = 10.0.0.1 port = 22 }}\n {key} = 0"
        ));
        let (plan, diags) = compile(&src);
        assert!(plan.is_none());
        let d = error(&src, &diags, Code::ZeroCount, "0");
        assert_eq!(d.message, format!("`{key}` must be at least 1"));
    }
    // 0 is "never" for these.
    for key in ["half close timeout", "drain timeout", "idle timeout"] {
        clean(&with_relay(&format!(
            " remote = {{ address = 10.0.0.1 port = 22 }}\n {key} = 0"
        )));
    }
}

#[test]
fn e0024_control_mode_is_an_octal_permission_mode() {
    for bad in ["1777", "0680", "rw-rw----"] {
        let src = with_spawnd(&format!(
            "listen = {{ port = 1 }}\ncontrol = {{ mode = {bad} }}"
        ));
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{bad}");
        error(&src, &diags, Code::InvalidNumber, bad);
    }
}

#[test]
fn e0046_control_path_and_group_the_system_cannot_take() {
    let long = format!("/run/{}/ctl", "d".repeat(120));
    for (block, value) in [
        (format!("path = {long}"), long.as_str()),
        ("path = \"\"".to_string(), "\"\""),
        ("group = \"\"".to_string(), "\"\""),
        ("path = \"/run/a\0b\"".to_string(), "\"/run/a\0b\""),
    ] {
        let src = with_spawnd(&format!("listen = {{ port = 1 }}\ncontrol = {{ {block} }}"));
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{block}");
        error(&src, &diags, Code::NotForTheOs, value);
    }
}

#[test]
fn control_takes_no_or_a_block_and_its_items_only() {
    let src = with_spawnd("listen = { port = 1 }\ncontrol = maybe");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::InvalidBool, "maybe");
    assert!(d.help.as_deref().unwrap().contains("control = no"));
    let src = with_spawnd("listen = { port = 1 }\ncontrol = { port = 3 }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::UnexpectedToken, "port");
    let src = with_spawnd("listen = { port = 1 }\nmetrics = { path = /x port = 3 }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::UnexpectedToken, "path");
    let src = with_spawnd("listen = { port = 1 }\nmetrics = { address = 127.0.0.1 }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::MissingPort, "metrics");
    let src = with_spawnd("listen = { port = 1 }\nlog format = xml");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidChoice, "xml");
}

#[test]
fn e0028_control_or_metrics_twice_later_wins() {
    let src = with_spawnd(
        "listen = { port = 1 }\ncontrol = no\ncontrol = { mode = 0600 }\nmetrics = { port = 7 }\nmetrics = { port = 8 }",
    );
    let (plan, diags) = compile(&src);
    let twice: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::DuplicateDirective)
        .collect();
    assert_eq!(twice.len(), 2, "{diags:#?}");
    assert_eq!(at(&src, twice[0].span), "control");
    assert_eq!(at(&src, twice[1].span), "metrics");
    let plan = plan.unwrap();
    assert!(plan.spawnd.control.is_some());
    assert_eq!(plan.spawnd.metrics.unwrap().port, 8);
}

#[test]
fn e0047_metrics_on_a_listeners_address() {
    // The same address and port, a wildcard listener covering it, the default
    // address on a listener's, and a wildcard metrics address over a listener.
    for (listen, metrics, under) in [
        (
            "address = 127.0.0.1 port = 80",
            "address = 127.0.0.1 port = 80",
            "127.0.0.1 port = 80",
        ),
        (
            "port = 80",
            "address = 127.0.0.2 port = 80",
            "127.0.0.2 port = 80",
        ),
        ("address = 127.0.0.1 port = 80", "port = 80", "80"),
        (
            "address = 127.0.0.1 port = 80",
            "address = 0.0.0.0 port = 80",
            "0.0.0.0 port = 80",
        ),
    ] {
        let src = with_spawnd(&format!(
            "listen = {{ {listen} }}\nmetrics = {{ {metrics} }}"
        ));
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{metrics}");
        let d = error(&src, &diags, Code::MetricsOnListener, under);
        assert_eq!(secondary(&src, d), "listen");
    }
    // Another port, another family (IPv6 is bound v6-only), or a Unix listener.
    for (listen, metrics) in [
        ("port = 80", "port = 81"),
        ("address = 127.0.0.1 port = 80", "address = ::1 port = 80"),
        ("path = /run/x.sock", "port = 80"),
    ] {
        clean(&with_spawnd(&format!(
            "listen = {{ {listen} }}\nmetrics = {{ {metrics} }}"
        )));
    }
}

// Issue 15: the PROXY protocol, TLS towards remotes and health checks.

/// A config with `listen` blocks as given and the relay's `tcprelay` section as given.
fn with_both(spawnd: &str, tcprelay: &str) -> String {
    format!("id = spawnd {{\n{spawnd}\n}}\nid = tcprelay {{\n{tcprelay}\n}}\n")
}

#[test]
fn e0048_a_proxy_listener_without_trusted_peers_is_a_warning() {
    for (listen, under) in [
        ("listen = { port = 8080 haproxy = yes }", "haproxy"),
        (
            "listen = { address = ::1 port = 8080 accept proxy = v2 }",
            "accept proxy",
        ),
    ] {
        let src = with_spawnd(listen);
        let (plan, diags) = compile(&src);
        warning(&src, &diags, Code::ProxyFromAnyone, under);
        // A warning: the plan is still made, and accepts any peer.
        let proxy = plan.expect("a plan").spawnd.listeners[0]
            .accept_proxy
            .clone();
        assert!(proxy.expect("accept proxy").from.is_empty());
    }
    // Trusted peers named, PROXY headers off, or a Unix socket (no peer address).
    clean(&with_spawnd(
        "listen = { port = 8080 haproxy = yes accept proxy from = 10.0.0.2 }",
    ));
    clean(&with_spawnd("listen = { port = 8080 haproxy = no }"));
    clean(&with_spawnd("listen = { port = 8080 accept proxy = no }"));
    clean(&with_spawnd(
        "listen = { path = /run/x.sock accept proxy = v1 }",
    ));
}

#[test]
fn proxy_settings_without_proxy_headers_or_on_a_unix_socket_are_ignored() {
    let src = with_spawnd("listen = { port = 8080 accept proxy from = 10.0.0.2 }");
    let (plan, diags) = compile(&src);
    warning(&src, &diags, Code::Ignored, "10.0.0.2");
    assert_eq!(plan.expect("a plan").spawnd.listeners[0].accept_proxy, None);
    let src =
        with_spawnd("listen = { path = /run/x.sock haproxy = yes accept proxy from = 10.0.0.2 }");
    let (_, diags) = compile(&src);
    warning(&src, &diags, Code::Ignored, "10.0.0.2");
    // `haproxy = no` after `accept proxy = v2` turns it off, with E0028.
    let src = with_spawnd(
        "listen = { port = 8080 accept proxy = v2 accept proxy from = 10.0.0.2 haproxy = no }",
    );
    let (plan, diags) = compile(&src);
    warning(&src, &diags, Code::DuplicateDirective, "haproxy");
    assert_eq!(plan.expect("a plan").spawnd.listeners[0].accept_proxy, None);
}

#[test]
fn proxy_values_are_checked_with_suggestions() {
    let src = with_spawnd("listen = { port = 8080 accept proxy = v3 }");
    let (plan, diags) = compile(&src);
    assert!(plan.is_none());
    let d = error(&src, &diags, Code::InvalidChoice, "v3");
    assert_eq!(d.help.as_deref(), Some("did you mean `v1`?"));
    let src = with_relay("remote = { address = 10.0.0.1 port = 1 send proxy = any }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidChoice, "any");
    let src = with_spawnd("listen = { port = 8080 haproxy = maybe }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidBool, "maybe");
    let src = with_spawnd("listen = { port = 8080 haproxy = yes accept proxy from = 10.0.0.0/40 }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidAcl, "10.0.0.0/40");
    let src = with_spawnd("listen = { port = 8080 haproxy = yes accept proxy timeout = 0 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::ZeroCount, "0");
    assert_eq!(
        d.message,
        "`accept proxy timeout` must be at least 1 second"
    );
    // More seconds than the plan's milliseconds hold.
    let src = with_spawnd(&format!(
        "listen = {{ port = 8080 haproxy = yes accept proxy timeout = {} }}",
        u32::MAX / 1000 + 1
    ));
    let (_, diags) = compile(&src);
    error(
        &src,
        &diags,
        Code::InvalidNumber,
        &(u32::MAX / 1000 + 1).to_string(),
    );
}

#[test]
fn e0049_send_proxy_towards_an_own_proxy_listener_is_an_error() {
    let listen = "listen = { port = 8080 haproxy = yes accept proxy from = 127.0.0.1 }\n\
                  listen = { address = 10.0.0.5 port = 9000 accept proxy = v1 accept proxy from = 10.0.0.1 }";
    for (relay, secondaries) in [
        // Through the section's default, to a wildcard listener's loopback address.
        (
            "send proxy = v2\nremote = { address = 127.0.0.1 port = 8080 }",
            &["listen", "v2"][..],
        ),
        // The remote's own, to a specific listener's address.
        (
            "remote = { address = 10.0.0.5 port = 9000 send proxy = v1 }",
            &["listen"][..],
        ),
    ] {
        let src = with_both(listen, relay);
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{relay}");
        let d = error(&src, &diags, Code::ProxyLoop, "remote");
        let labels: Vec<&str> = d.labels.iter().map(|l| at(&src, l.span)).collect();
        assert_eq!(labels, secondaries);
    }
    // No header sent (the section's turned off in the remote), or to a listener
    // that does not accept PROXY headers: still the relay itself, the lint E0071's
    // warning and not E0049.
    for (listen, relay) in [
        (
            listen,
            "send proxy = v2\nremote = { address = 127.0.0.1 port = 8080 send proxy = no }",
        ),
        (
            "listen = { port = 8080 }",
            "send proxy = v1\nremote = { address = 127.0.0.1 port = 8080 }",
        ),
    ] {
        let src = with_both(listen, relay);
        let (plan, diags) = compile(&src);
        assert!(plan.is_some(), "{relay}");
        warning(&src, &diags, Code::RemoteIsOwnListener, "remote");
        assert!(
            diags.iter().all(|d| d.code != Code::ProxyLoop),
            "{diags:#?}"
        );
    }
    for relay in [
        // Another port, or an address that may be another machine's.
        "send proxy = v2\nremote = { address = 127.0.0.1 port = 8081 }",
        "send proxy = v2\nremote = { address = 10.0.0.9 port = 8080 }",
        // An IPv6 remote and an IPv4 wildcard.
        "send proxy = v2\nremote = { address = ::1 port = 8080 }",
    ] {
        clean(&with_both(listen, relay));
    }
}

#[test]
fn e0050_a_verified_tls_remote_needs_a_server_name() {
    let src = with_relay("remote = { address = 10.0.0.1 port = 443 tls = yes }");
    let (plan, diags) = compile(&src);
    assert!(plan.is_none());
    error(&src, &diags, Code::VerifyWithoutName, "yes");
    let src = with_relay("remote = { address = 10.0.0.1 port = 443 tls = yes tls verify = on }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::VerifyWithoutName, "yes");
    assert_eq!(secondary(&src, d), "on");
    let plan = clean(&with_relay(
        "remote = { address = 10.0.0.1 port = 443 tls = yes tls verify = no }",
    ));
    let tls = plan.relay.remotes[0].tls.clone().expect("tls");
    assert!(!tls.verify && tls.sni.is_none());
    clean(&with_relay(
        "remote = { address = 10.0.0.1 port = 443 tls = yes tls sni = db.example.com }",
    ));
}

#[test]
fn remote_tls_directives_without_tls_are_ignored() {
    let src = with_relay(
        "remote = { address = 10.0.0.1 port = 443 tls = no tls sni = db.example.com tls verify = no }",
    );
    let (plan, diags) = compile(&src);
    let ignored: Vec<&str> = diags
        .iter()
        .filter(|d| d.code == Code::Ignored)
        .map(|d| at(&src, d.span))
        .collect();
    assert_eq!(ignored, ["db.example.com", "no"]);
    assert_eq!(plan.expect("a plan").relay.remotes[0].tls, None);
    // A client key and passphrase without a client certificate: warned about, and
    // left out of the plan.
    let src = with_relay(
        "remote = { address = 10.0.0.1 port = 443 tls = yes tls verify = no\n\
         tls key-file = /k.pem tls passphrase = S3cr3t }",
    );
    let (plan, diags) = compile(&src);
    let unused: Vec<&str> = diags
        .iter()
        .filter(|d| d.code == Code::TlsUnused)
        .map(|d| at(&src, d.span))
        .collect();
    assert_eq!(unused, ["tls key-file", "tls passphrase"]);
    let plan = plan.expect("a plan");
    let tls = plan.relay.remotes[0].tls.clone().expect("tls");
    assert_eq!(
        (tls.cert_file, tls.key_file, tls.passphrase),
        (None, None, None)
    );
    assert!(!plan.has_secret());
}

#[test]
fn e0051_the_server_name_must_be_a_dns_name() {
    for name in [
        "db_1.example.com",
        "192.0.2.1",
        "::1",
        "db..example.com",
        "-db.example.com",
        "db-.example.com",
        "bücher.example",
        "example.com.",
    ] {
        let src = with_relay(&format!(
            "remote = {{ address = 10.0.0.1 port = 443 tls = yes tls sni = \"{name}\" }}"
        ));
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{name}");
        error(
            &src,
            &diags,
            Code::InvalidServerName,
            &format!("\"{name}\""),
        );
        // The name was written: no E0050 beside it.
        assert!(
            diags.iter().all(|d| d.code != Code::VerifyWithoutName),
            "{name}"
        );
    }
    let long = format!("{}.example", "a".repeat(64));
    assert!(super::remote_tls::dns_name_problem(&long).is_some());
    assert!(super::remote_tls::dns_name_problem(&"a.".repeat(127)).is_some());
    for name in [
        "localhost",
        "db-1.example.com",
        "xn--bcher-kva.example",
        "A.B",
    ] {
        assert_eq!(super::remote_tls::dns_name_problem(name), None, "{name}");
    }
}

#[test]
fn e0052_a_ca_file_without_certificates_and_the_client_certificate_checks() {
    let f = tls_files();
    let remote = |extra: &str| {
        with_relay(&format!(
            "remote = {{ address = 10.0.0.1 port = 443 tls = yes tls sni = db.example.com {extra} }}"
        ))
    };
    let src = remote(&format!("tls ca-file = {}", f.key));
    let (plan, diags) = compile(&src);
    assert!(plan.is_none());
    let d = error(&src, &diags, Code::CaFileWithoutCertificates, &f.key);
    assert!(d.notes[0].contains("PRIVATE KEY"), "{d:#?}");
    // A CA file with a certificate, and a client certificate with its key.
    let plan = clean(&remote(&format!(
        "tls ca-file = {} tls cert-file = {} tls key-file = {} tls passphrase = sekrit",
        f.cert, f.cert, f.encrypted_key
    )));
    let tls = plan.relay.remotes[0].tls.clone().expect("tls");
    assert_eq!(tls.ca_file.as_deref(), Some(f.cert.as_str()));
    assert_eq!(tls.key_file.as_deref(), Some(f.encrypted_key.as_str()));
    assert!(plan.has_secret());
    // An absent CA file is a warning, as certificates are.
    let src = remote("tls ca-file = /nonexistent/ca.pem");
    let (plan, diags) = compile(&src);
    warning(
        &src,
        &diags,
        Code::CertificateUnreadable,
        "/nonexistent/ca.pem",
    );
    assert!(plan.is_some());
    // The client key must match the certificate, and the passphrase open it.
    let src = remote(&format!(
        "tls cert-file = {} tls key-file = {}",
        f.cert, f.other_key
    ));
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::KeyMismatch, &f.other_key);
    let src = remote(&format!(
        "tls cert-file = {} tls key-file = {} tls passphrase = Wr0ngPa55",
        f.cert, f.encrypted_key
    ));
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::BadPassphrase, "Wr0ngPa55");
    // Rendered, the passphrase is masked, in the source line and in every text.
    for out in [
        crate::diag::render::human(&diags, "test.cfg", &src, false),
        crate::diag::render::short(&diags, "test.cfg", &src),
        crate::diag::render::json(&diags, "test.cfg", &src),
    ] {
        assert!(!out.contains("Wr0ngPa55"), "{out}");
        assert!(out.contains("E0035"), "{out}");
    }
}

#[test]
fn e0053_checks_that_cannot_work() {
    // The timeout against the interval, after the section's check is merged in.
    for (relay, under) in [
        ("remote = { address = 10.0.0.1 port = 1 check = { timeout = 3 } }", "3"),
        (
            "check = { interval = 2 }\nremote = { address = 10.0.0.1 port = 1 check = { timeout = 5 } }",
            "5",
        ),
        (
            "check = { timeout = 4 }\nremote = { address = 10.0.0.1 port = 1 check = { interval = 3 } }",
            "4",
        ),
    ] {
        let src = with_relay(relay);
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{relay}");
        error(&src, &diags, Code::InvalidCheck, under);
    }
    // A section's check too long for every remote is reported once.
    let src = with_relay(
        "check = { timeout = 9 }\nremote = { address = 10.0.0.1 port = 1 }\nremote = { address = 10.0.0.2 port = 1 }",
    );
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidCheck, "9");
    // ... and not at all for a remote that turns it off or lengthens the interval.
    clean(&with_relay(
        "check = { timeout = 9 }\nremote = { address = 10.0.0.1 port = 1 check = no }\n\
         remote = { address = 10.0.0.2 port = 1 check = { interval = 9 } }",
    ));
    let src = with_relay(
        "remote = { address = 10.0.0.1 port = 1 check = { expect = \"+OK\" expect regex = \"OK\" } }",
    );
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::InvalidCheck, "expect regex");
    assert_eq!(secondary(&src, d), "expect");
    let src = with_relay("remote = { address = 10.0.0.1 port = 1 check = { send = \"\" } }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidCheck, "\"\"");
    let long = "x".repeat(tcprelay_plan::MAX_CHECK_BYTES + 1);
    let src = with_relay(&format!(
        "remote = {{ address = 10.0.0.1 port = 1 check = {{ expect = \"{long}\" }} }}"
    ));
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidCheck, &format!("\"{long}\""));
    // Exactly the limit is fine.
    let limit = "x".repeat(tcprelay_plan::MAX_CHECK_BYTES);
    clean(&with_relay(&format!(
        "remote = {{ address = 10.0.0.1 port = 1 check = {{ send = \"{limit}\" }} }}"
    )));
    for (field, text) in [
        ("rise", "rise = 0"),
        ("fall", "fall = 0"),
        ("interval", "interval = 0"),
        ("timeout", "timeout = 0"),
    ] {
        let src = with_relay(&format!(
            "remote = {{ address = 10.0.0.1 port = 1 check = {{ {text} }} }}"
        ));
        let (_, diags) = compile(&src);
        let d = error(&src, &diags, Code::ZeroCount, "0");
        assert!(d.message.contains(field), "{}", d.message);
    }
    let src = with_relay("remote = { address = 10.0.0.1 port = 1 check = { port = 1 } }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::UnexpectedToken, "port");
    let src = with_relay("remote = { address = 10.0.0.1 port = 1 check = sometimes }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::InvalidBool, "sometimes");
}

#[test]
fn e0054_an_expect_regex_must_compile() {
    for regex in ["(unclosed", "*PONG", "[z-a]"] {
        let src = with_relay(&format!(
            "remote = {{ address = 10.0.0.1 port = 1 check = {{ expect regex = \"{regex}\" }} }}"
        ));
        let (plan, diags) = compile(&src);
        assert!(plan.is_none(), "{regex}");
        error(&src, &diags, Code::InvalidRegex, &format!("\"{regex}\""));
    }
    let plan = clean(&with_relay(
        "remote = { address = 10.0.0.1 port = 1 check = { expect regex = \"^[+]PONG\\\\r$\" } }",
    ));
    assert_eq!(
        plan.relay.remotes[0].check.clone().expect("check").expect,
        Some(tcprelay_plan::Expect::Regex("^[+]PONG\\r$".to_string()))
    );
}

#[test]
fn issue_15_directives_in_the_wrong_place_say_where_they_belong() {
    let src = with_relay("tls sni = db.example.com\nremote = { address = 10.0.0.1 port = 1 }");
    let (_, diags) = compile(&src);
    let d = error(&src, &diags, Code::UnexpectedToken, "tls sni");
    assert_eq!(
        d.help.as_deref(),
        Some("move it into a `remote = { ... }` block")
    );
    // `send proxy` and `check` belong to the tcprelay section.
    let src = with_spawnd("listen = { port = 1 }\nsend proxy = v1");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::WrongSection, "send proxy");
    let src = with_spawnd("listen = { port = 1 send proxy = v1 }");
    let (_, diags) = compile(&src);
    error(&src, &diags, Code::UnexpectedToken, "send proxy");
}
