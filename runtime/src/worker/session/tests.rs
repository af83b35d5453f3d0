//! The session state machine driven through the in-memory fake transport and,
//! for splicing and resets, real socket pairs.

use super::super::transport::fake::Fake;
use super::direction::READS_PER_RUN;
use super::*;

fn relaying(client_room: usize, remote_room: usize) -> (Session<Fake>, Fake, Fake) {
    let client = Fake::new(client_room);
    let remote = Fake::new(remote_room);
    let now = Instant::now();
    let mut s = Session::new(1, client.clone(), now);
    s.remote = Some(End::new(remote.clone()));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    (s, client, remote)
}

#[test]
fn bytes_flow_both_ways_without_holding_buffers() {
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    let mut scratch = vec![0u8; 1024];
    client.state().input.extend(b"ping");
    remote.state().input.extend(b"pong!");
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Continue
    ));
    assert_eq!(remote.state().output, b"ping");
    assert_eq!(client.state().output, b"pong!");
    assert_eq!(s.buffered(), 0);
    assert_eq!(s.bytes(), (4, 5));
    assert!(matches!(s.state, State::Relaying));
}

#[test]
fn partial_write_keeps_the_rest_and_stops_reading_the_source() {
    let (mut s, client, remote) = relaying(1 << 20, 10);
    let mut scratch = vec![0u8; 64];
    client.state().input.extend([7u8; 200]);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Continue
    ));
    assert_eq!(remote.state().output.len(), 10);
    assert_eq!(s.buffered(), 54, "the unwritten rest of one read");
    let reads = client.state().reads;
    // More readiness on the client does not read it while the remainder waits.
    s.ready(Side::Client, true, false, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert_eq!(client.state().reads, reads);
    // The remote drains: the remainder goes out, is freed, and reading resumes.
    remote.state().write_room = 1000;
    s.ready(Side::Remote, false, true, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert_eq!(remote.state().output.len(), 200);
    assert_eq!(s.buffered(), 0);
}

#[test]
fn half_close_is_forwarded_after_the_remainder() {
    let (mut s, client, remote) = relaying(1 << 20, 3);
    let mut scratch = vec![0u8; 64];
    client.state().input.extend(b"request");
    client.state().input_eof = true;
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert!(
        !remote.state().shut_write,
        "EOF waits for the pending bytes"
    );
    remote.state().write_room = 100;
    s.ready(Side::Remote, false, true, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert_eq!(remote.state().output, b"request");
    assert!(remote.state().shut_write);
    assert!(matches!(
        s.state,
        State::HalfClosed {
            finished: Side::Client,
            ..
        }
    ));
    // The other direction still flows, then ends the session.
    remote.state().input.extend(b"reply");
    remote.state().input_eof = true;
    s.ready(Side::Remote, true, false, true, false);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Close(Close::Finished)
    ));
    assert_eq!(client.state().output, b"reply");
    assert!(client.state().shut_write);
    assert!(matches!(s.state, State::Closed));
}

#[test]
fn errors_name_their_side() {
    let mut scratch = vec![0u8; 64];
    // A read error of the remote (once something was relayed: see the failover
    // tests below).
    let (mut s, client, remote) = relaying(100, 100);
    client.state().input.extend(b"request");
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    remote.state().read_error = Some(io::ErrorKind::ConnectionReset);
    s.ready(Side::Remote, true, false, false, false);
    match s.relay(&mut scratch, &mut Pipes::default(), Instant::now()) {
        Outcome::Close(Close::Error {
            side: Side::Remote,
            error,
        }) => assert!(is_reset(&error)),
        other => panic!("unexpected {other:?}"),
    }
    // A write error of the remote.
    let (mut s, client, remote) = relaying(100, 100);
    client.state().input.extend(b"x");
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    client.state().input.extend(b"y");
    remote.state().write_error = Some(io::ErrorKind::BrokenPipe);
    remote.state().input_eof = true;
    s.ready(Side::Client, true, false, false, false);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Close(Close::Error {
            side: Side::Remote,
            ..
        })
    ));
}

/// A remote that resets after the client's request reached it: the answer it
/// sent first is delivered, no end of file is forwarded (the client is to see
/// the reset, not an end), and the session closes only once the client's kernel
/// has sent everything, or when that stalls for `FAILING_LIMIT`.
#[test]
fn bytes_before_a_reset_are_delivered_then_the_session_closes_once_they_are_sent() {
    let mut scratch = vec![0u8; 64];
    let start = Instant::now();
    for stalled in [false, true] {
        let (mut s, client, remote) = relaying(1 << 20, 100);
        client.state().input.extend(b"request");
        s.relay(&mut scratch, &mut Pipes::default(), start);
        assert_eq!(remote.state().output, b"request");
        // The answer and the reset arrive together: one error event.
        remote.state().input.extend(b"answer");
        remote.state().input_eof = true;
        remote.state().pending_error = Some(io::ErrorKind::ConnectionReset);
        client.state().unsent = 6;
        s.ready(Side::Remote, true, false, true, true);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), start),
            Outcome::Linger
        ));
        assert_eq!(client.state().output, b"answer", "delivered first");
        assert!(
            !client.state().shut_write,
            "no end of file before the reset"
        );
        assert!(matches!(s.state, State::Failing(_)));
        // Still in the client's kernel: the session waits.
        let later = start + FAILING_LIMIT / 2;
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), later),
            Outcome::Linger
        ));
        let end = if stalled {
            start + FAILING_LIMIT
        } else {
            client.state().unsent = 0;
            later
        };
        match s.relay(&mut scratch, &mut Pipes::default(), end) {
            Outcome::Close(Close::Error {
                side: Side::Remote,
                error,
            }) => assert!(is_reset(&error)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!client.state().shut_write);
    }
}

/// The same from the client: its request is read to the end and delivered,
/// through backpressure, before the session closes (the reset is then
/// propagated to the remote by the worker).
#[test]
fn a_client_that_resets_has_what_it_sent_delivered() {
    let mut scratch = vec![0u8; 64];
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    client.state().input.extend(b"hello");
    remote.state().input.extend(b"hi");
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    // The request and the reset arrive together: one error event.
    remote.state().write_room = 4;
    client.state().input.extend(b"request");
    client.state().input_eof = true;
    client.state().pending_error = Some(io::ErrorKind::ConnectionReset);
    s.ready(Side::Client, true, false, true, true);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Linger
    ));
    assert_eq!(remote.state().output, b"hellorequ");
    remote.state().write_room = 100;
    s.ready(Side::Remote, false, true, false, false);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Close(Close::Error {
            side: Side::Client,
            ..
        })
    ));
    assert_eq!(remote.state().output, b"hellorequest");
    assert!(!remote.state().shut_write);
}

/// A remote that accepts and resets before anything was relayed: the session is
/// connecting again, with the remotes it tried still excluded and the client's
/// bytes read meanwhile (whose write failed) kept; the next remote gets them,
/// then the client's end of file.
#[test]
fn a_remote_that_resets_before_anything_was_relayed_is_failed_over() {
    let mut scratch = vec![0u8; 64];
    let now = Instant::now();
    let client = Fake::new(1 << 20);
    let mut s = Session::new(9, client.clone(), now);
    if let State::Connecting(c) = &mut s.state {
        c.tried.insert(3);
    }
    let remote = Fake::new(100);
    s.remote = Some(End::new(remote.clone()));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    assert!(s.retry.is_some());
    client.state().input.extend(b"early");
    client.state().input_eof = true;
    remote.state().write_error = Some(io::ErrorKind::ConnectionReset);
    remote.state().input_eof = true;
    match s.relay(&mut scratch, &mut Pipes::default(), now) {
        Outcome::Failover(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("unexpected {other:?}"),
    }
    match &s.state {
        State::Connecting(c) => assert!(c.tried.contains(3), "the remotes tried stay tried"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.up.pending.as_slice(), b"early");
    assert!(client.state().output.is_empty(), "the client saw nothing");
    assert!(!client.state().shut_write);
    // The next remote.
    let next = Fake::new(100);
    s.remote = Some(End::new(next.clone()));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    s.relay(&mut scratch, &mut Pipes::default(), now);
    assert_eq!(next.state().output, b"early");
    assert!(next.state().shut_write, "the client's end of file follows");
    // Once something was relayed, the failover bookkeeping is gone.
    assert!(s.retry.is_none());
}

/// A session connected at its first attempt keeps no failover bookkeeping on the
/// heap while it is idle (the idle memory per connection is a documented target),
/// and a remote that then resets before anything was relayed still finds it: the
/// session is connecting again with that remote tried and one attempt made. After
/// a failover the bookkeeping says more (two attempts) and is kept as it is.
#[test]
fn a_first_attempts_bookkeeping_is_rebuilt_not_kept() {
    let mut scratch = vec![0u8; 64];
    let now = Instant::now();
    let client = Fake::new(1 << 20);
    let mut s = Session::new(9, client.clone(), now);
    let attempt = |s: &mut Session<Fake>, index: usize| {
        if let State::Connecting(c) = &mut s.state {
            c.tried.insert(index);
            c.attempt += 1;
        }
        s.set_remote_index(Some(index));
        let remote = Fake::new(100);
        s.remote = Some(End::new(remote.clone()));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        remote
    };
    let remote = attempt(&mut s, 2);
    assert!(s.retry.is_none(), "nothing kept on the heap");
    remote.state().read_error = Some(io::ErrorKind::ConnectionReset);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), now),
        Outcome::Failover(_)
    ));
    match &s.state {
        State::Connecting(c) => {
            assert!(c.tried.is_only(2), "the remote tried stays tried");
            assert_eq!((c.attempt, c.revived), (1, false));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The worker fails the attempt over to the next remote.
    s.remote = None;
    attempt(&mut s, 4);
    match s.retry.as_deref() {
        Some(c) => {
            assert!(c.tried.contains(2) && c.tried.contains(4));
            assert_eq!(c.attempt, 2);
        }
        None => panic!("a second attempt's bookkeeping is kept"),
    }
}

/// A remote that closes cleanly before anything was relayed ends the session
/// normally (half-closed towards the client): an end of file is an answer, and
/// the remote is not failed over.
#[test]
fn a_remote_that_closes_cleanly_first_is_a_normal_end() {
    let (mut s, client, remote) = relaying(100, 100);
    let mut scratch = vec![0u8; 64];
    remote.state().input_eof = true;
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Continue
    ));
    assert!(client.state().shut_write);
    assert!(matches!(
        s.state,
        State::HalfClosed {
            finished: Side::Remote,
            ..
        }
    ));
}

/// Once a byte of the client was written to the remote, a reset of the remote
/// is not failed over (the remote may have acted on it).
#[test]
fn a_reset_after_a_client_byte_reached_the_remote_is_not_failed_over() {
    let (mut s, client, remote) = relaying(100, 100);
    let mut scratch = vec![0u8; 64];
    client.state().input.extend(b"request");
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    remote.state().pending_error = Some(io::ErrorKind::ConnectionReset);
    remote.state().input_eof = true;
    s.ready(Side::Remote, true, false, true, true);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Close(Close::Error {
            side: Side::Remote,
            ..
        })
    ));
}

/// The same with kernel sockets: the remote's reset has arrived but its event
/// is not seen yet (it came after the poll), so the write of the client's bytes
/// is what finds it; those bytes are kept for the next remote.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_write_that_finds_a_reset_keeps_the_clients_bytes_on_kernel_sockets() {
    use super::super::socket::Socket;
    use super::super::stream::Stream;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    let timeout = Some(std::time::Duration::from_secs(10));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let pair = || {
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_read_timeout(timeout).unwrap();
        (
            Stream::Plain(Socket::Tcp(mio::net::TcpStream::from_std(ours))),
            theirs,
        )
    };
    let (client, mut client_peer) = pair();
    let (remote, remote_peer) = pair();
    let now = Instant::now();
    let mut s = Session::new(10, client, now);
    s.remote = Some(End::registered(remote, 1));
    s.ready(Side::Remote, false, true, false, false);
    assert!(matches!(s.connected(now, true), ConnectOutcome::Connected));
    // The remote resets; wait until its reset is in our socket, unseen.
    socket2::SockRef::from(&remote_peer)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    let fd = s.remote.as_ref().unwrap().io.as_raw_fd();
    drop(remote_peer);
    let mut poll = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(crate::sys::poll::poll(&mut poll, 10_000).unwrap(), 1);
    assert_ne!(poll[0].revents & (libc::POLLHUP | libc::POLLERR), 0);
    client_peer.write_all(b"early bytes").unwrap();
    s.ready(Side::Client, true, false, false, false);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut pipes = Pipes::new(2);
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let error = loop {
        assert!(Instant::now() < deadline, "no failover");
        match s.relay(&mut scratch, &mut pipes, Instant::now()) {
            Outcome::Failover(error) => break error,
            Outcome::Continue => {
                // The client's bytes are not there yet.
                std::thread::sleep(std::time::Duration::from_millis(1));
                s.ready(Side::Client, true, false, false, false);
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(is_reset(&error), "{error}");
    assert_eq!(s.up.pending.as_slice(), b"early bytes");
    // The next remote gets them.
    let (next, mut next_peer) = pair();
    s.remote = Some(End::new(next));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    s.relay(&mut scratch, &mut pipes, Instant::now());
    let mut got = [0u8; 11];
    next_peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"early bytes");
    s.release_pipes(&mut pipes);
}

/// The byte counts are what each destination accepted, step by step through
/// partial writes, never what was read: the rest of a read waits in the remainder
/// uncounted, and a write that fails counts nothing.
#[test]
fn byte_counts_are_what_each_destination_accepted() {
    let (mut s, client, remote) = relaying(5, 10);
    let mut scratch = vec![0u8; 64];
    let accepted = |client: &Fake, remote: &Fake| {
        (
            remote.state().output.len() as u64,
            client.state().output.len() as u64,
        )
    };
    client.state().input.extend([1u8; 100]);
    remote.state().input.extend([2u8; 8]);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    // 10 of the 64 bytes read from the client, 5 of the 8 from the remote.
    assert_eq!(s.bytes(), (10, 5));
    assert_eq!(s.buffered(), 54 + 3);
    // Part of each remainder goes out.
    remote.state().write_room = 30;
    client.state().write_room = 1;
    s.ready(Side::Remote, false, true, false, false);
    s.ready(Side::Client, false, true, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert_eq!(s.bytes(), (40, 6));
    assert_eq!(s.bytes(), accepted(&client, &remote));
    // Room for everything: the rest of the remainders, then the client's last 36.
    remote.state().write_room = 1000;
    client.state().write_room = 1000;
    s.ready(Side::Remote, false, true, false, false);
    s.ready(Side::Client, true, true, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert_eq!(s.bytes(), (100, 8));
    assert_eq!(s.bytes(), accepted(&client, &remote));
    // A write that fails takes nothing and counts nothing.
    client.state().input.extend([3u8; 10]);
    remote.state().write_error = Some(io::ErrorKind::BrokenPipe);
    s.ready(Side::Client, true, false, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert!(matches!(s.state, State::Failing(_)));
    assert_eq!(s.buffered(), 10, "kept, not sent");
    assert_eq!(s.bytes(), (100, 8));
    assert_eq!(s.bytes(), accepted(&client, &remote));
}

/// A spliced direction counts what left its pipe for the destination, not what
/// entered it: with a destination whose send buffer takes a little at a time,
/// after every run the count is exactly what the destination's peer can read.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_spliced_direction_counts_what_left_the_pipe() {
    use super::super::socket::Socket;
    use super::super::stream::Stream;
    use std::io::{Read, Write};
    let (client_peer, client) = std::os::unix::net::UnixStream::pair().unwrap();
    let (remote, mut remote_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    for s in [&client, &remote, &remote_peer] {
        s.set_nonblocking(true).unwrap();
    }
    // A small send buffer: each splice into the remote moves only part of the pipe.
    socket2::SockRef::from(&remote)
        .set_send_buffer_size(8 * 1024)
        .unwrap();
    let wrap = |s| Stream::Plain(Socket::Unix(mio::net::UnixStream::from_std(s)));
    let now = Instant::now();
    let mut s = Session::new(11, wrap(client), now);
    s.remote = Some(End::new(wrap(remote)));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    let data: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i * 13 + i / 241) as u8)
        .collect();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        let mut peer = client_peer;
        peer.write_all(&sent).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        peer
    });
    let mut scratch = vec![0u8; 64 * 1024];
    let mut pipes = Pipes::new(2);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut in_transit = false;
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while got.len() < data.len() || !s.up.shut {
        assert!(Instant::now() < deadline, "the transfer did not finish");
        s.ready(Side::Client, true, true, false, false);
        s.ready(Side::Remote, true, true, false, false);
        s.relay(&mut scratch, &mut pipes, Instant::now());
        in_transit |= !s.up.pipe_empty();
        loop {
            match remote_peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        assert_eq!(
            s.bytes(),
            (got.len() as u64, 0),
            "counted what was delivered"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    assert!(pipes.created >= 1, "bulk data was not spliced");
    assert!(in_transit, "the pipe never held bytes after a run");
    assert!(got == data, "bytes changed on the way");
    s.release_pipes(&mut pipes);
    drop(writer.join().unwrap());
}

#[test]
fn a_busy_direction_yields_after_its_budget() {
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    let mut scratch = vec![0u8; 8];
    client
        .state()
        .input
        .extend(vec![1u8; 8 * READS_PER_RUN as usize + 1]);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Again
    ));
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Continue
    ));
    assert_eq!(remote.state().output.len(), 8 * READS_PER_RUN as usize + 1);
}

#[test]
fn connect_pending_and_failed() {
    let client = Fake::new(10);
    let remote = Fake::new(10);
    remote.state().connected = false;
    let now = Instant::now();
    let mut s = Session::new(2, client, now);
    assert!(
        matches!(s.connected(now, false), ConnectOutcome::Pending),
        "no remote yet"
    );
    s.remote = Some(End::new(remote.clone()));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Pending));
    // Nothing is relayed while connecting.
    let mut scratch = vec![0u8; 8];
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), now),
        Outcome::Continue
    ));
    remote.state().connect_error = Some(io::ErrorKind::ConnectionRefused);
    assert!(matches!(s.connected(now, false), ConnectOutcome::Failed(_)));
}

#[test]
fn a_writable_event_without_error_means_connected_when_events_report_errors() {
    let remote = Fake::new(10);
    remote.state().connected = false;
    let now = Instant::now();
    let mut s = Session::new(5, Fake::new(10), now);
    s.remote = Some(End::registered(remote.clone(), 1));
    // No event yet: still connecting, and the socket is not asked.
    assert!(matches!(s.connected(now, true), ConnectOutcome::Pending));
    assert_eq!(remote.state().status_checks, 0);
    s.ready(Side::Remote, false, true, false, false);
    assert!(matches!(s.connected(now, true), ConnectOutcome::Connected));
    assert_eq!(remote.state().status_checks, 0, "no system call needed");
}

#[test]
fn an_error_event_or_select_asks_the_socket() {
    let now = Instant::now();
    for (trusted, error) in [(true, true), (false, false)] {
        let remote = Fake::new(10);
        remote.state().connect_error = Some(io::ErrorKind::ConnectionRefused);
        let mut s = Session::new(6, Fake::new(10), now);
        s.remote = Some(End::registered(remote.clone(), 1));
        // select(2) shows a failed connect as writable (and readable).
        s.ready(Side::Remote, !error, true, error, error);
        assert!(matches!(
            s.connected(now, trusted),
            ConnectOutcome::Failed(_)
        ));
        assert_eq!(remote.state().status_checks, 1);
    }
}

#[test]
fn an_accepted_client_is_read_only_after_the_poller_reports_it() {
    let client = Fake::new(100);
    client.state().input.extend(b"hello");
    let now = Instant::now();
    let mut s = Session::accepted(7, client.clone(), now, 1);
    s.remote = Some(End::new(Fake::new(100)));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    let mut scratch = vec![0u8; 64];
    s.relay(&mut scratch, &mut Pipes::default(), now);
    assert_eq!(client.state().reads, 0, "no read before an event");
    s.ready(Side::Client, true, true, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), now);
    assert_eq!(s.bytes().0, 5);
}

#[test]
fn the_last_end_of_file_is_sent_by_the_close_not_a_shutdown() {
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    client.state().close_sends_eof = true;
    remote.state().close_sends_eof = true;
    let mut scratch = vec![0u8; 64];
    client.state().input.extend(b"request");
    client.state().input_eof = true;
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert!(
        remote.state().shut_write,
        "the first end of file is forwarded"
    );
    remote.state().input.extend(b"reply");
    remote.state().input_eof = true;
    s.ready(Side::Remote, true, false, true, false);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Close(Close::Finished)
    ));
    assert_eq!(client.state().output, b"reply");
    assert!(
        !client.state().shut_write,
        "closing the client sends its end of file"
    );
}

/// Real sockets (Unix-domain pairs): a bulk direction switches to splicing,
/// the bytes arrive intact and in order, the other direction keeps copying, and
/// no pipe is held once the transfer is over.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn bulk_data_is_spliced_and_pipes_go_back_when_empty() {
    use super::super::socket::Socket;
    use super::super::stream::Stream;
    use std::io::{Read, Write};
    let (client_peer, client) = std::os::unix::net::UnixStream::pair().unwrap();
    let (remote, remote_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    for s in [&client, &remote] {
        s.set_nonblocking(true).unwrap();
    }
    let wrap = |s| Stream::Plain(Socket::Unix(mio::net::UnixStream::from_std(s)));
    let now = Instant::now();
    let mut s = Session::new(8, wrap(client), now);
    s.remote = Some(End::new(wrap(remote)));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        let mut peer = client_peer;
        peer.write_all(&sent).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        // The reply travels the other way, by copy.
        let mut reply = Vec::new();
        peer.read_to_end(&mut reply).unwrap();
        reply
    });
    let reader = std::thread::spawn(move || {
        let mut peer = remote_peer;
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        peer.write_all(b"thanks").unwrap();
        got
    });
    let mut scratch = vec![0u8; 64 * 1024];
    let mut pipes = Pipes::new(4);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the transfer did not finish");
        // No poller here: say both sides may be ready, the operations find out.
        s.ready(Side::Client, true, true, false, false);
        s.ready(Side::Remote, true, true, false, false);
        if let Outcome::Close(close) = s.relay(&mut scratch, &mut pipes, Instant::now()) {
            assert!(matches!(close, Close::Finished), "{close:?}");
            break;
        }
        assert!(pipes.in_use() <= 1, "one direction splices");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    s.release_pipes(&mut pipes);
    assert!(pipes.created >= 1, "bulk data was not spliced");
    assert_eq!(pipes.in_use(), 0);
    assert_eq!(s.bytes(), (data.len() as u64, 6));
    // Closing the session's sockets ends the client's read.
    drop(s);
    assert_eq!(reader.join().unwrap(), data, "bytes changed on the way");
    assert_eq!(writer.join().unwrap(), b"thanks");
}

/// A descriptor that cannot splice (here a directory as the source, a file
/// opened for appending as the destination: both EINVAL) makes the direction
/// copy instead, without losing or reordering a byte.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_side_that_cannot_splice_falls_back_to_copying() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let directory = std::fs::File::open(dir.path()).unwrap();
    let appending = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("append"))
        .unwrap();
    let mut scratch = vec![0u8; 64];
    let input: Vec<u8> = (0..200u8).collect();

    // The source fails: nothing was moved, the rest is copied.
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    client.state().input.extend(input.iter().copied());
    client.splice_with(directory.try_clone().unwrap().into());
    remote.splice_with(appending.try_clone().unwrap().into());
    let mut pipes = Pipes::new(2);
    s.relay(&mut scratch, &mut pipes, Instant::now());
    assert_eq!(remote.state().output, input);
    assert_eq!(pipes.created, 1, "splicing was tried");
    assert_eq!(pipes.in_use(), 0);

    // The destination fails with bytes in the pipe: they are copied on, in order.
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    let (mut feeder, source) = std::os::unix::net::UnixStream::pair().unwrap();
    source.set_nonblocking(true).unwrap();
    client.state().input.extend(input[..64].iter().copied());
    client.splice_with(source.into());
    remote.splice_with(appending.into());
    feeder.write_all(&input[64..]).unwrap();
    let mut pipes = Pipes::new(2);
    s.relay(&mut scratch, &mut pipes, Instant::now());
    assert_eq!(remote.state().output, input);
    assert_eq!(pipes.in_use(), 0);
    assert_eq!(
        std::fs::metadata(dir.path().join("append")).unwrap().len(),
        0
    );
}

#[test]
fn a_tls_client_handshakes_before_connecting() {
    let client = Fake::new(100);
    client.state().handshake_blocks = 2;
    client.state().input.extend(b"early");
    let now = Instant::now();
    let mut s = Session::handshaking(3, client.clone(), now);
    assert!(matches!(s.state, State::TlsHandshake { .. }));
    // Nothing is read or relayed during the handshake.
    let mut scratch = vec![0u8; 8];
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), now),
        Outcome::Continue
    ));
    assert_eq!(client.state().reads, 0);
    assert!(matches!(s.handshake(now), HandshakeOutcome::Pending));
    assert!(matches!(s.handshake(now), HandshakeOutcome::Pending));
    assert!(matches!(s.handshake(now), HandshakeOutcome::Done));
    assert!(matches!(s.state, State::Connecting(_)));
    // Then it connects and relays as any session, starting with what waited.
    let remote = Fake::new(100);
    s.remote = Some(End::new(remote.clone()));
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    s.relay(&mut scratch, &mut Pipes::default(), now);
    assert_eq!(remote.state().output, b"early");
}

#[test]
fn a_failed_handshake_closes() {
    let client = Fake::new(100);
    client.state().handshake_error = Some(io::ErrorKind::InvalidData);
    let mut s = Session::handshaking(4, client, Instant::now());
    assert!(matches!(
        s.handshake(Instant::now()),
        HandshakeOutcome::Failed(e) if e.kind() == io::ErrorKind::InvalidData
    ));
    assert!(matches!(s.state, State::Closed));
}

#[test]
fn a_close_notify_that_must_wait_is_sent_when_writable() {
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    let mut scratch = vec![0u8; 64];
    client.state().shutdown_blocks = 1;
    remote.state().input.extend(b"bye");
    remote.state().input_eof = true;
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Continue
    ));
    assert_eq!(client.state().output, b"bye");
    assert!(!client.state().shut_write, "blocked: not sent yet");
    assert!(matches!(s.state, State::Relaying));
    // Writable again: the close_notify goes out, the session is half-closed.
    s.ready(Side::Client, false, true, false, false);
    s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
    assert!(client.state().shut_write);
    assert!(matches!(
        s.state,
        State::HalfClosed {
            finished: Side::Remote,
            ..
        }
    ));
}

#[test]
fn an_error_event_is_checked() {
    let (mut s, client, _remote) = relaying(100, 100);
    let mut scratch = vec![0u8; 8];
    // A stale error event (nothing pending) is harmless.
    s.ready(Side::Client, false, false, false, true);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Continue
    ));
    client.state().pending_error = Some(io::ErrorKind::ConnectionReset);
    // After a reset the socket reads as ended.
    client.state().input_eof = true;
    s.ready(Side::Client, false, false, false, true);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
        Outcome::Close(Close::Error {
            side: Side::Client,
            ..
        })
    ));
}

/// The half-close timeout counts from the first direction's end: `half_closed_at`
/// is the instant of the run that forwarded it, and later runs do not move it.
#[test]
fn half_closed_at_is_when_the_first_end_of_file_was_forwarded() {
    let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
    let mut scratch = vec![0u8; 64];
    let started = Instant::now();
    client.state().input.extend(b"request");
    s.relay(&mut scratch, &mut Pipes::default(), started);
    assert_eq!(s.half_closed_at(), None);
    client.state().input_eof = true;
    s.ready(Side::Client, true, false, true, false);
    let ended = started + Duration::from_secs(1);
    s.relay(&mut scratch, &mut Pipes::default(), ended);
    assert!(remote.state().shut_write);
    assert!(matches!(
        s.state,
        State::HalfClosed {
            finished: Side::Client,
            ..
        }
    ));
    assert_eq!(s.half_closed_at(), Some(ended));
    remote.state().input.extend(b"reply");
    s.ready(Side::Remote, true, false, false, false);
    s.relay(
        &mut scratch,
        &mut Pipes::default(),
        ended + Duration::from_secs(1),
    );
    assert_eq!(client.state().output, b"reply");
    assert_eq!(s.half_closed_at(), Some(ended));
}

/// A client's end of file forwarded to a remote that then fails before anything
/// was relayed: the session fails over, and its half-close timeout counts from the
/// end of file forwarded to the next remote, not from the first (a slow connect
/// must not spend it).
#[test]
fn a_failover_restarts_the_half_close_clock() {
    let mut scratch = vec![0u8; 64];
    let (mut s, client, remote) = relaying(100, 100);
    let started = Instant::now();
    client.state().input_eof = true;
    s.relay(&mut scratch, &mut Pipes::default(), started);
    assert!(remote.state().shut_write);
    assert_eq!(s.half_closed_at(), Some(started));
    remote.state().read_error = Some(io::ErrorKind::ConnectionReset);
    s.ready(Side::Remote, true, false, false, false);
    let failed = started + Duration::from_secs(1);
    assert!(matches!(
        s.relay(&mut scratch, &mut Pipes::default(), failed),
        Outcome::Failover(_)
    ));
    assert_eq!(s.half_closed_at(), None);
    let next = Fake::new(100);
    s.remote = Some(End::new(next.clone()));
    let connected = failed + Duration::from_secs(5);
    assert!(matches!(
        s.connected(connected, false),
        ConnectOutcome::Connected
    ));
    s.relay(&mut scratch, &mut Pipes::default(), connected);
    assert!(next.state().shut_write, "the client's end of file again");
    assert_eq!(s.half_closed_at(), Some(connected));
}

/// A TLS remote: after its TCP connect the session stays connecting while the
/// handshake runs, relays nothing of the client meanwhile, and relays once the
/// handshake is complete; a failed handshake leaves it connecting (the worker
/// fails over), and a failover after it starts the next remote's afresh.
#[test]
fn a_tls_remote_gets_no_client_byte_before_its_handshake() {
    let mut scratch = vec![0u8; 64];
    let now = Instant::now();
    let client = Fake::new(1 << 20);
    let mut s = Session::new(4, client.clone(), now);
    let remote = Fake::new(100);
    remote.state().handshake_due = true;
    remote.state().handshake_blocks = 1;
    s.remote = Some(End::new(remote.clone()));
    client.state().input.extend(b"early");
    let later = now + Duration::from_millis(5);
    assert!(matches!(
        s.connected(later, false),
        ConnectOutcome::Connected
    ));
    assert!(s.remote_handshaking());
    assert!(matches!(&s.state, State::Connecting(c) if c.handshake == Some(later)));
    assert!(matches!(
        s.remote_handshake(later),
        HandshakeOutcome::Pending
    ));
    s.relay(&mut scratch, &mut Pipes::default(), later);
    assert!(
        remote.state().output.is_empty(),
        "nothing before the handshake"
    );
    assert!(matches!(s.remote_handshake(later), HandshakeOutcome::Done));
    assert!(matches!(s.state, State::Relaying));
    s.relay(&mut scratch, &mut Pipes::default(), later);
    assert_eq!(remote.state().output, b"early");

    // A failed handshake: still connecting, nothing read from the client.
    let client = Fake::new(1 << 20);
    let mut s = Session::new(5, client.clone(), now);
    let remote = Fake::new(100);
    remote.state().handshake_due = true;
    remote.state().handshake_error = Some(io::ErrorKind::ConnectionAborted);
    s.remote = Some(End::new(remote.clone()));
    client.state().input.extend(b"early");
    assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
    assert!(matches!(
        s.remote_handshake(now),
        HandshakeOutcome::Failed(e) if e.kind() == io::ErrorKind::ConnectionAborted
    ));
    assert!(matches!(s.state, State::Connecting(_)));
    assert_eq!(client.state().reads, 0);
}

/// A TLS remote whose connect is found reset (it accepted the TCP connection, then
/// reset it before the worker saw the connect complete) failed its TLS handshake,
/// not its connect; a refused connect stays a failed connect, and a plain remote's
/// reset too.
#[test]
fn a_tls_remote_reset_at_its_connect_failed_its_handshake() {
    let now = Instant::now();
    for (tls, error, handshake) in [
        (true, io::ErrorKind::ConnectionReset, true),
        (true, io::ErrorKind::BrokenPipe, true),
        (true, io::ErrorKind::ConnectionRefused, false),
        (false, io::ErrorKind::ConnectionReset, false),
    ] {
        let remote = Fake::new(10);
        remote.state().handshake_due = tls;
        remote.state().connect_error = Some(error);
        let mut s = Session::new(7, Fake::new(10), now);
        s.remote = Some(End::registered(remote.clone(), 1));
        s.ready(Side::Remote, true, true, true, true);
        let outcome = s.connected(now, true);
        assert_eq!(
            matches!(&outcome, ConnectOutcome::HandshakeFailed(e) if e.kind() == error),
            handshake,
            "{tls} {error:?}: {outcome:?}"
        );
        assert_eq!(
            matches!(&outcome, ConnectOutcome::Failed(e) if e.kind() == error),
            !handshake,
            "{tls} {error:?}: {outcome:?}"
        );
    }
}
