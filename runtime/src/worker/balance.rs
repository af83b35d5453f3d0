//! Remote selection: weighted least-connections with dead marks, as the original.
//!
//! This module is pure logic (no sockets, no clock) so that every rule of the
//! balancing can be unit tested: the live remote with the lowest
//! `active * 256 / weight` wins, the first in plan order on ties; a remote whose
//! connect failed is marked dead until `rebalance` selections have been made or a
//! session finds every remote dead and revives them all.
//!
//! The state is per worker: workers do not share counts, as in the original. The
//! operators' steering (`crate::steering`: drained remotes, weight overrides) is
//! relay-wide: a steered balancer looks at the table's epoch at each selection and
//! reads its remotes' steering again when it moved. A drained remote is never
//! selected (its sessions go on); an override replaces the plan's weight, and a
//! weight of 0 selects the remote only when no other can take the session.
//!
//! The remotes' health (`crate::health`, written by the one checker of the relay)
//! is relay-wide too, followed the same way: a remote down by its checks gets no
//! new session; a dead mark of this worker is cleared when the remote's count of
//! passing checks moves (a check passed since); and when every remote that is not
//! drained is down by its checks, they are all tried again as if none were checked
//! (the original's behaviour when every remote is dead), which is logged once per
//! such episode.
//!
//! A client's sticky entry (`crate::sticky`) names the remote it went to last:
//! [`Balancer::select_preferring`] takes that one whatever the loads while it can
//! take the session (alive, not drained, not down by its checks, weight above 0),
//! else selects as usual.
//!
//! `balance = source` (docs/balance.md): [`Balancer::select_for`] with the client's
//! key takes, among the remotes that can take the session by the same rules (not
//! dead, drained, down by its checks or tried; weight 0 last), the first in the
//! plan crate's rendezvous order for the client, whatever the loads: every worker
//! computes the same order, and a failover takes the next remote of it.

/// What the balancer knows about one remote.
#[derive(Debug, Clone)]
struct RemoteState {
    /// The weight in use: the plan's, or the operator's override (0: a last resort).
    weight: u64,
    /// The plan's weight.
    planned: u64,
    /// Drained by the operator: no new session.
    drained: bool,
    /// Sessions of this worker connected or connecting to the remote.
    active: u64,
    dead: bool,
    /// Down by its health checks.
    checked_down: bool,
    /// The remote's passing checks when last read (`None`: not read yet).
    passes: Option<u64>,
    /// The hash of its `ADDRESS:PORT/PROTOCOL` key, for `balance = source`.
    key: u64,
    /// A discovered remote whose address left its name's set: no new session.
    retired: bool,
}

/// A remote's place in the least-connections order without exclusions: whether it
/// is out of it (dead, drained, retired or down by its checks), its score, its index.
/// Ordered as the tuple: the candidates first, then the lowest score, then the first
/// in plan order, which is `tcprelay_plan::balance::lowest`'s rule.
type Rank = (bool, u64, usize);

/// A padding leaf, after every remote.
const NO_RANK: Rank = (true, u64::MAX, usize::MAX);

/// The remotes' ranks in a tournament tree (a binary heap of minimums over the
/// remotes in plan order): the least loaded remote is at the root, and a change of
/// one remote's load or marks costs a path of `log2(remotes)` nodes. So a selection
/// without exclusions, the common case, costs the same with 1,000 remotes as with 10
/// (the scan of every remote it replaces cost a worker 120,000 instructions a new
/// connection with 1,000 remotes against 39,000 with 10; see docs/benchmarks.md,
/// "Scale"). Node 1 is the root, node `i`'s children `2i` and
/// `2i + 1`, and remote `j`'s leaf `leaves + j`.
#[derive(Debug, Clone)]
struct Tournament {
    nodes: Vec<Rank>,
    leaves: usize,
}

impl Tournament {
    fn new(ranks: impl ExactSizeIterator<Item = Rank>) -> Tournament {
        let leaves = ranks.len().next_power_of_two();
        let mut nodes = vec![NO_RANK; 2 * leaves];
        for (index, rank) in ranks.enumerate() {
            nodes[leaves + index] = rank;
        }
        for node in (1..leaves).rev() {
            nodes[node] = nodes[2 * node].min(nodes[2 * node + 1]);
        }
        Tournament { nodes, leaves }
    }

    /// Sets remote `index`'s rank and the minimums above it.
    fn set(&mut self, index: usize, rank: Rank) {
        let mut node = self.leaves + index;
        let Some(leaf) = self.nodes.get_mut(node) else {
            return;
        };
        *leaf = rank;
        while node > 1 {
            node /= 2;
            let least = self.nodes[2 * node].min(self.nodes[2 * node + 1]);
            if self.nodes[node] == least {
                break;
            }
            self.nodes[node] = least;
        }
    }

    /// The least rank: the remote a selection without exclusions takes.
    fn least(&self) -> Rank {
        self.nodes.get(1).copied().unwrap_or(NO_RANK)
    }
}

/// Per-worker balancing state over the plan's remotes, in plan order.
#[derive(Debug, Clone)]
pub struct Balancer {
    remotes: Vec<RemoteState>,
    /// The remotes' ranks, kept in step with `remotes` by [`Balancer::touch`] (one
    /// remote changed) and [`Balancer::rerank`] (many).
    ranks: Tournament,
    /// `rebalance = N`: dead marks are cleared after every N selections.
    rebalance: Option<u64>,
    /// Selections made since the dead marks were last cleared by `rebalance`.
    selections: u64,
    steer: Option<Steer>,
    checks: Option<Steer<crate::health::Table>>,
    /// Every remote is down by its checks and they are all tried again (logged
    /// when it starts), and how many such episodes there were.
    all_down: bool,
    all_down_episodes: u64,
    /// The client key of the selection under way with `balance = source`
    /// ([`Balancer::select_for`]); `None` outside one.
    source: Option<u64>,
    /// Each remote's SNI route (plan order, then the remotes found by DNS; `None`:
    /// the relay has no routes). A relay whose remotes are all found by DNS starts
    /// with an empty list that is still a relay with routes.
    membership: Option<Vec<Option<u32>>>,
}

/// The relay-wide steering a balancer follows: the table, each remote's slot in it
/// (plan order), and the epoch last read (`None`: not read yet).
#[derive(Debug, Clone)]
struct Steer<T = crate::steering::Table> {
    table: T,
    slots: Vec<usize>,
    seen: Option<u64>,
}

/// The remotes a session has already tried, so that a failover never picks one of
/// them again, and the SNI route it is restricted to (see [`Tried::restrict`]).
/// Held only while a session is connecting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tried(Vec<usize>, Option<Option<u32>>);

impl Tried {
    pub fn insert(&mut self, index: usize) {
        if !self.0.contains(&index) {
            self.0.push(index);
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        self.0.contains(&index)
    }

    /// Whether `index` is the one remote tried.
    pub fn is_only(&self, index: usize) -> bool {
        self.0.as_slice() == [index]
    }

    /// Forgets the remotes tried (the route restriction stays).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Restricts every selection to the remotes of SNI route `route` (`None`: the
    /// default route's, the remotes of no route), as [`Balancer::route_by`] knows
    /// them; a relay without routes never calls it.
    pub fn restrict(&mut self, route: Option<u32>) {
        self.1 = Some(route);
    }
}

impl Balancer {
    /// A balancer over remotes with these weights (a weight of 0 counts as 1; the
    /// plan validator rejects it anyway).
    pub fn new(weights: impl IntoIterator<Item = u32>, rebalance: Option<u64>) -> Balancer {
        let mut balancer = Balancer {
            remotes: weights
                .into_iter()
                .map(|w| RemoteState {
                    weight: tcprelay_plan::balance::weight(w),
                    planned: tcprelay_plan::balance::weight(w),
                    drained: false,
                    active: 0,
                    dead: false,
                    checked_down: false,
                    passes: None,
                    key: 0,
                    retired: false,
                })
                .collect(),
            rebalance: rebalance.filter(|n| *n > 0),
            selections: 0,
            steer: None,
            checks: None,
            all_down: false,
            all_down_episodes: 0,
            source: None,
            membership: None,
            ranks: Tournament::new(std::iter::empty()),
        };
        balancer.rerank();
        balancer
    }

    /// Remote `index`'s rank in the least-connections order without exclusions.
    fn rank(&self, index: usize) -> Rank {
        let remote = &self.remotes[index];
        if remote.dead || remote.drained || remote.retired || remote.checked_down {
            (true, u64::MAX, index)
        } else {
            (
                false,
                tcprelay_plan::balance::score(remote.active, remote.weight),
                index,
            )
        }
    }

    /// Remote `index`'s load or marks changed: its rank follows.
    fn touch(&mut self, index: usize) {
        if index < self.remotes.len() {
            let rank = self.rank(index);
            self.ranks.set(index, rank);
        }
    }

    /// Many remotes changed (the steering or health tables were read again, dead
    /// marks cleared, a remote added): every rank again.
    fn rerank(&mut self) {
        let ranks: Vec<Rank> = (0..self.remotes.len()).map(|i| self.rank(i)).collect();
        self.ranks = Tournament::new(ranks.into_iter());
    }

    /// The SNI route of each remote (plan order), for selections restricted to a
    /// route ([`Tried::restrict`]).
    pub fn route_by(&mut self, routes: Vec<Option<u32>>) {
        self.membership = Some(routes);
    }

    /// Remote `index`'s SNI route (`None`: the default route).
    fn route_of(&self, index: usize) -> Option<u32> {
        self.membership
            .as_ref()
            .and_then(|m| m.get(index).copied())
            .flatten()
    }

    /// Whether remote `index` is excluded from a selection: tried already, or
    /// outside the session's route.
    fn excludes(&self, excluded: &Tried, index: usize) -> bool {
        excluded.contains(index)
            || excluded
                .1
                .is_some_and(|route| self.route_of(index) != route)
    }

    /// Follows the health checks of `table`, where remote `j` (plan order) has slot
    /// `slots[j]` (a remote without one is never down by checks).
    pub fn follow_health(&mut self, table: crate::health::Table, slots: Vec<usize>) {
        self.checks = Some(Steer {
            table,
            slots,
            seen: None,
        });
        self.follow_checks();
    }

    /// Reads the health table again if its epoch moved (one relaxed load
    /// otherwise). True when a passing check cleared a dead mark.
    fn follow_checks(&mut self) -> bool {
        let Some(checks) = self.checks.as_mut() else {
            return false;
        };
        let epoch = checks.table.epoch();
        if checks.seen == Some(epoch) {
            return false;
        }
        checks.seen = Some(epoch);
        checks.table.acquire();
        let mut cleared = false;
        for (index, remote) in self.remotes.iter_mut().enumerate() {
            let health = checks
                .slots
                .get(index)
                .map(|&slot| checks.table.read(slot))
                .unwrap_or_default();
            remote.checked_down = health.down;
            let passes = health.passes();
            if remote.passes.is_some_and(|p| p != passes) && remote.dead {
                remote.dead = false;
                cleared = true;
            }
            remote.passes = Some(passes);
        }
        self.rerank();
        if self.all_down && !self.every_remote_checked_down(None) {
            self.all_down = false;
        }
        cleared
    }

    /// Whether every remote not drained is down by its checks (and one is); with
    /// `excluded`, among the remotes of its route only.
    fn every_remote_checked_down(&self, excluded: Option<&Tried>) -> bool {
        let route = |index: usize| {
            excluded
                .and_then(|t| t.1)
                .is_none_or(|route| self.route_of(index) == route)
        };
        let mut open = self
            .remotes
            .iter()
            .enumerate()
            .filter(|&(index, r)| !r.drained && !r.retired && route(index))
            .map(|(_, r)| r)
            .peekable();
        open.peek().is_some() && open.all(|r| r.checked_down)
    }

    /// Follows the steering of `table`, where remote `j` (plan order) has slot
    /// `slots[j]` (a remote without one is not steered).
    pub fn steer(&mut self, table: crate::steering::Table, slots: Vec<usize>) {
        self.steer = Some(Steer {
            table,
            slots,
            seen: None,
        });
        self.follow();
    }

    /// Reads the steering again if its epoch moved (one relaxed load otherwise).
    fn follow(&mut self) {
        let Some(steer) = self.steer.as_mut() else {
            return;
        };
        let epoch = steer.table.epoch();
        if steer.seen == Some(epoch) {
            return;
        }
        steer.seen = Some(epoch);
        steer.table.acquire();
        for (index, remote) in self.remotes.iter_mut().enumerate() {
            let admin = steer
                .slots
                .get(index)
                .map(|&slot| steer.table.read(slot))
                .unwrap_or_default();
            remote.drained = admin.drained;
            remote.weight = admin.weight.map_or(remote.planned, u64::from);
        }
        self.rerank();
    }

    /// Picks the live, not excluded remote with the lowest load and counts a session
    /// on it. Returns the remote's index in plan order, or `None` when every remote
    /// is dead or excluded. The second value is true when this selection cleared
    /// dead marks: it completed a `rebalance` period, or a passing health check was
    /// seen (the caller logs it and updates the counters' marks).
    #[cfg(test)]
    pub fn select(&mut self, excluded: &Tried) -> (Option<usize>, bool) {
        self.select_preferring(excluded, None)
    }

    /// [`Balancer::select`], but `preferred` (the remote a client's sticky entry
    /// names) is taken whatever its load when it can take the session: not dead,
    /// drained, down by its checks or excluded, and with a weight above 0.
    pub fn select_preferring(
        &mut self,
        excluded: &Tried,
        preferred: Option<usize>,
    ) -> (Option<usize>, bool) {
        self.follow();
        let cleared = self.follow_checks();
        let preferred = preferred.filter(|&index| {
            self.remotes.get(index).is_some_and(|r| {
                !r.dead && !r.drained && !r.retired && !r.checked_down && r.weight > 0
            }) && !self.excludes(excluded, index)
        });
        let mut best = preferred
            .map(|index| (index, 0))
            .or_else(|| self.best(excluded, true));
        if best.is_none() && self.every_remote_checked_down(Some(excluded)) {
            if !std::mem::replace(&mut self.all_down, true) {
                self.all_down_episodes += 1;
                crate::warn!("every remote is down by its health checks: trying them all again");
            }
            best = self.best(excluded, false);
        }
        if let Some((index, _)) = best {
            self.remotes[index].active += 1;
            self.touch(index);
        }
        let mut revived = cleared;
        if let Some(period) = self.rebalance {
            self.selections += 1;
            if self.selections >= period {
                self.selections = 0;
                revived |= self.revive_all();
            }
        }
        (best.map(|(index, _)| index), revived)
    }

    /// The live, not excluded remote with the lowest load and its score; with
    /// `checked`, a remote down by its checks is not live.
    fn best(&self, excluded: &Tried, checked: bool) -> Option<(usize, u64)> {
        if let Some(client) = self.source {
            return self.source_first(client, excluded, checked);
        }
        if checked && excluded.0.is_empty() && excluded.1.is_none() {
            // Nothing excluded: the tournament's root (the same choice as the scan
            // below, which the tests check at every selection).
            let (out, score, index) = self.ranks.least();
            let best = (!out).then_some((index, score));
            #[cfg(test)]
            assert_eq!(
                best,
                self.scan(excluded, checked),
                "the tournament's choice"
            );
            return best;
        }
        self.scan(excluded, checked)
    }

    /// [`Balancer::best`] by a scan of every remote.
    fn scan(&self, excluded: &Tried, checked: bool) -> Option<(usize, u64)> {
        // The plan crate's rule (the first in plan order wins a tie), which
        // `tcprelay-cc route` follows to tell the order of the candidates.
        tcprelay_plan::balance::lowest(
            self.remotes
                .iter()
                .enumerate()
                .filter(|(index, remote)| {
                    !(remote.dead
                        || remote.drained
                        || remote.retired
                        || (checked && remote.checked_down)
                        || self.excludes(excluded, *index))
                })
                .map(|(index, remote)| {
                    (
                        index,
                        tcprelay_plan::balance::score(remote.active, remote.weight),
                    )
                }),
        )
    }

    /// Gives the remotes (plan order) the keys of `balance = source`: the hashes of
    /// their `ADDRESS:PORT/PROTOCOL` texts ([`tcprelay_plan::balance::remote_key`]).
    pub fn hash_by_source(&mut self, keys: impl IntoIterator<Item = u64>) {
        for (remote, key) in self.remotes.iter_mut().zip(keys) {
            remote.key = key;
        }
    }

    /// [`Balancer::select_preferring`], where `client` is the client's key for
    /// `balance = source` (`None`: least connections, as without it): the first
    /// choice is the remote of the rendezvous order that can take the session,
    /// `preferred` (a sticky entry's, `source sticky`) before it.
    pub fn select_for(
        &mut self,
        excluded: &Tried,
        preferred: Option<usize>,
        client: Option<u64>,
    ) -> (Option<usize>, bool) {
        self.source = client;
        let chosen = self.select_preferring(excluded, preferred);
        self.source = None;
        chosen
    }

    /// The first remote of `client`'s rendezvous order that can take a session:
    /// not dead, drained, retired from its DNS name's set, excluded or (with
    /// `checked`) down by its checks.
    fn source_first(&self, client: u64, excluded: &Tried, checked: bool) -> Option<(usize, u64)> {
        let keyed = self.remotes.iter().map(|r| (r.key, r.weight));
        tcprelay_plan::balance::source_first(client, keyed, |index| {
            let remote = &self.remotes[index];
            !(remote.dead
                || remote.drained
                || remote.retired
                || (checked && remote.checked_down)
                || self.excludes(excluded, index))
        })
        .map(|index| (index, 0))
    }

    /// DNS discovery: appends a remote found at run time (after the plan's, never
    /// reordered) with `weight`, its `slot` in the steering and health tables and its
    /// `key` for `balance = source`, serving SNI route `route`.
    pub fn add_remote(&mut self, weight: u32, slot: usize, key: u64, route: Option<u32>) {
        let weight = tcprelay_plan::balance::weight(weight);
        self.remotes.push(RemoteState {
            weight,
            planned: weight,
            drained: false,
            active: 0,
            dead: false,
            checked_down: false,
            passes: None,
            key,
            retired: false,
        });
        let index = self.remotes.len() - 1;
        self.rerank();
        if let Some(membership) = self.membership.as_mut() {
            membership.resize(index, None);
            membership.push(route);
        }
        // Its slot in the tables followed, which are read again for it.
        if let Some(steer) = self.steer.as_mut() {
            steer.slots.resize(index, 0);
            steer.slots.push(slot);
            steer.seen = None;
        }
        if let Some(checks) = self.checks.as_mut() {
            checks.slots.resize(index, 0);
            checks.slots.push(slot);
            checks.seen = None;
        }
    }

    /// DNS discovery: remote `index` is in its name's set (`live`, with `weight`)
    /// or retired (no new session; its sessions go on).
    pub fn set_membership(&mut self, index: usize, live: bool, weight: u32) {
        if let Some(remote) = self.remotes.get_mut(index) {
            remote.retired = !live;
            let weight = tcprelay_plan::balance::weight(weight);
            if remote.weight == remote.planned {
                remote.weight = weight;
            }
            remote.planned = weight;
            self.touch(index);
        }
    }

    /// Releases the count taken by [`Balancer::select`] when a session (or a failed
    /// attempt) ends.
    pub fn release(&mut self, index: usize) {
        if let Some(remote) = self.remotes.get_mut(index) {
            debug_assert!(remote.active > 0, "release without select");
            remote.active = remote.active.saturating_sub(1);
            self.touch(index);
        }
    }

    /// Marks a remote dead after a failed connect. Returns true when it was alive
    /// (so that the caller logs the transition once, not every failure).
    pub fn mark_dead(&mut self, index: usize) -> bool {
        match self.remotes.get_mut(index) {
            Some(remote) if !remote.dead => {
                remote.dead = true;
                self.touch(index);
                true
            }
            _ => false,
        }
    }

    /// Clears every dead mark. Returns true when at least one remote was dead.
    pub fn revive_all(&mut self) -> bool {
        let mut any = false;
        for remote in &mut self.remotes {
            any |= remote.dead;
            remote.dead = false;
        }
        if any {
            self.rerank();
        }
        any
    }

    /// Whether remote `index` is marked dead (for status reports).
    pub fn is_dead(&self, index: usize) -> bool {
        self.remotes.get(index).is_some_and(|r| r.dead)
    }

    /// Whether remote `index` is down by its health checks (for status reports).
    pub fn is_checked_down(&self, index: usize) -> bool {
        self.remotes.get(index).is_some_and(|r| r.checked_down)
    }

    /// Episodes in which every remote was down by its checks (each logged once).
    #[cfg(test)]
    pub fn all_down_episodes(&self) -> u64 {
        self.all_down_episodes
    }

    /// The sessions remote `index` holds (for status reports).
    pub fn active(&self, index: usize) -> u64 {
        self.remotes.get(index).map_or(0, |r| r.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Tried {
        Tried::default()
    }

    #[test]
    fn discovered_remotes_join_after_the_plans_and_retired_ones_get_no_new_session() {
        let mut b = Balancer::new([1], None);
        b.add_remote(1, 7, 0, None);
        b.add_remote(2, 8, 0, None);
        let mut counts = [0usize; 3];
        for _ in 0..8 {
            counts[b.select(&none()).0.unwrap()] += 1;
        }
        assert_eq!(counts, [2, 2, 4], "by weight, the newcomers included");
        // Retired: no new session, whatever its load; its sessions keep their counts.
        b.set_membership(2, false, 2);
        for _ in 0..4 {
            assert_ne!(b.select(&none()).0, Some(2));
        }
        assert_eq!(b.active(2), 4);
        b.release(2);
        assert_eq!(b.active(2), 3);
        // Back in the set: the least loaded again (3 sessions against 4 and 4).
        b.set_membership(2, true, 1);
        assert_eq!(b.select(&none()).0, Some(2));
        // A retired remote is no last resort either.
        b.set_membership(0, false, 1);
        b.set_membership(1, false, 1);
        b.set_membership(2, false, 1);
        assert_eq!(b.select(&none()).0, None);
        assert_eq!(
            b.select_preferring(&none(), Some(1)).0,
            None,
            "not even sticky"
        );
    }

    /// The tournament's choice (the selections without exclusions) is the scan's
    /// through random selections, releases, dead marks, revivals, retirements and
    /// weight changes; every `select` also checks it (`best`).
    #[test]
    fn the_tournament_chooses_as_the_scan_through_random_changes() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for remotes in [1usize, 2, 3, 7, 64, 100, 1000] {
            let weights: Vec<u32> = (0..remotes).map(|_| 1 + next(5) as u32).collect();
            let mut b = Balancer::new(weights, None);
            let mut held = Vec::new();
            let mut selected = 0;
            for _ in 0..4000 {
                match next(20) {
                    0..=9 => {
                        if let Some(index) = b.select(&none()).0 {
                            held.push(index);
                            selected += 1;
                        }
                    }
                    10..=15 if !held.is_empty() => {
                        let index = held.swap_remove(next(held.len()));
                        b.release(index);
                    }
                    16 => {
                        b.mark_dead(next(remotes));
                    }
                    17 => {
                        b.revive_all();
                    }
                    _ => b.set_membership(next(remotes), next(4) != 0, 1 + next(4) as u32),
                }
                let (out, score, index) = b.ranks.least();
                assert_eq!((!out).then_some((index, score)), b.scan(&none(), true));
            }
            assert!(selected > 400, "{remotes} remotes: {selected} selections");
        }
    }

    #[test]
    fn weights_share_sessions_proportionally() {
        let mut b = Balancer::new([3, 1], None);
        let mut counts = [0usize; 2];
        for _ in 0..400 {
            let (i, _) = b.select(&none());
            counts[i.expect("a live remote")] += 1;
        }
        assert_eq!(counts, [300, 100]);
        assert_eq!((b.active(0), b.active(1)), (300, 100));
    }

    #[test]
    fn ties_go_to_the_first_in_plan_order() {
        let mut b = Balancer::new([1, 1, 1], None);
        assert_eq!(b.select(&none()).0, Some(0));
        assert_eq!(b.select(&none()).0, Some(1));
        assert_eq!(b.select(&none()).0, Some(2));
        assert_eq!(b.select(&none()).0, Some(0));
        // Releasing the first remote's two sessions makes it the least loaded.
        b.release(0);
        b.release(0);
        assert_eq!(b.select(&none()).0, Some(0));
        b.release(2);
        assert_eq!(b.select(&none()).0, Some(2));
    }

    #[test]
    fn integer_scores_as_the_original() {
        // 1*256/3 = 85 < 1*256/2 = 128: the heavier remote takes the second session.
        let mut b = Balancer::new([2, 3], None);
        assert_eq!(b.select(&none()).0, Some(0));
        assert_eq!(b.select(&none()).0, Some(1));
        // 128 vs 85 → remote 1; then 128 vs 170 → remote 0.
        assert_eq!(b.select(&none()).0, Some(1));
        assert_eq!(b.select(&none()).0, Some(0));
    }

    #[test]
    fn dead_remotes_are_skipped_until_revived() {
        let mut b = Balancer::new([1, 1], None);
        assert!(b.mark_dead(0));
        assert!(!b.mark_dead(0), "the transition is reported once");
        assert_eq!(b.select(&none()).0, Some(1));
        assert_eq!(b.select(&none()).0, Some(1));
        assert!(b.mark_dead(1));
        assert_eq!(b.select(&none()).0, None);
        assert!(b.revive_all());
        assert!(!b.revive_all());
        assert_eq!(b.select(&none()).0, Some(0));
    }

    #[test]
    fn a_route_restricts_every_selection_to_its_remotes() {
        // Remotes 0 and 2 are route 0's, 1 the default route's, 3 route 1's.
        let mut b = Balancer::new([1, 1, 1, 1], None);
        b.route_by(vec![Some(0), None, Some(0), Some(1)]);
        let mut tried = Tried::default();
        tried.restrict(Some(0));
        let picks: Vec<_> = (0..4).map(|_| b.select(&tried).0).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        // A failover stays in the route, and clearing what was tried keeps it.
        tried.insert(0);
        assert_eq!(b.select(&tried).0, Some(2));
        tried.insert(2);
        assert_eq!(b.select(&tried).0, None);
        tried.clear();
        assert_eq!(b.select(&tried).0, Some(0));
        // The default route: the remotes of no route; a sticky preference outside
        // the route is not taken.
        let mut default = Tried::default();
        default.restrict(None);
        assert_eq!(b.select_preferring(&default, Some(3)).0, Some(1));
        assert_eq!(b.select(&default).0, Some(1));
        // Unrestricted (no routes): any remote, the least loaded first.
        assert_eq!(b.select(&none()).0, Some(3));
    }

    #[test]
    fn discovered_remotes_keep_their_route_when_the_plan_has_no_remote() {
        // Every remote found by DNS: the plan's list is empty, the relay routes.
        let mut b = Balancer::new([], None);
        b.route_by(Vec::new());
        b.add_remote(1, 7, 0, Some(0));
        b.add_remote(1, 8, 0, None);
        let (mut routed, mut default) = (Tried::default(), Tried::default());
        routed.restrict(Some(0));
        default.restrict(None);
        for _ in 0..3 {
            assert_eq!(b.select(&routed).0, Some(0));
            assert_eq!(b.select(&default).0, Some(1));
        }
    }

    #[test]
    fn exclusion_skips_tried_remotes() {
        let mut b = Balancer::new([1, 1, 1], None);
        let mut tried = Tried::default();
        tried.insert(0);
        tried.insert(0);
        assert_eq!(b.select(&tried).0, Some(1));
        tried.insert(1);
        tried.insert(2);
        assert_eq!(b.select(&tried).0, None);
        tried.clear();
        assert_eq!(b.select(&tried).0, Some(0));
    }

    #[test]
    fn rebalance_clears_dead_marks_after_n_selections() {
        let mut b = Balancer::new([1, 1], Some(2));
        b.mark_dead(0);
        assert_eq!(b.select(&none()), (Some(1), false));
        assert!(b.is_dead(0));
        // The second selection completes the period: marks are cleared after it.
        assert_eq!(b.select(&none()), (Some(1), true));
        assert!(!b.is_dead(0));
        assert_eq!(b.select(&none()).0, Some(0));
        // A period with nothing dead clears nothing and says so.
        assert!(!b.select(&none()).1);
    }

    #[test]
    fn without_rebalance_dead_marks_stay() {
        let mut b = Balancer::new([1, 1], None);
        b.mark_dead(0);
        for _ in 0..10 {
            assert_eq!(b.select(&none()).0, Some(1));
        }
        assert!(b.is_dead(0));
    }

    #[test]
    fn failed_selections_count_towards_rebalance() {
        let mut b = Balancer::new([1], Some(2));
        b.mark_dead(0);
        assert_eq!(b.select(&none()), (None, false));
        assert_eq!(b.select(&none()), (None, true));
        assert_eq!(b.select(&none()).0, Some(0));
    }

    #[test]
    fn zero_weight_counts_as_one_and_release_is_saturating() {
        let mut b = Balancer::new([0], Some(0));
        assert_eq!(b.select(&none()).0, Some(0));
        b.release(0);
        b.release(7);
        assert_eq!(b.active(0), 0);
    }

    fn drained() -> crate::steering::Admin {
        crate::steering::Admin {
            drained: true,
            ..Default::default()
        }
    }

    fn weighted(weight: u32) -> crate::steering::Admin {
        crate::steering::Admin {
            weight: Some(weight),
            ..Default::default()
        }
    }

    #[test]
    fn a_drained_remote_gets_nothing_until_enabled() {
        let table = crate::steering::Table::new().unwrap();
        let mut b = Balancer::new([1, 1], None);
        b.steer(table.clone(), vec![3, 4]);
        table.write(3, drained());
        for _ in 0..4 {
            assert_eq!(b.select(&none()).0, Some(1));
        }
        // Its sessions go on: their counts are released as usual.
        table.write(3, crate::steering::Admin::default());
        assert_eq!(b.select(&none()).0, Some(0));
        assert_eq!((b.active(0), b.active(1)), (1, 4));
        // Every remote drained: none to select, whatever a revival does.
        table.write(3, drained());
        table.write(4, drained());
        assert!(!b.revive_all());
        assert_eq!(b.select(&none()).0, None);
    }

    #[test]
    fn a_weight_override_replaces_the_plans_until_cleared() {
        let table = crate::steering::Table::new().unwrap();
        let mut b = Balancer::new([3, 1], None);
        b.steer(table.clone(), vec![1, 2]);
        table.write(1, weighted(1));
        table.write(2, weighted(3));
        let mut counts = [0usize; 2];
        for _ in 0..400 {
            counts[b.select(&none()).0.unwrap()] += 1;
        }
        assert_eq!(counts, [100, 300], "3:1 turned into 1:3");
        for _ in 0..100 {
            b.release(0);
        }
        for _ in 0..300 {
            b.release(1);
        }
        // Weight 0: a last resort, taken only when the other cannot.
        table.write(2, weighted(0));
        for _ in 0..10 {
            assert_eq!(b.select(&none()).0, Some(0));
        }
        b.mark_dead(0);
        assert_eq!(b.select(&none()).0, Some(1));
        // Cleared: the plan's 3:1 again.
        b.revive_all();
        for _ in 0..10 {
            b.release(0);
        }
        b.release(1);
        table.write(1, crate::steering::Admin::default());
        table.write(2, crate::steering::Admin::default());
        let mut counts = [0usize; 2];
        for _ in 0..400 {
            counts[b.select(&none()).0.unwrap()] += 1;
        }
        assert_eq!(counts, [300, 100]);
    }

    #[test]
    fn an_unsteered_remote_and_the_overflow_slot_keep_the_plans_weight() {
        let table = crate::steering::Table::new().unwrap();
        // Remote 1 counts in the overflow slot, remote 2 has no slot at all.
        let mut b = Balancer::new([1, 1, 1], None);
        b.steer(table.clone(), vec![7, 0]);
        table.write(7, drained());
        assert_eq!(b.select(&none()).0, Some(1));
        assert_eq!(b.select(&none()).0, Some(2));
        assert_eq!(b.select(&none()).0, Some(1));
    }
}

#[cfg(test)]
mod sticky_tests {
    use super::*;

    fn none() -> Tried {
        Tried::default()
    }

    #[test]
    fn the_preferred_remote_is_taken_whatever_its_load_while_it_can_take_sessions() {
        let mut b = Balancer::new([1, 1], None);
        for _ in 0..3 {
            assert_eq!(b.select_preferring(&none(), Some(0)).0, Some(0));
        }
        assert_eq!(
            (b.active(0), b.active(1)),
            (3, 0),
            "counted as any selection"
        );
        assert_eq!(
            b.select(&none()).0,
            Some(1),
            "without a preference: the least loaded"
        );
        // Dead: selected as usual.
        b.mark_dead(0);
        assert_eq!(b.select_preferring(&none(), Some(0)).0, Some(1));
        b.revive_all();
        // Tried by this session already (failover): not again.
        let mut tried = Tried::default();
        tried.insert(0);
        assert_eq!(b.select_preferring(&tried, Some(0)).0, Some(1));
        // A remote past the plan's (an entry of another plan) is no preference:
        // 3 sessions each, the first in plan order.
        assert_eq!(b.select_preferring(&none(), Some(7)).0, Some(0));
    }

    #[test]
    fn a_drained_down_or_zero_weight_remote_is_not_preferred() {
        let steering = crate::steering::Table::new().unwrap();
        let health = crate::health::Table::new().unwrap();
        let mut b = Balancer::new([1, 1], None);
        b.steer(steering.clone(), vec![3, 4]);
        b.follow_health(health.clone(), vec![3, 4]);
        let drained = crate::steering::Admin {
            drained: true,
            ..Default::default()
        };
        steering.write(3, drained);
        assert_eq!(b.select_preferring(&none(), Some(0)).0, Some(1));
        steering.write(3, crate::steering::Admin::default());
        health.record(
            3,
            crate::health::Outcome::Refused,
            std::time::Duration::ZERO,
            std::time::SystemTime::now(),
            1,
            1,
        );
        assert_eq!(b.select_preferring(&none(), Some(0)).0, Some(1));
        health.record(
            3,
            crate::health::Outcome::Pass,
            std::time::Duration::ZERO,
            std::time::SystemTime::now(),
            1,
            1,
        );
        assert_eq!(b.select_preferring(&none(), Some(0)).0, Some(0), "up again");
        steering.write(
            3,
            crate::steering::Admin {
                weight: Some(0),
                ..Default::default()
            },
        );
        assert_eq!(b.select_preferring(&none(), Some(0)).0, Some(1));
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;
    use crate::health::{Outcome, Table};
    use std::time::{Duration, SystemTime};

    fn none() -> Tried {
        Tried::default()
    }

    fn check(table: &Table, slot: usize, outcome: Outcome) {
        // rise = fall = 1: one result decides.
        table.record(slot, outcome, Duration::ZERO, SystemTime::now(), 1, 1);
    }

    #[test]
    fn a_remote_down_by_its_checks_gets_no_new_session_until_it_is_up() {
        let table = Table::new().unwrap();
        let mut b = Balancer::new([1, 1], None);
        b.follow_health(table.clone(), vec![3, 4]);
        check(&table, 3, Outcome::Timeout);
        for _ in 0..5 {
            assert_eq!(b.select(&none()).0, Some(1));
        }
        assert!(b.is_checked_down(0));
        check(&table, 3, Outcome::Pass);
        assert_eq!(b.select(&none()).0, Some(0), "up again: the least loaded");
        assert!(!b.is_checked_down(0));
        assert_eq!(b.all_down_episodes(), 0);
    }

    #[test]
    fn a_passing_check_clears_a_dead_mark_and_says_so() {
        let table = Table::new().unwrap();
        let mut b = Balancer::new([1, 1], None);
        b.follow_health(table.clone(), vec![3, 4]);
        check(&table, 3, Outcome::Pass);
        assert_eq!(b.select(&none()), (Some(0), false));
        // A failed connect marks it dead in this worker.
        assert!(b.mark_dead(0));
        // A failing check of another remote moves the epoch, not remote 0's passes.
        check(&table, 4, Outcome::Refused);
        check(&table, 4, Outcome::Pass);
        assert_eq!(b.select(&none()), (Some(1), false));
        assert!(b.is_dead(0));
        check(&table, 3, Outcome::Pass);
        assert_eq!(
            b.select(&none()),
            (Some(0), true),
            "a check passed since the mark: cleared, reported"
        );
        assert!(!b.is_dead(0));
    }

    #[test]
    fn with_every_remote_down_by_checks_all_are_tried_and_it_is_counted_once() {
        let table = Table::new().unwrap();
        let mut b = Balancer::new([1, 1], None);
        b.follow_health(table.clone(), vec![3, 4]);
        check(&table, 3, Outcome::Refused);
        check(&table, 4, Outcome::Refused);
        assert_eq!(b.select(&none()).0, Some(0));
        assert_eq!(b.select(&none()).0, Some(1));
        let mut tried = Tried::default();
        tried.insert(0);
        assert_eq!(b.select(&tried).0, Some(1), "tried ones stay excluded");
        assert_eq!(b.all_down_episodes(), 1, "logged once for the episode");
        // One comes back: the episode ends; the other stays skipped.
        check(&table, 4, Outcome::Pass);
        for _ in 0..3 {
            assert_eq!(b.select(&none()).0, Some(1));
        }
        // Down again, all of them: a second episode.
        check(&table, 4, Outcome::Timeout);
        assert!(b.select(&none()).0.is_some());
        assert_eq!(b.all_down_episodes(), 2);
    }

    #[test]
    fn a_drained_remote_does_not_count_among_those_all_down() {
        let steering = crate::steering::Table::new().unwrap();
        let table = Table::new().unwrap();
        let mut b = Balancer::new([1, 1], None);
        b.steer(steering.clone(), vec![3, 4]);
        b.follow_health(table.clone(), vec![3, 4]);
        steering.write(
            4,
            crate::steering::Admin {
                drained: true,
                ..Default::default()
            },
        );
        check(&table, 3, Outcome::Refused);
        // The only remote not drained is down: it is tried, the drained one never.
        for _ in 0..3 {
            assert_eq!(b.select(&none()).0, Some(0));
        }
        assert_eq!(b.all_down_episodes(), 1);
    }

    #[test]
    fn an_unchecked_remote_and_the_overflow_slot_are_always_up() {
        let table = Table::new().unwrap();
        let mut b = Balancer::new([1, 1, 1], None);
        // Remote 1 counts in the overflow slot, remote 2 has no slot at all.
        b.follow_health(table.clone(), vec![7, 0]);
        check(&table, 7, Outcome::Refused);
        check(&table, 0, Outcome::Refused);
        assert_eq!(b.select(&none()).0, Some(1));
        assert_eq!(b.select(&none()).0, Some(2));
        assert_eq!(b.select(&none()).0, Some(1));
        assert_eq!(b.all_down_episodes(), 0);
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;
    use tcprelay_plan::balance::{client_key, remote_key, source_order};

    const KEYS: [&str; 3] = ["10.0.0.1:80/TCP", "10.0.0.2:80/TCP", "10.0.0.3:80/TCP"];

    fn balancer() -> (Balancer, Vec<(u64, u64)>) {
        let mut b = Balancer::new([1, 2, 1], None);
        b.hash_by_source(KEYS.iter().map(|k| remote_key(k)));
        let keyed = KEYS
            .iter()
            .zip([1, 2, 1])
            .map(|(k, w)| (remote_key(k), w))
            .collect();
        (b, keyed)
    }

    #[test]
    fn a_client_goes_to_its_hash_whatever_the_loads_and_fails_over_in_its_order() {
        let (mut b, keyed) = balancer();
        for n in 0..50u8 {
            let client = client_key(std::net::IpAddr::from([192, 0, 2, n]));
            let order = source_order(client, &keyed);
            for _ in 0..3 {
                assert_eq!(
                    b.select_for(&Tried::default(), None, Some(client)).0,
                    Some(order[0])
                );
            }
            // Tried (a failover), then dead in this worker: the next of the order.
            let mut tried = Tried::default();
            tried.insert(order[0]);
            assert_eq!(b.select_for(&tried, None, Some(client)).0, Some(order[1]));
            b.mark_dead(order[0]);
            assert_eq!(
                b.select_for(&Tried::default(), None, Some(client)).0,
                Some(order[1])
            );
            b.revive_all();
            // A sticky entry's remote first (`source sticky`).
            assert_eq!(
                b.select_for(&Tried::default(), Some(order[2]), Some(client))
                    .0,
                Some(order[2])
            );
        }
        // Without a client key: least connections, as before.
        let (mut b, _) = balancer();
        assert_eq!(b.select_for(&Tried::default(), None, None).0, Some(0));
        assert_eq!(b.select_for(&Tried::default(), None, None).0, Some(1));
    }

    #[test]
    fn drained_and_zero_weight_remotes_are_skipped_or_last() {
        let table = crate::steering::Table::new().unwrap();
        let (mut b, keyed) = balancer();
        b.steer(table.clone(), vec![1, 2, 3]);
        let client = (0..=255u8)
            .map(|n| client_key(std::net::IpAddr::from([192, 0, 2, n])))
            .find(|&c| source_order(c, &keyed)[0] == 1)
            .unwrap();
        assert_eq!(
            b.select_for(&Tried::default(), None, Some(client)).0,
            Some(1)
        );
        table.write(
            2,
            crate::steering::Admin {
                weight: Some(0),
                ..Default::default()
            },
        );
        let next = b.select_for(&Tried::default(), None, Some(client)).0;
        assert!(next.is_some_and(|i| i != 1), "weight 0: last");
        let mut tried = Tried::default();
        tried.insert(0);
        tried.insert(2);
        assert_eq!(
            b.select_for(&tried, None, Some(client)).0,
            Some(1),
            "weight 0: taken when no other can"
        );
        table.write(
            2,
            crate::steering::Admin {
                drained: true,
                ..Default::default()
            },
        );
        assert_eq!(b.select_for(&tried, None, Some(client)).0, None);
    }
}
