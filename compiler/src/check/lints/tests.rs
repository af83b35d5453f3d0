//! The lints' tests: the set arithmetic and the balancing against brute force, and
//! each lint through the whole pipeline (code, severity, place, labels).

use super::*;
use crate::check::tests::compile;
use crate::diag::{Diagnostic, Severity};

fn rule(permit: bool, negate: bool, net: &str, prefix: u8) -> AclRule {
    AclRule {
        permit,
        negate,
        network: net.parse().unwrap(),
        prefix,
    }
}

/// The diagnostics with `code`, each checked to be a warning.
fn with(diags: &[Diagnostic], code: Code) -> Vec<&Diagnostic> {
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == code).collect();
    for d in &found {
        assert_eq!(d.severity, Severity::Warning, "{d:#?}");
    }
    found
}

fn text(src: &str, span: crate::ast::Span) -> &str {
    &src[span.range()]
}

/// The runtime's own rule for one client (`tcprelay_plan::route::contains`, which
/// the workers call), to hold the set arithmetic to it address by address.
fn runtime_matches(r: &AclRule, client: IpAddr) -> bool {
    tcprelay_plan::route::contains(r.network, r.prefix, client) != r.negate
}

fn contains(set: &Set, ip: IpAddr) -> bool {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    set.0.iter().any(|&(lo, hi)| lo <= bits && bits <= hi)
}

#[test]
fn rule_sets_agree_with_the_runtimes_matching() {
    let rules = [
        rule(true, false, "10.0.0.0", 8),
        rule(true, true, "10.0.0.0", 8),
        rule(false, false, "0.0.0.0", 0),
        rule(false, true, "0.0.0.0", 0),
        rule(true, false, "192.0.2.7", 32),
        rule(true, false, "2001:db8::", 32),
        rule(true, true, "::1", 128),
        rule(true, false, "::", 0),
        // A v4-mapped network is IPv4, its prefix counting the mapping's 96 bits.
        rule(true, false, "::ffff:192.0.2.0", 120),
        rule(true, false, "::ffff:10.0.0.0", 104),
    ];
    let clients = [
        "10.0.0.0",
        "10.255.255.255",
        "11.0.0.0",
        "9.255.255.255",
        "0.0.0.0",
        "255.255.255.255",
        "192.0.2.7",
        "192.0.2.8",
        "192.0.2.0",
        "::",
        "::1",
        "::2",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db9::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];
    for r in &rules {
        for c in clients {
            let ip: IpAddr = c.parse().unwrap();
            let family = Family::of(ip);
            assert_eq!(
                contains(&matches(r, family), ip),
                runtime_matches(r, ip),
                "{} and {c}",
                r
            );
        }
    }
}

#[test]
fn set_difference_and_union_are_exact() {
    let s = Set(vec![(0, 9), (20, 29)]);
    assert_eq!(s.minus(&Set(vec![(5, 22)])), Set(vec![(0, 4), (23, 29)]));
    assert_eq!(s.minus(&Set(vec![(0, 29)])), Set::default());
    assert_eq!(s.minus(&Set(vec![(10, 19)])), s);
    assert_eq!(
        Set(vec![(0, u128::MAX)]).minus(&Set(vec![(u128::MAX, u128::MAX)])),
        Set(vec![(0, u128::MAX - 1)])
    );
    assert_eq!(s.union(&Set(vec![(10, 19)])), Set(vec![(0, 29)]));
    assert_eq!(
        Set(vec![(5, u128::MAX)]).union(&Set(vec![(0, 4)])),
        Set(vec![(0, u128::MAX)])
    );
    assert!(s.intersects(&Set(vec![(9, 9)])));
    assert!(!s.intersects(&Set(vec![(10, 19)])));
}

#[test]
fn a_rule_inside_an_earlier_one_is_shadowed_and_labels_it() {
    let src = "id = spawnd {\n listen = { port = 1 }\n acl = deny 192.168.0.0/16\n acl = permit 192.168.5.0/24\n acl = permit 10.0.0.0/8\n}\nid = tcprelay { remote = { address = 192.0.2.1 port = 1 } }\n";
    let (plan, diags) = compile(src);
    assert!(plan.is_some(), "warnings only: {diags:#?}");
    let found = with(&diags, Code::ShadowedAclRule);
    assert_eq!(found.len(), 1, "{diags:#?}");
    let d = found[0];
    assert_eq!(text(src, d.span), "192.168.5.0/24");
    assert_eq!(d.labels.len(), 1);
    assert_eq!(text(src, d.labels[0].span), "192.168.0.0/16");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("write `acl = permit 192.168.5.0/24` before `acl = deny 192.168.0.0/16`"),
        "{d:#?}"
    );
    assert!(with(&diags, Code::AclDeniesAll).is_empty(), "{diags:#?}");
}

#[test]
fn a_rule_covered_by_several_earlier_ones_together_is_shadowed() {
    // Two halves of 10.0.0.0/8, neither alone covering it; and a rule that adds one
    // address to what the earlier rules hold is not shadowed.
    let src = "id = spawnd {\n listen = { port = 1 }\n acl = permit 10.0.0.0/9\n acl = deny 10.128.0.0/9\n acl = deny 10.0.0.0/8\n acl = permit 10.0.0.0/7\n}\nid = tcprelay { remote = { address = 192.0.2.1 port = 1 } }\n";
    let (_, diags) = compile(src);
    let found = with(&diags, Code::ShadowedAclRule);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert_eq!(text(src, found[0].span), "10.0.0.0/8");
    let labels: Vec<&str> = found[0].labels.iter().map(|l| text(src, l.span)).collect();
    assert_eq!(labels, ["10.0.0.0/9", "10.128.0.0/9"]);
}

#[test]
fn a_not_rule_takes_the_other_family() {
    let src = "id = spawnd {\n listen = { port = 1 }\n acl = permit not 10.0.0.0/8\n acl = deny 2001:db8::/32\n}\nid = tcprelay { remote = { address = 192.0.2.1 port = 1 } }\n";
    let (_, diags) = compile(src);
    let found = with(&diags, Code::ShadowedAclRule);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert_eq!(text(src, found[0].span), "2001:db8::/32");
    assert!(found[0].notes.iter().any(|n| n.contains("other family")));
}

#[test]
fn rules_that_permit_nothing_a_listener_takes_deny_everyone() {
    // An IPv4 listener, IPv6 permits.
    let src = "id = spawnd {\n listen = { port = 1 }\n acl = deny 10.0.0.0/8\n acl = permit ::1\n}\nid = tcprelay { remote = { address = 192.0.2.1 port = 1 } }\n";
    let (_, diags) = compile(src);
    let found = with(&diags, Code::AclDeniesAll);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert_eq!(text(src, found[0].span), "10.0.0.0/8");
    assert_eq!(text(src, found[0].labels[0].span), "::1");
    // The same rules with an IPv6 listener permit ::1: nothing to say.
    let v6 = src.replace(
        "listen = { port = 1 }",
        "listen = { address = ::1 port = 1 }",
    );
    let (_, diags) = compile(&v6);
    assert!(with(&diags, Code::AclDeniesAll).is_empty(), "{diags:#?}");
    // Only Unix listeners: the acl does not apply to them.
    let unix = src.replace("listen = { port = 1 }", "listen = { path = /tmp/x.sock }");
    let (_, diags) = compile(&unix);
    assert!(with(&diags, Code::AclDeniesAll).is_empty(), "{diags:#?}");
}

#[test]
fn a_family_no_rule_permits_is_reported_at_its_listener() {
    let src = "id = spawnd {\n listen = { address = 127.0.0.1 port = 1 }\n listen = { address = ::1 port = 2 }\n acl = permit 127.0.0.0/8\n}\nid = tcprelay { remote = { address = 192.0.2.1 port = 1 } }\n";
    let (_, diags) = compile(src);
    let found = with(&diags, Code::AclDeniesAll);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert!(found[0].message.contains("IPv6"), "{:#?}", found[0]);
    assert_eq!(
        found[0].span.start,
        src.find("listen = { address = ::1").unwrap()
    );
    // Permitting IPv6 too: silent. No rules at all: silent.
    let both = src.replace(
        " acl = permit 127.0.0.0/8\n",
        " acl = permit 127.0.0.0/8\n acl = permit ::/0\n",
    );
    assert!(with(&compile(&both).1, Code::AclDeniesAll).is_empty());
    let none = src.replace(" acl = permit 127.0.0.0/8\n", "");
    assert!(with(&compile(&none).1, Code::AclDeniesAll).is_empty());
}

#[test]
fn the_first_choice_formula_is_what_the_selection_does() {
    let cases: &[&[u64]] = &[
        &[1, 1, 1],
        &[2, 3],
        &[1000, 1, 5],
        &[256, 257, 1, 512],
        &[1, 100_000, 3],
        &[300, 300, 300, 1],
        &[u64::from(u32::MAX), 1],
    ];
    for weights in cases {
        let needed = first_choices(weights);
        let last = needed[weights.len() - 1];
        let first = first_chosen(weights, last.min(200_000));
        for (j, got) in first.iter().enumerate() {
            let need = needed[j];
            if need <= 200_000 {
                assert_eq!(*got, Some(need), "{weights:?}, remote {j}");
            } else {
                assert_eq!(*got, None, "{weights:?}, remote {j}");
            }
        }
    }
}

#[test]
fn a_remote_after_more_sessions_than_users_max_is_never_chosen() {
    let src = "id = spawnd {\n listen = { port = 1 }\n spawn = { users max = 2 }\n}\nid = tcprelay {\n remote = { address = 192.0.2.1 port = 1 }\n remote = { address = 192.0.2.2 port = 1 }\n remote = { address = 192.0.2.3 port = 1 }\n}\n";
    let (plan, diags) = compile(src);
    assert!(plan.is_some());
    let found = with(&diags, Code::RemoteNeverChosen);
    assert_eq!(found.len(), 1, "{diags:#?}");
    let d = found[0];
    assert_eq!(
        d.span.start,
        src.find("remote = { address = 192.0.2.3").unwrap()
    );
    assert!(d.message.contains("192.0.2.3:1"), "{d:#?}");
    assert_eq!(text(src, d.labels[0].span), "2");
    assert!(
        d.help.as_deref().unwrap().contains("`users max = 3`"),
        "{d:#?}"
    );
    // Three sessions a worker: every remote gets one.
    let three = src.replace("users max = 2", "users max = 3");
    assert!(with(&compile(&three).1, Code::RemoteNeverChosen).is_empty());
}

#[test]
fn without_users_max_a_huge_weight_still_starves_the_next_remote() {
    // 2^24 / 256 = 65,536 sessions at score 0: the 65,536 assumed are all taken.
    let src = "id = spawnd {\n listen = { port = 1 }\n}\nid = tcprelay {\n remote = { address = 192.0.2.1 port = 1 weight = 16777216 }\n remote = { address = 192.0.2.2 port = 1 weight = 7 }\n}\n";
    let (_, diags) = compile(src);
    let found = with(&diags, Code::RemoteNeverChosen);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert_eq!(text(src, found[0].span), "7");
    assert!(found[0].help.as_deref().unwrap().contains("65537"));
    let lighter = src.replace("16777216", "16776960");
    assert!(with(&compile(&lighter).1, Code::RemoteNeverChosen).is_empty());
}

#[test]
fn retire_below_users_max_is_reported_at_retire() {
    let src = "id = spawnd {\n listen = { port = 1 }\n spawn = { users max = 200 }\n}\nid = tcprelay {\n retire = 50\n remote = { address = 192.0.2.1 port = 1 }\n}\n";
    let (_, diags) = compile(src);
    let found = with(&diags, Code::RetireBelowUsersMax);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert_eq!(text(src, found[0].span), "50");
    assert_eq!(text(src, found[0].labels[0].span), "200");
    for fine in ["retire = 200", "retire = 0"] {
        let s = src.replace("retire = 50", fine);
        assert!(
            with(&compile(&s).1, Code::RetireBelowUsersMax).is_empty(),
            "{fine}"
        );
    }
    // No `users max`: nothing to compare with.
    let s = src.replace(" spawn = { users max = 200 }\n", "");
    assert!(with(&compile(&s).1, Code::RetireBelowUsersMax).is_empty());
}

#[test]
fn an_idle_timeout_below_the_connect_timeout_is_reported() {
    let src = "id = spawnd {\n listen = { port = 1 }\n}\nid = tcprelay {\n idle timeout = 5\n remote = { address = 192.0.2.1 port = 1 }\n}\n";
    // Against the default connect timeout of 10 s: a note instead of a label.
    let (_, diags) = compile(src);
    let found = with(&diags, Code::IdleBelowConnect);
    assert_eq!(found.len(), 1, "{diags:#?}");
    assert_eq!(text(src, found[0].span), "5");
    assert!(found[0].labels.is_empty());
    assert!(found[0].notes[0].contains("10 s when not written"));
    let written = src.replace(
        "idle timeout = 5\n",
        "idle timeout = 5\n connect timeout = 3\n",
    );
    assert!(with(&compile(&written).1, Code::IdleBelowConnect).is_empty());
    let longer = src.replace(
        "idle timeout = 5\n",
        "idle timeout = 5\n connect timeout = 6\n",
    );
    let (_, diags) = compile(&longer);
    let found = with(&diags, Code::IdleBelowConnect);
    assert_eq!(text(&longer, found[0].labels[0].span), "6");
    let never = src.replace("idle timeout = 5", "idle timeout = 0");
    assert!(with(&compile(&never).1, Code::IdleBelowConnect).is_empty());
}

#[test]
fn a_remote_on_the_relays_own_listener_is_a_loop() {
    let src = "id = spawnd {\n listen = { port = 8080 }\n listen = { address = ::1 port = 8443 }\n}\nid = tcprelay {\n remote = { address = 127.0.0.2 port = 8080 }\n remote = { address = ::ffff:127.0.0.1 port = 8080 }\n remote = { address = ::1 port = 8443 }\n remote = { address = ::1 port = 8080 }\n remote = { address = 127.0.0.1 port = 8443 }\n}\n";
    let (plan, diags) = compile(src);
    assert!(plan.is_some());
    let found = with(&diags, Code::RemoteIsOwnListener);
    let remotes: Vec<&str> = found
        .iter()
        .map(|d| &src[d.span.start..src[d.span.start..].find('}').unwrap() + d.span.start])
        .collect();
    assert_eq!(
        remotes,
        [
            "remote = { address = 127.0.0.2 port = 8080 ",
            "remote = { address = ::ffff:127.0.0.1 port = 8080 ",
            "remote = { address = ::1 port = 8443 ",
        ],
        "{diags:#?}"
    );
    assert_eq!(text(src, found[0].labels[0].span), "listen");
    assert_eq!(found[0].labels[0].span.start, src.find("listen").unwrap());
}

#[test]
fn send_proxy_to_a_proxy_listener_is_e0049_alone() {
    let src = "id = spawnd {\n listen = { port = 8080 haproxy = yes accept proxy from = 127.0.0.1 }\n}\nid = tcprelay {\n remote = { address = 127.0.0.1 port = 8080 send proxy = v1 }\n}\n";
    let (_, diags) = compile(src);
    assert_eq!(
        diags.iter().filter(|d| d.code == Code::ProxyLoop).count(),
        1,
        "{diags:#?}"
    );
    // E0049 makes it an error: the lints do not run, and would not repeat it.
    assert!(with(&diags, Code::RemoteIsOwnListener).is_empty());
    // `send proxy = no`: the loop without headers is the lint's.
    let plain = src.replace("send proxy = v1", "send proxy = no");
    let (_, diags) = compile(&plain);
    assert_eq!(
        with(&diags, Code::RemoteIsOwnListener).len(),
        1,
        "{diags:#?}"
    );
}

#[test]
fn an_address_of_this_machine_under_a_wildcard_is_a_loop_with_a_note() {
    let src = "id = spawnd {\n listen = { port = 8080 }\n}\nid = tcprelay {\n remote = { address = 192.0.2.7 port = 8080 }\n remote = { address = 192.0.2.8 port = 8080 }\n}\n";
    let (_, diags) = compile(src);
    assert!(
        with(&diags, Code::RemoteIsOwnListener).is_empty(),
        "{diags:#?}"
    );
    let file = crate::parse(src, &crate::Selection::default()).0.unwrap();
    let mut found = Vec::new();
    let model = crate::check::check(&file, &crate::Selection::default(), &mut found).unwrap();
    let mut out = Vec::new();
    let local = |ip: IpAddr| ip == IpAddr::from([192, 0, 2, 7]);
    own_listeners_with(
        &model.spawnd.listeners,
        &model.relay,
        &local,
        &mut Cx { diags: &mut out },
    );
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].message.contains("192.0.2.7:8080"));
    assert!(out[0].notes[0].contains("an address of this machine"));
    assert!(
        !local_address(IpAddr::from([192, 0, 2, 7])),
        "TEST-NET is nobody's"
    );
    assert!(local_address(IpAddr::from([127, 0, 0, 1])));
}

#[test]
fn another_daemons_listener_on_the_same_address_is_reported() {
    let src = "id = spawnd {\n listen = { address = 192.0.2.1 port = 21 }\n listen = { port = 2222 }\n listen = { path = /run/x.sock }\n}\nid = ftpd {\n listen { port 21 }\n listen = { 192.0.2.1 port = ssh }\n listen = { path = \"/run/x.sock\" }\n host = h { address = 0.0.0.0 port = 2222 }\n}\nid = tac { listen = { address = :: port = 2222 } }\nid = tcprelay { remote = { address = 192.0.2.10 port = 21 } }\n";
    let (plan, diags) = compile(src);
    assert!(plan.is_some(), "{diags:#?}");
    let found = with(&diags, Code::OtherDaemonsListener);
    let pairs: Vec<(usize, usize)> = found
        .iter()
        .map(|d| {
            let line = |at: usize| src[..at].lines().count();
            (line(d.span.start), line(d.labels[0].span.start))
        })
        .collect();
    // 21 on 192.0.2.1 under ftpd's 0.0.0.0:21, and the socket path; `port = ssh`
    // is 22, the `host` block is not a listener, `::` is IPv6.
    assert_eq!(pairs, [(2, 7), (4, 9)], "{diags:#?}");
    assert!(found[0].labels[0].message.contains("section `ftpd`"));
}

#[test]
fn the_examples_stay_free_of_lints() {
    // The configurations shipped as examples are what the lints must not flag.
    for name in [
        "relay.cfg",
        "load-balancing.cfg",
        "proxy-tls-checks.cfg",
        "tls-wrapper.cfg",
    ] {
        let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let src = std::fs::read_to_string(&path).unwrap();
        let (_, diags) = compile(&src);
        let lints: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| ("E0071"..="E0079").contains(&d.code.as_str()))
            .collect();
        assert!(lints.is_empty(), "{name}: {lints:#?}");
    }
}

#[test]
fn thousands_of_acl_rules_are_checked_quickly() {
    // 20,000 host rules, each new, then one every earlier rule covers together: the
    // sets grow by one range a rule, merged in place, never sorted again.
    let mut src = String::from("id = spawnd {\n listen = { port = 1 }\n");
    for i in 0..20_000u32 {
        src.push_str(&format!(" acl = permit 10.{}.{}.0/24\n", i / 256, i % 256));
    }
    src.push_str(
        " acl = deny 10.0.0.0/16\n}\nid = tcprelay { remote = { address = 10.0.0.1 port = 2 } }\n",
    );
    let started = std::time::Instant::now();
    let (_, diags) = compile(&src);
    let elapsed = started.elapsed();
    let found = with(&diags, Code::ShadowedAclRule);
    assert_eq!(found.len(), 1, "{:?}", &diags[..diags.len().min(3)]);
    assert_eq!(text(&src, found[0].span), "10.0.0.0/16");
    // The 256 /24 rules of 10.0.0.0/16 are labelled, at most 8 of them.
    assert_eq!(found[0].labels.len(), 8);
    assert!(elapsed.as_secs() < 10, "{elapsed:?}");
}
