//! Time-driven transitions, fired in deadline order by every call that carries `now_ms`:
//! expiry of outstanding member ids, member sessions (and the new-member join timeout), the
//! end of a PreparingRebalance phase (initial delay or rebalance timeout) and members that
//! never synced. A timer with deadline `d` fires once the clock is past it (`now > d`).

use super::context::Ctx;
use super::group::Group;
use super::state::GroupState;
use super::sync::sync_expired;

/// A timer that is due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    PendingMember(String),
    Session(String),
    Join,
    Sync,
}

impl Group {
    /// Every timer of the group with its deadline.
    fn timers(&self) -> Vec<(i64, Due)> {
        let mut timers: Vec<(i64, Due)> = self
            .pending_members
            .iter()
            .map(|(id, at)| (*at, Due::PendingMember(id.clone())))
            .collect();
        timers.extend(
            self.members
                .values()
                .filter_map(|m| m.expiry().map(|at| (at, Due::Session(m.id.clone())))),
        );
        if self.state == GroupState::PreparingRebalance {
            timers.extend(self.join_timer.map(|t| (t.deadline, Due::Join)));
        }
        timers.extend(self.sync_deadline.map(|at| (at, Due::Sync)));
        timers
    }

    /// When the next timer of the group fires: the earliest deadline (it fires at any time
    /// after it).
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers().into_iter().map(|(at, _)| at).min()
    }

    /// Fires every due timer, earliest first, each at the current time.
    pub fn run_timers(&mut self, cx: &mut Ctx) {
        // Each firing removes or pushes its timer past `now`; the bound only guards bugs.
        let mut budget = 4 * (self.members.len() + self.pending_members.len()) + 16;
        while budget > 0 {
            budget -= 1;
            let Some((_, due)) = self
                .timers()
                .into_iter()
                .filter(|(at, _)| *at < cx.now)
                .min()
            else {
                return;
            };
            self.fire(due, cx);
        }
    }

    fn fire(&mut self, due: Due, cx: &mut Ctx) {
        match due {
            Due::PendingMember(id) => {
                self.pending_members.remove(&id);
                if self.state == GroupState::PreparingRebalance {
                    self.try_complete_join(cx);
                }
            }
            Due::Session(id) => self.remove_member_and_update(&id, cx),
            Due::Join => self.join_timer_expired(cx),
            Due::Sync => sync_expired(self, cx),
        }
    }

    /// The initial delay is extended while members keep arriving (by at most the delay,
    /// never past the rebalance timeout); otherwise the phase completes with whoever joined.
    fn join_timer_expired(&mut self, cx: &mut Ctx) {
        let Some(timer) = self.join_timer.take() else {
            return;
        };
        if let Some(remaining) = timer.initial_remaining
            && self.new_member_added
            && remaining > 0
        {
            self.new_member_added = false;
            let delay = cx.cfg.initial_rebalance_delay_ms.min(remaining);
            self.join_timer = Some(super::group::JoinTimer {
                deadline: cx.now.saturating_add(delay),
                initial_remaining: Some(remaining - delay),
            });
            return;
        }
        self.complete_join(cx);
    }
}
