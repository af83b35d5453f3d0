//! The operators' steering of remotes through the relay-wide table
//! (`crate::steering`), as the master writes it for `tcprelay ctl drain|enable|weight`:
//! the test writes the table while the worker runs.

use super::*;
use crate::steering::{Admin, Table};

fn drained() -> Admin {
    Admin {
        drained: true,
        ..Admin::default()
    }
}

fn weighted(weight: u32) -> Admin {
    Admin {
        weight: Some(weight),
        ..Admin::default()
    }
}

fn steered(m: Mechanism, remotes: &[(SocketAddr, u32)], table: &Table) -> Harness {
    let mut setup = Setup::under(m, relay(remotes));
    setup.steering = Some(crate::worker::Steering {
        table: table.clone(),
        // Slot 0 is the overflow, never steered.
        slots: (1..=remotes.len()).collect(),
        health: None,
    });
    setup.start()
}

/// A drained remote takes no new session while the one it has goes on relaying;
/// enabled, it takes new ones again; with every remote drained a new client is
/// closed without any remote being connected.
pub(crate) fn a_drained_remote_gets_no_new_session_while_its_own_go_on(m: Mechanism) {
    let a = Backend::start(Mode::Echo);
    let b = Backend::start(Mode::Echo);
    let table = Table::new().unwrap();
    let worker = steered(m, &[(a.addr, 1), (b.addr, 1)], &table);
    let mut first = worker.connect();
    round_trip(&mut first, b"before the drain");
    assert_eq!((a.accepted(), b.accepted()), (1, 0));

    table.write(1, drained());
    let mut others = Vec::new();
    for _ in 0..4 {
        let mut client = worker.connect();
        round_trip(&mut client, b"while a is drained");
        others.push(client);
    }
    assert_eq!((a.accepted(), b.accepted()), (1, 4), "none went to a");
    round_trip(&mut first, b"a's session goes on");

    table.write(1, Admin::default());
    let mut again = worker.connect();
    round_trip(&mut again, b"a enabled: it holds 1 session, b 4");
    assert_eq!((a.accepted(), b.accepted()), (2, 4));

    table.write(1, drained());
    table.write(2, drained());
    let mut turned_away = worker.connect();
    let _ = turned_away.write_all(b"anyone?");
    let (got, _) = read_to_end(&mut turned_away);
    assert!(got.is_empty(), "closed: no remote takes new sessions");
    assert_eq!(
        (a.accepted(), b.accepted()),
        (2, 4),
        "no remote was connected"
    );
    round_trip(&mut first, b"still relayed");
    round_trip(&mut others[0], b"still relayed");
}

/// The plan's 3:1 becomes 1:3 with overrides; a weight of 0 makes a remote the
/// last resort.
pub(crate) fn a_weight_override_changes_the_split(m: Mechanism) {
    let a = Backend::start(Mode::Echo);
    let b = Backend::start(Mode::Echo);
    let table = Table::new().unwrap();
    table.write(1, weighted(1));
    table.write(2, weighted(3));
    let worker = steered(m, &[(a.addr, 3), (b.addr, 1)], &table);
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut client = worker.connect();
        round_trip(&mut client, b"split");
        held.push(client);
    }
    assert_eq!(
        (a.accepted(), b.accepted()),
        (2, 6),
        "1:3, not the plan's 3:1"
    );
    table.write(2, weighted(0));
    for _ in 0..4 {
        let mut client = worker.connect();
        round_trip(&mut client, b"b only as a last resort");
        held.push(client);
    }
    assert_eq!((a.accepted(), b.accepted()), (6, 6));
}
