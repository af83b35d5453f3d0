//! Issue 14's session timeouts in the worker: `half close timeout` (a session one
//! direction of which has ended is closed that long after) and the end of a
//! reload's drain (`ToWorker::DrainOver`, which the master sends at the drain
//! timeout or to the oldest of too many draining generations).

use super::*;
use std::sync::{mpsc, Mutex};

/// The backend of the half-close test, by the first byte a client sends: `c`, it
/// reads to the client's end of file, then holds the connection open and silent;
/// `r`, it ends its own direction at once (shutdown of its write side), then
/// reports how long after that its read side ended (the relay closed the
/// connection); anything else, it holds the connection and reads nothing.
fn half_closing_backend() -> (
    Backend,
    Arc<Mutex<Vec<TcpStream>>>,
    mpsc::Receiver<Duration>,
) {
    let held = Arc::new(Mutex::new(Vec::new()));
    let (report, reports) = mpsc::channel();
    let report = Mutex::new(report);
    let keep = held.clone();
    let backend = Backend::with(move |mut stream| {
        let mut first = [0u8; 1];
        if stream.read_exact(&mut first).is_err() {
            return;
        }
        match first[0] {
            b'c' => {
                let _ = read_to_end(&mut stream);
                keep.lock().expect("held").push(stream);
            }
            b'r' => {
                let _ = stream.shutdown(Shutdown::Write);
                let ended = Instant::now();
                let _ = read_to_end(&mut stream);
                let _ = report.lock().expect("report").send(ended.elapsed());
            }
            _ => keep.lock().expect("held").push(stream),
        }
    });
    (backend, held, reports)
}

/// `half close timeout = 1`: a session whose client has ended its direction, and
/// one whose remote has, are closed about a second later while the other side stays
/// open and silent; a session relaying both ways is left alone. The sessions end
/// a direction well after their connect, whose sweep has run and stopped by then:
/// a session becoming half-closed starts the sweep again.
pub(crate) fn the_half_close_timeout_closes_half_closed_sessions_only(m: Mechanism) {
    let (backend, _held, reports) = half_closing_backend();
    let mut r = relay(&[(backend.addr, 1)]);
    r.half_close_timeout = 1;
    let mut worker = Setup::under(m, r).start();
    // Relaying both ways, and quiet: not half-closed, so never closed.
    let mut open = worker.connect();
    open.write_all(b"h").expect("write");
    let mut client_ended = worker.connect();
    let mut remote_ended = worker.connect();
    wait_until("three connected remotes", IO_TIMEOUT, || {
        backend.accepted() == 3
    });
    thread::sleep(SWEEP_INTERVAL + Duration::from_millis(500));
    // The client ends its direction; the remote reads it and says nothing.
    client_ended.write_all(b"c").expect("write");
    client_ended.shutdown(Shutdown::Write).expect("shutdown");
    let shut = Instant::now();
    let watcher = thread::spawn(move || {
        let (data, end) = read_to_end(&mut client_ended);
        (data.len(), end.is_ok(), shut.elapsed())
    });
    // The remote ends its direction; the client stays open and says nothing more.
    remote_ended.write_all(b"r").expect("write");
    let (data, end) = read_to_end(&mut remote_ended);
    assert!(data.is_empty() && end.is_ok(), "the remote's end of file");
    let (len, clean, closed_after) = watcher.join().expect("watcher");
    assert_eq!(len, 0);
    assert!(clean, "closed gracefully, not reset");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after <= Duration::from_secs(3),
        "the session the client half-closed was closed after {closed_after:?}"
    );
    let remote_closed_after = reports
        .recv_timeout(IO_TIMEOUT)
        .expect("the backend's report");
    assert!(
        remote_closed_after >= Duration::from_millis(900)
            && remote_closed_after <= Duration::from_secs(3),
        "the session the remote half-closed was closed after {remote_closed_after:?}"
    );
    assert!(
        stays_silent(&mut open, Duration::from_secs(1)),
        "a session relaying both ways was closed"
    );
    drop(open);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// `DrainOver` after `Drain`: the sessions the drain kept are closed at once and
/// the worker exits as drained; alone, it drains first (the master hears so).
pub(crate) fn drain_over_closes_the_sessions_left_and_exits(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"before");
    worker.send(ToWorker::Drain);
    worker.expect_frame(ToMaster::Draining {
        sessions: 1,
        stopping: false,
    });
    round_trip(&mut client, b"while draining");
    let told = Instant::now();
    worker.send(ToWorker::DrainOver);
    let (data, _) = read_to_end(&mut client);
    assert!(data.is_empty());
    assert!(
        told.elapsed() < Duration::from_secs(1),
        "closed after {:?}",
        told.elapsed()
    );
    assert_eq!(worker.join(), Exit::Drained);

    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"before");
    worker.send(ToWorker::DrainOver);
    worker.expect_frame(ToMaster::Draining {
        sessions: 1,
        stopping: false,
    });
    let (data, _) = read_to_end(&mut client);
    assert!(data.is_empty());
    assert_eq!(worker.join(), Exit::Drained);
}
