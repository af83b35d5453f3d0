//! The resolver: one process per relay generation, forked by the master before the
//! workers (`master/resolver.rs`), that resolves the plan's discovered names
//! (`Relay::discovered`) again and again and reports each result to the master
//! (`frame.rs`), which publishes the sets in the shared discovery table
//! (`crate::discovery`) that the workers follow. Nothing here runs in the master
//! or a worker: the DNS client (hickory-resolver) and its current-thread tokio
//! runtime exist only in this process, so no worker loop ever waits on DNS.
//!
//! - Nameservers: `Resolve::nameservers` (UDP, then TCP for truncated answers),
//!   or, when the plan names none, the system's `/etc/resolv.conf` and
//!   `/etc/hosts`. Each query waits `timeout_ms`, `attempts` times.
//! - `Lookup::Address { port }`: the A and AAAA records, one remote per address at
//!   `port`, with the template's weight.
//! - `Lookup::Srv`: the SRV records of the lowest priority present, each target's
//!   addresses (from the answer's additional records, else looked up) at the
//!   record's port, with the record's weight (0 counts as 1: RFC 2782's "very
//!   small chance" is not worth a remote that never gets a session).
//! - Each name is resolved again after `interval_s`, else after its records' TTL
//!   bounded to `interval_min_s..=interval_max_s`; after a failure, after
//!   `interval_s` or `interval_min_s`. The resolver's cache is cleared before each
//!   resolution: an answer is never older than the interval.
//!
//! It exits when its control socket shows that the master has gone; SIGTERM (a
//! reload, a stop) ends it at once.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use tcprelay_plan::{Discovered, Lookup, Relay, Resolve};

pub mod frame;

use frame::{Answer, Resolved};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// Runs the resolver of `relay`'s discovered names, reporting on `control`; the
/// process's exit code.
pub fn run(relay: &Relay, control: UnixStream) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            crate::error!("resolver cannot start its runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(serve(relay, control))
}

async fn serve(relay: &Relay, control: UnixStream) -> i32 {
    let resolver = match build(&relay.resolve) {
        Ok(r) => r,
        Err(e) => {
            crate::error!("resolver cannot start: {e}");
            return 1;
        }
    };
    if let Err(e) = control.set_nonblocking(true) {
        crate::error!("resolver: {e}");
        return 1;
    }
    let control = match tokio::net::UnixStream::from_std(control) {
        Ok(c) => c,
        Err(e) => {
            crate::error!("resolver: {e}");
            return 1;
        }
    };
    let (sender, mut answers) = tokio::sync::mpsc::channel::<Answer>(64);
    for (index, discovered) in relay.discovered.iter().enumerate() {
        let resolver = resolver.clone();
        let discovered = discovered.clone();
        let resolve = relay.resolve.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let result = resolve_once(&resolver, &discovered).await;
                let next = next_in(&resolve, result.as_ref().ok().map(|r| r.1), started);
                let answer = Answer {
                    name: index,
                    result: result.map(|(addresses, _)| Resolved {
                        next_s: next.as_secs() as u32,
                        addresses,
                    }),
                };
                if sender.send(answer).await.is_err() {
                    return;
                }
                tokio::time::sleep(next).await;
            }
        });
    }
    drop(sender);
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            answer = answers.recv() => {
                let Some(answer) = answer else { return 0 };
                if let Err(e) = write_all(&control, &frame::encode(&answer)).await {
                    crate::error!("resolver cannot report to the master: {e}");
                    return 1;
                }
            }
            ready = control.readable() => {
                if ready.is_err() {
                    return 0;
                }
                match control.try_read(&mut scratch) {
                    // The master has gone.
                    Ok(0) => return 0,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return 0,
                }
            }
        }
    }
}

async fn write_all(stream: &tokio::net::UnixStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The resolver of `resolve`'s settings.
fn build(resolve: &Resolve) -> Result<TokioResolver, String> {
    let mut builder = if resolve.nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
    } else {
        let servers = resolve
            .nameservers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), servers),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let options = builder.options_mut();
    options.timeout = Duration::from_millis(u64::from(resolve.timeout_ms.max(1)));
    options.attempts = resolve.attempts.max(1) as usize;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map_err(|e| format!("cannot build the resolver: {e}"))
}

/// When a name is resolved next: `interval_s`, else the records' TTL (how long
/// the answer is valid from `started`) bounded by the minimum and maximum; after a
/// failure (`valid_until` `None`) the interval or the minimum.
pub fn next_in(resolve: &Resolve, valid_until: Option<Instant>, started: Instant) -> Duration {
    let min = resolve.interval_min_s.max(1);
    let max = resolve.interval_max_s.max(min);
    let secs = match (resolve.interval_s, valid_until) {
        (Some(s), _) => s.max(1),
        (None, Some(until)) => {
            let ttl = until.saturating_duration_since(started).as_secs();
            u32::try_from(ttl).unwrap_or(u32::MAX).clamp(min, max)
        }
        (None, None) => min,
    };
    Duration::from_secs(u64::from(secs))
}

/// One resolution of `discovered`: its addresses with ports and weights (sorted,
/// each once), and until when the answer is valid.
async fn resolve_once(
    resolver: &TokioResolver,
    discovered: &Discovered,
) -> Result<(Vec<(SocketAddr, u32)>, Instant), String> {
    resolver.clear_cache();
    let name = discovered.name.as_str();
    let mut found = match discovered.lookup {
        Lookup::Address { port } => {
            let lookup = resolver.lookup_ip(name).await.map_err(describe)?;
            let weight = discovered.template.weight.max(1);
            let addresses: Vec<_> = lookup
                .iter()
                .map(|ip| (SocketAddr::new(ip, port), weight))
                .collect();
            (addresses, lookup.valid_until())
        }
        Lookup::Srv => {
            let lookup = resolver.srv_lookup(name).await.map_err(describe)?;
            let mut valid_until = lookup.valid_until();
            let records: Vec<_> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(srv.clone()),
                    _ => None,
                })
                .collect();
            let Some(priority) = records.iter().map(|r| r.priority).min() else {
                return Err("no SRV records".into());
            };
            let mut addresses = Vec::new();
            let mut failures = Vec::new();
            for srv in records.iter().filter(|r| r.priority == priority) {
                let mut ips: Vec<IpAddr> = lookup
                    .additionals()
                    .iter()
                    .filter(|r| r.name == srv.target)
                    .filter_map(|r| r.data.ip_addr())
                    .collect();
                if ips.is_empty() {
                    match resolver.lookup_ip(srv.target.clone()).await {
                        Ok(found) => {
                            valid_until = valid_until.min(found.valid_until());
                            ips.extend(found.iter());
                        }
                        Err(e) => failures.push(format!("{}: {}", srv.target, describe(e))),
                    }
                }
                let weight = u32::from(srv.weight).max(1);
                addresses.extend(
                    ips.into_iter()
                        .map(|ip| (SocketAddr::new(ip, srv.port), weight)),
                );
            }
            if addresses.is_empty() {
                return Err(format!(
                    "no address for the SRV targets{}",
                    if failures.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", failures.join("; "))
                    }
                ));
            }
            (addresses, valid_until)
        }
    };
    found.0.sort();
    found.0.dedup_by_key(|(address, _)| *address);
    if found.0.is_empty() {
        return Err("no addresses".into());
    }
    Ok(found)
}

/// A resolution's failure in one line.
fn describe(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        "resolution failed".into()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_resolution_follows_the_interval_or_the_bounded_ttl() {
        let now = Instant::now();
        let mut resolve = Resolve {
            interval_min_s: 5,
            interval_max_s: 60,
            ..Resolve::default()
        };
        let ttl = |secs| Some(now + Duration::from_secs(secs));
        assert_eq!(next_in(&resolve, ttl(30), now), Duration::from_secs(30));
        assert_eq!(
            next_in(&resolve, ttl(0), now),
            Duration::from_secs(5),
            "min"
        );
        assert_eq!(
            next_in(&resolve, ttl(3600), now),
            Duration::from_secs(60),
            "max"
        );
        assert_eq!(
            next_in(&resolve, None, now),
            Duration::from_secs(5),
            "after a failure"
        );
        resolve.interval_s = Some(2);
        assert_eq!(next_in(&resolve, ttl(3600), now), Duration::from_secs(2));
        assert_eq!(next_in(&resolve, None, now), Duration::from_secs(2));
        resolve.interval_s = Some(0);
        assert_eq!(
            next_in(&resolve, None, now),
            Duration::from_secs(1),
            "at least 1 s"
        );
    }
}
