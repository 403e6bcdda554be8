//! The group coordinator stepped with explicit times, porting the behaviours of Kafka's
//! GroupCoordinatorTest / GroupMetadataTest / ClassicGroupTest listed in
//! KAFKA-TESTS-CLUSTER.md sections 7 and 9. Kafka's test constants: min session 10 ms, max
//! session 600000 ms, group.max.size 4, initial rebalance delay 50 ms, session and rebalance
//! timeout 500 ms.

use std::collections::BTreeMap;

use streamlog::GroupError::{self, *};
use streamlog::group::coordinator::*;
use streamlog::{GroupMetadata, OffsetAndMetadata, java_string_hash_code, partition_for_group};

const G: &str = "group";
const TIMEOUT: i32 = 500;

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 600_000,
        group_max_size: 4,
        initial_rebalance_delay_ms: 50,
        ..CoordinatorConfig::default()
    }
}

fn protocols(names: &[&str]) -> Vec<GroupProtocol> {
    names
        .iter()
        .map(|n| GroupProtocol::new(*n, n.as_bytes().to_vec()))
        .collect()
}

/// A driver: collects replies by token, acknowledges appends at once unless `hold` is set.
struct H {
    c: GroupCoordinator,
    now: i64,
    token: u64,
    replies: BTreeMap<u64, Response>,
    held: Vec<PersistRequest>,
    appended: Vec<PersistRequest>,
    hold: bool,
    log_end: u64,
}

impl H {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: CoordinatorConfig) -> Self {
        Self {
            c: GroupCoordinator::new(config).unwrap(),
            now: 0,
            token: 0,
            replies: BTreeMap::new(),
            held: Vec::new(),
            appended: Vec::new(),
            hold: false,
            log_end: 0,
        }
    }

    fn feed(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Reply { to, response } => {
                    assert!(
                        self.replies.insert(to.0, response).is_none(),
                        "two replies to {to:?}"
                    );
                }
                Output::Persist(p) if self.hold => self.held.push(p),
                Output::Persist(p) => self.complete(p, Ok(())),
            }
        }
    }

    fn complete(&mut self, p: PersistRequest, result: Result<(), AppendError>) {
        let result = result.map(|()| {
            self.log_end += 1;
            self.log_end
        });
        let out = self.c.append_completed(self.now, p.id, result);
        self.appended.push(p);
        self.feed(out);
    }

    fn release(&mut self, index: usize, result: Result<(), AppendError>) {
        let p = self.held.remove(index);
        self.complete(p, result);
    }

    fn next(&mut self) -> ReplyTo {
        self.token += 1;
        ReplyTo(self.token)
    }

    fn join_req(member: &str, names: &[&str]) -> JoinGroupRequest {
        JoinGroupRequest::new(G, "client", "consumer", protocols(names))
            .member_id(member)
            .timeouts(TIMEOUT, TIMEOUT)
            .require_known_member_id(false)
    }

    fn send_join(&mut self, req: JoinGroupRequest) -> u64 {
        let to = self.next();
        let out = self.c.join_group(self.now, to, req);
        self.feed(out);
        to.0
    }

    fn join(&mut self, member: &str) -> u64 {
        self.send_join(Self::join_req(member, &["range"]))
    }

    fn joined(&self, token: u64) -> Option<JoinGroupResponse> {
        match self.replies.get(&token) {
            Some(Response::Join(r)) => Some(r.clone()),
            None => None,
            other => panic!("not a join reply: {other:?}"),
        }
    }

    fn join_error(&self, token: u64) -> Option<GroupError> {
        self.joined(token).expect("join answered").error
    }

    fn send_sync(&mut self, member: &str, generation: i32, assignments: &[(&str, &[u8])]) -> u64 {
        let to = self.next();
        let req = SyncGroupRequest {
            group_id: G.into(),
            member_id: member.into(),
            generation,
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_string(), a.to_vec()))
                .collect(),
            ..Default::default()
        };
        let out = self.c.sync_group(self.now, to, req);
        self.feed(out);
        to.0
    }

    fn synced(&self, token: u64) -> Option<SyncGroupResponse> {
        match self.replies.get(&token) {
            Some(Response::Sync(r)) => Some(r.clone()),
            None => None,
            other => panic!("not a sync reply: {other:?}"),
        }
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> Result<(), GroupError> {
        let to = self.next();
        let req = HeartbeatRequest {
            group_id: G.into(),
            member_id: member.into(),
            generation,
        };
        let out = self.c.heartbeat(self.now, to, req);
        self.feed(out);
        match &self.replies[&to.0] {
            Response::Heartbeat(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    fn leave(&mut self, members: &[&str]) -> LeaveGroupResponse {
        let to = self.next();
        let req = LeaveGroupRequest {
            group_id: G.into(),
            member_ids: members.iter().map(|m| (*m).to_string()).collect(),
        };
        let out = self.c.leave_group(self.now, to, req);
        self.feed(out);
        match &self.replies[&to.0] {
            Response::Leave(r) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn send_commit(&mut self, member: &str, generation: i32, offset: u64, metadata: &str) -> u64 {
        self.send_commit_to(member, generation, 0, offset, metadata)
    }

    /// A commit by no member of no generation (a simple consumer's) of `t-partition`.
    fn simple_commit(&mut self, partition: u32, offset: u64) -> u64 {
        self.send_commit_to("", -1, partition, offset, "")
    }

    fn send_commit_to(
        &mut self,
        member: &str,
        generation: i32,
        partition: u32,
        offset: u64,
        metadata: &str,
    ) -> u64 {
        let to = self.next();
        let req = OffsetCommitRequest {
            group_id: G.into(),
            member_id: member.into(),
            generation,
            retention_ms: None,
            offsets: vec![(
                ("t".into(), partition),
                OffsetCommit {
                    offset,
                    leader_epoch: Some(15),
                    metadata: metadata.into(),
                },
            )],
        };
        let out = self.c.commit_offsets(self.now, to, req);
        self.feed(out);
        to.0
    }

    fn commit_result(&self, token: u64) -> Option<Result<(), GroupError>> {
        match self.replies.get(&token) {
            Some(Response::Commit(r)) => Some(r.partitions[0].1),
            None => None,
            other => panic!("{other:?}"),
        }
    }

    fn commit(&mut self, member: &str, generation: i32, offset: u64) -> Result<(), GroupError> {
        let t = self.send_commit(member, generation, offset, "");
        self.commit_result(t).expect("commit answered")
    }

    fn fetched(&self) -> Option<u64> {
        let tp = [("t".to_string(), 0)];
        self.c.fetch_offsets(G, Some(&tp)).unwrap()[0]
            .1
            .as_ref()
            .map(|v| v.offset)
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let out = self.c.tick(self.now);
        self.feed(out);
    }

    /// Ticks every 51 ms until each of `tokens` is answered (joiners extend the delay).
    fn settle(&mut self, tokens: &[u64]) {
        for _ in 0..20 {
            if tokens.iter().all(|t| self.replies.contains_key(t)) {
                return;
            }
            self.advance(51);
        }
        panic!("joins never completed");
    }

    fn state(&self) -> Option<GroupState> {
        self.c.describe_group(G).map(|d| d.state)
    }

    /// A Stable group of `n` members (all joined at once, past the initial delay, synced).
    fn stable(&mut self, n: usize) -> Vec<String> {
        let tokens: Vec<u64> = (0..n).map(|_| self.join("")).collect();
        self.settle(&tokens);
        let responses: Vec<JoinGroupResponse> =
            tokens.iter().map(|t| self.joined(*t).unwrap()).collect();
        let generation = responses[0].generation;
        let leader = responses
            .iter()
            .find(|r| r.is_leader())
            .unwrap()
            .member_id
            .clone();
        let ids: Vec<String> = responses.iter().map(|r| r.member_id.clone()).collect();
        let assignment: Vec<(&str, &[u8])> =
            ids.iter().map(|id| (id.as_str(), id.as_bytes())).collect();
        self.send_sync(&leader, generation, &assignment);
        for id in ids.iter().filter(|id| **id != leader) {
            self.send_sync(id, generation, &[]);
        }
        assert_eq!(self.state(), Some(GroupState::Stable));
        ids
    }
}

// ---- JoinGroup basics ----

#[test]
fn join_refuses_bad_requests() {
    let mut h = H::new();
    let mut req = H::join_req("", &["range"]);
    req.group_id = String::new();
    let t = h.send_join(req);
    assert_eq!(h.join_error(t), Some(InvalidGroupId));
    let t = h.send_join(H::join_req("", &["range"]).timeouts(9, TIMEOUT));
    assert_eq!(h.join_error(t), Some(InvalidSessionTimeout));
    let t = h.send_join(H::join_req("", &["range"]).timeouts(600_001, TIMEOUT));
    assert_eq!(h.join_error(t), Some(InvalidSessionTimeout));
    let t = h.join("stranger");
    assert_eq!(h.join_error(t), Some(UnknownMemberId));
    assert_eq!(h.state(), None, "no group is left behind by failed joins");
    h.stable(1);
    let t = h.join("stranger");
    assert_eq!(h.join_error(t), Some(UnknownMemberId));

    let mut other = H::new();
    let mine = partition_for_group(G, 50);
    other.c.set_owned_partitions((0..50).filter(|p| *p != mine));
    let t = other.join("");
    assert_eq!(other.join_error(t), Some(NotCoordinator));
    assert_eq!(other.c.fetch_offsets(G, None), Err(NotCoordinator));
}

#[test]
fn every_request_refuses_an_empty_or_oversize_group_id_and_changes_nothing() {
    let mut h = H::new();
    let ids = h.stable(1);
    assert_eq!(h.commit(&ids[0], 1, 3), Ok(()));
    let before = (
        h.c.group_ids(),
        h.c.describe_group(G),
        h.fetched(),
        h.appended.len(),
    );
    // 256 bytes: one over the limit, in ASCII and in two-byte characters.
    let bad = [String::new(), "g".repeat(256), "é".repeat(128)];
    for group in &bad {
        let mut join = H::join_req("", &["range"]);
        join.group_id = group.clone();
        let t = h.send_join(join);
        assert_eq!(h.join_error(t), Some(InvalidGroupId), "join {group:?}");

        let to = h.next();
        let sync = SyncGroupRequest {
            group_id: group.clone(),
            member_id: ids[0].clone(),
            generation: 1,
            ..Default::default()
        };
        let out = h.c.sync_group(h.now, to, sync);
        h.feed(out);
        assert_eq!(
            h.synced(to.0).and_then(|s| s.error),
            Some(InvalidGroupId),
            "sync {group:?}"
        );

        let to = h.next();
        let heartbeat = HeartbeatRequest {
            group_id: group.clone(),
            member_id: ids[0].clone(),
            generation: 1,
        };
        let out = h.c.heartbeat(h.now, to, heartbeat);
        h.feed(out);
        assert!(
            matches!(h.replies[&to.0], Response::Heartbeat(Err(InvalidGroupId))),
            "heartbeat {group:?}"
        );

        let to = h.next();
        let leave = LeaveGroupRequest {
            group_id: group.clone(),
            member_ids: vec![ids[0].clone()],
        };
        let out = h.c.leave_group(h.now, to, leave);
        h.feed(out);
        assert!(
            matches!(&h.replies[&to.0], Response::Leave(l) if l.error == Some(InvalidGroupId)),
            "leave {group:?}"
        );

        for (member, generation) in [(ids[0].as_str(), 1), ("", -1)] {
            let to = h.next();
            let commit = OffsetCommitRequest {
                group_id: group.clone(),
                member_id: member.into(),
                generation,
                retention_ms: None,
                offsets: vec![(
                    ("t".into(), 0),
                    OffsetCommit {
                        offset: 9,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                )],
            };
            let out = h.c.commit_offsets(h.now, to, commit);
            h.feed(out);
            assert_eq!(
                h.commit_result(to.0),
                Some(Err(InvalidGroupId)),
                "commit {group:?}"
            );
        }

        assert_eq!(h.c.fetch_offsets(group, None), Err(InvalidGroupId));
        let to = h.next();
        let out = h.c.delete_group(h.now, to, group);
        h.feed(out);
        assert!(
            matches!(h.replies[&to.0], Response::DeleteGroup(Err(InvalidGroupId))),
            "delete {group:?}"
        );
    }
    assert_eq!(
        (
            h.c.group_ids(),
            h.c.describe_group(G),
            h.fetched(),
            h.appended.len()
        ),
        before,
        "no group made, nothing appended, the real group untouched"
    );
    assert_eq!(h.heartbeat(&ids[0], 1), Ok(()));

    // The limit itself (255 bytes) is a valid group id.
    let mut join = H::join_req("", &["range"]);
    join.group_id = "g".repeat(255);
    let t = h.send_join(join);
    h.settle(&[t]);
    assert_eq!(h.join_error(t), None);
}

#[test]
fn the_coordinator_partition_uses_the_java_string_hash() {
    assert_eq!(java_string_hash_code("foo"), 101_574);
    assert_eq!(partition_for_group("foo", 10), 4);
}

#[test]
fn protocols_must_be_compatible_with_the_members() {
    let mut h = H::new();
    h.stable(1);
    let mut connect = H::join_req("", &["range"]);
    connect.protocol_type = "connect".into();
    let t = h.send_join(connect);
    assert_eq!(h.join_error(t), Some(InconsistentGroupProtocol));
    let mut empty_type = H::join_req("", &["range"]);
    empty_type.protocol_type = String::new();
    let t = h.send_join(empty_type);
    assert_eq!(h.join_error(t), Some(InconsistentGroupProtocol));
    let t = h.send_join(H::join_req("", &[]));
    assert_eq!(h.join_error(t), Some(InconsistentGroupProtocol));
    let t = h.send_join(H::join_req("", &["roundrobin"]));
    assert_eq!(h.join_error(t), Some(InconsistentGroupProtocol));

    // An empty group accepts any non-empty choice.
    let mut fresh = H::new();
    let mut connect = H::join_req("", &["anything"]);
    connect.protocol_type = "connect".into();
    let t = fresh.send_join(connect);
    fresh.advance(51);
    assert_eq!(
        fresh.joined(t).unwrap().protocol_name.as_deref(),
        Some("anything")
    );
}

#[test]
fn the_protocol_is_chosen_by_vote() {
    let mut h = H::new();
    let a = h.send_join(H::join_req("", &["range", "roundrobin"]));
    h.send_join(H::join_req("", &["roundrobin", "range"]));
    h.send_join(H::join_req("", &["roundrobin", "range"]));
    h.settle(&[a]);
    assert_eq!(
        h.joined(a).unwrap().protocol_name.as_deref(),
        Some("roundrobin")
    );

    let mut h = H::new();
    let a = h.send_join(H::join_req("", &["range", "roundrobin"]));
    h.send_join(H::join_req("", &["roundrobin", "blah"]));
    h.settle(&[a]);
    assert_eq!(
        h.joined(a).unwrap().protocol_name.as_deref(),
        Some("roundrobin")
    );
}

// ---- Generations and the initial rebalance delay ----

#[test]
fn generations_start_at_one_with_the_first_joiner_leading_and_go_up_by_one() {
    let mut h = H::new();
    let first = h.join("");
    let second = h.join("");
    h.settle(&[first, second]);
    let (r1, r2) = (h.joined(first).unwrap(), h.joined(second).unwrap());
    assert_eq!((r1.generation, r2.generation), (1, 1));
    assert!(r1.is_leader() && !r2.is_leader());
    assert_eq!(r1.members.len(), 2);
    assert!(r2.members.is_empty());
    // Rejoining with the same metadata while CompletingRebalance repeats generation 1.
    let again = h.join(&r1.member_id);
    assert_eq!(h.joined(again).unwrap().generation, 1);
    h.send_sync(&r1.member_id, 1, &[]);
    h.send_sync(&r2.member_id, 1, &[]);
    // The leader rejoining starts generation 2; the follower rejoins too.
    let a = h.join(&r1.member_id);
    let b = h.join(&r2.member_id);
    assert_eq!(h.joined(a).unwrap().generation, 2);
    assert_eq!(h.joined(b).unwrap().generation, 2);
    // Everyone leaving: the next generation has no members and no protocol.
    h.leave(&[&r1.member_id, &r2.member_id]);
    let d = h.c.describe_group(G).unwrap();
    assert_eq!(
        (d.state, d.generation, d.protocol_name),
        (GroupState::Empty, 3, None)
    );
}

/// A generation read back from `__consumer_offsets` may be anything: `i32::MAX` wraps to 1
/// on the next rebalance (no overflow panic), a negative one loads as 0 ("none formed"),
/// so a formed generation is always positive.
#[test]
fn a_loaded_generation_of_i32_max_wraps_to_one_and_a_negative_one_loads_as_zero() {
    for (stored, loaded) in [(i32::MAX, i32::MAX), (-7, 0)] {
        let mut h = H::new();
        let metadata = GroupMetadata {
            protocol_type: "consumer".into(),
            generation: stored,
            ..GroupMetadata::default()
        };
        h.c.load_group(0, G, Some(&metadata), Vec::new());
        let d = h.c.describe_group(G).unwrap();
        assert_eq!((d.state, d.generation), (GroupState::Empty, loaded));
        let t = h.join("");
        h.settle(&[t]);
        let joined = h.joined(t).unwrap();
        assert_eq!(
            (joined.error, joined.generation),
            (None, 1),
            "stored {stored}"
        );
    }
}

#[test]
fn the_first_join_waits_for_the_initial_delay() {
    let mut h = H::new();
    let t = h.join("");
    h.advance(25);
    assert!(h.joined(t).is_none());
    h.advance(26);
    assert_eq!(h.joined(t).unwrap().generation, 1);
}

#[test]
fn a_joiner_during_the_initial_delay_extends_it() {
    let mut h = H::new();
    let first = h.join("");
    h.advance(49);
    let second = h.join("");
    h.advance(2); // 51
    assert!(h.joined(first).is_none() && h.joined(second).is_none());
    h.advance(26); // 77
    assert!(h.joined(first).is_none() && h.joined(second).is_none());
    h.advance(25); // 102
    assert_eq!(h.joined(first).unwrap().generation, 1);
    assert_eq!(h.joined(second).unwrap().generation, 1);
}

#[test]
fn the_initial_delay_stops_at_the_rebalance_timeout() {
    let mut h = H::new();
    let join = |h: &mut H| h.send_join(H::join_req("", &["range"]).timeouts(TIMEOUT, 100));
    let first = join(&mut h);
    let second = join(&mut h);
    h.advance(51);
    let third = join(&mut h);
    h.advance(50); // 101
    for t in [first, second, third] {
        assert!(h.joined(t).is_none());
    }
    h.advance(1); // 102
    for t in [first, second, third] {
        assert_eq!(h.joined(t).unwrap().generation, 1);
    }
}

// ---- KIP-394 member ids and pending members ----

#[test]
fn a_first_join_gets_a_member_id_to_join_again_with() {
    let mut h = H::new();
    let ids = h.stable(1);
    let t = h.send_join(H::join_req("", &["range"]).require_known_member_id(true));
    let r = h.joined(t).unwrap();
    assert_eq!(r.error, Some(MemberIdRequired));
    assert!(r.member_id.starts_with("client-"));
    assert_eq!(h.state(), Some(GroupState::Stable));
    assert_eq!(h.c.describe_group(G).unwrap().pending_members, 1);
    // A different protocol with that id is refused.
    let t = h.send_join(H::join_req(&r.member_id, &["roundrobin"]));
    assert_eq!(h.join_error(t), Some(InconsistentGroupProtocol));
    // Never rejoining: it expires after its session and nothing changes.
    h.advance(300);
    assert_eq!(h.heartbeat(&ids[0], 1), Ok(()));
    h.advance(201);
    let d = h.c.describe_group(G).unwrap();
    assert_eq!(
        (d.state, d.pending_members, d.members.len()),
        (GroupState::Stable, 0, 1)
    );
    assert_eq!(d.members[0].0, ids[0]);
}

fn rebalance_with_a_pending_member(h: &mut H) -> (Vec<String>, String, u64, u64) {
    let ids = h.stable(2);
    let pending = h.send_join(
        H::join_req("", &["range"])
            .require_known_member_id(true)
            .timeouts(100, TIMEOUT),
    );
    let pending_id = h.joined(pending).unwrap().member_id;
    let a = h.join(&ids[0]);
    let b = h.join(&ids[1]);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert!(
        h.joined(a).is_none(),
        "the phase waits for the pending member"
    );
    (ids, pending_id, a, b)
}

#[test]
fn a_pending_member_that_completes_its_join_is_in_the_generation() {
    let mut h = H::new();
    let (_, pending_id, a, _) = rebalance_with_a_pending_member(&mut h);
    h.join(&pending_id);
    assert_eq!(h.joined(a).unwrap().members.len(), 3);
}

#[test]
fn a_pending_member_that_times_out_or_leaves_is_not_waited_for() {
    let mut h = H::new();
    let (_, _, a, _) = rebalance_with_a_pending_member(&mut h);
    h.advance(101);
    let r = h.joined(a).unwrap();
    assert_eq!(r.members.len(), 2);
    assert_eq!(h.c.describe_group(G).unwrap().pending_members, 0);

    let mut h = H::new();
    let (_, pending_id, a, _) = rebalance_with_a_pending_member(&mut h);
    assert_eq!(h.leave(&[&pending_id]).members[0].1, Ok(()));
    assert_eq!(h.joined(a).unwrap().members.len(), 2);
}

// ---- group.max.size ----

#[test]
fn the_fifth_joiner_is_refused_and_accepted_members_can_rejoin() {
    let mut h = H::new();
    let tokens: Vec<u64> = (0..5).map(|_| h.join("")).collect();
    assert_eq!(h.join_error(tokens[4]), Some(GroupMaxSizeReached));
    h.settle(&tokens[..4]);
    let ids: Vec<String> = tokens[..4]
        .iter()
        .map(|t| h.joined(*t).unwrap().member_id)
        .collect();
    assert_eq!(h.c.describe_group(G).unwrap().members.len(), 4);
    let rejoin: Vec<u64> = ids.iter().map(|id| h.join(id)).collect();
    for t in rejoin {
        assert_eq!(h.joined(t).unwrap().error, None);
    }
    let t = h.join("");
    assert_eq!(h.join_error(t), Some(GroupMaxSizeReached));
}

#[test]
fn the_last_members_to_rejoin_beyond_the_max_size_are_kicked_out() {
    let mut h = H::new();
    let ids = h.stable(4);
    // The leader rejoins; during the phase a newcomer fits (3 of 4 slots still free), so the
    // group holds five members and the last one to rejoin finds no slot left.
    let leader = h.join(&ids[0]);
    let newcomer = h.join("");
    let rejoins: Vec<u64> = ids[1..].iter().map(|id| h.join(id)).collect();
    assert_eq!(h.join_error(rejoins[2]), Some(GroupMaxSizeReached));
    let r = h.joined(leader).unwrap();
    assert_eq!((r.generation, r.members.len()), (2, 4));
    assert!(h.joined(newcomer).unwrap().error.is_none());
    assert!(!r.members.iter().any(|m| m.member_id == ids[3]));
}

// ---- Heartbeats and sessions ----

#[test]
fn heartbeat_answers_by_state() {
    let mut h = H::new();
    assert_eq!(h.heartbeat("nobody", 1), Err(UnknownMemberId));
    let ids = h.stable(2);
    assert_eq!(h.heartbeat(&ids[0], 0), Err(IllegalGeneration));
    assert_eq!(h.heartbeat(&ids[0], 1), Ok(()));
    assert_eq!(h.heartbeat("nobody", 1), Err(UnknownMemberId));
    h.join(&ids[0]);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat(&ids[1], 1), Err(RebalanceInProgress));
    h.join(&ids[1]);
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    assert_eq!(h.heartbeat(&ids[1], 2), Ok(()));
}

#[test]
fn a_silent_member_expires_and_the_last_one_leaves_the_group_empty() {
    let mut h = H::new();
    let ids = h.stable(1);
    h.advance(500);
    assert_eq!(h.heartbeat(&ids[0], 1), Ok(()), "not yet past the session");
    h.advance(501);
    assert_eq!(h.heartbeat(&ids[0], 1), Err(UnknownMemberId));
    assert_eq!(h.state(), Some(GroupState::Empty));
}

#[test]
fn heartbeats_and_commits_keep_the_session_alive() {
    let mut h = H::new();
    let ids = h.stable(1);
    for _ in 0..5 {
        h.advance(400);
        assert_eq!(h.heartbeat(&ids[0], 1), Ok(()));
    }
    for _ in 0..5 {
        h.advance(400);
        assert_eq!(h.commit(&ids[0], 1, 7), Ok(()));
    }
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn a_member_that_does_not_rejoin_drops_out_of_the_rebalance() {
    let mut h = H::new();
    let ids = h.stable(2);
    let a = h.join(&ids[0]);
    h.advance(300);
    assert_eq!(h.heartbeat(&ids[1], 1), Err(RebalanceInProgress));
    h.advance(501);
    assert_eq!(h.heartbeat(&ids[1], 1), Err(UnknownMemberId));
    let r = h.joined(a).unwrap();
    assert_eq!((r.generation, r.members.len()), (2, 1));
}

#[test]
fn a_new_member_waiting_in_a_long_rebalance_is_dropped_after_the_join_timeout() {
    let mut h = H::new();
    // An existing member with a long rebalance timeout that never rejoins.
    let t = h.send_join(H::join_req("", &["range"]).timeouts(TIMEOUT, 600_000));
    h.advance(51);
    let old = h.joined(t).unwrap();
    h.send_sync(&old.member_id, 1, &[]);
    let newcomer = h.send_join(H::join_req("", &["range"]).timeouts(TIMEOUT, 600_000));
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    for _ in 0..=750 {
        h.advance(400);
        let _ = h.heartbeat(&old.member_id, 1);
    }
    assert_eq!(h.join_error(newcomer), Some(UnknownMemberId));
    assert_eq!(
        h.heartbeat(&old.member_id, 1),
        Err(RebalanceInProgress),
        "existing member unaffected"
    );
}

// ---- Rejoins in Stable ----

#[test]
fn an_unchanged_follower_rejoin_does_not_rebalance_but_the_leader_does() {
    let mut h = H::new();
    let ids = h.stable(2);
    let t = h.join(&ids[1]);
    let r = h.joined(t).unwrap();
    assert_eq!((r.generation, r.error), (1, None));
    assert_eq!(h.state(), Some(GroupState::Stable));
    h.join(&ids[0]);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
}

// ---- SyncGroup ----

#[test]
fn a_follower_syncing_first_waits_for_the_leader() {
    let mut h = H::new();
    let a = h.join("");
    let b = h.join("");
    h.settle(&[a, b]);
    let (leader, follower) = (
        h.joined(a).unwrap().member_id,
        h.joined(b).unwrap().member_id,
    );
    let fs = h.send_sync(&follower, 1, &[]);
    assert!(h.synced(fs).is_none());
    let ls = h.send_sync(&leader, 1, &[(&leader, b"L"), (&follower, b"F")]);
    assert_eq!(h.synced(fs).unwrap().assignment, b"F");
    assert_eq!(h.synced(ls).unwrap().assignment, b"L");
    // After the leader, a sync is answered at once.
    let again = h.send_sync(&follower, 1, &[]);
    assert_eq!(h.synced(again).unwrap().assignment, b"F");
}

#[test]
fn a_member_missing_from_the_leaders_map_gets_an_empty_assignment() {
    let mut h = H::new();
    let a = h.join("");
    let b = h.join("");
    h.settle(&[a, b]);
    let (leader, follower) = (
        h.joined(a).unwrap().member_id,
        h.joined(b).unwrap().member_id,
    );
    h.send_sync(&leader, 1, &[]);
    let fs = h.send_sync(&follower, 1, &[]);
    assert_eq!(
        h.synced(fs).unwrap(),
        SyncGroupResponse {
            error: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Vec::new()
        }
    );
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn sync_refuses_strangers_old_generations_and_other_protocols() {
    let mut h = H::new();
    let t = h.send_sync("nobody", 1, &[]);
    assert_eq!(h.synced(t).unwrap().error, Some(UnknownMemberId));
    let ids = h.stable(1);
    let t = h.send_sync("nobody", 1, &[]);
    assert_eq!(h.synced(t).unwrap().error, Some(UnknownMemberId));
    let t = h.send_sync(&ids[0], 2, &[]);
    assert_eq!(h.synced(t).unwrap().error, Some(IllegalGeneration));
    for (ptype, pname) in [(Some("connect"), None), (None, Some("roundrobin"))] {
        let to = h.next();
        let req = SyncGroupRequest {
            group_id: G.into(),
            member_id: ids[0].clone(),
            generation: 1,
            protocol_type: ptype.map(Into::into),
            protocol_name: pname.map(Into::into),
            ..Default::default()
        };
        let out = h.c.sync_group(h.now, to, req);
        h.feed(out);
        assert_eq!(
            h.synced(to.0).unwrap().error,
            Some(InconsistentGroupProtocol)
        );
    }
}

#[test]
fn members_that_never_sync_are_removed_at_the_rebalance_timeout() {
    // Nobody syncs: everyone goes.
    let mut h = H::new();
    let tokens: Vec<u64> = (0..2).map(|_| h.join("")).collect();
    h.settle(&tokens);
    assert!(tokens.iter().all(|t| h.joined(*t).is_some()));
    h.advance(501);
    assert_eq!(h.state(), Some(GroupState::Empty));

    // Only the leader syncs: the followers go and the leader sees a rebalance.
    let mut h = H::new();
    let a = h.join("");
    h.join("");
    h.settle(&[a]);
    let leader = h.joined(a).unwrap().member_id;
    let ls = h.send_sync(&leader, 1, &[]);
    assert_eq!(h.synced(ls).unwrap().error, None);
    h.advance(400);
    assert_eq!(h.heartbeat(&leader, 1), Ok(()));
    h.advance(101);
    assert_eq!(h.heartbeat(&leader, 1), Err(RebalanceInProgress));
    assert_eq!(h.c.describe_group(G).unwrap().members.len(), 1);

    // The leader never syncs: it goes, the waiting follower gets REBALANCE_IN_PROGRESS.
    let mut h = H::new();
    h.join("");
    let b = h.join("");
    h.settle(&[b]);
    let follower = h.joined(b).unwrap().member_id;
    let fs = h.send_sync(&follower, 1, &[]);
    h.advance(400);
    assert_eq!(h.heartbeat(&follower, 1), Ok(()));
    h.advance(101);
    assert_eq!(h.synced(fs).unwrap().error, Some(RebalanceInProgress));
    assert_eq!(h.c.describe_group(G).unwrap().members.len(), 1);

    // Everyone synced: nobody is removed.
    let mut h = H::new();
    h.stable(3);
    h.advance(499);
    let d = h.c.describe_group(G).unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Stable, 3));
}

#[test]
fn the_assignment_is_handed_out_only_after_its_append() {
    let mut h = H::new();
    let a = h.join("");
    h.advance(51);
    let leader = h.joined(a).unwrap().member_id;
    h.hold = true;
    let ls = h.send_sync(&leader, 1, &[(&leader, b"x")]);
    assert!(h.synced(ls).is_none());
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    h.release(0, Err(AppendError::NotLeaderOrFollower));
    assert_eq!(h.synced(ls).unwrap().error, Some(NotCoordinator));
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
}

// ---- LeaveGroup ----

#[test]
fn leave_removes_members_and_rebalances_or_empties_the_group() {
    let mut h = H::new();
    let unknown_group = h.leave(&["m"]);
    assert_eq!(
        (unknown_group.error, unknown_group.members[0].1),
        (None, Err(UnknownMemberId))
    );
    let ids = h.stable(2);
    let r = h.leave(&["stranger"]);
    assert_eq!((r.error, r.members[0].1), (None, Err(UnknownMemberId)));
    assert_eq!(h.leave(&[&ids[1]]).members[0].1, Ok(()));
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    // The leader alone rejoins; generation 2 forms with it.
    let t = h.join(&ids[0]);
    assert_eq!(h.joined(t).unwrap().members.len(), 1);
    h.leave(&[&ids[0]]);
    assert_eq!(h.state(), Some(GroupState::Empty));
}

// ---- Dead groups ----

#[test]
fn a_dead_group_answers_coordinator_not_available() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 5), Ok(()));
    h.hold = true;
    let to = h.next();
    let out = h.c.delete_group(h.now, to, G);
    h.feed(out);
    assert_eq!(h.state(), Some(GroupState::Dead));
    let t = h.join("");
    assert_eq!(h.join_error(t), Some(CoordinatorNotAvailable));
    let t = h.send_sync("m", 1, &[]);
    assert_eq!(h.synced(t).unwrap().error, Some(CoordinatorNotAvailable));
    assert_eq!(h.heartbeat("m", 1), Err(CoordinatorNotAvailable));
    assert_eq!(h.commit("m", 1, 1), Err(CoordinatorNotAvailable));
    assert_eq!(h.leave(&["m"]).error, Some(CoordinatorNotAvailable));
    h.release(0, Ok(()));
    assert_eq!(h.replies[&to.0], Response::DeleteGroup(Ok(())));
    assert_eq!(h.state(), None);
    assert_eq!(h.fetched(), None, "deleted offsets read back as nothing");
}

/// The tombstones of a deletion did not make it to `__consumer_offsets`, so the offsets
/// are still there (they come back on the next load): the coordinator keeps serving them
/// and the group can be deleted again.
#[test]
fn a_failed_deletion_keeps_the_group_empty_with_its_offsets() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 42), Ok(()));
    h.hold = true;
    let to = h.next();
    let out = h.c.delete_group(h.now, to, G);
    h.feed(out);
    assert_eq!(h.state(), Some(GroupState::Dead));
    assert_eq!(h.fetched(), None, "a Dead group has no offsets (Kafka: -1)");
    h.release(0, Err(AppendError::NotEnoughReplicas));
    assert_eq!(
        h.replies[&to.0],
        Response::DeleteGroup(Err(CoordinatorNotAvailable))
    );
    assert_eq!(h.state(), Some(GroupState::Empty));
    assert_eq!(h.fetched(), Some(42), "the offset is still committed");
    h.hold = false;
    assert_eq!(h.commit("", -1, 43), Ok(()));
    let to = h.next();
    let out = h.c.delete_group(h.now, to, G);
    h.feed(out);
    assert_eq!(h.replies[&to.0], Response::DeleteGroup(Ok(())));
    assert_eq!((h.state(), h.fetched()), (None, None));
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut h = H::new();
    let to = h.next();
    let out = h.c.delete_group(0, to, G);
    h.feed(out);
    assert_eq!(
        h.replies[&to.0],
        Response::DeleteGroup(Err(GroupIdNotFound))
    );
    h.stable(1);
    let to = h.next();
    let out = h.c.delete_group(h.now, to, G);
    h.feed(out);
    assert_eq!(h.replies[&to.0], Response::DeleteGroup(Err(NonEmptyGroup)));
}

/// A member told to join again with its new id (MemberIdRequired) leaves the group Empty,
/// and Kafka deletes an Empty group whatever waits to join it.
#[test]
fn an_empty_group_with_a_member_yet_to_join_can_be_deleted() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 5), Ok(()));
    let join = h.send_join(H::join_req("", &["range"]).require_known_member_id(true));
    assert!(matches!(
        h.replies.get(&join),
        Some(Response::Join(r)) if r.error == Some(MemberIdRequired)
    ));
    assert_eq!(h.state(), Some(GroupState::Empty));
    let to = h.next();
    let out = h.c.delete_group(h.now, to, G);
    h.feed(out);
    assert_eq!(h.replies[&to.0], Response::DeleteGroup(Ok(())));
    assert_eq!((h.state(), h.fetched()), (None, None));
}

// ---- OffsetCommit and OffsetFetch (section 9) ----

#[test]
fn simple_commits_work_on_missing_or_empty_groups_only() {
    let mut h = H::new();
    assert_eq!(
        h.commit("", 1, 5),
        Err(IllegalGeneration),
        "unknown group, real generation"
    );
    assert_eq!(h.commit("", -1, 5), Ok(()));
    assert_eq!(h.commit("unknown", -1, 6), Ok(()));
    assert_eq!(h.fetched(), Some(6));
    h.stable(1);
    assert_eq!(h.commit("", -1, 7), Err(UnknownMemberId));
    assert_eq!(h.fetched(), Some(6));
}

#[test]
fn commits_check_member_generation_and_state() {
    let mut h = H::new();
    let a = h.join("");
    h.join("");
    h.settle(&[a]);
    let leader = h.joined(a).unwrap().member_id;
    // CompletingRebalance.
    assert_eq!(h.commit(&leader, 0, 1), Err(IllegalGeneration));
    assert_eq!(h.commit(&leader, 2, 1), Err(IllegalGeneration));
    assert_eq!(h.commit("stranger", 1, 1), Err(UnknownMemberId));
    assert_eq!(h.commit("", 1, 1), Err(UnknownMemberId));
    assert_eq!(h.commit(&leader, 1, 1), Err(RebalanceInProgress));
    h.send_sync(&leader, 1, &[]);
    assert_eq!(h.commit(&leader, 1, 1), Ok(()));
    assert_eq!(h.fetched(), Some(1));
}

#[test]
fn a_commit_is_visible_only_after_its_append() {
    let mut h = H::new();
    h.hold = true;
    let first = h.send_commit("", -1, 10, "");
    let second = h.send_commit("", -1, 20, "");
    assert_eq!(h.fetched(), None);
    assert!(h.commit_result(first).is_none());
    h.release(0, Err(AppendError::NotEnoughReplicas));
    assert_eq!(h.commit_result(first), Some(Err(CoordinatorNotAvailable)));
    assert_eq!(
        h.fetched(),
        None,
        "the failed value is discarded, the second still pending"
    );
    h.release(0, Ok(()));
    assert_eq!(h.commit_result(second), Some(Ok(())));
    assert_eq!(h.fetched(), Some(20));
    // Two successes install in order.
    let a = h.send_commit("", -1, 30, "");
    let b = h.send_commit("", -1, 40, "");
    h.release(0, Ok(()));
    assert_eq!(h.fetched(), Some(30));
    h.release(0, Ok(()));
    assert_eq!(h.fetched(), Some(40));
    assert!(h.commit_result(a).is_some() && h.commit_result(b).is_some());
}

#[test]
fn append_errors_map_to_commit_errors() {
    use AppendError::*;
    let cases = [
        (UnknownTopicOrPartition, CoordinatorNotAvailable),
        (NotEnoughReplicas, CoordinatorNotAvailable),
        (NotEnoughReplicasAfterAppend, CoordinatorNotAvailable),
        (NotLeaderOrFollower, NotCoordinator),
        (MessageTooLarge, InvalidCommitOffsetSize),
        (RecordListTooLarge, InvalidCommitOffsetSize),
        (InvalidFetchSize, InvalidCommitOffsetSize),
        (CorruptMessage, GroupError::CorruptMessage),
    ];
    for (append, expected) in cases {
        let mut h = H::new();
        h.hold = true;
        let t = h.send_commit("", -1, 10, "");
        h.release(0, Err(append));
        assert_eq!(h.commit_result(t), Some(Err(expected)));
        assert_eq!(h.fetched(), None);
    }
    assert_eq!(MessageTooLarge.group_error(), UnknownServerError);
}

#[test]
fn oversize_metadata_is_refused_and_nothing_is_stored() {
    let mut h = H::new();
    let t = h.send_commit("", -1, 10, &"x".repeat(4097));
    assert_eq!(h.commit_result(t), Some(Err(OffsetMetadataTooLarge)));
    assert_eq!(h.fetched(), None);
    assert!(h.appended.is_empty());
}

#[test]
fn fetch_returns_what_was_committed() {
    let mut h = H::new();
    assert_eq!(h.c.fetch_offsets(G, None), Ok(Vec::new()));
    h.now = 1_000;
    let to = h.next();
    let req = OffsetCommitRequest {
        group_id: G.into(),
        member_id: String::new(),
        generation: -1,
        retention_ms: Some(1234),
        offsets: vec![(
            ("t".into(), 0),
            OffsetCommit {
                offset: 97,
                leader_epoch: Some(15),
                metadata: "some metadata".into(),
            },
        )],
    };
    let out = h.c.commit_offsets(h.now, to, req);
    h.feed(out);
    let all = h.c.fetch_offsets(G, None).unwrap();
    let expected = OffsetAndMetadata {
        offset: 97,
        leader_epoch: Some(15),
        metadata: "some metadata".into(),
        commit_timestamp: 1_000,
        expire_timestamp: Some(2_234),
    };
    assert_eq!(all, vec![(("t".to_string(), 0), Some(expected))]);
    let other = [("t".to_string(), 1)];
    assert_eq!(
        h.c.fetch_offsets(G, Some(&other)).unwrap(),
        vec![(other[0].clone(), None)]
    );
    // The append carried the same value for __consumer_offsets.
    let PersistRecord::Offsets(records) = &h.appended[0].record else {
        panic!()
    };
    assert_eq!(records[0].1.expire_timestamp, Some(2_234));
    assert_eq!(h.appended[0].offsets_partition, partition_for_group(G, 50));
}

/// Both records go into one batch, and replaying `__consumer_offsets` keeps the later one:
/// the coordinator's cache must agree with what a reload will find.
#[test]
fn a_partition_committed_twice_in_one_request_keeps_the_later_offset_as_the_log_does() {
    let mut h = H::new();
    let to = h.next();
    let commit = |offset| OffsetCommit {
        offset,
        leader_epoch: None,
        metadata: String::new(),
    };
    let req = OffsetCommitRequest {
        group_id: G.into(),
        member_id: String::new(),
        generation: -1,
        retention_ms: None,
        offsets: vec![(("t".into(), 0), commit(5)), (("t".into(), 0), commit(7))],
    };
    let out = h.c.commit_offsets(h.now, to, req);
    h.feed(out);
    let PersistRecord::Offsets(records) = &h.appended[0].record else {
        panic!()
    };
    let last_in_log = records.last().map(|(_, v)| v.offset);
    assert_eq!(last_in_log, Some(7));
    assert_eq!(h.fetched(), last_in_log);
}

#[test]
fn generation_metadata_is_persisted_when_a_group_forms_and_empties() {
    let mut h = H::new();
    let ids = h.stable(2);
    let PersistRecord::Group(snapshot) = &h.appended.last().unwrap().record else {
        panic!()
    };
    assert_eq!(snapshot.generation, 1);
    assert_eq!(snapshot.members.len(), 2);
    assert_eq!(snapshot.members[0].assignment, ids[0].as_bytes());
    h.leave(&[&ids[0], &ids[1]]);
    let PersistRecord::Group(snapshot) = &h.appended.last().unwrap().record else {
        panic!()
    };
    assert_eq!((snapshot.generation, snapshot.members.len()), (2, 0));
}

/// Extreme settings are the caller's to choose: an initial delay of `i64::MAX` and a join
/// with a negative rebalance timeout neither overflow nor complete the join early.
#[test]
fn an_extreme_initial_delay_with_a_negative_rebalance_timeout_does_not_overflow() {
    let mut h = H::with(CoordinatorConfig {
        initial_rebalance_delay_ms: i64::MAX,
        ..config()
    });
    let token = h.send_join(H::join_req("", &["range"]).timeouts(TIMEOUT, -5));
    h.now = 60_000;
    let out = h.c.tick(h.now);
    h.feed(out);
    let answer = h.joined(token);
    assert!(answer.is_none(), "the join waits out the delay: {answer:?}");
}

// ---- Deleted topics (Kafka's onPartitionsDeleted / cleanupGroupMetadata) ----

/// A simple commit (generation -1) of `offset` to each of `partitions` for `group`.
fn commit_to(h: &mut H, group: &str, partitions: &[(&str, u32)], offset: u64) {
    let to = h.next();
    let req = OffsetCommitRequest {
        group_id: group.into(),
        member_id: String::new(),
        generation: -1,
        retention_ms: None,
        offsets: partitions
            .iter()
            .map(|(t, p)| {
                let commit = OffsetCommit {
                    offset,
                    leader_epoch: None,
                    metadata: String::new(),
                };
                (((*t).to_string(), *p), commit)
            })
            .collect(),
    };
    let out = h.c.commit_offsets(h.now, to, req);
    h.feed(out);
}

fn committed_topics(h: &H, group: &str) -> Vec<(String, u32)> {
    h.c.fetch_offsets(group, None)
        .unwrap()
        .into_iter()
        .map(|(tp, _)| tp)
        .collect()
}

#[test]
fn deleting_a_topic_drops_its_offsets_keeps_other_topics_and_kills_groups_left_empty() {
    let mut h = H::new();
    // G: a Stable group with offsets of t and u; "only-t": Empty, offsets of t only;
    // "only-u": Empty, offsets of u only.
    let ids = h.stable(1);
    let to = h.next();
    let req = OffsetCommitRequest {
        group_id: G.into(),
        member_id: ids[0].clone(),
        generation: 1,
        retention_ms: None,
        offsets: [("t", 0), ("t", 1), ("u", 0)]
            .iter()
            .map(|(t, p)| {
                let commit = OffsetCommit {
                    offset: 7,
                    leader_epoch: None,
                    metadata: String::new(),
                };
                (((*t).to_string(), *p), commit)
            })
            .collect(),
    };
    let out = h.c.commit_offsets(h.now, to, req);
    h.feed(out);
    commit_to(&mut h, "only-t", &[("t", 0), ("t", 3)], 5);
    commit_to(&mut h, "only-u", &[("u", 0)], 5);
    h.appended.clear();

    let (out, removed) = h.c.delete_topic_offsets(h.now, "t");
    h.feed(out);
    assert_eq!(removed, 4);
    assert_eq!(committed_topics(&h, G), [("u".to_string(), 0)]);
    assert_eq!(
        h.state(),
        Some(GroupState::Stable),
        "a group with members stays"
    );
    assert_eq!(
        h.c.describe_group("only-t"),
        None,
        "Empty and no offsets: Dead"
    );
    assert_eq!(committed_topics(&h, "only-u"), [("u".to_string(), 0)]);
    assert_eq!(h.c.group_ids(), [G, "only-u"]);

    // The tombstones asked for: the offsets of t, and the dead group's metadata too.
    let mut records: Vec<(String, PersistRecord)> = h
        .appended
        .iter()
        .map(|p| (p.group_id.clone(), p.record.clone()))
        .collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    let t = |p: u32| ("t".to_string(), p);
    assert_eq!(
        records,
        [
            (
                G.to_string(),
                PersistRecord::DeleteOffsets(vec![t(0), t(1)])
            ),
            (
                "only-t".to_string(),
                PersistRecord::DeleteGroup {
                    offsets: vec![t(0), t(3)]
                }
            ),
        ]
    );
    // A second deletion of the same name finds nothing left to remove.
    h.appended.clear();
    let (out, removed) = h.c.delete_topic_offsets(h.now, "t");
    h.feed(out);
    assert_eq!((removed, h.appended.len()), (0, 0));
}

/// The tombstones did not make it to `__consumer_offsets`: the offsets are still in the
/// log, so the cache keeps them and the dead group is Empty again; a retry removes them.
#[test]
fn a_deleted_topics_offsets_whose_tombstones_failed_are_kept_for_a_retry() {
    let mut h = H::new();
    commit_to(&mut h, G, &[("t", 0)], 42);
    h.hold = true;
    let (out, _) = h.c.delete_topic_offsets(h.now, "t");
    h.feed(out);
    assert_eq!(h.state(), Some(GroupState::Dead));
    assert_eq!(h.fetched(), None);
    h.release(0, Err(AppendError::NotEnoughReplicas));
    assert_eq!(h.state(), Some(GroupState::Empty));
    assert_eq!(h.fetched(), Some(42));
    h.hold = false;
    let (out, removed) = h.c.delete_topic_offsets(h.now, "t");
    h.feed(out);
    assert_eq!((removed, h.state(), h.fetched()), (1, None, None));
}

/// A commit still being appended when its topic is deleted is in the log before the
/// tombstones, so they must cover it (or a reload would bring the offset back); it is
/// answered, and whatever it installs leaves the cache once the tombstones are in,
/// whichever append is acknowledged first.
#[test]
fn a_commit_in_flight_when_its_topic_is_deleted_is_tombstoned_too() {
    for commit_answered_first in [true, false] {
        let mut h = H::new();
        let ids = h.stable(1);
        h.hold = true;
        let token = h.send_commit(&ids[0], 1, 9, "");
        let (out, _) = h.c.delete_topic_offsets(h.now, "t");
        h.feed(out);
        assert_eq!(h.held.len(), 2, "the commit, then its tombstone");
        assert_eq!(
            h.held[1].record,
            PersistRecord::DeleteOffsets(vec![("t".to_string(), 0)])
        );
        if commit_answered_first {
            h.release(0, Ok(()));
            h.release(0, Ok(()));
        } else {
            h.release(1, Ok(()));
            h.release(0, Ok(()));
        }
        assert_eq!(h.commit_result(token), Some(Ok(())));
        assert_eq!(
            h.fetched(),
            None,
            "commit answered first: {commit_answered_first}"
        );
    }
}

/// If those tombstones fail, the commit they were to cover is still in the log: it stays
/// in the cache, so that the retry of the topic's deletion finds and deletes it.
#[test]
fn a_commit_in_flight_whose_topic_tombstones_fail_stays_for_the_retry() {
    let mut h = H::new();
    let ids = h.stable(1);
    h.hold = true;
    h.send_commit(&ids[0], 1, 9, "");
    let (out, _) = h.c.delete_topic_offsets(h.now, "t");
    h.feed(out);
    h.release(0, Ok(()));
    h.release(0, Err(AppendError::NotLeaderOrFollower));
    assert_eq!(h.fetched(), Some(9));
    let (out, removed) = h.c.delete_topic_offsets(h.now, "t");
    assert_eq!(removed, 1);
    h.feed(out);
    h.release(0, Ok(()));
    assert_eq!(h.fetched(), None);
}

/// A group deleted while a commit is being appended: the commit's record precedes the
/// deletion's tombstones, which must cover its partition too, and once the deletion is
/// in, a late answer to the commit installs nothing (not even into a new group of the
/// same id).
#[test]
fn a_group_deleted_while_a_commit_is_in_flight_tombstones_that_commit_too() {
    let mut h = H::new();
    h.hold = true;
    let first = h.simple_commit(0, 5);
    h.release(0, Ok(()));
    assert_eq!(h.commit_result(first), Some(Ok(())));
    let late = h.simple_commit(1, 7);
    let to = h.next();
    let out = h.c.delete_group(h.now, to, G);
    h.feed(out);
    let PersistRecord::DeleteGroup { offsets } = &h.held[1].record else {
        panic!("not a group deletion: {:?}", h.held[1].record);
    };
    assert_eq!(offsets, &[("t".to_string(), 0), ("t".to_string(), 1)]);
    h.release(1, Ok(()));
    assert!(matches!(
        h.replies.get(&to.0),
        Some(Response::DeleteGroup(Ok(())))
    ));
    h.hold = false;
    let fresh = h.simple_commit(0, 1);
    assert_eq!(h.commit_result(fresh), Some(Ok(())));
    h.release(0, Ok(()));
    assert_eq!(h.commit_result(late), Some(Ok(())));
    let tp = [("t".to_string(), 1)];
    assert_eq!(h.c.fetch_offsets(G, Some(&tp)).unwrap()[0].1, None);
    assert_eq!(h.fetched(), Some(1));
}
