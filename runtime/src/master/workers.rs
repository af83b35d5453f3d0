//! The workers' lives as the master sees them: forking one (and, in the child,
//! becoming it), starting another when every one is full, keeping `servers min`,
//! reaping the dead and replacing them (with a brake on crash loops).

use super::{Master, Worker, SIGNALS};
use crate::board::SEATS;
use crate::notify::Notify;
use crate::os::{self, Fork};
use crate::worker;
use crate::{error, info, warn};
use mio::net::UnixStream;
use mio::{Interest, Token};
use std::time::{Duration, Instant};
use tcprelay_plan::ListenAddress;

impl Master {
    /// Forks one worker of the current generation.
    pub(super) fn spawn(&mut self) {
        let (master_end, worker_end) = match UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                error!("cannot create a control socket: {e}");
                return;
            }
        };
        // The lowest seat no live worker holds.
        let seat = (0..SEATS).find(|i| !self.workers.values().any(|w| w.seat == Some(*i)));
        let place = self
            .board
            .as_ref()
            .zip(seat)
            .and_then(|(board, i)| board.occupy(i));
        let seat = place.as_ref().and(seat);
        let counting = self
            .stats
            .as_mut()
            .zip(seat)
            .and_then(|(registry, i)| registry.seat(i))
            .map(|counters| worker::Counting {
                counters,
                slots: self.slots.clone(),
            });
        match os::fork() {
            Err(e) => error!("cannot fork a worker: {e}"),
            Ok(Fork::Child) => {
                drop(master_end);
                let sticky = self.worker_sticky(seat);
                let code = self.become_worker(worker_end, place, counting, sticky);
                std::process::exit(code);
            }
            Ok(Fork::Parent(pid)) => {
                drop(worker_end);
                let token = Token(self.next_token);
                self.next_token += 1;
                let mut control = master_end;
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut control, token, Interest::READABLE)
                {
                    error!("cannot watch worker {pid}: {e}");
                }
                info!("worker {pid} started (generation {})", self.generation);
                self.workers.insert(
                    token,
                    Worker {
                        pid,
                        generation: self.generation,
                        control,
                        reader: crate::control::Reader::default(),
                        sessions: 0,
                        full: false,
                        leaving: false,
                        stopped: false,
                        seat,
                    },
                );
            }
        }
    }

    /// In the child after `fork`: drop everything of the master's and run a worker.
    fn become_worker(
        &mut self,
        control: UnixStream,
        place: Option<crate::board::Place>,
        counting: Option<worker::Counting>,
        sticky: Option<worker::Sticky>,
    ) -> i32 {
        os::set_title(
            self.plan.spawnd.proctitle.as_deref(),
            &format!("worker gen {}", self.generation),
        );
        // Other workers' control sockets must be closed here, or a worker would not see
        // end of file when the master dies.
        self.workers.clear();
        // Nor would the checker see end of file if a worker held the master's end.
        self.stop_checker_handles();
        self.drop_resolver_handles();
        // The control socket and the metrics endpoint are the master's.
        self.ctl = None;
        self.old_ctl = None;
        self.metrics = None;
        // Only the master speaks for the service.
        self.notify = Notify::default();
        let _ = os::default_signals(SIGNALS);
        let signals =
            match os::signal_pipe(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1]) {
                Ok(s) => Some(s),
                Err(e) => {
                    error!("worker cannot set up signals: {e}");
                    None
                }
            };
        crate::log::reinit_for_worker(
            &self.plan.relay.syslog,
            self.generation,
            self.plan.spawnd.log_format.into(),
        );
        // In plan order, a listener not bound yet (`bind retry delay`) in its place.
        let mut bound = std::mem::take(&mut self.listeners);
        self.pending.clear();
        let listeners = self
            .plan
            .spawnd
            .listeners
            .iter()
            .map(|spec| {
                let b = bound
                    .iter()
                    .position(|b| b.serves(spec))
                    .map(|i| bound.swap_remove(i));
                // The socket changes owner: the worker's mio listener (TCP and SCTP
                // streams alike accept through a TcpListener).
                let socket = b.map(|b| match b.spec.address {
                    ListenAddress::Inet(_) => worker::ListenSocket::Tcp(
                        mio::net::TcpListener::from_std(std::net::TcpListener::from(b.socket)),
                    ),
                    ListenAddress::Unix(_) => {
                        worker::ListenSocket::Unix(mio::net::UnixListener::from_std(
                            std::os::unix::net::UnixListener::from(b.socket),
                        ))
                    }
                });
                worker::Listener {
                    socket,
                    tls: spec.tls,
                    tls_versions: spec.tls_versions.clone(),
                    tls_auto: spec.tls_auto,
                    accept_proxy: spec.accept_proxy.clone(),
                    dscp: spec.dscp,
                }
            })
            .collect();
        let config = worker::Config {
            id: std::process::id(),
            relay: self.plan.relay.clone(),
            users_max: self.plan.spawnd.users_max,
            users_min: self.plan.spawnd.users_min,
            place,
            counting,
            steering: self.worker_steering(),
            sticky,
            acl: self.plan.spawnd.acl.clone(),
            listeners,
            tcp_bufsize: self.plan.spawnd.tcp_bufsize,
            control,
            signals,
            discovery: self.discovery.table(),
            tls: self.tls.clone(),
            route_tls: self.route_tls.clone(),
        };
        match worker::run(config) {
            Ok(exit) => {
                crate::debug!("worker exits: {exit:?}");
                0
            }
            Err(e) => {
                error!("worker failed: {e}");
                1
            }
        }
    }

    /// Starts another worker when every active one is full and there is room.
    pub(super) fn scale_up(&mut self) {
        let active = self.active().count();
        let all_full = self.active().all(|w| w.full);
        if !self.stopping && all_full && active < self.servers_max() as usize {
            info!("all {active} worker(s) are full: starting another");
            self.spawn();
        }
    }

    pub(super) fn reap(&mut self) {
        for (pid, exit) in os::reap() {
            if self.compiling.as_ref().is_some_and(|c| c.pid() == pid) {
                if let Some(compile) = self.compiling.take() {
                    self.compiled(compile.finish(exit));
                }
                continue;
            }
            if self.reap_checker(pid, exit) || self.reap_resolver(pid, exit) {
                continue;
            }
            let Some(token) = self
                .workers
                .iter()
                .find(|(_, w)| w.pid == pid)
                .map(|(t, _)| *t)
            else {
                continue;
            };
            self.free_seat(token);
            let Some(mut w) = self.workers.remove(&token) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut w.control);
            self.release_old_slots();
            let expected = w.leaving || self.stopping;
            if expected && exit == os::ChildExit::Code(0) {
                info!("worker {pid} finished");
                if w.stopped && !self.stopping {
                    // Told to stop by a signal: if it was sent to the whole process
                    // group, the master's own SIGTERM may not have been read yet.
                    // Wait a moment before restoring `servers min`.
                    self.spawn_after
                        .get_or_insert(Instant::now() + Duration::from_millis(250));
                }
                continue;
            }
            warn!("worker {pid} died ({exit}) with {} session(s)", w.sessions);
            if self.stopping || w.generation != self.generation || w.leaving {
                continue;
            }
            // Replace it, but not faster than 5 deaths in 10 s.
            let now = Instant::now();
            self.deaths
                .retain(|t| now.duration_since(*t) < Duration::from_secs(10));
            self.deaths.push(now);
            if self.deaths.len() > 5 {
                warn!("workers are dying fast: waiting 1 s before starting a replacement");
                self.spawn_after.get_or_insert(now + Duration::from_secs(1));
            } else {
                self.spawn();
            }
        }
        self.ensure_minimum();
    }

    /// Starts workers until `servers min` are active (not while stopping, nor while a
    /// crash-loop brake holds spawning back).
    pub(super) fn ensure_minimum(&mut self) {
        if self.stopping || self.spawn_after.is_some() {
            return;
        }
        let active = self.active().count();
        for _ in active..self.servers_min() as usize {
            self.spawn();
        }
    }
}
