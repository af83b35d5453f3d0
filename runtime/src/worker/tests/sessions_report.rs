//! The worker's answer to `ToWorker::Sessions`: a payload of JSON lines on the
//! control socket (see `crate::control`), read here as the master reads it.

use super::*;
use crate::control::{Incoming, Reader};

/// Sends a `Sessions` query and reads frames until its payload: the lines parsed.
fn query(worker: &mut Harness, id: u64, limit: u32) -> Vec<serde_json::Value> {
    worker.send(ToWorker::Sessions { id, limit });
    let master = worker.master.as_mut().expect("control socket");
    let mut reader = Reader::default();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let n = match master.read(&mut buf) {
            Ok(0) => panic!("the worker closed its control socket"),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => panic!("read: {e}"),
        };
        let mut out = Vec::new();
        reader.push(&buf[..n], &mut out);
        for incoming in out {
            if let Incoming::Payload { id: got, bytes } = incoming {
                assert_eq!(got, id, "the answer names the query");
                return bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).expect("a JSON line"))
                    .collect();
            }
        }
    }
    panic!("no answer to the sessions query within 5 s");
}

/// Two sessions, the first having relayed 3000 bytes each way: the worker reports
/// both, oldest first, with their client, listener, remote and bytes; a limit of
/// one reports the oldest only, and the total still counts both.
pub(crate) fn a_sessions_query_is_answered_with_the_sessions_oldest_first(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut first = worker.connect();
    round_trip(&mut first, &[7u8; 3000]);
    thread::sleep(Duration::from_millis(20));
    let mut second = worker.connect();
    round_trip(&mut second, b"0123456789");

    let lines = query(&mut worker, 41, 10);
    assert_eq!(lines[0], serde_json::json!({ "total": 2 }));
    assert_eq!(lines.len(), 3);
    let (a, b) = (&lines[1], &lines[2]);
    assert_eq!(a["client"], first.local_addr().unwrap().to_string());
    assert_eq!(b["client"], second.local_addr().unwrap().to_string());
    assert_eq!(a["listener"], worker.addr.to_string());
    assert_eq!(a["remote"], echo.addr.to_string());
    assert_eq!(
        (a["bytes_in"].as_u64(), a["bytes_out"].as_u64()),
        (Some(3000), Some(3000))
    );
    assert_eq!(
        (b["bytes_in"].as_u64(), b["bytes_out"].as_u64()),
        (Some(10), Some(10))
    );
    assert!(a["age_ms"].as_u64() >= b["age_ms"].as_u64(), "oldest first");
    assert!(a["age_ms"].as_u64().unwrap() < 60_000);
    assert!(a["idle_ms"].as_u64().is_some());
    assert_ne!(a["id"], b["id"]);
    // PID.N, as the session's records name it.
    let pid = format!("{}.", std::process::id());
    assert!(a["id"].as_str().unwrap().starts_with(&pid), "{a}");

    let lines = query(&mut worker, 42, 1);
    assert_eq!(lines[0], serde_json::json!({ "total": 2 }));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["client"], first.local_addr().unwrap().to_string());
    drop((first, second));
}
