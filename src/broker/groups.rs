//! The broker's consumer-group side: the [`GroupService`] (coordinator + `__consumer_offsets`
//! store) is opened on first use — the first [`crate::Broker::consumer`] — which creates
//! `__consumer_offsets` if needed and rebuilds every group from it (S18). A broker that
//! never serves a consumer never creates the topic.

use std::sync::Arc;

use crate::error::Result;
use crate::group::offsets::OffsetsStore;
use crate::group::service::GroupService;
use crate::topic::Topic;

use super::{Broker, Shared};

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

    /// The group service, opened on first use.
    pub(crate) fn group_service(&self) -> Result<Arc<GroupService>> {
        self.shared.ensure_open()?;
        let mut slot = self.shared.groups.lock();
        if let Some(service) = &*slot {
            return Ok(service.clone());
        }
        let config = &self.shared.config;
        let store = OffsetsStore::open(self, config.offsets.clone())?;
        let service = GroupService::new(
            store,
            config.group_coordinator.clone(),
            self.shared.env.clock.clone(),
        )?;
        let service = Arc::new(service);
        *slot = Some(service.clone());
        Ok(service)
    }
}
