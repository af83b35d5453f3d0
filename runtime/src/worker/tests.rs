//! Tests of the whole worker loop over loopback: the worker runs in a thread with a
//! listener on `127.0.0.1:0`, backends are small blocking servers in threads, and
//! the test plays the master on the control socket.
//!
//! Every socket has a timeout, every thread is joined (the harnesses stop and join
//! in `Drop`, also when a test fails) and every wait is bounded.
//!
//! Every scenario runs under each event mechanism of the OS (epoll, io_uring, poll
//! and select on Linux): [`under_each_mechanism!`] makes one test per scenario and
//! mechanism (`worker::tests::select::…`), chosen through [`Options`], not the
//! environment, which parallel tests share. Descriptor numbers are shared too: a
//! select(2) worker cannot watch one at or over `FD_SETSIZE`, so a scenario under
//! select runs alone ([`Turn`]), and the one that opens hundreds of sessions opens
//! fewer there.

use super::server::SWEEP_INTERVAL;
use super::*;
use crate::control::{ToMaster, ToWorker, FRAME};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tcprelay_plan::{Protocol, Remote};

pub(crate) mod counting;
mod handoff;
#[cfg(target_os = "linux")]
mod ports;
mod proxy;
mod remote_tls;
pub(crate) mod resets;
mod sessions_report;
mod steering;
mod sticky;
mod support;
pub(crate) use support::*;
mod timeouts;

// ---- the tests --------------------------------------------------------------------

fn data_integrity_50_sessions_of_1_mib(m: Mechanism) {
    const SESSIONS: u64 = 50;
    const SIZE: usize = 1 << 20;
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let clients: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let mut stream = worker.connect();
            thread::spawn(move || {
                let data = random_bytes(i + 1, SIZE);
                let mut sent = Fnv::new();
                sent.update(&data);
                let mut writer = stream.try_clone().expect("clone");
                let write = thread::spawn(move || {
                    // Uneven chunks, to exercise partial reads and writes.
                    let mut offset = 0;
                    let mut step = 1000 + (i as usize * 7919) % 60_000;
                    while offset < data.len() {
                        let end = (offset + step).min(data.len());
                        writer.write_all(&data[offset..end]).expect("write");
                        offset = end;
                        step = 1 + (step * 31 + 17) % 70_000;
                    }
                    writer.shutdown(Shutdown::Write).expect("shutdown");
                });
                let (back, end) = read_to_end(&mut stream);
                write.join().expect("writer");
                end.expect("clean end of file");
                let mut received = Fnv::new();
                received.update(&back);
                (back.len(), received.0 == sent.0)
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (len, same) = client.join().expect("client");
        assert_eq!(len, SIZE, "session {i} length");
        assert!(same, "session {i} bytes differ");
    }
    assert_eq!(echo.accepted(), SESSIONS as usize);
    wait_until("sessions to end", IO_TIMEOUT, || {
        worker.probe.sessions.load(Ordering::Relaxed) == 0
    });
    assert_eq!(worker.probe.buffered.load(Ordering::Relaxed), 0);
    // 50 MiB each way in reads of up to 64 KiB: directions went bulk and spliced
    // (Linux; select(2) leaves no descriptors for pipes), and gave their pipes back.
    let spliced = worker.probe.pipes_created.load(Ordering::Relaxed);
    if cfg!(any(target_os = "linux", target_os = "android")) && m != Mechanism::Select {
        assert!(spliced > 0, "no direction spliced");
    } else {
        assert_eq!(spliced, 0);
    }
    assert_eq!(worker.probe.pipes_in_use.load(Ordering::Relaxed), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn weighted_least_connections_splits_3_to_1(m: Mechanism) {
    let a = Backend::start(Mode::Hold);
    let b = Backend::start(Mode::Hold);
    let mut worker = Setup::under(m, relay(&[(a.addr, 3), (b.addr, 1)])).start();
    // Four descriptors per session in this process: under select, stay well below
    // FD_SETSIZE.
    let n = if m == Mechanism::Select { 160 } else { 400 };
    let mut clients = Vec::new();
    for i in 0..n {
        clients.push(worker.connect());
        wait_until("the session to reach a backend", IO_TIMEOUT, || {
            a.accepted() + b.accepted() == i + 1
        });
    }
    let (to_a, to_b) = (a.accepted(), b.accepted());
    assert!(
        (n * 27 / 40..=n * 33 / 40).contains(&to_a) && (n * 9 / 40..=n * 11 / 40).contains(&to_b),
        "split {to_a}:{to_b}"
    );
    drop(clients);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn failover_to_the_next_remote_is_invisible_to_clients(m: Mechanism) {
    let dead = free_port();
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(dead, 1), (echo.addr, 1)])).start();
    for i in 0..5 {
        let mut client = worker.connect();
        round_trip(&mut client, format!("hello {i}").as_bytes());
    }
    assert_eq!(echo.accepted(), 5);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn connect_timeout_fails_over(m: Mechanism) {
    // A listener whose accept queue is full drops SYNs: connects to it hang.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(0).expect("listen");
    let blackhole = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let mut fillers = Vec::new();
    loop {
        match TcpStream::connect_timeout(&blackhole, Duration::from_millis(300)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
        assert!(fillers.len() < 16, "the accept queue never filled");
    }
    let echo = Backend::start(Mode::Echo);
    let mut setup = Setup::under(m, relay(&[(blackhole, 1), (echo.addr, 1)]));
    setup.connect_timeout = Some(Duration::from_millis(200));
    let mut worker = setup.start();
    let started = Instant::now();
    let mut client = worker.connect();
    round_trip(&mut client, b"through the second remote");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    drop(client);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn all_remotes_dead_closes_the_client_then_revives(m: Mechanism) {
    let (first, second) = (free_port(), reserved_port());
    let mut worker = Setup::under(m, relay(&[(first, 1), (second.addr, 1)])).start();
    let started = Instant::now();
    let mut client = worker.connect();
    let (data, _) = read_to_end(&mut client);
    assert!(data.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
    // Both are marked dead now; a backend comes up and the next session revives.
    let echo = Backend::at(second, Mode::Echo);
    let mut client = worker.connect();
    round_trip(&mut client, b"revived");
    assert_eq!(echo.accepted(), 1);
    drop(client);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn rebalance_retries_a_dead_remote_after_n_selections(m: Mechanism) {
    for (rebalance, second_goes_to_first) in [(Some(2), true), (None, false)] {
        let first = reserved_port();
        let echo = Backend::start(Mode::Echo);
        let mut r = relay(&[(first.addr, 1), (echo.addr, 1)]);
        r.rebalance = rebalance;
        let mut worker = Setup::under(m, r).start();
        // Selection 1 tries `first` (refused, marked dead), selection 2 the echo.
        let mut one = worker.connect();
        round_trip(&mut one, b"one");
        assert_eq!(echo.accepted(), 1);
        let revived = Backend::at(first, Mode::Echo);
        // Selection 3: after 2 selections the dead mark is gone (ties go to the
        // first remote); without rebalance it stays dead.
        let mut two = worker.connect();
        round_trip(&mut two, b"two");
        assert_eq!(
            revived.accepted() == 1,
            second_goes_to_first,
            "rebalance {rebalance:?}"
        );
        drop((one, two));
        assert_eq!(worker.stop(), Exit::Stopped);
    }
}

fn retire_after_three_sessions(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut r = relay(&[(echo.addr, 1)]);
    r.retire = Some(3);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // The test keeps a copy of the listening socket, as the master does.
    let master_copy = listener.try_clone().expect("dup");
    let mut setup = Setup::under(m, r);
    setup.listener = Some(listener);
    let mut worker = setup.start();
    let mut sessions: Vec<_> = (0..3).map(|_| worker.connect()).collect();
    for (i, s) in sessions.iter_mut().enumerate() {
        round_trip(s, format!("session {i}").as_bytes());
    }
    worker.expect_frame(ToMaster::Retiring { served: 3 });
    let mut fourth = worker.connect();
    fourth.write_all(b"anyone?").expect("write");
    assert!(
        stays_silent(&mut fourth, Duration::from_millis(400)),
        "a retired worker served a session"
    );
    // The connection waits in the shared queue for another worker.
    master_copy.set_nonblocking(true).expect("nonblocking");
    wait_until("the fourth connection in the queue", IO_TIMEOUT, || {
        master_copy.accept().is_ok()
    });
    assert_eq!(echo.accepted(), 3);
    drop(sessions);
    assert_eq!(worker.join(), Exit::Drained);
}

fn idle_timeout_closes_idle_sessions_only(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut r = relay(&[(echo.addr, 1)]);
    r.idle_timeout = 1;
    let mut worker = Setup::under(m, r).start();
    let mut idle = worker.connect();
    round_trip(&mut idle, b"then silence");
    let quiet_since = Instant::now();
    let watcher = thread::spawn(move || {
        let (data, _) = read_to_end(&mut idle);
        (data.len(), quiet_since.elapsed())
    });
    let mut active = worker.connect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3200) {
        round_trip(&mut active, b".");
        thread::sleep(Duration::from_millis(200));
    }
    let (len, closed_after) = watcher.join().expect("watcher");
    assert_eq!(len, 0);
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after <= Duration::from_secs(3),
        "idle session closed after {closed_after:?}"
    );
    round_trip(&mut active, b"still here");
    drop(active);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn silent_timeout_closes_sessions_through_which_nothing_passed(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut r = relay(&[(echo.addr, 1)]);
    r.silent_timeout = 1;
    let mut worker = Setup::under(m, r).start();
    // Connected, and nothing sent either way.
    let mut silent = worker.connect();
    let opened = Instant::now();
    let watcher = thread::spawn(move || {
        let (data, _) = read_to_end(&mut silent);
        (data.len(), opened.elapsed())
    });
    // One exchange, then quiet for longer than the silent timeout: not silent, and
    // there is no idle timeout.
    let mut spoke = worker.connect();
    round_trip(&mut spoke, b"one exchange");
    let (len, closed_after) = watcher.join().expect("watcher");
    assert_eq!(len, 0);
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after <= Duration::from_secs(4),
        "silent session closed after {closed_after:?}"
    );
    thread::sleep(Duration::from_millis(1500));
    round_trip(&mut spoke, b"still here after the silent timeout");
    drop(spoke);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn half_close_delivers_the_reply_after_the_clients_eof(m: Mechanism) {
    let backend = Backend::start(Mode::ReplyAfterEof);
    let mut worker = Setup::under(m, relay(&[(backend.addr, 1)])).start();
    let mut client = worker.connect();
    let request = random_bytes(7, 200 * 1024);
    client.write_all(&request).expect("write");
    client.shutdown(Shutdown::Write).expect("shutdown");
    let (reply, end) = read_to_end(&mut client);
    end.expect("clean end of file");
    assert!(
        reply == reply_for(request.len()),
        "reply of {} bytes differs",
        reply.len()
    );
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn a_reset_is_propagated(m: Mechanism) {
    let backend = Backend::start(Mode::Reset);
    let mut worker = Setup::under(m, relay(&[(backend.addr, 1)])).start();
    let mut client = worker.connect();
    client.write_all(b"x").expect("write");
    let (_, end) = read_to_end(&mut client);
    let error = end.expect_err("a reset, not an end of file");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn backpressure_bounds_what_the_worker_buffers(m: Mechanism) {
    let sink = Backend::start(Mode::Hold);
    let mut worker = Setup::under(m, relay(&[(sink.addr, 1)])).start();
    let mut client = worker.connect();
    wait_until("the session to reach the sink", IO_TIMEOUT, || {
        sink.accepted() == 1
    });
    let written = write_until_stalled(&mut client, &vec![0x5au8; 64 * 1024], 64 << 20);
    // Stalled both ways, the worker sleeps: under poll and select too, where the
    // client stays readable while the worker does not read it.
    let turns = worker.probe.turns.load(Ordering::Relaxed);
    thread::sleep(Duration::from_millis(300));
    let woke = worker.probe.turns.load(Ordering::Relaxed) - turns;
    assert!(woke <= 2, "{woke} turns of the loop while stalled");
    // The worker holds at most one read's remainder per direction.
    let max = worker.probe.max_buffered.load(Ordering::Relaxed);
    assert!(
        max <= 2 * buffer::SCRATCH_SIZE,
        "worker buffered {max} bytes"
    );
    assert!(written > 0);
    // The stalled bytes are still owed to the sink: the session outlives the client's
    // close until stopped.
    drop(client);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A bulk direction stalled with bytes in its pipe (the sink reads nothing), then
/// the client resets: the session closes, and the pipe, bytes and all, is closed
/// and leaves the budget, so a hostile client cannot make pipes pile up.
fn a_client_reset_while_splicing_frees_the_pipe(m: Mechanism) {
    let sink = Backend::start(Mode::Hold);
    let mut worker = Setup::under(m, relay(&[(sink.addr, 1)])).start();
    let mut client = worker.connect();
    wait_until("the session to reach the sink", IO_TIMEOUT, || {
        sink.accepted() == 1
    });
    write_until_stalled(&mut client, &vec![0xa5u8; 256 * 1024], 256 << 20);
    if cfg!(any(target_os = "linux", target_os = "android")) {
        wait_until("the stalled direction to hold a pipe", IO_TIMEOUT, || {
            worker.probe.pipes_in_use.load(Ordering::Relaxed) == 1
        });
    }
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(client);
    wait_until("the session to close", IO_TIMEOUT, || {
        worker.probe.sessions.load(Ordering::Relaxed) == 0
    });
    assert_eq!(worker.probe.pipes_in_use.load(Ordering::Relaxed), 0);
    assert_eq!(worker.probe.buffered.load(Ordering::Relaxed), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A worker without sessions says so after each idle-release time (the master
/// releases workers above `servers min`), never while it holds a session.
fn an_idle_worker_tells_the_master_while_idle(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    setup.idle_release = Some(Duration::from_millis(300));
    let mut worker = setup.start();
    let started = Instant::now();
    for _ in 0..2 {
        assert_eq!(
            worker.next_frame(Duration::from_secs(3)),
            Some(ToMaster::Idle { served: 0 })
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before its time"
    );
    let mut client = worker.connect();
    round_trip(&mut client, b"busy");
    // Drop an Idle that was on its way when the session started.
    while worker.next_frame(Duration::from_millis(50)).is_some() {}
    assert_eq!(
        worker.next_frame(Duration::from_millis(800)),
        None,
        "not while a session is open"
    );
    drop(client);
    assert_eq!(
        worker.next_frame(Duration::from_secs(3)),
        Some(ToMaster::Idle { served: 1 })
    );
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn idle_sessions_hold_no_buffers(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut clients: Vec<_> = (0..20).map(|_| worker.connect()).collect();
    for c in &mut clients {
        round_trip(c, &random_bytes(3, 100_000));
    }
    let turns = worker.probe.turns.load(Ordering::Relaxed);
    wait_until("a loop turn", IO_TIMEOUT, || {
        worker.probe.turns.load(Ordering::Relaxed) > turns
    });
    assert_eq!(worker.probe.sessions.load(Ordering::Relaxed), 20);
    assert_eq!(worker.probe.buffered.load(Ordering::Relaxed), 0);
    drop(clients);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn an_idle_worker_sleeps(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"then nothing");
    // The sweep armed by the connect runs once, finds nothing and is not re-armed.
    thread::sleep(SWEEP_INTERVAL + Duration::from_millis(200));
    let turns = worker.probe.turns.load(Ordering::Relaxed);
    thread::sleep(Duration::from_millis(1500));
    // No idle timeout, no connect in progress: the poll blocks, no periodic wake-up.
    assert_eq!(worker.probe.turns.load(Ordering::Relaxed), turns);
    round_trip(&mut client, b"still served");
    drop(client);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn drain_keeps_open_sessions_and_exits_when_idle(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"before");
    worker.send(ToWorker::Drain);
    worker.expect_frame(ToMaster::Draining {
        sessions: 1,
        stopping: false,
    });
    // The listener is gone (the test held no other copy): new clients are refused.
    assert!(TcpStream::connect_timeout(&worker.addr, IO_TIMEOUT).is_err());
    round_trip(&mut client, b"after");
    drop(client);
    assert_eq!(worker.join(), Exit::Drained);
}

fn master_gone_drains_and_exits_when_idle(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"before");
    worker.master = None;
    thread::sleep(Duration::from_millis(100));
    round_trip(&mut client, b"after");
    drop(client);
    assert_eq!(worker.join(), Exit::MasterGone);
}

fn stop_closes_sessions_after_the_grace_period(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(echo.addr, 1)])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"x");
    let started = Instant::now();
    worker.send(ToWorker::Stop { grace_secs: 1 });
    worker.expect_frame(ToMaster::Draining {
        sessions: 1,
        stopping: true,
    });
    round_trip(&mut client, b"within the grace period");
    let (data, _) = read_to_end(&mut client);
    assert!(data.is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_eq!(worker.join(), Exit::Stopped);
}

fn signals_drain_or_stop(m: Mechanism) {
    for (signal, exit) in [
        (libc::SIGHUP, Exit::Drained),
        (libc::SIGTERM, Exit::Stopped),
        (libc::SIGINT, Exit::Stopped),
    ] {
        let (mut sender, receiver) = mio::unix::pipe::new().expect("pipe");
        sender.set_nonblocking(false).expect("blocking");
        let mut setup = Setup::under(m, relay(&[(free_port(), 1)]));
        setup.signals = Some(receiver);
        let mut worker = setup.start();
        // An unknown signal is ignored.
        sender.write_all(&[libc::SIGUSR1 as u8]).expect("write");
        assert_eq!(worker.next_frame(Duration::from_millis(100)), None);
        sender.write_all(&[signal as u8]).expect("write");
        assert_eq!(worker.join(), exit, "signal {signal}");
    }
}

fn users_max_leaves_extra_clients_in_the_queue(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    setup.users_max = 2;
    let mut worker = setup.start();
    let mut first = worker.connect();
    let mut second = worker.connect();
    round_trip(&mut first, b"1");
    round_trip(&mut second, b"2");
    worker.expect_frame(ToMaster::Load {
        sessions: 2,
        full: true,
    });
    let mut third = worker.connect();
    third.write_all(b"3").expect("write");
    assert!(
        stays_silent(&mut third, Duration::from_millis(400)),
        "a full worker served a third client"
    );
    drop(first);
    worker.expect_frame(ToMaster::Load {
        sessions: 1,
        full: false,
    });
    let mut back = [0u8; 1];
    third
        .read_exact(&mut back)
        .expect("served once a session ended");
    assert_eq!(&back, b"3");
    drop((second, third));
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// Two workers on one listener and one load board (`crate::board`).
fn two_workers_on_one_board(m: Mechanism, echo: &Backend, defer_check: Duration) -> Vec<Harness> {
    let board = crate::board::Board::new().expect("board");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let workers = (0..2)
        .map(|seat| {
            let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
            setup.listener = Some(listener.try_clone().expect("clone"));
            setup.place = board.occupy(seat);
            setup.defer_check = Some(defer_check);
            setup.start()
        })
        .collect();
    // Both on the board (a worker publishes as its loop starts), seen from a third
    // seat no worker holds.
    let observer = board.occupy(2).expect("seat");
    wait_until("both workers on the board", IO_TIMEOUT, || {
        observer.others().is_some_and(|o| o.count == 2)
    });
    workers
}

fn two_workers_share_a_burst_of_clients_evenly(m: Mechanism) {
    const CLIENTS: usize = 40;
    let echo = Backend::start(Mode::Echo);
    // A check long enough that a thread slow to run is never taken for a stuck one.
    let workers = two_workers_on_one_board(m, &echo, Duration::from_secs(5));
    // All connected before any is served: the burst the first worker to wake used to
    // take whole.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| workers[0].connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        round_trip(client, format!("client {i}").as_bytes());
    }
    let held = || -> Vec<usize> {
        workers
            .iter()
            .map(|w| w.probe.sessions.load(Ordering::Relaxed))
            .collect()
    };
    wait_until("both workers to report", IO_TIMEOUT, || {
        held().iter().sum::<usize>() == CLIENTS
    });
    // A worker defers while it holds more than 2 + 1/4 above the other: at most 24
    // against 16.
    let held = held();
    assert!(held.iter().all(|&n| n >= 16), "uneven split: {held:?}");
    drop(clients);
    for mut worker in workers {
        assert_eq!(worker.stop(), Exit::Stopped);
    }
}

fn a_worker_takes_the_clients_a_stuck_one_leaves_waiting(m: Mechanism) {
    const CLIENTS: usize = 10;
    let echo = Backend::start(Mode::Echo);
    let board = crate::board::Board::new().expect("board");
    // A worker that says it accepts, with no session, and never accepts.
    let stuck = board.occupy(1).expect("seat");
    stuck.publish(0, true);
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    setup.place = board.occupy(0);
    let mut worker = setup.start();
    let started = Instant::now();
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut client = worker.connect();
            round_trip(&mut client, format!("client {i}").as_bytes());
            client
        })
        .collect();
    // From the third on they are left to the idle-looking worker; after the default
    // 2 ms check this one takes the waiting client and accepts alone for 250 ms.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "clients waited {:?}",
        started.elapsed()
    );
    wait_until("the sessions to be counted", IO_TIMEOUT, || {
        worker.probe.sessions.load(Ordering::Relaxed) == CLIENTS
    });
    drop(clients);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn from_users_min_a_worker_leaves_clients_to_a_less_loaded_one(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let board = crate::board::Board::new().expect("board");
    let other = board.occupy(1).expect("seat");
    other.publish(0, true);
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    setup.place = board.occupy(0);
    setup.users_min = 3;
    setup.defer_check = Some(Duration::from_millis(800));
    let mut worker = setup.start();
    // Below `users min`: every client is taken at once, whatever the others hold.
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut client = worker.connect();
            round_trip(&mut client, format!("client {i}").as_bytes());
            client
        })
        .collect();
    // From it on, the next is left to the worker with none, which accepts meanwhile
    // (its counter moves, so this one keeps deferring).
    let mut fourth = worker.connect();
    fourth.write_all(b"4").expect("write");
    let keep_up = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < keep_up {
        other.count_accept();
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        stays_silent(&mut fourth, Duration::from_millis(100)),
        "served while another worker had fewer sessions"
    );
    // The other stops accepting: at the next check this one takes the client.
    other.publish(0, false);
    let mut back = [0u8; 1];
    fourth.read_exact(&mut back).expect("served");
    assert_eq!(&back, b"4");
    clients.push(fourth);
    drop(clients);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn the_acl_turns_clients_away_before_any_remote_is_connected(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    let rule = |permit, network: &str, prefix| tcprelay_plan::AclRule {
        permit,
        negate: false,
        network: network.parse().unwrap(),
        prefix,
    };
    setup.acl = vec![rule(false, "127.0.0.2", 32), rule(true, "127.0.0.0", 8)];
    let mut worker = setup.start();
    let from = |source: [u8; 4]| {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::from((source, 0)).into())
            .expect("bind the source address");
        socket.connect(&worker.addr.into()).expect("connect");
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream
    };
    let mut permitted = from([127, 0, 0, 1]);
    round_trip(&mut permitted, b"in");
    let mut denied = from([127, 0, 0, 2]);
    let _ = denied.write_all(b"out");
    let mut byte = [0u8; 1];
    match denied.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("a denied client was served: {other:?}"),
    }
    // Served again by the same worker; the denied one never reached the backend.
    round_trip(&mut permitted, b"again");
    assert_eq!(echo.accepted(), 1);
    drop(permitted);
    assert_eq!(worker.stop(), Exit::Stopped);
}

fn unix_listener_clients_are_relayed(m: Mechanism) {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "tcprelay-worker-{}-{}.sock",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let echo = Backend::start(Mode::Echo);
    let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    let config = Config {
        id: 2,
        relay: relay(&[(echo.addr, 1)]),
        users_max: 10,
        users_min: 0,
        place: None,
        counting: None,
        steering: None,
        sticky: None,
        acl: Vec::new(),
        listeners: vec![Listener::plain(ListenSocket::Unix(
            mio::net::UnixListener::from_std(listener),
        ))],
        tcp_bufsize: None,
        control: mio::net::UnixStream::from_std(theirs),
        signals: None,
        discovery: None,
        tls: None,
        route_tls: Vec::new(),
    };
    let options = Options {
        mechanism: Some(m),
        ..Options::default()
    };
    let thread = thread::spawn(move || run_with(config, options));
    let result = (|| -> io::Result<Vec<u8>> {
        let mut client = StdUnixStream::connect(&path)?;
        client.set_read_timeout(Some(IO_TIMEOUT))?;
        client.write_all(b"over unix")?;
        let mut back = [0u8; 9];
        client.read_exact(&mut back)?;
        Ok(back.to_vec())
    })();
    let mut master = ours;
    master
        .write_all(&ToWorker::Stop { grace_secs: 0 }.encode())
        .expect("stop");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while !thread.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&path);
    assert_eq!(result.expect("relayed"), b"over unix");
    assert!(thread.is_finished(), "the worker did not exit");
    assert_eq!(thread.join().expect("thread").expect("loop"), Exit::Stopped);
}

#[test]
fn an_idle_session_is_a_few_hundred_bytes() {
    // The memory per idle relayed connection is a documented target (at most half
    // of HAProxy's 3.3 KiB; 0.34 KiB measured by `bench/run.sh --only idle_memory`,
    // most of it this slot): with
    // no pending remainder an idle session owns no heap memory (a session connected
    // at its first attempt keeps no failover bookkeeping either, see
    // `a_first_attempts_bookkeeping_is_rebuilt_not_kept`), so its slab slot is
    // all of it, and its size is pinned here so that growth is noticed: a field
    // that only some sessions need goes behind a box (`Meta`'s `Extra`, the
    // `Connecting` and `Failure` states) rather than in every slot.
    let size = std::mem::size_of::<session::Session<stream::Stream>>();
    assert!(size <= 320, "a session takes {size} bytes");
}

fn an_unusable_sctp_remote_fails_over_to_tcp(m: Mechanism) {
    // Without SCTP in the kernel the socket cannot be created (logged once); with
    // it, nothing speaks SCTP on the echo's port and the connect is refused. Either
    // way the session goes on to the TCP remote.
    let echo = Backend::start(Mode::Echo);
    let mut r = relay(&[(echo.addr, 1), (echo.addr, 1)]);
    r.remotes[0].protocol = Protocol::Sctp;
    let mut worker = Setup::under(m, r).start();
    for i in 0..3 {
        let mut client = worker.connect();
        round_trip(&mut client, format!("try {i}").as_bytes());
    }
    assert_eq!(echo.accepted(), 3);
    assert_eq!(worker.stop(), Exit::Stopped);
}

#[test]
fn test_helpers_are_deterministic() {
    let mut whole = Fnv::new();
    whole.update(b"abc");
    let mut split = Fnv::new();
    split.update(b"a");
    split.update(b"bc");
    assert_eq!(whole.0, split.0);
    assert_eq!(random_bytes(1, 16), random_bytes(1, 16));
    assert_ne!(random_bytes(1, 16), random_bytes(2, 16));
}

/// Set in the child process that runs
/// [`select_sheds_a_client_over_fd_setsize_and_recovers`] alone.
const FD_CHILD: &str = "TCPRELAY_TEST_FD_CHILD";

/// A select(2) worker handed a client whose descriptor is over `FD_SETSIZE` sheds
/// that client (closes it), pauses accepting and keeps serving; once descriptors
/// free up it accepts again. Descriptor numbers belong to the whole process, so
/// the test runs itself in a child process, alone.
#[test]
fn select_sheds_a_client_over_fd_setsize_and_recovers() {
    let name = "select_sheds_a_client_over_fd_setsize_and_recovers";
    if std::env::var_os(FD_CHILD).is_none() {
        let path = module_path!().split_once("::").map_or("", |(_, p)| p);
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", &format!("{path}::{name}"), "--nocapture"])
            .env(FD_CHILD, "1")
            .output()
            .expect("run the child");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the child failed:\n{text}");
        assert!(text.contains("1 passed"), "the child ran nothing:\n{text}");
        if text.contains("skipped:") {
            eprintln!("{text}");
        }
        return;
    }
    crate::os::raise_nofile();
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.current.is_some_and(|current| current < 1100) {
        println!("skipped: the open file limit cannot reach 1100 descriptors");
        return;
    }
    let echo = Backend::start(Mode::Echo);
    let mut worker = Setup::under(Mechanism::Select, relay(&[(echo.addr, 1)])).start();
    let mut first = worker.connect();
    round_trip(&mut first, b"before");
    // Take every free descriptor below FD_SETSIZE.
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let mut fillers = Vec::new();
    loop {
        let owned = rustix::io::fcntl_dupfd_cloexec(&null, 0).expect("dup");
        if std::os::fd::AsRawFd::as_raw_fd(&owned) >= 1024 {
            break;
        }
        fillers.push(owned);
    }
    // The worker accepts the next client on a descriptor select(2) cannot watch:
    // closed, not served, and the worker lives on.
    let mut shed = worker.connect();
    let (data, _) = read_to_end(&mut shed);
    assert!(data.is_empty());
    round_trip(&mut first, b"still served");
    // Descriptors free up: the worker accepts again after its pause.
    fillers.truncate(fillers.len().saturating_sub(16));
    let mut next = worker.connect();
    round_trip(&mut next, b"after");
    drop(fillers);
    drop((first, next));
    assert_eq!(worker.stop(), Exit::Stopped);
}

// ---- every scenario under every mechanism ---------------------------------------

/// Descriptor numbers are per process: a scenario under select(2) takes the whole
/// process, so that no other test's sockets push its worker's descriptors over
/// `FD_SETSIZE`; the others share it.
static DESCRIPTORS: RwLock<()> = RwLock::new(());

/// A scenario's hold on the process's descriptors, released when dropped.
struct Turn {
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

impl Turn {
    fn take(mechanism: Mechanism) -> Turn {
        // A scenario that failed poisons the lock; the others still run.
        if mechanism == Mechanism::Select {
            Turn {
                _shared: None,
                _alone: Some(DESCRIPTORS.write().unwrap_or_else(|e| e.into_inner())),
            }
        } else {
            Turn {
                _shared: Some(DESCRIPTORS.read().unwrap_or_else(|e| e.into_inner())),
                _alone: None,
            }
        }
    }
}

/// Whether io_uring can be used in this process (a kernel or a container may refuse
/// it: its tests then say so and pass; the probe's reason is logged at debug level).
#[cfg(target_os = "linux")]
fn uring_here() -> bool {
    let here = Mechanism::Uring.available();
    if !here {
        eprintln!(
            "skipped: io_uring is refused here: {:?}",
            Mechanism::parse(Some("64"))
        );
    }
    here
}

/// One module per mechanism, one test per scenario in each.
macro_rules! under_each_mechanism {
    ($($scenario:ident),* $(,)?) => {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        mod epoll {
            $(
                #[test]
                fn $scenario() {
                    let _turn = super::Turn::take(super::Mechanism::Epoll);
                    super::$scenario(super::Mechanism::Epoll);
                }
            )*
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        mod native {
            $(
                #[test]
                fn $scenario() {
                    let mechanism = super::Mechanism::os_default();
                    let _turn = super::Turn::take(mechanism);
                    super::$scenario(mechanism);
                }
            )*
        }
        #[cfg(target_os = "linux")]
        mod io_uring {
            $(
                #[test]
                fn $scenario() {
                    if !super::uring_here() {
                        return;
                    }
                    let _turn = super::Turn::take(super::Mechanism::Uring);
                    super::$scenario(super::Mechanism::Uring);
                }
            )*
        }
        mod poll {
            $(
                #[test]
                fn $scenario() {
                    let _turn = super::Turn::take(super::Mechanism::Poll);
                    super::$scenario(super::Mechanism::Poll);
                }
            )*
        }
        mod select {
            $(
                #[test]
                fn $scenario() {
                    let _turn = super::Turn::take(super::Mechanism::Select);
                    super::$scenario(super::Mechanism::Select);
                }
            )*
        }
    };
}

under_each_mechanism!(
    data_integrity_50_sessions_of_1_mib,
    weighted_least_connections_splits_3_to_1,
    failover_to_the_next_remote_is_invisible_to_clients,
    connect_timeout_fails_over,
    all_remotes_dead_closes_the_client_then_revives,
    rebalance_retries_a_dead_remote_after_n_selections,
    retire_after_three_sessions,
    idle_timeout_closes_idle_sessions_only,
    silent_timeout_closes_sessions_through_which_nothing_passed,
    half_close_delivers_the_reply_after_the_clients_eof,
    a_reset_is_propagated,
    backpressure_bounds_what_the_worker_buffers,
    idle_sessions_hold_no_buffers,
    an_idle_worker_tells_the_master_while_idle,
    an_idle_worker_sleeps,
    drain_keeps_open_sessions_and_exits_when_idle,
    master_gone_drains_and_exits_when_idle,
    stop_closes_sessions_after_the_grace_period,
    signals_drain_or_stop,
    users_max_leaves_extra_clients_in_the_queue,
    two_workers_share_a_burst_of_clients_evenly,
    a_worker_takes_the_clients_a_stuck_one_leaves_waiting,
    from_users_min_a_worker_leaves_clients_to_a_less_loaded_one,
    the_acl_turns_clients_away_before_any_remote_is_connected,
    unix_listener_clients_are_relayed,
    an_unusable_sctp_remote_fails_over_to_tcp,
);

/// Resets before anything was relayed, and bytes sent before a reset.
mod after_resets {
    use super::resets::*;
    use super::*;
    under_each_mechanism!(
        a_remote_that_resets_before_any_byte_is_failed_over_and_marked_dead,
        a_reset_after_the_request_reached_the_remote_is_not_retried,
        an_answer_followed_by_a_reset_reaches_the_client,
        a_request_followed_by_a_reset_reaches_the_remote,
    );
}

/// The operators' steering of remotes (drain, enable, weight).
mod steered {
    use super::steering::*;
    use super::*;
    under_each_mechanism!(
        a_drained_remote_gets_no_new_session_while_its_own_go_on,
        a_weight_override_changes_the_split,
    );
}

/// Client affinity through the shared sticky table.
mod sticky_clients {
    use super::sticky::*;
    use super::*;
    under_each_mechanism!(
        a_client_address_keeps_its_remote_across_workers,
        a_down_remotes_clients_move_and_keep_their_new_remote,
        an_entry_expires_after_its_period,
    );
}

/// Sticky clients handed to the worker their entry names.
mod sticky_handoffs {
    use super::handoff::*;
    use super::*;
    under_each_mechanism!(
        a_client_accepted_by_one_worker_is_served_by_the_one_its_entry_names,
        a_full_or_gone_workers_client_is_served_where_accepted,
        a_handoff_given_back_is_served_even_when_full,
        a_draining_worker_serves_the_handoffs_still_waiting,
        a_tls_clients_handshake_is_done_by_the_worker_it_is_handed_to,
        a_proxy_listeners_clients_are_not_handed_over,
    );
}

/// The `sessions` query answered on the control socket.
mod report {
    use super::sessions_report::*;
    use super::*;
    under_each_mechanism!(a_sessions_query_is_answered_with_the_sessions_oldest_first,);
}

/// Issue 14's half-close timeout and the end of a reload's drain.
mod session_timeouts {
    use super::timeouts::*;
    use super::*;
    under_each_mechanism!(
        the_half_close_timeout_closes_half_closed_sessions_only,
        drain_over_closes_the_sessions_left_and_exits,
    );
}

/// TLS towards remotes (stunnel's client mode).
mod tls_remotes {
    use super::remote_tls::*;
    use super::*;
    under_each_mechanism!(
        a_plain_client_is_relayed_through_tls_to_the_remote,
        the_next_session_to_a_tls_remote_is_resumed,
        a_wrong_name_or_an_untrusted_certificate_fails_over_and_is_counted,
        a_silent_tls_remote_times_out_and_gets_no_client_byte,
        a_client_certificate_is_presented_when_the_plan_gives_one,
        a_tls_listener_re_encrypts_towards_a_tls_remote,
        a_tls_remote_that_resets_during_the_handshake_is_a_tls_failure,
    );
}

/// The relay-wide counters a worker counts in.
mod counted {
    use super::counting::*;
    use super::*;
    under_each_mechanism!(
        sessions_bytes_and_connect_failures_are_counted,
        an_open_sessions_bytes_are_counted_as_they_pass,
        denied_clients_are_counted,
    );
}

/// The PROXY protocol, accepted and sent.
mod proxied {
    use super::proxy::*;
    use super::*;
    under_each_mechanism!(
        a_header_is_consumed_and_its_client_sent_onwards,
        a_header_in_two_parts_is_read_whole,
        bad_headers_are_closed_counted_and_never_relayed,
        untrusted_peers_and_silent_clients_are_closed,
        the_acl_decides_on_the_client_a_header_names,
        local_and_unknown_headers_keep_the_real_peer,
        a_remote_is_sent_the_clients_addresses,
        a_v2_headers_tls_tlvs_are_passed_on,
    );
}

/// Out of local ports (in a network namespace of their own: Linux only).
#[cfg(target_os = "linux")]
mod out_of_ports {
    use super::ports::*;
    use super::*;
    under_each_mechanism!(
        a_client_waits_for_a_free_local_port_then_is_served,
        waiting_for_a_local_port_ends_at_the_connect_timeout,
        a_local_address_shares_source_ports_between_remotes,
    );
}

// Not under select(2), which reports no errors: a side the worker does not read
// meanwhile (backpressure) is found reset only when the stall ends, or by the idle
// timeout.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll_a_client_reset_while_splicing_frees_the_pipe() {
    let _turn = Turn::take(Mechanism::Epoll);
    a_client_reset_while_splicing_frees_the_pipe(Mechanism::Epoll);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_a_client_reset_while_splicing_frees_the_pipe() {
    if !uring_here() {
        return;
    }
    let _turn = Turn::take(Mechanism::Uring);
    a_client_reset_while_splicing_frees_the_pipe(Mechanism::Uring);
}

#[test]
fn poll_a_client_reset_while_splicing_frees_the_pipe() {
    let _turn = Turn::take(Mechanism::Poll);
    a_client_reset_while_splicing_frees_the_pipe(Mechanism::Poll);
}
