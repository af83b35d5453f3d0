//! Overload: every worker full and no other may start. The listeners' backlog
//! becomes their `overload backlog`, and with `overload = close|reset` the master
//! accepts and sheds what arrives until a worker has room.

use super::{Master, LISTENER_TOKENS, OVERLOAD_LOG_EVERY};
use crate::log::Value;
use crate::{notice, warn};
use mio::{Interest, Token};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tcprelay_plan::Overload;

impl Master {
    /// Whether every worker is full and no other may start (`servers max`).
    pub(super) fn overload_due(&self) -> bool {
        let mut active = 0;
        for w in self.active() {
            if !w.full {
                return false;
            }
            active += 1;
        }
        !self.stopping && active > 0 && active >= self.servers_max() as usize
    }

    /// Enters or leaves overload: each listener's backlog becomes its `overload
    /// backlog` (or back), and with `overload = close|reset` the master watches the
    /// listeners and sheds what arrives ([`Master::shed_from`]).
    pub(super) fn set_overload(&mut self, on: bool) {
        if on == self.overloaded {
            return;
        }
        self.overloaded = on;
        let mode = self.plan.spawnd.overload;
        for (i, b) in self.listeners.iter().enumerate() {
            if b.spec.overload_backlog != b.spec.backlog {
                let backlog = if on {
                    b.spec.overload_backlog
                } else {
                    b.spec.backlog
                };
                if let Err(e) = b.socket.listen(backlog.min(i32::MAX as u32) as i32) {
                    warn!(
                        "cannot set the backlog of {} to {backlog}: {e}",
                        b.spec.address
                    );
                }
            }
            if mode != Overload::Queue {
                let fd = b.socket.as_raw_fd();
                let mut source = mio::unix::SourceFd(&fd);
                let registry = self.poll.registry();
                let result = if on {
                    // Accepting here must not block (the workers set it too: the
                    // socket is shared).
                    b.socket.set_nonblocking(true).and_then(|()| {
                        registry.register(
                            &mut source,
                            Token(LISTENER_TOKENS - i),
                            Interest::READABLE,
                        )
                    })
                } else {
                    registry.deregister(&mut source)
                };
                if let Err(e) = result {
                    warn!("cannot watch listener {} for overload: {e}", b.spec.address);
                }
            }
        }
        let what = match mode {
            Overload::Queue => "they wait in the queue",
            Overload::Close => "closing them (overload = close)",
            Overload::Reset => "resetting them (overload = reset)",
        };
        let now = Instant::now();
        if on {
            self.overload_episode_logged = self
                .overload_logged
                .is_none_or(|at| now.duration_since(at) >= OVERLOAD_LOG_EVERY);
            if self.overload_episode_logged {
                self.overload_logged = Some(now);
                warn!(
                    "every worker is full ({} of servers max {}, users max {}): new connections: {what}",
                    self.active().count(),
                    self.servers_max(),
                    match self.plan.spawnd.users_max {
                        0 => "as the open-file limit allows".to_string(),
                        n => n.to_string(),
                    }
                );
            }
        } else if self.overload_episode_logged {
            notice!(
                "workers have room again{}",
                if self.shed > 0 {
                    format!(" ({} connections shed meanwhile)", self.shed)
                } else {
                    String::new()
                }
            );
            self.shed = 0;
        }
    }

    /// In overload with `overload = close|reset`: accepts every connection waiting on
    /// listener `index` and closes it (a reset: with a zero linger time).
    pub(super) fn shed_from(&mut self, index: usize) {
        let Some(b) = self.listeners.get(index) else {
            return;
        };
        if !self.overloaded {
            return;
        }
        let reset = self.plan.spawnd.overload == Overload::Reset;
        let mut shed = 0;
        loop {
            match b.socket.accept() {
                Ok((socket, peer)) => {
                    if self.plan.relay.connection_log {
                        // The session's only record: it had no worker and no remote.
                        let client = peer
                            .as_socket()
                            .map_or_else(|| "unix".to_string(), |a| a.to_string());
                        crate::log::record(
                            tcprelay_plan::Severity::Info,
                            "session_close",
                            &[
                                ("client", client.as_str().into()),
                                ("listener", Value::display(&b.spec.address)),
                                ("cause", crate::worker::Cause::Shed.name().into()),
                            ],
                        );
                    }
                    if reset {
                        let _ = socket.set_linger(Some(Duration::ZERO));
                    }
                    drop(socket);
                    shed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors: what waits stays queued until the next
                    // connection or the end of the overload.
                    warn!("cannot shed connections on {}: {e}", b.spec.address);
                    break;
                }
            }
        }
        self.shed += shed;
        if let Some(registry) = &self.stats {
            let counters = registry.master();
            for _ in 0..shed {
                counters.shed();
            }
        }
    }
}
