//! `Plan::validate` on the discovered names and the resolver settings (issue 18).

use tcprelay_plan::*;

fn plan(relay: Relay) -> Plan {
    let listener = Listener::new(ListenAddress::Inet("127.0.0.1:2222".parse().unwrap()));
    Plan::new("t.cfg", Spawnd::new(vec![listener]), relay)
}

fn found(name: &str, lookup: Lookup) -> Discovered {
    let port = match lookup {
        Lookup::Address { port } => port,
        Lookup::Srv => 0,
    };
    Discovered {
        name: name.into(),
        lookup,
        template: Remote::new(std::net::SocketAddr::new([0, 0, 0, 0].into(), port)),
    }
}

/// A relay with only `discovered`.
fn relay(discovered: Vec<Discovered>) -> Relay {
    let mut r = Relay::new(Vec::new());
    r.discovered = discovered;
    r
}

#[test]
fn a_relay_with_only_discovered_names_is_valid() {
    let good = plan(relay(vec![
        found("db.example.com", Lookup::Address { port: 5432 }),
        found("_redis._tcp.example.com.", Lookup::Srv),
        // The same name by another lookup, or at another port, is another set.
        found("db.example.com", Lookup::Srv),
        found("db.example.com", Lookup::Address { port: 5433 }),
    ]));
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(plan(relay(Vec::new())).validate(), Err(PlanError::NoRemote));
}

#[test]
fn names_must_be_dns_names() {
    for name in [
        "",
        ".",
        "a..b",
        "-a.b",
        "a b.c",
        "10.0.0.1",
        "::1",
        "1.2.3",
        "DB.example",
    ] {
        let p = plan(relay(vec![found(name, Lookup::Srv)]));
        assert!(
            matches!(p.validate(), Err(PlanError::BadDiscovered { .. })),
            "{name:?}: {:?}",
            p.validate()
        );
    }
    let long = format!("{}.example", "a".repeat(64));
    assert!(dns_name_problem(&long).is_some());
    assert!(dns_name_problem(&"a.".repeat(127)).is_none());
    assert!(dns_name_problem(&"a.".repeat(128)).is_some());
    assert!(dns_name_problem("_ldap._tcp.example.").is_none());
}

#[test]
fn templates_fit_their_lookup() {
    let mut srv_with_port = found("_a._tcp.example", Lookup::Srv);
    srv_with_port.template.address.set_port(80);
    let mut other_port = found("db.example", Lookup::Address { port: 80 });
    other_port.template.address.set_port(81);
    let mut with_address = found("db.example", Lookup::Address { port: 80 });
    with_address.template.address = "10.0.0.1:80".parse().unwrap();
    let mut weightless = found("db.example", Lookup::Address { port: 80 });
    weightless.template.weight = 0;
    let zero_port = found("db.example", Lookup::Address { port: 0 });
    for bad in [
        srv_with_port,
        other_port,
        with_address,
        weightless,
        zero_port,
    ] {
        let p = plan(relay(vec![bad.clone()]));
        assert!(
            matches!(p.validate(), Err(PlanError::BadDiscovered { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn a_name_twice_is_refused() {
    let p = plan(relay(vec![
        found("db.example", Lookup::Address { port: 80 }),
        found("db.example", Lookup::Address { port: 80 }),
    ]));
    assert_eq!(
        p.validate(),
        Err(PlanError::DuplicateDiscovered {
            name: "db.example".into()
        })
    );
}

#[test]
fn resolver_settings_in_range() {
    let base = || relay(vec![found("db.example", Lookup::Srv)]);
    let edits: [fn(&mut Resolve); 6] = [
        |r| r.timeout_ms = 0,
        |r| r.attempts = 0,
        |r| r.interval_s = Some(0),
        |r| r.interval_min_s = 0,
        |r| r.interval_min_s = r.interval_max_s + 1,
        |r| r.nameservers.push("127.0.0.1:0".parse().unwrap()),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut r = base();
        edit(&mut r.resolve);
        assert!(
            matches!(plan(r).validate(), Err(PlanError::BadResolve { .. })),
            "edit {i}"
        );
    }
    assert_eq!(plan(base()).validate(), Ok(()));
}
