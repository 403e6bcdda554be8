//! [`Ctx`]: what a group operation needs besides the group itself — the settings, the
//! current time, the outputs being collected, appends in flight and the id generator.

use crate::group::GroupError;
use crate::group::offsets::partition_for_group;

use super::config::CoordinatorConfig;
use super::member::MemberIds;
use super::persist::{Pending, PersistRecord, Persists};
use super::responses::{JoinGroupResponse, Output, ReplyTo, Response, SyncGroupResponse};

/// The environment of one call into the coordinator.
pub(super) struct Ctx<'a> {
    pub cfg: &'a CoordinatorConfig,
    pub now: i64,
    pub out: &'a mut Vec<Output>,
    pub persists: &'a mut Persists,
    pub ids: &'a mut MemberIds,
}

impl Ctx<'_> {
    /// Answers `to`.
    pub fn reply(&mut self, to: ReplyTo, response: Response) {
        self.out.push(Output::Reply { to, response });
    }

    /// Answers a JoinGroup with an error.
    pub fn join_error(&mut self, to: ReplyTo, member_id: &str, error: GroupError) {
        self.reply(
            to,
            Response::Join(JoinGroupResponse::failed(member_id, error)),
        );
    }

    /// Answers a SyncGroup with an error.
    pub fn sync_error(&mut self, to: ReplyTo, error: GroupError) {
        self.reply(to, Response::Sync(SyncGroupResponse::failed(error)));
    }

    /// Asks for an append for `group_id` and remembers `pending` until it completes.
    pub fn persist(&mut self, group_id: &str, record: PersistRecord, pending: Pending) {
        let partition = partition_for_group(group_id, self.cfg.offsets_topic_partitions);
        self.persists
            .push(self.out, group_id, partition, record, pending);
    }
}
