//! [`GroupService`]: the in-process driver of the sans-IO [`GroupCoordinator`] that a
//! [`crate::Broker`] owns once its first consumer is created.
//!
//! It owns the [`OffsetsStore`] (so `__consumer_offsets` is created by the store through
//! `Broker::create_internal_topic`) and a mutex around the coordinator. Each request runs
//! under the mutex: `Output::Persist` is executed at once by appending through the store and
//! reporting the result with `append_completed`; `Output::Reply` is put in a mailbox keyed
//! by the caller's [`ReplyTo`] token, and waiting callers are woken with a condition
//! variable. Timers are fired lazily: every call, and every wait step (at most
//! [`WAIT_STEP`] of real time), ticks the coordinator with the broker's [`Clock`].
//!
//! It also plays the part of Kafka's consumer heartbeat thread: for each registered member
//! it heartbeats every `heartbeat_interval_ms` while the consumer keeps polling, and sends
//! LeaveGroup once the consumer has not polled for `max.poll.interval.ms`; the consumer
//! learns on its next poll that it must rejoin.
//!
//! On a cluster node the service coordinates only the `__consumer_offsets` partitions the
//! node leads ([`Ownership`]): each call first compares them with what it holds, loads the
//! groups of a partition it took over from that partition's log, and unloads those of a
//! partition it lost, whose members then get `NotCoordinator` and look for the new
//! coordinator ([`Rejoin::Coordinator`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::error::Result;
use crate::group::GroupError;
use crate::group::coordinator::{
    AppendError, CoordinatorConfig, GroupCoordinator, HeartbeatRequest, LeaveGroupRequest, Output,
    ReplyTo, Response,
};
use crate::group::offsets::OffsetsStore;

/// The longest real-time wait between two ticks of the coordinator.
pub(crate) const WAIT_STEP: Duration = Duration::from_millis(10);

/// A consumer's membership, as the heartbeat duty sees it.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
    pub last_poll_ms: i64,
    pub last_heartbeat_ms: i64,
    pub heartbeat_interval_ms: i64,
    pub max_poll_interval_ms: i64,
    /// Set by a heartbeat answered with an error, or by the poll-interval check: the
    /// consumer must rejoin (`lost` when the member is no longer in the group).
    pub rejoin: Option<Rejoin>,
}

/// Why a member must rejoin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejoin {
    /// A rebalance started; the member still owns its partitions until it rejoins.
    Rebalance,
    /// The member is out of the group (left for missing `max.poll.interval.ms`, expired,
    /// fenced): its partitions are lost.
    Lost,
    /// The coordinator moved (`NotCoordinator`, `CoordinatorNotAvailable`): the member
    /// finds the new one and goes on there with its member id and generation.
    Coordinator,
}

/// Which `__consumer_offsets` partitions a service may coordinate (a cluster node's).
pub(crate) trait Ownership: Send + Sync + std::fmt::Debug {
    /// The partitions led here, each with its leader epoch and whether its log is ready
    /// to load: its high watermark has reached its log end, so a load replays every
    /// acknowledged write (a new leader's high watermark catches up once its followers
    /// fetch).
    fn led_partitions(&self) -> BTreeMap<u32, Led>;
}

/// A `__consumer_offsets` partition led by a cluster node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Led {
    /// The leader epoch it is led in.
    pub epoch: i32,
    /// Whether its high watermark has reached its log end.
    pub caught_up: bool,
}

#[derive(Debug)]
struct State {
    coordinator: GroupCoordinator,
    replies: HashMap<u64, Response>,
    forgotten: HashSet<u64>,
    next_token: u64,
    live: HashMap<u64, Liveness>,
    /// A cluster node's loaded `__consumer_offsets` partitions and the leader epoch each
    /// was loaded in.
    loaded: BTreeMap<u32, i32>,
}

/// The coordinator, its store and the mailboxes of waiting callers.
#[derive(Debug)]
pub(crate) struct GroupService {
    store: OffsetsStore,
    /// `None`: a single broker's service, owning every partition.
    owner: Option<Arc<dyn Ownership>>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    replied: Condvar,
}

impl GroupService {
    /// A service over `store` whose coordinator is rebuilt from it (S18).
    pub(crate) fn new(
        store: OffsetsStore,
        mut config: CoordinatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        config.offsets_topic_partitions = store.partition_count();
        let mut coordinator = GroupCoordinator::new(config)?;
        coordinator.load_from(clock.now_ms(), &store);
        Ok(Self::build(store, coordinator, clock, None))
    }

    /// A cluster node's service: it owns no partition until `owner` reports one ready,
    /// then loads that partition's groups from `store` (S18).
    pub(crate) fn with_owner(
        store: OffsetsStore,
        mut config: CoordinatorConfig,
        clock: Arc<dyn Clock>,
        owner: Arc<dyn Ownership>,
    ) -> Result<Self> {
        config.offsets_topic_partitions = store.partition_count();
        let mut coordinator = GroupCoordinator::new(config)?;
        coordinator.set_owned_partitions([]);
        Ok(Self::build(store, coordinator, clock, Some(owner)))
    }

    fn build(
        store: OffsetsStore,
        coordinator: GroupCoordinator,
        clock: Arc<dyn Clock>,
        owner: Option<Arc<dyn Ownership>>,
    ) -> Self {
        Self {
            store,
            owner,
            clock,
            state: Mutex::new(State {
                coordinator,
                replies: HashMap::new(),
                forgotten: HashSet::new(),
                next_token: 0,
                live: HashMap::new(),
                loaded: BTreeMap::new(),
            }),
            replied: Condvar::new(),
        }
    }

    /// The `__consumer_offsets` store.
    pub(crate) fn store(&self) -> &OffsetsStore {
        &self.store
    }

    /// Fires due timers and runs the heartbeat duty at the clock's current time, waking
    /// waiting callers (the broker's timer thread calls this).
    pub(crate) fn tick(&self) {
        let mut state = self.state.lock();
        let now = self.now_ms();
        self.maintain(&mut state, now);
        drop(state);
        self.replied.notify_all();
    }

    /// The current time of the broker's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A fresh token (consumers use one as their registration id too).
    pub(crate) fn token(&self) -> u64 {
        let mut state = self.state.lock();
        state.next_token += 1;
        state.next_token
    }

    /// Sends a request: `f` gets the coordinator, the time and a fresh token. Returns the
    /// token; the answer is taken with [`GroupService::take`] or [`GroupService::wait`].
    pub(crate) fn submit(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64, ReplyTo) -> Vec<Output>,
    ) -> u64 {
        let mut state = self.state.lock();
        let now = self.now_ms();
        self.maintain(&mut state, now);
        state.next_token += 1;
        let token = state.next_token;
        let out = f(&mut state.coordinator, now, ReplyTo(token));
        self.drive(&mut state, now, out);
        self.replied.notify_all();
        token
    }

    /// Sends a request answered within the call (heartbeat, leave, commit).
    pub(crate) fn call(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64, ReplyTo) -> Vec<Output>,
    ) -> Option<Response> {
        let token = self.submit(f);
        self.take(token)
    }

    /// Reads the coordinator.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        f(&self.state.lock().coordinator)
    }

    /// Reads the coordinator after taking on or giving up the partitions whose
    /// leadership changed (a cluster node's service; the same as [`GroupService::read`]
    /// on a broker), so a stopped or deposed broker's coordinator does not answer.
    pub(crate) fn read_current<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        let mut state = self.state.lock();
        let now = self.now_ms();
        self.sync_ownership(&mut state, now);
        f(&state.coordinator)
    }

    /// The answer to `token`, if it came.
    pub(crate) fn take(&self, token: u64) -> Option<Response> {
        self.state.lock().replies.remove(&token)
    }

    /// Drops the answer to `token`, now or when it comes.
    pub(crate) fn forget(&self, token: u64) {
        let mut state = self.state.lock();
        if state.replies.remove(&token).is_none() {
            state.forgotten.insert(token);
        }
    }

    /// Waits for the answer to `token` until `deadline`, ticking the coordinator meanwhile.
    pub(crate) fn wait(&self, token: u64, deadline: Instant) -> Option<Response> {
        let mut state = self.state.lock();
        loop {
            if let Some(response) = state.replies.remove(&token) {
                return Some(response);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let _ = self
                .replied
                .wait_until(&mut state, deadline.min(now + WAIT_STEP));
            let now_ms = self.now_ms();
            self.maintain(&mut state, now_ms);
        }
    }

    /// Sleeps until `deadline` or until any answer is delivered, ticking meanwhile; used by
    /// a poll waiting for records.
    pub(crate) fn idle(&self, deadline: Instant) {
        let mut state = self.state.lock();
        let now = Instant::now();
        if now < deadline {
            let _ = self
                .replied
                .wait_until(&mut state, deadline.min(now + WAIT_STEP));
        }
        let now_ms = self.now_ms();
        self.maintain(&mut state, now_ms);
    }

    /// Registers or updates consumer `id`'s membership for the heartbeat duty.
    pub(crate) fn set_live(&self, id: u64, live: Option<Liveness>) {
        let mut state = self.state.lock();
        match live {
            Some(live) => state.live.insert(id, live),
            None => state.live.remove(&id),
        };
    }

    /// Clears consumer `id`'s reason to rejoin if it is `reason`.
    pub(crate) fn clear_rejoin(&self, id: u64, reason: Rejoin) {
        if let Some(live) = self.state.lock().live.get_mut(&id)
            && live.rejoin == Some(reason)
        {
            live.rejoin = None;
        }
    }

    /// Removes consumer `id`'s membership from the heartbeat duty, returning it (a consumer
    /// moving to a new coordinator takes it along).
    pub(crate) fn take_live(&self, id: u64) -> Option<Liveness> {
        self.state.lock().live.remove(&id)
    }

    /// Consumer `id` polls: checks `max.poll.interval.ms` first (a late poll finds the
    /// member gone), then records the poll. Returns why it must rejoin, if it must.
    pub(crate) fn polled(&self, id: u64) -> Option<Rejoin> {
        let mut state = self.state.lock();
        let now = self.now_ms();
        self.maintain(&mut state, now);
        // In process a heartbeat costs a lock: every poll sends one, so a member learns of
        // a rebalance on its next poll rather than after `heartbeat.interval.ms`.
        self.heartbeat(&mut state, id, now);
        let live = state.live.get_mut(&id)?;
        live.last_poll_ms = now;
        live.rejoin
    }

    /// Topic `topic` was deleted: the coordinator drops every group's offsets of it and
    /// the tombstones it asks for (with those of groups it kills) are appended; then every
    /// `__consumer_offsets` partition is flushed, so the tombstones — also those of an
    /// earlier call whose flush failed — survive a power loss whatever the topic's flush
    /// policy. Returns how many offsets left the coordinator's cache. The first failed
    /// append or flush is returned after all were tried; offsets whose tombstones failed
    /// stay cached, so calling again retries them.
    pub(crate) fn delete_topic_offsets(&self, topic: &str) -> Result<usize> {
        let mut state = self.state.lock();
        let now = self.now_ms();
        self.maintain(&mut state, now);
        let (out, removed) = state.coordinator.delete_topic_offsets(now, topic);
        let mut first_error = self.drive_checked(&mut state, now, out);
        for partition in 0..self.store.partition_count() {
            if let Err(e) = self.store.flush_partition(partition) {
                first_error.get_or_insert(e);
            }
        }
        drop(state);
        self.replied.notify_all();
        first_error.map_or(Ok(removed), Err)
    }

    /// Appends through the store for every `Persist` and collects the replies.
    fn drive(&self, state: &mut MutexGuard<'_, State>, now: i64, out: Vec<Output>) {
        let _ = self.drive_checked(state, now, out);
    }

    /// As [`GroupService::drive`], returning the first append error.
    fn drive_checked(
        &self,
        state: &mut MutexGuard<'_, State>,
        now: i64,
        out: Vec<Output>,
    ) -> Option<crate::Error> {
        let mut first_error = None;
        let mut queue = out;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for output in queue {
                match output {
                    Output::Reply { to, response } => {
                        if !state.forgotten.remove(&to.0) {
                            state.replies.insert(to.0, response);
                        }
                    }
                    Output::Persist(request) => {
                        let result = self.store.persist(&request).map_err(|e| {
                            let mapped = AppendError::from_error(&e);
                            first_error.get_or_insert(e);
                            mapped
                        });
                        next.extend(state.coordinator.append_completed(now, request.id, result));
                    }
                }
            }
            queue = next;
        }
        first_error
    }

    /// Fires due timers, heartbeats for members that keep polling, and removes members
    /// that stopped polling for longer than their `max.poll.interval.ms`.
    fn maintain(&self, state: &mut MutexGuard<'_, State>, now: i64) {
        self.sync_ownership(state, now);
        let out = state.coordinator.tick(now);
        self.drive(state, now, out);
        let ids: Vec<u64> = state.live.keys().copied().collect();
        for id in ids {
            let Some(live) = state.live.get(&id).cloned() else {
                continue;
            };
            if live.rejoin == Some(Rejoin::Lost) || live.generation <= 0 {
                continue;
            }
            if now - live.last_poll_ms > live.max_poll_interval_ms {
                let req = LeaveGroupRequest {
                    group_id: live.group_id.clone(),
                    member_ids: vec![live.member_id.clone()],
                };
                state.next_token += 1;
                let token = state.next_token;
                state.forgotten.insert(token);
                let out = state.coordinator.leave_group(now, ReplyTo(token), req);
                self.drive(state, now, out);
                if let Some(l) = state.live.get_mut(&id) {
                    l.rejoin = Some(Rejoin::Lost);
                }
                continue;
            }
            if now - live.last_heartbeat_ms >= live.heartbeat_interval_ms {
                self.heartbeat(state, id, now);
            }
        }
    }

    /// Loads the groups of partitions that became ready here and unloads those of
    /// partitions no longer led here (a cluster node's service only).
    fn sync_ownership(&self, state: &mut MutexGuard<'_, State>, now: i64) {
        let Some(owner) = &self.owner else {
            return;
        };
        let led = owner.led_partitions();
        // Still led in the epoch it was loaded in: keep; anything else: unload.
        let lost: Vec<u32> = state
            .loaded
            .iter()
            .filter(|(p, epoch)| led.get(p).is_none_or(|l| l.epoch != **epoch))
            .map(|(p, _)| *p)
            .collect();
        for partition in lost {
            state.loaded.remove(&partition);
            let out = state.coordinator.unload_partition(partition);
            self.store.unload_partition(partition);
            self.drive(state, now, out);
        }
        for (partition, l) in led {
            if !l.caught_up || state.loaded.contains_key(&partition) {
                continue;
            }
            // A partition whose log cannot be read now is tried again at the next call.
            if self.store.load_partition(partition).is_ok() {
                state
                    .coordinator
                    .load_partition(now, &self.store, partition);
                state.loaded.insert(partition, l.epoch);
            }
        }
    }

    /// Heartbeats for consumer `id`; a rebalance or an error marks it for rejoining.
    fn heartbeat(&self, state: &mut MutexGuard<'_, State>, id: u64, now: i64) {
        let Some(live) = state.live.get(&id) else {
            return;
        };
        if live.rejoin == Some(Rejoin::Lost) || live.generation <= 0 {
            return;
        }
        let req = HeartbeatRequest {
            group_id: live.group_id.clone(),
            member_id: live.member_id.clone(),
            generation: live.generation,
        };
        state.next_token += 1;
        let token = state.next_token;
        let out = state.coordinator.heartbeat(now, ReplyTo(token), req);
        self.drive(state, now, out);
        let result = state.replies.remove(&token);
        if let Some(l) = state.live.get_mut(&id) {
            l.last_heartbeat_ms = now;
            match result {
                Some(Response::Heartbeat(Err(GroupError::RebalanceInProgress))) => {
                    l.rejoin.get_or_insert(Rejoin::Rebalance);
                }
                Some(Response::Heartbeat(Err(
                    GroupError::NotCoordinator | GroupError::CoordinatorNotAvailable,
                ))) => {
                    l.rejoin.get_or_insert(Rejoin::Coordinator);
                }
                Some(Response::Heartbeat(Err(_))) => l.rejoin = Some(Rejoin::Lost),
                _ => {}
            }
        }
    }
}
