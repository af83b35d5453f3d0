//! Tests of the directives of the original family that issue 16 added: each is
//! accepted, reaches the plan where tcprelay honours it, and is warned about (E0041)
//! where it has no effect.

use super::tests::compile;
use crate::diag::{Code, Diagnostic, Severity};
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::{ListenAddress, Plan, Sticky, TlsVersion};

/// The diagnostics with `code`, as (severity, the text under the span).
fn with_code<'s>(src: &'s str, diags: &[Diagnostic], code: Code) -> Vec<(Severity, &'s str)> {
    diags
        .iter()
        .filter(|d| d.code == code)
        .map(|d| (d.severity, &src[d.span.range()]))
        .collect()
}

#[track_caller]
fn plan(src: &str) -> (Plan, Vec<Diagnostic>) {
    let (plan, diags) = compile(src);
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    (plan.expect("a plan"), diags)
}

const FAMILY: &str = "setenv LANG C
debug = PARSE
syslog facility = LOCAL3
syslog ident = top
proctitle = top-title
id = spawnd {
    deny 192.0.2.0/24
    permit not 10.0.0.0/8
    acl = permit 10.0.0.0/8
    tcp bufsize 64k
    pid-file = /run/relay.pid
    sticky cache period = 300
    bind retry delay = 7
    background = deny
    trace = +NET
    syslog ident = spawnd
    listen = { address = inet:127.0.0.1 port = 2222 dscp = 0x2e vrf = blue tls = TLSv1.3,TLSv1.2 bind retry delay = 2 sticky cache period = 60 sticky cache size = 16 type = STREAM }
    listen = { path = unix:/run/relay.sock userid = nobody groupid = 0 ssl = auto }
    listen = { address = 127.0.0.2 port = 2223 tls = yes bind retry delay = 0 }
    spawn = {
        id = tcprelay
        userid = nobody
        groupid = nogroup
        working directory = /tmp
        users minimum = 2
        instances maximum = 3
    }
}
id = tcprelay {
    trace = -PARSE
    proctitle = relay-title
    syslog level = WARNING
    tls cert-file = /nonexistent/tcprelay/cert.pem
    remote = { address = 10.0.0.1:22 weight = 0 }
    remote = { address = \"[2001:db8::1]:8080\" weight = -2 }
}
";

#[test]
fn the_familys_directives_reach_the_plan() {
    let (plan, diags) = plan(FAMILY);
    let s = &plan.spawnd;
    // The rules of both spellings in one list, in the order written.
    let rules: Vec<(bool, bool, u8)> = s
        .acl
        .iter()
        .map(|r| (r.permit, r.negate, r.prefix))
        .collect();
    assert_eq!(
        rules,
        [(false, false, 24), (true, true, 8), (true, false, 8)]
    );
    assert_eq!(s.tcp_bufsize, Some(64 * 1024));
    assert_eq!(s.pidfile.as_deref(), Some("/run/relay.pid"));
    assert!(!s.background);
    assert_eq!(
        s.sticky,
        Some(Sticky {
            period_s: 300,
            size: tcprelay_plan::defaults::STICKY_SIZE
        })
    );
    // PARSE (top level), +NET (spawnd), then -PARSE (tcprelay): NET alone.
    let bit =
        |name: &str| 1u32 << (1 + super::DEBUG_FLAGS.iter().position(|f| *f == name).unwrap());
    assert_eq!(s.debug, bit("NET"));
    // The section's proctitle wins over the top level's; the spawnd section has none.
    assert_eq!(s.proctitle.as_deref(), Some("relay-title"));
    // The top level's syslog is the default of both sections, field by field.
    assert_eq!(
        (s.syslog.ident.as_str(), s.syslog.facility),
        ("spawnd", tcprelay_plan::Facility::Local3)
    );
    let r = &plan.relay.syslog;
    assert_eq!(
        (r.ident.as_str(), r.facility, r.severity),
        (
            "top",
            tcprelay_plan::Facility::Local3,
            tcprelay_plan::Severity::Warning
        )
    );
    // `spawn`'s userid, groupid and working directory are the workers' settings.
    assert_eq!(
        (s.user.as_deref(), s.group.as_deref()),
        (Some("nobody"), Some("nogroup"))
    );
    assert_eq!(s.working_directory.as_deref(), Some("/tmp"));
    assert_eq!((s.users_min, s.servers_max), (2, 3));

    let [inet, unix, plain] = s.listeners.as_slice() else {
        panic!("{:#?}", s.listeners);
    };
    assert_eq!(
        inet.address,
        ListenAddress::Inet("127.0.0.1:2222".parse().unwrap())
    );
    assert_eq!((inet.dscp, inet.vrf.as_deref()), (Some(46), Some("blue")));
    assert!(inet.tls && !inet.tls_auto);
    assert_eq!(inet.tls_versions, [TlsVersion::Tls12, TlsVersion::Tls13]);
    assert_eq!(inet.bind_retry_delay, Some(2));
    assert_eq!(
        inet.sticky,
        Some(Sticky {
            period_s: 60,
            size: 16
        })
    );
    assert_eq!(unix.address, ListenAddress::Unix("/run/relay.sock".into()));
    assert_eq!(
        (unix.owner.as_deref(), unix.group.as_deref()),
        (Some("nobody"), Some("0"))
    );
    assert!(unix.tls && unix.tls_auto && unix.tls_versions.is_empty());
    // The section's retry delay where a listener has none; 0 turns it off.
    assert_eq!(unix.bind_retry_delay, Some(7));
    assert_eq!(plain.bind_retry_delay, None);
    assert_eq!((plain.sticky, plain.tls_versions.len()), (None, 0));

    let remotes: Vec<(SocketAddr, u32)> = plan
        .relay
        .remotes
        .iter()
        .map(|r| (r.address, r.weight))
        .collect();
    assert_eq!(
        remotes,
        [
            ("10.0.0.1:22".parse().unwrap(), 1),
            ("[2001:db8::1]:8080".parse().unwrap(), 1)
        ]
    );
    // The only findings: the weights taken as 1, `ssl` and `users minimum`/`instances
    // maximum` deprecated, and the certificate absent here.
    let mut codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
    codes.sort();
    assert_eq!(
        codes,
        ["E0025", "E0025", "E0033", "E0040", "E0040", "E0040"],
        "{diags:#?}"
    );
    assert_eq!(
        with_code(FAMILY, &diags, Code::InvalidWeight),
        [(Severity::Warning, "0"), (Severity::Warning, "-2")]
    );
}

#[test]
fn directives_without_effect_are_each_one_warning_with_a_help() {
    let src = "debug redirect = stderr
trace redirect = /tmp/x
syslog default = yes
syslog filter = 3
coredump directory = /var/tmp
gcore = /usr/bin/gcore
debug-cmd = \"/bin/true\"
cleanup interval = 600
regex-match-case = yes
alias PORTS = { port = 2222 { nested } }
id = spawnd {
    listen = { port = 2222 tls psk = yes aaa.protocol = tacacs.tcp flag = access }
    spawn = { config = /etc/other.cfg ipc key = 0x4711 }
}
id = tcprelay {
    remote = { address = 10.0.0.1 port = 22 }
}
";
    let (_, diags) = plan(src);
    let found = with_code(src, &diags, Code::Ignored);
    let keys: Vec<&str> = found.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        keys,
        [
            "debug redirect",
            "trace redirect",
            "syslog default",
            "syslog filter",
            "coredump directory",
            "gcore",
            "debug-cmd",
            "cleanup interval",
            "regex-match-case",
            "alias",
            "tls psk",
            "aaa.protocol",
            "flag",
            "config",
            "ipc key",
        ]
    );
    assert!(found.iter().all(|(s, _)| *s == Severity::Warning));
    assert!(diags.iter().all(|d| d.help.is_some()), "{diags:#?}");
    assert_eq!(diags.len(), found.len(), "{diags:#?}");
}

#[test]
fn e0062_a_setting_for_the_other_kind_of_listener() {
    let src = "id = spawnd {
    listen = { port = 2222 userid = nobody groupid = wheel }
    listen = { path = /run/s vrf = blue }
}
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    assert_eq!(
        with_code(src, &diags, Code::WrongSocketKind),
        [
            (Severity::Error, "userid"),
            (Severity::Error, "groupid"),
            (Severity::Error, "vrf")
        ]
    );
    assert_eq!(diags.len(), 3, "{diags:#?}");
}

#[test]
fn e0060_e0061_e0063_e0064_values_out_of_reach() {
    let src = "id = spawnd {
    listen = { port = 1 dscp = 64 }
    listen = { port = 2 tls = TLSv1.1 }
    listen = { port = 3 type = DGRAM }
    listen = { port = 4 protocol = udp }
    sticky cache period = 10
    sticky cache size = 2m
}
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    for (code, text) in [
        (Code::InvalidDscp, "64"),
        (Code::InvalidTlsVersions, "TLSv1.1"),
        (Code::NotAStream, "DGRAM"),
        (Code::InvalidSticky, "2m"),
    ] {
        let found = with_code(src, &diags, code);
        assert!(
            found.contains(&(Severity::Error, text)),
            "{code}: {diags:#?}"
        );
    }
    assert_eq!(with_code(src, &diags, Code::NotAStream).len(), 2);
    assert_eq!(diags.len(), 5, "{diags:#?}");
    // A TOS byte written for a DSCP gets the code point in the help.
    let src = "id = spawnd { listen = { port = 1 dscp = 0xb8 } }\nid = tcprelay { remote = { address = 10.0.0.1 port = 22 } }";
    let (_, diags) = compile(src);
    assert_eq!(
        diags[0].help.as_deref(),
        Some("for the TOS byte 0xb8, write `dscp = 46`")
    );
}

#[test]
fn e0066_a_host_name_gives_a_listener_per_address() {
    let src = "id = spawnd {
    listen = { address = localhost port = 2222 }
    listen = { address = inet:localhost port = 2223 }
}
id = tcprelay {
    remote = { address = localhost port = 22 }
}
";
    let (plan, diags) = plan(src);
    let addrs = listen_addresses(&plan);
    let inet = |s: &str| ListenAddress::Inet(s.parse().unwrap());
    assert_eq!(
        addrs,
        [
            inet("127.0.0.1:2222"),
            inet("[::1]:2222"),
            inet("127.0.0.1:2223")
        ]
    );
    // A remote's host name is no longer resolved by the compiler: it is the
    // runtime's, re-resolved while it runs (issue 18), and gets no E0066.
    assert!(plan.relay.remotes.is_empty());
    assert_eq!(plan.relay.discovered.len(), 1);
    assert_eq!(plan.relay.discovered[0].name, "localhost");
    assert_eq!(
        plan.relay.discovered[0].lookup,
        tcprelay_plan::Lookup::Address { port: 22 }
    );
    assert_eq!(
        with_code(src, &diags, Code::SeveralAddresses),
        [(Severity::Warning, "localhost")]
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].label, "listeners on 127.0.0.1, ::1");
}

#[test]
fn e0065_a_listener_host_name_that_does_not_resolve() {
    let src = "id = spawnd { listen = { address = no-such-host.invalid port = 2222 } }
id = tcprelay { remote = { address = no-such-host.invalid port = 22 } }
";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    // The listener's name is resolved now; the remote's is the runtime's.
    assert_eq!(
        with_code(src, &diags, Code::UnresolvedHost),
        [(Severity::Error, "no-such-host.invalid")]
    );
    assert_eq!(diags[0].span.start, src.find("no-such").unwrap());
    assert_eq!(diags.len(), 1, "{diags:#?}");
}

#[test]
fn e0068_spawn_id_other_than_the_selected_section() {
    let src = "id = spawnd { listen = { port = 2222 } spawn = { id = relay2 } }
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
id = relay2 { remote = { address = 10.0.0.2 port = 22 } }
";
    let (plan, diags) = plan(src);
    assert_eq!(
        with_code(src, &diags, Code::OtherRelaySection),
        [(Severity::Warning, "relay2")]
    );
    // The command line's selection is used.
    assert_eq!(plan.tcprelay_id, "tcprelay");
    assert_eq!(
        plan.relay.remotes[0].address.ip(),
        "10.0.0.1".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn a_remote_port_given_twice_keeps_the_addresss_and_a_sticky_size_alone_is_off() {
    let src = "id = spawnd { listen = { port = 2222 } sticky cache size = 10 }
id = tcprelay { remote = { port = 80 address = 10.0.0.1:22 } }
";
    let (plan, diags) = plan(src);
    assert_eq!(
        plan.relay.remotes[0].address,
        "10.0.0.1:22".parse().unwrap()
    );
    assert_eq!(
        with_code(src, &diags, Code::DuplicateDirective),
        [(Severity::Warning, "10.0.0.1:22")]
    );
    assert_eq!(
        with_code(src, &diags, Code::Ignored),
        [(Severity::Warning, "10")]
    );
    assert_eq!(plan.spawnd.sticky, None);
}

#[test]
fn e0067_an_unknown_debug_flag_and_the_manuals_forms_without_equals() {
    let src = "debug = PARSE NTE\nid = spawnd { listen = { port = 2222 } }
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    assert_eq!(
        with_code(src, &diags, Code::InvalidDebugFlag),
        [(Severity::Error, "NTE")]
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
    // `setenv NAME VALUE` and `id NAME {` without `=`.
    let (plan, _) = plan_of("setenv A b\nid spawnd { listen = { port = 2222 } }\nid tcprelay { remote = { address = 10.0.0.1 port = 22 } }");
    assert_eq!(plan.env, [("A".to_string(), "b".to_string())]);
}

fn plan_of(src: &str) -> (Plan, Vec<Diagnostic>) {
    plan(src)
}

#[test]
fn address_and_path_each_take_the_other_kind_with_a_fix_it() {
    let src = "id = spawnd {
    listen = { path = inet:127.0.0.1 port = 2222 }
    listen = { address = unix:/run/relay.sock }
    listen = { path = ::1 port = 2223 }
}
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
";
    let (plan, diags) = plan(src);
    let addrs = listen_addresses(&plan);
    assert_eq!(
        addrs,
        [
            ListenAddress::Inet("127.0.0.1:2222".parse().unwrap()),
            ListenAddress::Unix("/run/relay.sock".into()),
            ListenAddress::Inet("[::1]:2223".parse().unwrap()),
        ]
    );
    let helps: Vec<Option<&str>> = diags.iter().map(|d| d.help.as_deref()).collect();
    assert_eq!(
        helps,
        [
            Some("write `address = inet:127.0.0.1`"),
            Some("write `path = /run/relay.sock`"),
            Some("write `address = ::1`"),
        ]
    );
    assert!(diags.iter().all(|d| d.code == Code::Deprecated));
}

#[test]
fn an_empty_proctitle_is_e0046_not_a_plan_the_runtime_refuses() {
    let src = "proctitle = \"\"\nid = spawnd { listen = { port = 2222 } }
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
";
    let (plan, diags) = compile(src);
    assert!(plan.is_none());
    assert_eq!(
        with_code(src, &diags, Code::NotForTheOs),
        [(Severity::Error, "\"\"")]
    );
    assert_eq!(diags[0].message, "the process title is empty");
}

/// The addresses of the plan's listeners, in order.
fn listen_addresses(plan: &tcprelay_plan::Plan) -> Vec<ListenAddress> {
    plan.spawnd
        .listeners
        .iter()
        .map(|l| l.address.clone())
        .collect()
}

/// `tcp bufsize` in a `listen` block (the spawnd manual's place, which the original
/// rejected) is the relay's, with E0040 once per block; the section's own value wins
/// over none, and an equal one is no conflict.
#[test]
fn a_listeners_tcp_bufsize_is_the_relays() {
    let src = "
id = spawnd {
    listen = { port = 2222 tcp bufsize 64k }
    listen = { port = 2223 tcp bufsize = 65536 }
}
id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }
";
    let (plan, diags) = plan(src);
    assert_eq!(plan.spawnd.tcp_bufsize, Some(65536));
    let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::Deprecated, Code::Deprecated], "{diags:#?}");
}
