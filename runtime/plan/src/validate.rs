//! `Plan::validate`: the invariants every plan must hold, checked by the compiler
//! before it writes a plan and by the runtime before it binds anything.
//!
//! The compiler reports the same problems earlier, with spans; this is the last line
//! for plans that were written by another tool, edited, or produced by a compiler bug.

use crate::{ListenAddress, Plan};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    NoListener,
    NoRemote,
    ZeroWeight {
        remote: usize,
    },
    ZeroPort {
        what: String,
    },
    UsersRange {
        min: u32,
        max: u32,
    },
    ServersRange {
        min: u32,
        max: u32,
    },
    DuplicateListener {
        first: usize,
        second: usize,
        address: String,
    },
    TlsWithoutCertificate {
        listener: usize,
    },
    EmptyPath {
        what: &'static str,
    },
    RebalanceZero,
    RetireZero,
    BadEnvName(String),
    BadAcl {
        rule: usize,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoListener => f.write_str("the plan has no listener"),
            PlanError::NoRemote => f.write_str("the plan has no remote"),
            PlanError::ZeroWeight { remote } => write!(f, "remote #{} has weight 0", remote + 1),
            PlanError::ZeroPort { what } => write!(f, "{what} has port 0"),
            PlanError::UsersRange { min, max } => {
                write!(
                    f,
                    "users min ({min}) is greater than users max ({max}), or max is 0"
                )
            }
            PlanError::ServersRange { min, max } => write!(
                f,
                "servers min ({min}) is greater than servers max ({max}), or max is 0"
            ),
            PlanError::DuplicateListener {
                first,
                second,
                address,
            } => write!(
                f,
                "listeners #{} and #{} both bind {address}",
                first + 1,
                second + 1
            ),
            PlanError::TlsWithoutCertificate { listener } => write!(
                f,
                "listener #{} has tls = yes but the plan has no certificate",
                listener + 1
            ),
            PlanError::EmptyPath { what } => write!(f, "{what} is an empty path"),
            PlanError::RebalanceZero => f.write_str("rebalance is 0"),
            PlanError::RetireZero => f.write_str("retire is 0"),
            PlanError::BadEnvName(name) => write!(f, "setenv name {name:?} is not valid"),
            PlanError::BadAcl { rule } => {
                write!(
                    f,
                    "acl rule #{} has a prefix longer than its address",
                    rule + 1
                )
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// The key two listeners collide on: a wildcard address covers every address of its
/// family, and on Linux `::` also covers IPv4 unless the socket is v6-only. The
/// runtime binds IPv6 wildcards v6-only, so only same-family overlaps collide.
fn overlaps(a: &ListenAddress, b: &ListenAddress) -> bool {
    match (a, b) {
        (ListenAddress::Unix(x), ListenAddress::Unix(y)) => x == y,
        (ListenAddress::Inet(x), ListenAddress::Inet(y)) => inet_overlaps(x, y),
        _ => false,
    }
}

fn inet_overlaps(x: &SocketAddr, y: &SocketAddr) -> bool {
    if x.port() != y.port() || x.is_ipv4() != y.is_ipv4() {
        return false;
    }
    let wild = |ip: IpAddr| ip.is_unspecified();
    x.ip() == y.ip() || wild(x.ip()) || wild(y.ip())
}

impl Plan {
    /// Every broken invariant, in a stable order; empty when the plan is good.
    pub fn problems(&self) -> Vec<PlanError> {
        let mut errors = Vec::new();
        let s = &self.spawnd;
        let r = &self.relay;
        if s.listeners.is_empty() {
            errors.push(PlanError::NoListener);
        }
        if r.remotes.is_empty() {
            errors.push(PlanError::NoRemote);
        }
        for (i, remote) in r.remotes.iter().enumerate() {
            if remote.weight == 0 {
                errors.push(PlanError::ZeroWeight { remote: i });
            }
            if remote.address.port() == 0 {
                errors.push(PlanError::ZeroPort {
                    what: format!("remote #{}", i + 1),
                });
            }
        }
        // 0 is "chosen by the runtime" for a maximum or `servers min`.
        if s.users_max != 0 && s.users_min > s.users_max {
            errors.push(PlanError::UsersRange {
                min: s.users_min,
                max: s.users_max,
            });
        }
        if s.servers_max != 0 && s.servers_min > s.servers_max {
            errors.push(PlanError::ServersRange {
                min: s.servers_min,
                max: s.servers_max,
            });
        }
        let mut seen: HashMap<usize, ()> = HashMap::new();
        for (i, l) in s.listeners.iter().enumerate() {
            match &l.address {
                ListenAddress::Unix(p) if p.is_empty() => errors.push(PlanError::EmptyPath {
                    what: "a listener path",
                }),
                ListenAddress::Inet(sa) if sa.port() == 0 => errors.push(PlanError::ZeroPort {
                    what: format!("listener #{}", i + 1),
                }),
                _ => {}
            }
            if let Some(first) = s.listeners[..i]
                .iter()
                .position(|earlier| overlaps(&earlier.address, &l.address))
            {
                if seen.insert(i, ()).is_none() {
                    errors.push(PlanError::DuplicateListener {
                        first,
                        second: i,
                        address: l.address.to_string(),
                    });
                }
            }
            if l.tls && r.tls.is_none() {
                errors.push(PlanError::TlsWithoutCertificate { listener: i });
            }
        }
        if let Some(tls) = &r.tls {
            if tls.cert_file.is_empty() {
                errors.push(PlanError::EmptyPath {
                    what: "the TLS certificate file",
                });
            }
            if tls.key_file.is_empty() {
                errors.push(PlanError::EmptyPath {
                    what: "the TLS key file",
                });
            }
        }
        if r.rebalance == Some(0) {
            errors.push(PlanError::RebalanceZero);
        }
        if r.retire == Some(0) {
            errors.push(PlanError::RetireZero);
        }
        for (name, _) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                errors.push(PlanError::BadEnvName(name.clone()));
            }
        }
        for (i, rule) in s.acl.iter().enumerate() {
            let max = if rule.network.is_ipv4() { 32 } else { 128 };
            if rule.prefix > max {
                errors.push(PlanError::BadAcl { rule: i });
            }
        }
        errors
    }

    /// `Ok` when the plan holds every invariant, else the first broken one.
    pub fn validate(&self) -> Result<(), PlanError> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
