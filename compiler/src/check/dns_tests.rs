//! DNS discovery in the language (issue 18): remotes given by a host name or an SRV
//! name become the plan's discovered names, not resolved by the compiler; the
//! resolver settings reach the plan; E0100–E0108.

use super::tests::compile;
use crate::diag::{Code, Diagnostic, Severity};
use tcprelay_plan::{defaults, Discovered, Lookup, Plan, Protocol, ProxyVersion, Resolve};

/// The configuration with `relay` as the tcprelay section's body.
fn config(relay: &str) -> String {
    format!("id = spawnd {{ listen = {{ port = 2222 }} }}\nid = tcprelay {{\n{relay}\n}}\n")
}

#[track_caller]
fn plan(relay: &str) -> (Plan, Vec<Diagnostic>) {
    let (plan, diags) = compile(&config(relay));
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    (plan.expect("a plan"), diags)
}

/// The diagnostics with `code`: (severity, the text under the span).
fn with_code(relay: &str, code: Code) -> (Vec<(Severity, String)>, bool) {
    let src = config(relay);
    let (plan, diags) = compile(&src);
    let found = diags
        .iter()
        .filter(|d| d.code == code)
        .map(|d| (d.severity, src[d.span.range()].to_string()))
        .collect();
    (found, plan.is_some())
}

#[test]
fn names_become_discovered_remotes_with_their_settings() {
    let (plan, diags) = plan(
        "send proxy = v1
    check = { interval = 5 }
    remote = { address = 10.0.0.1 port = 80 }
    remote = { address = DB.Example.COM port = 5432 weight = 3 protocol = SCTP }
    remote = { address = cache.example.:6379 tls = yes }
    remote = { srv = _redis._tcp.example.com send proxy = no check = no }",
    );
    assert!(diags.is_empty(), "{diags:#?}");
    let r = &plan.relay;
    // The IP literal stays a remote of the plan; the names are not resolved.
    assert_eq!(r.remotes.len(), 1);
    assert_eq!(r.remotes[0].address, "10.0.0.1:80".parse().unwrap());
    let names: Vec<(&str, Lookup)> = r
        .discovered
        .iter()
        .map(|d| (d.name.as_str(), d.lookup))
        .collect();
    assert_eq!(
        names,
        [
            ("db.example.com", Lookup::Address { port: 5432 }),
            ("cache.example.", Lookup::Address { port: 6379 }),
            ("_redis._tcp.example.com", Lookup::Srv),
        ]
    );
    let [db, cache, redis]: &[Discovered; 3] = r.discovered.as_slice().try_into().unwrap();
    assert_eq!(db.template.address, "0.0.0.0:5432".parse().unwrap());
    assert_eq!(db.template.weight, 3);
    assert_eq!(db.template.protocol, Protocol::Sctp);
    // The section's `send proxy` and `check` apply to a template as to a remote.
    assert_eq!(db.template.send_proxy, Some(ProxyVersion::V1));
    assert_eq!(db.template.check.as_ref().unwrap().interval_ms, 5000);
    // TLS towards a host name's addresses checks the name.
    let tls = cache.template.tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("cache.example"));
    assert_eq!(redis.template.address, "0.0.0.0:0".parse().unwrap());
    assert_eq!(redis.template.weight, defaults::WEIGHT);
    assert_eq!(redis.template.send_proxy, None);
    assert!(redis.template.check.is_none());
    // No resolver settings: the system's, at the defaults.
    assert_eq!(r.resolve, Resolve::default());
}

#[test]
fn a_written_tls_sni_is_kept_for_a_name() {
    let (plan, _) = plan("remote = { address = db.example.com port = 443 tls = yes tls sni = other.example tls verify = no }");
    let tls = plan.relay.discovered[0].template.tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("other.example"));
}

#[test]
fn resolver_settings_reach_the_plan() {
    let (plan, diags) = plan(
        "resolvers = { nameserver = 127.0.0.1:5353 nameserver = ::1 nameserver = [::1]:54 timeout = 3 attempts = 4 }
    resolve interval min = 5
    resolve interval max = 60
    resolve start = wait
    remote = { address = db.example.com port = 5432 }",
    );
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(
        plan.relay.resolve,
        Resolve {
            nameservers: vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "[::1]:54".parse().unwrap()
            ],
            timeout_ms: 3000,
            attempts: 4,
            interval_s: None,
            interval_min_s: 5,
            interval_max_s: 60,
            start_empty: true,
        }
    );
    let (fixed, _) =
        self::plan("resolve interval = 30 resolve start = fail remote = { srv = _a._tcp.b }");
    assert_eq!(fixed.relay.resolve.interval_s, Some(30));
    assert!(!fixed.relay.resolve.start_empty);
}

#[test]
fn a_section_with_only_discovered_names_is_valid() {
    let (plan, _) = plan("remote = { srv = _redis._tcp.example.com }");
    assert!(plan.relay.remotes.is_empty());
    assert_eq!(plan.validate(), Ok(()));
}

#[test]
fn e0100_a_name_that_is_not_a_dns_name() {
    let (found, ok) = with_code(
        "remote = { address = db..example port = 1 }",
        Code::InvalidDnsName,
    );
    assert_eq!(found, [(Severity::Error, "db..example".to_string())]);
    assert!(!ok);
    let (found, _) = with_code(
        "remote = { address = db$1.example port = 1 }",
        Code::InvalidDnsName,
    );
    assert_eq!(found.len(), 1);
    let (found, _) = with_code(
        "remote = { srv = \"_a._tcp.ex ample\" }",
        Code::InvalidDnsName,
    );
    assert_eq!(found.len(), 1);
    // A broken IP address is still E0022, not a name.
    let (found, ok) = with_code(
        "remote = { address = 10.0.0.300 port = 1 }",
        Code::InvalidAddress,
    );
    assert_eq!(found.len(), 1);
    assert!(!ok);
}

#[test]
fn e0101_port_and_weight_in_an_srv_remote() {
    let (found, ok) = with_code(
        "remote = { srv = _a._tcp.example port = 80 weight = 2 }",
        Code::SrvGivesPort,
    );
    assert_eq!(
        found,
        [
            (Severity::Error, "port".to_string()),
            (Severity::Error, "2".to_string())
        ]
    );
    assert!(!ok);
}

#[test]
fn e0102_address_and_srv() {
    let (found, ok) = with_code(
        "remote = { address = 10.0.0.1 srv = _a._tcp.example }",
        Code::AddressAndSrv,
    );
    assert_eq!(found, [(Severity::Error, "address".to_string())]);
    assert!(!ok);
}

#[test]
fn e0103_an_srv_name_of_another_shape() {
    for (name, warned) in [
        ("_redis._tcp.example.com", false),
        ("_ldap._sctp.example", false),
        ("redis.example.com", true),
        ("_redis.example.com", true),
        ("_dns._udp.example.com", true),
        ("_a._tcp", true),
    ] {
        let (found, ok) = with_code(&format!("remote = {{ srv = {name} }}"), Code::SrvNameShape);
        assert!(ok, "{name}");
        let expected = if warned {
            vec![(Severity::Warning, name.to_string())]
        } else {
            vec![]
        };
        assert_eq!(found, expected, "{name}");
    }
}

#[test]
fn e0104_a_nameserver_that_is_not_an_address() {
    let relay =
        |ns: &str| format!("resolvers = {{ nameserver = {ns} }} remote = {{ srv = _a._tcp.b }}");
    let (found, ok) = with_code(&relay("dns.example"), Code::InvalidNameserver);
    assert_eq!(found, [(Severity::Error, "dns.example".to_string())]);
    assert!(!ok);
    let (found, ok) = with_code(&relay("127.0.0.1:0"), Code::InvalidPort);
    assert_eq!(found.len(), 1);
    assert!(!ok);
    let (found, ok) = with_code(&relay("[::1]:5353"), Code::InvalidNameserver);
    assert!(found.is_empty() && ok);
}

#[test]
fn e0105_interval_bounds() {
    let names = " remote = { srv = _a._tcp.b }";
    let (found, ok) = with_code(
        &format!("resolve interval min = 90 resolve interval max = 60{names}"),
        Code::ResolveIntervalBounds,
    );
    assert_eq!(found, [(Severity::Error, "90".to_string())]);
    assert!(!ok);
    // Against the default maximum, 300.
    let (found, ok) = with_code(
        &format!("resolve interval min = 301{names}"),
        Code::ResolveIntervalBounds,
    );
    assert_eq!(found, [(Severity::Error, "301".to_string())]);
    assert!(!ok);
    let (found, ok) = with_code(
        &format!("resolve interval = 10 resolve interval max = 60{names}"),
        Code::ResolveIntervalBounds,
    );
    assert_eq!(found, [(Severity::Warning, "60".to_string())]);
    assert!(ok);
    let (found, ok) = with_code(&format!("resolve interval = 0{names}"), Code::ZeroCount);
    assert_eq!(found.len(), 1);
    assert!(!ok);
}

#[test]
fn e0106_resolver_settings_without_a_name() {
    let (found, ok) = with_code(
        "resolvers = { nameserver = 127.0.0.1 } resolve start = wait remote = { address = 10.0.0.1 port = 1 }",
        Code::ResolveUnused,
    );
    assert_eq!(
        found,
        [
            (Severity::Warning, "resolvers".to_string()),
            (Severity::Warning, "wait".to_string())
        ]
    );
    assert!(ok);
    let (found, _) = with_code(
        "resolve start = wait remote = { address = db.example port = 1 }",
        Code::ResolveUnused,
    );
    assert!(found.is_empty());
}

#[test]
fn e0107_a_family_prefix_before_a_name() {
    let (found, ok) = with_code(
        "remote = { address = inet6:db.example port = 1 }",
        Code::FamilyPrefixOnName,
    );
    assert_eq!(found, [(Severity::Error, "inet6:db.example".to_string())]);
    assert!(!ok);
    // Before an IP address the prefix is what it was.
    let (found, ok) = with_code(
        "remote = { address = inet:10.0.0.1 port = 1 }",
        Code::FamilyPrefixOnName,
    );
    assert!(found.is_empty() && ok);
}

#[test]
fn e0108_the_same_name_twice() {
    let (found, ok) = with_code(
        "remote = { address = db.example port = 1 }
    remote = { address = DB.example. port = 1 weight = 2 }
    remote = { address = db.example port = 2 }
    remote = { srv = db.example }",
        Code::DuplicateDiscovered,
    );
    assert_eq!(found, [(Severity::Error, "DB.example.".to_string())]);
    assert!(!ok);
}

#[test]
fn an_srv_remote_with_verified_tls_needs_a_server_name() {
    // E0050: the targets' names are not known to the compiler.
    let (found, ok) = with_code(
        "remote = { srv = _a._tcp.example tls = yes }",
        Code::VerifyWithoutName,
    );
    assert_eq!(found.len(), 1);
    assert!(!ok);
    // A host name is the server name of its addresses.
    let (found, ok) = with_code(
        "remote = { address = db.example port = 1 tls = yes }",
        Code::VerifyWithoutName,
    );
    assert!(found.is_empty() && ok);
}

#[test]
fn resolver_block_values() {
    let names = " remote = { srv = _a._tcp.b }";
    for (block, code) in [
        ("timeout = 0", Code::ZeroCount),
        ("attempts = 0", Code::ZeroCount),
        ("attempts = 17", Code::InvalidNumber),
        ("timeout = 61", Code::InvalidNumber),
        ("port = 53", Code::UnexpectedToken),
    ] {
        let (found, ok) = with_code(&format!("resolvers = {{ {block} }}{names}"), code);
        assert_eq!(found.len(), 1, "{block}");
        assert!(!ok, "{block}");
    }
    let (found, ok) = with_code(
        &format!("resolvers = {{ nameserver = 10.0.0.1 nameserver = 10.0.0.1:53 }}{names}"),
        Code::DuplicateDirective,
    );
    assert_eq!(found, [(Severity::Warning, "10.0.0.1:53".to_string())]);
    assert!(ok);
    let (found, ok) = with_code(
        &format!("resolve start = later{names}"),
        Code::InvalidChoice,
    );
    assert_eq!(found.len(), 1);
    assert!(!ok);
}
