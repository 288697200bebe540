//! Leave notices: how the others tell a member that left from one that failed.
//!
//! To SWIM both are a member declared down. A member leaving on purpose first adds a notice
//! naming its incarnation to foca's custom broadcasts, then leaves: foca carries the notice
//! on the same gossip as the leave itself, and a node that holds the notice when it sees the
//! member down reports it left ([`ClusterEvent::MemberLeft`](crate::ClusterEvent)).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use amber_snapshot::SystemId;
use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};

use super::identity::Identity;

/// Notices kept at most; past that, new ones are not kept nor passed on (the member is then
/// reported down rather than left).
const MAX_NOTICES: usize = 4096;

/// "The incarnation `system` of node `node` is leaving."
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Notice {
    pub(crate) node: String,
    pub(crate) system: SystemId,
}

impl Notice {
    pub(crate) fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("a notice always encodes")
    }
}

impl Invalidates for Notice {
    fn invalidates(&self, other: &Notice) -> bool {
        self == other
    }
}

/// The notices seen, shared between foca's handler and the membership driver.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notices(Arc<Mutex<HashSet<Notice>>>);

impl Notices {
    /// Whether `who` announced it was leaving.
    pub(crate) fn left(&self, who: &Identity) -> bool {
        let notice = Notice { node: who.node.clone(), system: who.system };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(&notice)
    }
}

impl BroadcastHandler<Identity> for Notices {
    type Key = Notice;
    type Error = rmp_serde::decode::Error;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&Identity>,
    ) -> Result<Option<Notice>, Self::Error> {
        let notice: Notice = rmp_serde::from_slice(data)?;
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_NOTICES || !seen.insert(notice.clone()) {
            return Ok(None); // known (or no room): not passed on again
        }
        Ok(Some(notice))
    }
}
