//! Property tests: no input makes the compiler or the plan decoder panic, and plans
//! survive an encode/decode round trip unchanged.

use proptest::prelude::*;
use tcprelay_cc::Selection;

const VALID: &str = "#!/usr/local/sbin/spawnd\nsetenv IO_POLL_MECHANISM = 4\nid = spawnd {\n  listen = { address = 127.0.0.1 port = 8080 }\n  listen = { ::1 port = 8081 backlog = 64 }\n  spawn = { users min = 2 users max = 100 servers min = 1 servers max = 4 }\n  syslog facility = DAEMON\n}\nid = tcprelay {\n  remote = { address = 127.0.0.1 port = 9000 weight = 3 }\n  remote = { address = 127.0.0.2 port = 9000 }\n  rebalance = 100\n  retire = 5000\n  idle timeout = 60\n  local address = 127.0.0.1\n}\n";

fn valid_plan() -> tcprelay_plan::Plan {
    let (plan, diags) = tcprelay_cc::compile(VALID, "valid.cfg", &Selection::default());
    plan.unwrap_or_else(|| panic!("the sample compiles: {diags:#?}"))
}

/// Applies byte-level edits (delete, insert, replace) to `base`, keeping UTF-8.
fn mutate(base: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for &(pos, op, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = pos % bytes.len();
        match op % 3 {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            _ => bytes[at] = byte,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics_the_compiler(src in "\\PC{0,300}") {
        let _ = tcprelay_cc::compile(&src, "r.cfg", &Selection::default());
    }

    #[test]
    fn token_soup_never_panics_the_compiler(
        words in proptest::collection::vec(
            prop_oneof![
                Just("id"), Just("="), Just("{"), Just("}"), Just("listen"), Just("remote"),
                Just("port"), Just("address"), Just("tls"), Just("spawn"), Just("users"),
                Just("max"), Just("\""), Just("1.2.3.4"), Just("80"), Just("#"), Just("\n"),
                Just("setenv"), Just("acl"), Just("permit"), Just("not"), Just("ssl"),
                Just("cert"), Just("spawnd"), Just("tcprelay"), Just("::"),
            ],
            0..120,
        )
    ) {
        let src = words.join(" ");
        let (plan, diags) = tcprelay_cc::compile(&src, "soup.cfg", &Selection::default());
        // Either a plan or at least one error, never neither.
        prop_assert!(plan.is_some() || diags.iter().any(|d| d.is_error()));
    }

    #[test]
    fn mutated_valid_config_never_panics_and_spans_stay_in_bounds(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
    ) {
        let src = mutate(VALID, &edits);
        let (_, diags) = tcprelay_cc::compile(&src, "m.cfg", &Selection::default());
        for d in &diags {
            prop_assert!(d.span.start <= d.span.end && d.span.end <= src.len(), "{d:?}");
        }
        // Rendering every format must not panic either.
        let _ = tcprelay_cc::diag::render::human(&diags, "m.cfg", &src, false);
        let _ = tcprelay_cc::diag::render::json(&diags, "m.cfg", &src);
    }

    #[test]
    fn random_bytes_never_panic_the_plan_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = tcprelay_plan::decode(&bytes);
    }

    #[test]
    fn mutated_plans_are_refused_or_valid_never_a_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = tcprelay_plan::encode(&valid_plan(), "test");
        for (pos, byte) in edits {
            let at = pos % bytes.len();
            bytes[at] = byte;
        }
        if let Ok((_, plan)) = tcprelay_plan::decode(&bytes) {
            let _ = plan.validate();
        }
    }
}

#[test]
fn plan_round_trips_through_the_file_format() {
    let plan = valid_plan();
    let bytes = tcprelay_plan::encode(&plan, tcprelay_cc::VERSION);
    let (header, back) = tcprelay_plan::decode(&bytes).expect("decodes");
    assert_eq!(back, plan);
    assert_eq!(header.compiler_version, tcprelay_cc::VERSION);
    assert!(!header.has_secret);
    assert_eq!(
        plan.env,
        vec![("IO_POLL_MECHANISM".to_string(), "4".to_string())]
    );
    assert_eq!(plan.spawnd.listeners.len(), 2);
    assert_eq!(plan.relay.remotes[0].weight, 3);
    assert_eq!(plan.relay.rebalance, Some(100));
}
