//! The broker's consumer-group side: the [`GroupService`] (coordinator + `__consumer_offsets`
//! store). It is opened with the broker when `__consumer_offsets` exists, rebuilding every
//! group from it (S18), and otherwise on first use — the first [`crate::Broker::consumer`] —
//! which creates the topic. A broker that never serves a consumer never creates it.
//!
//! While the service is open, a timer thread ticks it every [`TIMER_INTERVAL`] (real time;
//! the coordinator reads the broker's `Clock`), so sessions expire and rebalances complete
//! even when no consumer calls in. Brokers opened with `background_threads(false)` have no
//! timer thread: timers fire when consumers call in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::group::GroupDescription;
use crate::group::offsets::{CONSUMER_OFFSETS_TOPIC, OffsetAndMetadata, OffsetsStore};
use crate::group::service::GroupService;
use crate::topic::Topic;

use super::background::Background;
use super::{Broker, Shared};

/// How often the timer thread ticks the group coordinator.
pub(super) const TIMER_INTERVAL: Duration = Duration::from_millis(50);

/// The open group service and the thread that fires its timers (stopped on drop).
#[derive(Debug)]
pub(super) struct GroupsSlot {
    service: Arc<GroupService>,
    _timers: Option<Background>,
}

/// A handle on an open broker's topics that consumers keep (it does not keep the broker
/// open: once the broker closes, lookups fail with `Closed` / `UnknownTopic`).
#[derive(Debug, Clone)]
pub(crate) struct BrokerHandle(Arc<Shared>);

impl BrokerHandle {
    /// The topic `name`.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.0.ensure_open()?;
        self.0.entry(name).map(|e| e.topic)
    }
}

impl Broker {
    /// A handle on the broker's topics.
    pub(crate) fn handle(&self) -> BrokerHandle {
        BrokerHandle(self.shared.clone())
    }

    /// Opens the group service at broker open when `__consumer_offsets` exists.
    pub(super) fn load_groups(&self) -> Result<()> {
        if self
            .shared
            .topics
            .read()
            .contains_key(CONSUMER_OFFSETS_TOPIC)
        {
            self.group_service()?;
        }
        Ok(())
    }

    /// The group service, opened on first use.
    pub(crate) fn group_service(&self) -> Result<Arc<GroupService>> {
        self.shared.ensure_open()?;
        let mut slot = self.shared.groups.lock();
        if let Some(open) = &*slot {
            return Ok(open.service.clone());
        }
        let config = &self.shared.config;
        let store = OffsetsStore::open(self, config.offsets.clone())?;
        // Each opening of the service draws member ids of its own: a reopened broker
        // must never hand a new consumer the id of a member it loaded from the log.
        let instance = self.shared.env.clock.now_ms() as u64;
        let service = GroupService::new(
            store,
            config.group_coordinator.clone().instance(instance),
            self.shared.env.clock.clone(),
        )?;
        let service = Arc::new(service);
        let timers = if config.background_threads {
            let weak = Arc::downgrade(&service);
            let name = format!("streamlog-groups-{}", config.broker_id);
            Some(Background::start(name, TIMER_INTERVAL, move || {
                if let Some(service) = weak.upgrade() {
                    service.tick();
                }
            })?)
        } else {
            None
        };
        *slot = Some(GroupsSlot {
            service: service.clone(),
            _timers: timers,
        });
        Ok(service)
    }

    /// The ids of the consumer groups this broker coordinates (those rebuilt from
    /// `__consumer_offsets` when it opened, and those formed since), sorted; empty when
    /// the broker has no `__consumer_offsets`.
    pub fn list_groups(&self) -> Result<Vec<String>> {
        let Some(service) = self.open_group_service()? else {
            return Ok(Vec::new());
        };
        let mut ids = service.read(|c| c.group_ids());
        ids.sort();
        Ok(ids)
    }

    /// Group `group_id`'s state, generation, protocol, leader and members, or `None` when
    /// the broker coordinates no such group.
    pub fn describe_group(&self, group_id: &str) -> Result<Option<GroupDescription>> {
        let Some(service) = self.open_group_service()? else {
            return Ok(None);
        };
        Ok(service.read(|c| c.describe_group(group_id)))
    }

    /// Group `group_id`'s committed offsets, by (topic, partition); empty when it has none.
    pub fn committed_offsets(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<(String, u32), OffsetAndMetadata>> {
        let Some(service) = self.open_group_service()? else {
            return Ok(BTreeMap::new());
        };
        Ok(service.store().fetch_all(group_id))
    }

    /// The group service if it is open (it is whenever `__consumer_offsets` exists).
    pub(super) fn open_group_service(&self) -> Result<Option<Arc<GroupService>>> {
        self.shared.ensure_open()?;
        Ok(self
            .shared
            .groups
            .lock()
            .as_ref()
            .map(|s| s.service.clone()))
    }
}
