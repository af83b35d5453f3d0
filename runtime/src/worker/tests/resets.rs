//! Resets (issue 12, items 2 and 8): a remote that accepts and resets before
//! anything was relayed is failed over, invisibly to the client, and marked dead;
//! what one side sent before it reset reaches the other side before the relay
//! resets that one too.

use super::*;
use std::sync::{mpsc, Mutex};

/// Accepts and resets at once (`SO_LINGER` 0, then close), reading nothing.
pub(crate) fn reset_at_once(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
}

pub(crate) const GREETING: &[u8] = b"hello from the good remote\n";

/// Speaks first (a greeting), then echoes.
pub(crate) fn greet_then_echo(mut stream: TcpStream) {
    if stream.write_all(GREETING).is_ok() {
        serve(stream, Mode::Echo);
    }
}

/// The answer [`answer_then_reset`] gives to a request starting with `kind`: from
/// 16 bytes to 1 MiB (bulk: through splicing pipes where there are some).
/// Joins client threads that each return the trials they found wrong, and fails the
/// test with a few of them if any did.
pub(crate) fn assert_no_trial_failed(
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
    trials: usize,
) {
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {trials} trials lost the answer or the reset, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

pub(crate) fn answer_for(kind: u8) -> Vec<u8> {
    const SIZES: [usize; 4] = [16, 10_000, 200 * 1024, 1 << 20];
    random_bytes(
        u64::from(kind) + 100,
        SIZES[usize::from(kind) % SIZES.len()],
    )
}

/// A request of 100 bytes whose first byte says which answer it wants.
pub(crate) fn request(kind: u8) -> Vec<u8> {
    let mut request = random_bytes(u64::from(kind), 100);
    request[0] = kind;
    request
}

/// Reads the first byte of a request, writes [`answer_for`] it, waits until its
/// kernel has sent it all and had it acknowledged, then resets with the rest of the
/// request unread, as a server does that closes a socket with unread input (after
/// a protocol error, say).
pub(crate) fn answer_then_reset(mut stream: TcpStream) {
    let mut kind = [0u8; 1];
    if stream.read_exact(&mut kind).is_err() {
        return;
    }
    if stream.write_all(&answer_for(kind[0])).is_err() {
        return;
    }
    wait_until_sent(&stream);
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
}

/// Waits (bounded) until the socket's send queue is empty: everything written was
/// sent and acknowledged, so a reset now loses nothing on the way.
pub(crate) fn wait_until_sent(stream: &TcpStream) {
    wait_until("the send queue to empty", IO_TIMEOUT, || {
        socket::unsent(stream).is_ok_and(|n| n == 0)
    });
}

/// Asks a worker with the resetting remote first and a greeting one second:
/// `per_round` clients at once, `rounds` times; each reads the greeting before it
/// sends anything, so no byte of a client ever reaches the resetting remote.
/// Returns the failures.
fn greeted_clients(worker: &Harness, rounds: usize, per_round: usize) -> Vec<String> {
    let mut failures = Vec::new();
    for round in 0..rounds {
        let clients: Vec<_> = (0..per_round)
            .map(|i| {
                let mut stream = worker.connect();
                thread::spawn(move || -> Result<(), String> {
                    let mut greeting = vec![0u8; GREETING.len()];
                    stream
                        .read_exact(&mut greeting)
                        .map_err(|e| format!("greeting: {e}"))?;
                    if greeting != GREETING {
                        return Err(format!("greeting {greeting:?}"));
                    }
                    let message = format!("round {round} client {i}");
                    stream
                        .write_all(message.as_bytes())
                        .map_err(|e| format!("request: {e}"))?;
                    let mut back = vec![0u8; message.len()];
                    stream
                        .read_exact(&mut back)
                        .map_err(|e| format!("answer: {e}"))?;
                    if back != message.as_bytes() {
                        return Err(format!("answer {back:?}"));
                    }
                    Ok(())
                })
            })
            .collect();
        failures.extend(
            clients
                .into_iter()
                .filter_map(|c| c.join().expect("client thread").err()),
        );
    }
    failures
}

/// A remote that accepts and resets before any byte was relayed: every client is
/// served by the other remote as if nothing happened, and the resetting one is
/// marked dead (no later session goes there).
pub(crate) fn a_remote_that_resets_before_any_byte_is_failed_over_and_marked_dead(m: Mechanism) {
    let resetting = Backend::with(reset_at_once);
    let good = Backend::with(greet_then_echo);
    let mut worker = Setup::under(m, relay(&[(resetting.addr, 1), (good.addr, 1)])).start();
    // Under select, stay well below FD_SETSIZE.
    let per_round = if m == Mechanism::Select { 25 } else { 50 };
    let failures = greeted_clients(&worker, 6, per_round);
    assert!(
        failures.is_empty(),
        "{} of {} clients failed, e.g. {:?}",
        failures.len(),
        6 * per_round,
        &failures[..failures.len().min(3)]
    );
    let tried = resetting.accepted();
    assert!(tried >= 1, "the resetting remote was never chosen");
    // Marked dead: the least-connections choice would otherwise send every other
    // session there (the plan has no `rebalance`).
    let failures = greeted_clients(&worker, 1, 20);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        resetting.accepted(),
        tried,
        "a remote that reset before any byte was relayed is chosen again"
    );
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// Reads what comes (the request), then resets without answering.
fn read_then_reset(mut stream: TcpStream) {
    let mut buf = [0u8; 1];
    let _ = stream.read_exact(&mut buf);
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
}

/// A remote that resets after a byte of the client reached it: the request may have
/// been acted upon, so it is not sent to another remote (the reset reaches the
/// client), and the remote is not marked dead (one request it refused says nothing
/// of the next).
pub(crate) fn a_reset_after_the_request_reached_the_remote_is_not_retried(m: Mechanism) {
    let resetting = Backend::with(read_then_reset);
    let other = Backend::start(Mode::Echo);
    let mut worker = Setup::under(m, relay(&[(resetting.addr, 1), (other.addr, 1)])).start();
    for i in 0..3 {
        let mut client = worker.connect();
        client.write_all(b"request").expect("write");
        let (data, end) = read_to_end(&mut client);
        assert!(data.is_empty(), "{data:?}");
        let error = end.expect_err("a reset, not an end of file");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(resetting.accepted(), i + 1, "not marked dead");
    }
    assert_eq!(other.accepted(), 0, "a request was sent twice");
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A remote that answers and then resets: in each of 300 trials (a third of them
/// with answers of 200 KiB or 1 MiB, which go through splicing pipes) the client
/// reads the whole answer, then the reset.
pub(crate) fn an_answer_followed_by_a_reset_reaches_the_client(m: Mechanism) {
    const THREADS: usize = 10;
    const TRIALS: usize = 30;
    let backend = Backend::with(answer_then_reset);
    let mut worker = Setup::under(m, relay(&[(backend.addr, 1)])).start();
    let addr = worker.addr;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut failures = Vec::new();
                for trial in 0..TRIALS {
                    let kind = ((t + trial) % 4) as u8;
                    let mut client =
                        TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
                    client.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                    client.write_all(&request(kind)).expect("request");
                    let (data, end) = read_to_end(&mut client);
                    let answer = answer_for(kind);
                    let reset =
                        matches!(&end, Err(e) if e.kind() == io::ErrorKind::ConnectionReset);
                    if data != answer || !reset {
                        failures.push(format!(
                            "{} of {} bytes, then {end:?}",
                            data.len(),
                            answer.len()
                        ));
                    }
                }
                failures
            })
        })
        .collect();
    assert_no_trial_failed(threads, THREADS * TRIALS);
    wait_until("the sessions to close", IO_TIMEOUT, || {
        worker.probe.sessions.load(Ordering::Relaxed) == 0
    });
    assert_eq!(worker.probe.pipes_in_use.load(Ordering::Relaxed), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// The same towards the remote: a client of a relaying session that writes and then
/// resets (once its kernel has handed every byte to the relay's) has every byte
/// delivered to the remote, which then reads the reset. 300 trials, a third of them
/// of 200 KiB or 1 MiB. (A client that resets before its session reached a remote
/// is closed at once, its connect abandoned: see `out_of_ports`.)
pub(crate) fn a_request_followed_by_a_reset_reaches_the_remote(m: Mechanism) {
    const THREADS: usize = 10;
    const TRIALS: usize = 30;
    let (results, received) = mpsc::channel();
    let results = Mutex::new(results);
    let backend = Backend::with(move |mut stream| {
        // One byte first: the client knows its session is relaying.
        if stream.write_all(b"!").is_err() {
            return;
        }
        let (data, end) = read_to_end(&mut stream);
        let _ = results
            .lock()
            .expect("results")
            .send((data, end.err().map(|e| e.kind())));
    });
    let mut worker = Setup::under(m, relay(&[(backend.addr, 1)])).start();
    let addr = worker.addr;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for trial in 0..TRIALS {
                    // The answers' sizes, as requests; the first bytes name the trial.
                    let mut data = answer_for(((t + trial) % 4) as u8);
                    data[..4].copy_from_slice(&((t * TRIALS + trial) as u32).to_be_bytes());
                    let mut client =
                        TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
                    client.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                    client.read_exact(&mut [0u8; 1]).expect("relaying");
                    client.write_all(&data).expect("request");
                    wait_until_sent(&client);
                    socket2::SockRef::from(&client)
                        .set_linger(Some(Duration::ZERO))
                        .expect("linger");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let mut failures = Vec::new();
    for _ in 0..THREADS * TRIALS {
        let (data, end) = received.recv_timeout(IO_TIMEOUT).expect("a trial's result");
        let id = u32::from_be_bytes(data[..4.min(data.len())].try_into().unwrap_or([0; 4]));
        let (t, trial) = (id as usize / TRIALS, id as usize % TRIALS);
        let mut sent = answer_for(((t + trial) % 4) as u8);
        sent[..4].copy_from_slice(&id.to_be_bytes());
        if data != sent || end != Some(io::ErrorKind::ConnectionReset) {
            failures.push(format!(
                "trial {id}: {} of {} bytes, then {end:?}",
                data.len(),
                sent.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} trials lost bytes or the reset, e.g. {:?}",
        failures.len(),
        THREADS * TRIALS,
        &failures[..failures.len().min(3)]
    );
    assert_eq!(worker.stop(), Exit::Stopped);
}
