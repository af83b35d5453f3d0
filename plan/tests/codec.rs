//! Round trips and hostile input for the plan codec.

use std::net::SocketAddr;
use tcprelay_plan::*;

pub fn sample() -> Plan {
    let la: SocketAddr = "127.0.0.1:2222".parse().unwrap();
    Plan {
        source: "examples/basic.cfg".into(),
        spawnd_id: "spawnd".into(),
        tcprelay_id: "tcprelay".into(),
        env: vec![("IO_POLL_MECHANISM".into(), "4".into())],
        spawnd: Spawnd {
            listeners: vec![Listener {
                address: ListenAddress::Inet(la),
                protocol: Protocol::Tcp,
                tls: true,
                backlog: 128,
                overload_backlog: 128,
                realm: None,
                keepalive: Keepalive::default(),
                mode: None,
                accept_proxy: None,
                tls_versions: vec![TlsVersion::Tls13],
                tls_auto: false,
                dscp: Some(0x2e),
                vrf: None,
                owner: None,
                group: None,
                bind_retry_delay: Some(2),
                sticky: Some(Sticky {
                    period_s: 60,
                    size: 1024,
                }),
            }],
            users_min: 1,
            users_max: 10,
            servers_min: 1,
            servers_max: 2,
            background: false,
            pidfile: None,
            user: None,
            group: None,
            working_directory: None,
            acl: vec![],
            overload: Overload::Queue,
            keepalive: Keepalive::default(),
            single_process: false,
            syslog: Syslog::default_for("tcprelay"),
            debug: 0,
            tcp_bufsize: Some(65536),
            sticky: None,
            proctitle: Some("edge".into()),
            control: Some(Control {
                path: Some("/run/tcprelay/ctl".into()),
                mode: 0o660,
                group: Some("wheel".into()),
            }),
            metrics: Some(Metrics {
                address: "127.0.0.1".parse().unwrap(),
                port: 9100,
            }),
            log_format: LogFormat::Logfmt,
        },
        relay: Relay {
            remotes: vec![Remote {
                address: "127.0.0.1:22".parse().unwrap(),
                protocol: Protocol::Tcp,
                weight: 3,
                send_proxy: None,
                tls: None,
                check: None,
                route: None,
            }],
            local_address: None,
            rebalance: Some(10),
            retire: None,
            idle_timeout: 30,
            silent_timeout: 60,
            connect_timeout: 10,
            tls_handshake_timeout: 10,
            half_close_timeout: 0,
            drain_timeout: 30,
            drain_generations: 8,
            connection_log: true,
            syslog: Syslog::default_for("tcprelay"),
            tls: Some(Tls {
                cert_file: "/etc/cert.pem".into(),
                key_file: "/etc/cert.pem".into(),
                passphrase: Some(Secret::new("12345")),
            }),
            balance: Balance::SourceSticky,
            routes: Vec::new(),
            discovered: vec![Discovered {
                name: "_redis._tcp.example.com.".into(),
                lookup: Lookup::Srv,
                template: Remote::new("0.0.0.0:0".parse().unwrap()),
            }],
            resolve: Resolve {
                nameservers: vec!["127.0.0.1:5353".parse().unwrap()],
                interval_s: Some(30),
                ..Resolve::default()
            },
        },
    }
}

#[test]
fn round_trip() {
    let plan = sample();
    plan.validate().unwrap();
    let bytes = encode(&plan, "0.1.0");
    let (header, back) = decode(&bytes).unwrap();
    assert_eq!(back, plan);
    assert!(header.has_secret);
    assert_eq!(header.compiler_version, "0.1.0");
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = encode(&sample(), "0.1.0");
    for len in 0..bytes.len() {
        let err = decode(&bytes[..len]).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}

#[test]
fn every_single_bit_flip_is_an_error_or_the_same_plan() {
    let bytes = encode(&sample(), "0.1.0");
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            // Flipping a bit of the compiler version string or of the flags
            // leaves the plan intact; everything else must be refused.
            match decode(&b) {
                Ok((_, plan)) => {
                    assert!((10..12).contains(&i) || (25..30).contains(&i), "byte {i}");
                    assert_eq!(plan, sample());
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}

#[test]
fn foreign_and_future_files_are_refused() {
    assert_eq!(
        decode(b"#!/bin/sh\necho hi\n").unwrap_err(),
        DecodeError::BadMagic
    );
    let mut bytes = encode(&sample(), "0.1.0");
    bytes[8] = 99;
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::UnsupportedVersion { found: 99, .. }
    ));
    assert!(err.to_string().contains("recompile"));
}

#[test]
fn validate_catches_broken_invariants() {
    let mut plan = sample();
    plan.relay.remotes[0].weight = 0;
    plan.spawnd.users_min = 11;
    plan.relay.tls = None;
    let problems = plan.problems();
    assert!(problems.contains(&PlanError::ZeroWeight { remote: 0 }));
    assert!(problems.contains(&PlanError::UsersRange { min: 11, max: 10 }));
    assert!(problems.contains(&PlanError::TlsWithoutCertificate { listener: 0 }));
}

#[test]
fn automatic_counts_validate_and_worker_counts_are_bounded() {
    // 0 is "chosen on the running machine" for users max and both servers counts.
    let mut plan = sample();
    plan.spawnd.users_max = 0;
    plan.spawnd.users_min = 500;
    plan.spawnd.servers_min = 0;
    plan.spawnd.servers_max = 0;
    assert_eq!(plan.problems(), Vec::new());
    assert_eq!(plan.spawnd.workers(2), (2, 8));
    assert_eq!(plan.spawnd.workers(32), (32, 32));
    plan.spawnd.servers_max = 4;
    assert_eq!(
        plan.spawnd.workers(32),
        (4, 4),
        "min never above an explicit max"
    );
    plan.spawnd.servers_max = 0;
    plan.spawnd.servers_min = 12;
    assert_eq!(
        plan.spawnd.workers(2),
        (12, 12),
        "an explicit min raises the default max"
    );
    plan.spawnd.servers_min = 1;
    plan.spawnd.servers_max = MAX_WORKERS + 1;
    assert_eq!(
        plan.problems(),
        vec![PlanError::TooManyWorkers {
            count: MAX_WORKERS + 1
        }]
    );
}

#[test]
fn issue_14_settings_are_validated() {
    // Timeouts and counts that must be at least 1.
    let mut plan = sample();
    plan.relay.connect_timeout = 0;
    plan.relay.tls_handshake_timeout = 0;
    plan.relay.drain_generations = 0;
    // 0 = never: no problem.
    plan.relay.half_close_timeout = 0;
    plan.relay.drain_timeout = 0;
    assert_eq!(
        plan.problems(),
        vec![
            PlanError::ZeroSetting {
                what: "connect timeout"
            },
            PlanError::ZeroSetting {
                what: "tls handshake timeout"
            },
            PlanError::ZeroSetting {
                what: "drain generations"
            },
        ]
    );
    assert_eq!(
        plan.problems()[0].to_string(),
        "connect timeout is 0, and must be at least 1"
    );

    let mut plan = sample();
    plan.spawnd.control.as_mut().unwrap().mode = 0o1777;
    assert_eq!(
        plan.problems(),
        vec![PlanError::ControlMode { mode: 0o1777 }]
    );
    plan.spawnd.control.as_mut().unwrap().mode = 0o777;
    assert_eq!(plan.problems(), vec![]);
    plan.spawnd.control = None;
    assert_eq!(plan.problems(), vec![]);

    // The metrics endpoint may not be where a listener is (127.0.0.1:2222), nor
    // covered by a wildcard listener of its family, nor on port 0.
    let mut plan = sample();
    plan.spawnd.metrics.as_mut().unwrap().port = 2222;
    let address: SocketAddr = "127.0.0.1:2222".parse().unwrap();
    assert_eq!(
        plan.problems(),
        vec![PlanError::MetricsOnListener {
            listener: 0,
            address
        }]
    );
    plan.spawnd.listeners[0].address = ListenAddress::Inet("0.0.0.0:2222".parse().unwrap());
    assert_eq!(plan.problems().len(), 1);
    plan.spawnd.listeners[0].address = ListenAddress::Inet("[::]:2222".parse().unwrap());
    assert_eq!(plan.problems(), vec![]);
    plan.spawnd.metrics.as_mut().unwrap().port = 0;
    assert_eq!(
        plan.problems(),
        vec![PlanError::ZeroPort {
            what: "the metrics endpoint".into()
        }]
    );
}

#[test]
fn the_format_version_is_4_since_the_issue_16_fields() {
    // The body of version 3 had no listener DSCP, VRF, owner, TLS versions, bind
    // retry or sticky cache (version 2 no PROXY protocol, remote TLS or health
    // checks; version 1 no control, metrics, log format or relay timeouts): such a
    // plan is refused with a message saying to recompile, not misread.
    assert_eq!(FORMAT_VERSION, 4);
    let mut bytes = encode(&sample(), "0.1.0");
    bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::UnsupportedVersion { found: 3, .. }
    ));
}

#[test]
fn issue_16_listener_and_process_settings_are_validated() {
    let mut plan = sample();
    plan.validate().unwrap();
    let l = &mut plan.spawnd.listeners[0];
    l.dscp = Some(64);
    l.tls = false;
    l.owner = Some("nobody".into());
    l.bind_retry_delay = Some(0);
    l.sticky = Some(Sticky {
        period_s: 0,
        size: 1,
    });
    l.vrf = Some("a-device-name".into());
    plan.spawnd.tcp_bufsize = Some(0);
    plan.spawnd.sticky = Some(Sticky {
        period_s: 1,
        size: MAX_STICKY_SIZE + 1,
    });
    plan.relay.tls = None;
    let problems: Vec<String> = plan.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        vec![
            "listener #1: dscp must be from 0 to 63",
            "listener #1: TLS versions or tls = auto on a listener without TLS",
            "listener #1: userid or groupid on an IP socket (they are for Unix-domain sockets)",
            "listener #1: bind retry delay is 0, and must be at least 1",
            "listener #1: the sticky cache needs a period of at least 1 s and a size from 1 to 1048576",
            "tcp bufsize must be from 1 to 2147483647 bytes",
            "the sticky cache needs a period of at least 1 s and a size from 1 to 1048576",
        ]
    );
    let mut plan = sample();
    plan.spawnd.listeners[0].address = ListenAddress::Unix("/run/x.sock".into());
    plan.spawnd.listeners[0].tls_versions = vec![TlsVersion::Tls13, TlsVersion::Tls12];
    plan.spawnd.listeners[0].vrf = Some("blue".into());
    let problems: Vec<String> = plan.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        vec![
            "listener #1: TLS versions repeated or out of order",
            "listener #1: vrf on a Unix-domain socket",
        ]
    );
}

#[test]
fn wildcard_listener_overlaps_a_specific_one() {
    let mut plan = sample();
    let mut second = plan.spawnd.listeners[0].clone();
    second.address = ListenAddress::Inet("0.0.0.0:2222".parse().unwrap());
    plan.spawnd.listeners.push(second.clone());
    assert!(matches!(
        plan.validate(),
        Err(PlanError::DuplicateListener {
            first: 0,
            second: 1,
            ..
        })
    ));
    // A v6 wildcard does not collide with an IPv4 listener (bound v6-only).
    plan.spawnd.listeners[1].address = ListenAddress::Inet("[::]:2222".parse().unwrap());
    plan.validate().unwrap();
}

/// `plan` with its one field named `field` set to `text`, for the fields whose strings
/// reach a system call; the message's name of the field.
fn with_string(field: &str, text: &str) -> (Plan, &'static str) {
    let mut plan = sample();
    let s = &mut plan.spawnd;
    let text = text.to_string();
    let named = match field {
        "env name" => {
            plan.env[0].0 = text;
            "setenv name"
        }
        "env value" => {
            plan.env[0].1 = text;
            "the value of setenv `IO_POLL_MECHANISM`"
        }
        "unix path" => {
            s.listeners[0].address = ListenAddress::Unix(text);
            s.listeners[0].tls = false;
            s.listeners[0].tls_versions.clear();
            "the path of listener #1"
        }
        "pidfile" => {
            s.pidfile = Some(text);
            "the pidfile path"
        }
        "user" => {
            s.user = Some(text);
            "the user name"
        }
        "group" => {
            s.group = Some(text);
            "the group name"
        }
        "working directory" => {
            s.working_directory = Some(text);
            "the working directory"
        }
        "spawnd ident" => {
            s.syslog.ident = text;
            "the spawnd section's syslog ident"
        }
        "relay ident" => {
            plan.relay.syslog.ident = text;
            "the tcprelay section's syslog ident"
        }
        "cert file" => {
            plan.relay.tls.as_mut().unwrap().cert_file = text;
            "the TLS certificate file"
        }
        "key file" => {
            plan.relay.tls.as_mut().unwrap().key_file = text;
            "the TLS key file"
        }
        "passphrase" => {
            plan.relay.tls.as_mut().unwrap().passphrase = Some(Secret::new(text));
            "the TLS passphrase"
        }
        "control path" => {
            s.control.as_mut().unwrap().path = Some(text);
            "the control socket path"
        }
        "control group" => {
            s.control.as_mut().unwrap().group = Some(text);
            "the control socket's group"
        }
        "vrf" => {
            s.listeners[0].vrf = Some(text);
            "listener #1's vrf"
        }
        "listener owner" => {
            s.listeners[0].address = ListenAddress::Unix("/run/x.sock".into());
            s.listeners[0].owner = Some(text);
            "listener #1's userid"
        }
        "listener group" => {
            s.listeners[0].address = ListenAddress::Unix("/run/x.sock".into());
            s.listeners[0].group = Some(text);
            "listener #1's groupid"
        }
        "proctitle" => {
            s.proctitle = Some(text);
            "the proctitle"
        }
        other => panic!("no field {other}"),
    };
    (plan, named)
}

const OS_FIELDS: [&str; 18] = [
    "env name",
    "env value",
    "unix path",
    "pidfile",
    "user",
    "group",
    "working directory",
    "spawnd ident",
    "relay ident",
    "cert file",
    "key file",
    "passphrase",
    "control path",
    "control group",
    "vrf",
    "listener owner",
    "listener group",
    "proctitle",
];

#[test]
fn a_nul_in_any_string_that_reaches_the_os_is_refused_naming_the_field() {
    for field in OS_FIELDS {
        let (plan, named) = with_string(field, "/run/secret\0tail");
        let err = plan.validate().expect_err(field);
        assert!(
            matches!(
                err,
                PlanError::NotForTheOs {
                    problem: OsText::Nul,
                    ..
                }
            ),
            "{field}: {err:?}"
        );
        let line = err.to_string();
        assert!(line.starts_with(named), "{field}: {line}");
        assert!(line.contains("NUL byte"), "{field}: {line}");
        assert!(
            !line.contains('\n') && !line.contains('\0'),
            "{field}: {line}"
        );
        if field == "env name" {
            // A name is shown, escaped, so the line stays printable.
            assert!(line.contains("`/run/secret\\0tail`"), "{field}: {line}");
        } else {
            // A value is never shown (it may be a passphrase).
            assert!(!line.contains("secret"), "{field}: {line}");
        }
        // The same text without the NUL is a good plan.
        let (plan, _) = with_string(field, "/run/secret-tail");
        assert_eq!(plan.validate(), Ok(()), "{field}");
    }
}

#[test]
fn empty_paths_and_names_and_bad_env_names_are_refused() {
    for field in [
        "env name",
        "unix path",
        "pidfile",
        "user",
        "group",
        "working directory",
        "cert file",
        "key file",
        "control path",
        "control group",
    ] {
        let (plan, named) = with_string(field, "");
        let line = plan.validate().expect_err(field).to_string();
        assert!(
            line.starts_with(named) && line.ends_with(" is empty"),
            "{field}: {line}"
        );
    }
    // An empty value, ident or passphrase is something the system takes.
    for field in ["env value", "spawnd ident", "relay ident", "passphrase"] {
        assert_eq!(with_string(field, "").0.validate(), Ok(()), "{field}");
    }
    let (plan, _) = with_string("env name", "A=B");
    assert_eq!(
        plan.validate().unwrap_err().to_string(),
        "setenv name `A=B` contains `=`, which ends an environment variable's name for the operating system"
    );
}

#[test]
fn a_unix_socket_path_longer_than_a_socket_address_holds_is_refused() {
    let max = OsText::UNIX_PATH_MAX;
    #[cfg(target_os = "linux")]
    assert_eq!(max, 107, "sun_path is 108 bytes on Linux");
    let fits = format!("/{}", "s".repeat(max - 1));
    assert_eq!(with_string("unix path", &fits).0.validate(), Ok(()));
    let long = format!("/{}", "s".repeat(max));
    let err = with_string("unix path", &long).0.validate().unwrap_err();
    assert_eq!(
        err,
        PlanError::NotForTheOs {
            field: "the path of listener #1".into(),
            problem: OsText::TooLong { len: max + 1, max },
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the path of listener #1 is {} bytes long, more than the {max} a Unix socket path can have",
            max + 1
        )
    );
}

/// `bytes` (a plan file) with its header's body length and checksum made to match
/// its body again.
fn reseal(bytes: &mut [u8]) {
    let header = 25 + bytes[24] as usize;
    let body_len = (bytes.len() - header) as u64;
    let crc = codec::checksum(&bytes[header..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes[16..24].copy_from_slice(&body_len.to_le_bytes());
}

/// The one body byte where the encodings of `a` and `b` differ, as an offset in the
/// file.
fn the_byte_that_differs(a: &Plan, b: &Plan) -> usize {
    let (x, y) = (encode(a, "0.1.0"), encode(b, "0.1.0"));
    assert_eq!(x.len(), y.len());
    let at: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
    // The CRC differs too (4 bytes at 12..16); one byte of the body besides.
    let body: Vec<usize> = at.into_iter().filter(|&i| i >= 25).collect();
    assert_eq!(body.len(), 1, "{body:?}");
    body[0]
}

#[test]
fn a_body_that_passes_the_checksum_but_does_not_decode_is_one_sentence() {
    let good = encode(&sample(), "0.1.0");
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // An enum with a choice this version does not have (bincode reports it as a
    // serde message wrapped in `OtherString(...)`).
    let mut closing = sample();
    closing.spawnd.overload = Overload::Close;
    let at = the_byte_that_differs(&sample(), &closing);
    let mut bytes = good.clone();
    bytes[at] = 7;
    reseal(&mut bytes);
    cases.push(("enum", bytes, "invalid value: integer `7`"));
    // A bool that is neither 0 nor 1 (`InvalidBooleanValue(2)`).
    let mut background = sample();
    background.spawnd.background = true;
    let at = the_byte_that_differs(&sample(), &background);
    let mut bytes = good.clone();
    bytes[at] = 2;
    reseal(&mut bytes);
    cases.push(("bool", bytes, "a yes/no value is 2"));
    // A string that is not UTF-8 (`Utf8 { inner: Utf8Error { .. } }`).
    let at = good
        .windows(8)
        .position(|w| w == b"examples")
        .expect("the source in the body");
    let mut bytes = good.clone();
    bytes[at] = 0xFF;
    reseal(&mut bytes);
    cases.push(("utf-8", bytes, "a text is not UTF-8"));
    // A body cut short, its header made to agree (`UnexpectedEnd { additional: 1 }`).
    let mut bytes = good.clone();
    bytes.pop();
    reseal(&mut bytes);
    cases.push(("short", bytes, "ends in the middle of a value"));
    for (name, bytes, says) in cases {
        let err = decode(&bytes).expect_err(name);
        assert!(matches!(err, DecodeError::Body(_)), "{name}: {err:?}");
        let line = err.to_string();
        assert!(line.contains(says), "{name}: {line}");
        assert!(line.contains("recompile"), "{name}: {line}");
        for debug in ["OtherString", "InvalidBooleanValue", "Utf8Error", "{", "}"] {
            assert!(!line.contains(debug), "{name}: {line}");
        }
        assert!(!line.contains('\n'), "{name}: {line}");
    }
}

#[test]
fn health_checks_and_proxy_settings_are_validated() {
    let mut plan = sample();
    plan.relay.remotes[0].check = Some(Check {
        interval_ms: 1_000,
        timeout_ms: 2_000,
        rise: 0,
        fall: 1,
        send: Some(vec![b'x'; MAX_CHECK_BYTES + 1]),
        expect: None,
        tls: false,
    });
    plan.spawnd.listeners[0].accept_proxy = Some(AcceptProxy {
        version: ProxyAccept::Any,
        from: vec![Network {
            address: "10.0.0.0".parse().unwrap(),
            prefix: 33,
        }],
        timeout_ms: 0,
    });
    assert_eq!(
        plan.problems(),
        vec![
            PlanError::ZeroCheckSetting {
                remote: 0,
                what: "rise"
            },
            PlanError::CheckTimeout { remote: 0 },
            PlanError::CheckTooLong {
                remote: 0,
                what: "send"
            },
            PlanError::ZeroSetting {
                what: "accept proxy timeout"
            },
            PlanError::BadNetwork { listener: 0 },
        ]
    );
    plan.relay.remotes[0].tls = Some(RemoteTls {
        sni: Some("a\0b".into()),
        verify: true,
        ca_file: None,
        cert_file: None,
        key_file: None,
        passphrase: Some(Secret::new("x")),
    });
    assert!(plan.has_secret(), "a remote's passphrase is a secret");
    let problems: Vec<String> = plan.problems().iter().map(|p| p.to_string()).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("remote #1's TLS server name ") && p.contains("NUL")),
        "{problems:?}"
    );
}
