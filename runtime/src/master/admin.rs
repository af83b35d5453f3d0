//! The operators' steering of remotes at run time (`drain`, `enable`, `weight` on
//! the control socket): the master writes it into the relay-wide table
//! (`crate::steering`), which every worker follows at its next selection. A
//! remote is named `ADDRESS:PORT` as the plan prints it (`[::1]:80`), optionally
//! with `/tcp` or `/sctp`, or by its address alone when one remote has it.

use super::Master;
use crate::steering::{Admin, Table};
use crate::worker;
use std::time::SystemTime;
use tcprelay_plan::Remote;

impl Master {
    /// `drain REMOTE`: no new session goes to it; its sessions go on. Ok: the
    /// answer's message; Err: the error (an unknown remote names the plan's).
    pub fn drain_remote(&mut self, remote: &str) -> Result<String, String> {
        let (name, slot, _) = self.steered(remote)?;
        let table = self.steering_table()?;
        Ok(drain(table, slot, &name, SystemTime::now()))
    }

    /// `enable REMOTE`: it gets new sessions again.
    pub fn enable_remote(&mut self, remote: &str) -> Result<String, String> {
        let (name, slot, _) = self.steered(remote)?;
        let table = self.steering_table()?;
        Ok(enable(table, slot, &name, SystemTime::now()))
    }

    /// `weight REMOTE N`: its weight is `weight` until a reload changes the remote.
    pub fn weight_remote(&mut self, remote: &str, weight: u32) -> Result<String, String> {
        let (name, slot, planned) = self.steered(remote)?;
        let table = self.steering_table()?;
        Ok(set_weight(
            table,
            slot,
            &name,
            weight,
            planned,
            SystemTime::now(),
        ))
    }

    /// The steering of the running plan's remote `index` (plan order), for the
    /// `remotes` answer: whether it is drained, its weight now (the plan's or the
    /// override) and when its steering last changed (`None`: never).
    pub fn remote_admin(&self, index: usize) -> (bool, u32, Option<SystemTime>) {
        let planned = self.plan.relay.remotes.get(index).map_or(0, |r| r.weight);
        let admin = match (&self.steering, self.slots.remotes.get(index)) {
            (Some(table), Some(slot)) => table.read(slot.index()),
            _ => Admin::default(),
        };
        (
            admin.drained,
            admin.weight.unwrap_or(planned),
            admin.changed,
        )
    }

    /// What a forked worker of the current plan follows.
    pub(super) fn worker_steering(&self) -> Option<worker::Steering> {
        Some(worker::Steering {
            table: self.steering.clone()?,
            slots: self.slots.remotes.iter().map(|s| s.index()).collect(),
            health: self.checks.table.clone(),
        })
    }

    /// After a reload assigned the new plan's slots: a remote the new plan changes
    /// (new, or another weight) loses its steering; one that stays the same keeps
    /// it (drained stays drained). `old` is the previous plan's remotes.
    pub(super) fn steering_reloaded(&mut self, old: &[Remote]) {
        if let Some(table) = &self.steering {
            let slots: Vec<usize> = self.slots.remotes.iter().map(|s| s.index()).collect();
            keep_unchanged(table, old, &self.plan.relay.remotes, &slots);
        }
    }

    /// The remote `text` names, as printed, its slot in the steering table and its
    /// weight without steering: one of the plan's, or one found by DNS (steered by
    /// its slot as a plan's remote is; an address found that is also one of the
    /// plan's is that remote).
    fn steered(&self, text: &str) -> Result<(String, usize, u32), String> {
        let planned = &self.plan.relay.remotes;
        let found: Vec<_> = self
            .discovered_remotes()
            .into_iter()
            .filter(|f| !planned.iter().any(|r| r.key() == f.remote.key()))
            .collect();
        let all: Vec<Remote> = planned
            .iter()
            .cloned()
            .chain(found.iter().map(|f| f.remote.clone()))
            .collect();
        let index = find_remote(&all, text)?;
        let (name, weight) = (all[index].address.to_string(), all[index].weight);
        let slot = match index.checked_sub(planned.len()) {
            None => self.slots.remotes.get(index).map(|s| s.index()),
            Some(k) => found.get(k).map(|f| f.slot),
        };
        match slot {
            Some(slot) if slot != 0 => Ok((name, slot, weight)),
            _ => Err(format!(
                "{name} cannot be steered: it has no counter slot of its own (more than {} remotes, or the shared memory could not be made)",
                crate::stats::REMOTE_SLOTS - 1
            )),
        }
    }

    fn steering_table(&self) -> Result<&Table, String> {
        self.steering.as_ref().ok_or_else(|| {
            "remotes cannot be steered: the shared memory for it could not be made at start"
                .to_string()
        })
    }
}

/// The index (plan order) of the remote `text` names: `ADDRESS:PORT` as printed,
/// optionally `/tcp` or `/sctp` after it (any case), or an address alone that one
/// remote has. An unknown or ambiguous name is an error that lists the remotes.
pub fn find_remote(remotes: &[Remote], text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (name, protocol) = match text.rsplit_once('/') {
        Some((name, protocol)) => (name, Some(protocol.to_ascii_uppercase())),
        None => (text, None),
    };
    let fits = |r: &Remote| {
        protocol
            .as_deref()
            .is_none_or(|p| r.protocol.to_string() == p)
    };
    let mut found: Vec<usize> = remotes
        .iter()
        .enumerate()
        .filter(|(_, r)| fits(r) && r.address.to_string() == name)
        .map(|(i, _)| i)
        .collect();
    if found.is_empty() {
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            found = remotes
                .iter()
                .enumerate()
                .filter(|(_, r)| fits(r) && r.address.ip() == ip)
                .map(|(i, _)| i)
                .collect();
        }
    }
    let listing = |indexes: &mut dyn Iterator<Item = usize>| {
        indexes
            .map(|i| format!("{}/{}", remotes[i].address, remotes[i].protocol))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match found.as_slice() {
        [index] => Ok(*index),
        [] if remotes.is_empty() => Err(format!("unknown remote `{text}`: the relay has none")),
        [] => Err(format!(
            "unknown remote `{text}`: the relay's remotes are {}",
            listing(&mut (0..remotes.len()))
        )),
        several => Err(format!(
            "`{text}` names several remotes ({}): give ADDRESS:PORT/PROTOCOL",
            listing(&mut several.iter().copied())
        )),
    }
}

/// Clears the steering of the remotes of `new` (with their `slots`) that `old` did
/// not have as they are (same address, protocol and weight).
fn keep_unchanged(table: &Table, old: &[Remote], new: &[Remote], slots: &[usize]) {
    for (remote, &slot) in new.iter().zip(slots) {
        let same = old.iter().any(|o| {
            o.address == remote.address
                && o.protocol == remote.protocol
                && o.weight == remote.weight
        });
        if !same && table.read(slot) != Admin::default() {
            table.write(slot, Admin::default());
        }
    }
}

fn drain(table: &Table, slot: usize, name: &str, now: SystemTime) -> String {
    let admin = table.read(slot);
    if admin.drained {
        return format!("{name} was drained already: no new session goes to it");
    }
    table.write(
        slot,
        Admin {
            drained: true,
            changed: Some(now),
            ..admin
        },
    );
    format!("{name} drained: no new session goes to it; its sessions go on")
}

fn enable(table: &Table, slot: usize, name: &str, now: SystemTime) -> String {
    let admin = table.read(slot);
    if !admin.drained {
        return format!("{name} was not drained: it gets new sessions");
    }
    table.write(
        slot,
        Admin {
            drained: false,
            changed: Some(now),
            ..admin
        },
    );
    format!("{name} enabled: it gets new sessions again")
}

fn set_weight(
    table: &Table,
    slot: usize,
    name: &str,
    weight: u32,
    planned: u32,
    now: SystemTime,
) -> String {
    let admin = table.read(slot);
    table.write(
        slot,
        Admin {
            weight: Some(weight),
            changed: Some(now),
            ..admin
        },
    );
    let drained = if admin.drained {
        " (it stays drained until `enable`)"
    } else {
        ""
    };
    if weight == 0 {
        format!("{name} weight 0 (the plan's is {planned}): it gets new sessions only when no other remote can take them{drained}")
    } else {
        format!("{name} weight {weight} (the plan's is {planned}){drained}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcprelay_plan::Protocol;

    fn remote(address: &str, protocol: Protocol, weight: u32) -> Remote {
        Remote {
            address: address.parse().unwrap(),
            protocol,
            weight,
            send_proxy: None,
            tls: None,
            check: None,
            route: None,
        }
    }

    fn plan_remotes() -> Vec<Remote> {
        vec![
            remote("10.0.0.7:80", Protocol::Tcp, 2),
            remote("[::1]:80", Protocol::Tcp, 1),
            remote("10.0.0.8:80", Protocol::Tcp, 1),
            remote("10.0.0.8:81", Protocol::Tcp, 1),
            remote("10.0.0.9:80", Protocol::Tcp, 1),
            remote("10.0.0.9:80", Protocol::Sctp, 1),
        ]
    }

    #[test]
    fn remotes_are_found_by_their_printed_form_or_an_unambiguous_part() {
        let remotes = plan_remotes();
        assert_eq!(find_remote(&remotes, "10.0.0.7:80"), Ok(0));
        assert_eq!(find_remote(&remotes, "[::1]:80"), Ok(1));
        assert_eq!(
            find_remote(&remotes, " 10.0.0.7 "),
            Ok(0),
            "its address alone"
        );
        assert_eq!(find_remote(&remotes, "::1"), Ok(1));
        assert_eq!(find_remote(&remotes, "[::1]"), Ok(1));
        assert_eq!(find_remote(&remotes, "10.0.0.9:80/sctp"), Ok(5));
        assert_eq!(find_remote(&remotes, "10.0.0.9:80/TCP"), Ok(4));
        let unknown = find_remote(&remotes, "10.0.0.1:80").unwrap_err();
        assert!(
            unknown.starts_with("unknown remote `10.0.0.1:80`: the relay's remotes are 10.0.0.7:80/TCP, [::1]:80/TCP,"),
            "{unknown}"
        );
        let several = find_remote(&remotes, "10.0.0.9:80").unwrap_err();
        assert_eq!(
            several,
            "`10.0.0.9:80` names several remotes (10.0.0.9:80/TCP, 10.0.0.9:80/SCTP): give ADDRESS:PORT/PROTOCOL"
        );
        assert!(find_remote(&remotes, "10.0.0.8").is_err(), "two ports");
        assert!(find_remote(&remotes, "").is_err());
        assert!(find_remote(&remotes, "/").is_err());
        assert_eq!(
            find_remote(&[], "10.0.0.7:80"),
            Err("unknown remote `10.0.0.7:80`: the relay has none".into())
        );
    }

    #[test]
    fn drain_enable_and_weight_write_the_table_and_say_what_they_did() {
        let table = Table::new().unwrap();
        let t1 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let t2 = t1 + std::time::Duration::from_secs(60);
        assert_eq!(
            drain(&table, 3, "10.0.0.7:80", t1),
            "10.0.0.7:80 drained: no new session goes to it; its sessions go on"
        );
        assert_eq!(
            table.read(3),
            Admin {
                drained: true,
                weight: None,
                changed: Some(t1)
            }
        );
        // Again: nothing changes, not even the time.
        assert!(drain(&table, 3, "10.0.0.7:80", t2).contains("already"));
        assert_eq!(table.read(3).changed, Some(t1));
        assert_eq!(
            set_weight(&table, 3, "10.0.0.7:80", 5, 2, t2),
            "10.0.0.7:80 weight 5 (the plan's is 2) (it stays drained until `enable`)"
        );
        assert_eq!(
            table.read(3),
            Admin {
                drained: true,
                weight: Some(5),
                changed: Some(t2)
            }
        );
        assert_eq!(
            enable(&table, 3, "10.0.0.7:80", t2),
            "10.0.0.7:80 enabled: it gets new sessions again"
        );
        assert_eq!(table.read(3).weight, Some(5), "enable keeps the weight");
        assert!(!table.read(3).drained);
        assert!(enable(&table, 3, "10.0.0.7:80", t2).contains("was not drained"));
        assert!(set_weight(&table, 3, "x", 0, 2, t2).contains("only when no other remote"));
        assert_eq!(table.read(4), Admin::default(), "other slots untouched");
    }

    #[test]
    fn a_reload_clears_the_steering_of_the_remotes_it_changes_only() {
        let table = Table::new().unwrap();
        let old = plan_remotes();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        for slot in 1..=4 {
            drain(&table, slot, "r", t);
        }
        let new = vec![
            // Kept as it was: stays drained.
            remote("10.0.0.7:80", Protocol::Tcp, 2),
            // Another weight: enabled again.
            remote("[::1]:80", Protocol::Tcp, 5),
            // New in this plan (a slot reused from a gone remote): enabled.
            remote("10.0.0.99:80", Protocol::Tcp, 1),
            // Another protocol is another remote.
            remote("10.0.0.8:80", Protocol::Sctp, 1),
        ];
        keep_unchanged(&table, &old, &new, &[1, 2, 3, 4]);
        assert!(table.read(1).drained);
        assert_eq!(table.read(1).changed, Some(t));
        assert_eq!(table.read(2), Admin::default());
        assert_eq!(table.read(3), Admin::default());
        assert_eq!(table.read(4), Admin::default());
    }
}
