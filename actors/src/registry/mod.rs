//! The registry: every live actor by id, and the named ones by name, and (for the marker
//! broadcast) in a [`Roster`].

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::any_mailbox::AnyMailbox;
use crate::{ActorId, LookupError, SpawnError};

mod roster;

use roster::Roster;
pub(crate) use roster::{CHUNK, List, slot};

/// The mailboxes of the live actors, for the marker broadcast.
pub(crate) type Mailboxes = List<Arc<dyn AnyMailbox>>;

#[derive(Default)]
pub(crate) struct Registry {
    by_id: crate::system::IdMap<Registered>,
    by_name: DashMap<Arc<str>, ActorId>,
    roster: Roster<Arc<dyn AnyMailbox>>,
}

/// A registered actor: its mailbox and its slot in the roster.
struct Registered {
    mailbox: Arc<dyn AnyMailbox>,
    slot: u32,
}

impl Registry {
    /// A registry with room for `actors` actors (none of them named).
    pub(crate) fn with_capacity(actors: usize) -> Registry {
        Registry {
            by_id: crate::system::sized_map(actors),
            by_name: DashMap::new(),
            roster: Roster::default(),
        }
    }

    /// Registers a new actor (and its name, which must be free).
    pub(crate) fn insert(&self, mailbox: Arc<dyn AnyMailbox>) -> Result<(), SpawnError> {
        self.claim_name(&mailbox)?;
        let slot = self.roster.insert(mailbox.clone());
        self.put(mailbox, slot);
        Ok(())
    }

    /// Registers new actors (a restore's), as [`insert`](Self::insert) does one by one but
    /// taking the roster's lock once. On a name already taken, the actors before it stay
    /// registered, as with `insert`, and the others are not.
    pub(crate) fn insert_all(&self, mailboxes: &[Arc<dyn AnyMailbox>]) -> Result<(), SpawnError> {
        let slots = self.roster.insert_all(mailboxes.iter().cloned());
        for (k, (mailbox, &slot)) in mailboxes.iter().zip(&slots).enumerate() {
            if let Err(taken) = self.claim_name(mailbox) {
                for &slot in &slots[k..] {
                    self.roster.remove(slot);
                }
                return Err(taken);
            }
            self.put(mailbox.clone(), slot);
        }
        Ok(())
    }

    /// Takes `mailbox`'s name for it, if it has one and the name is free.
    fn claim_name(&self, mailbox: &Arc<dyn AnyMailbox>) -> Result<(), SpawnError> {
        if let Some(name) = mailbox.name() {
            match self.by_name.entry(Arc::from(name)) {
                Entry::Occupied(_) => return Err(SpawnError::NameTaken(name.to_owned())),
                Entry::Vacant(free) => {
                    free.insert(mailbox.id());
                }
            }
        }
        Ok(())
    }

    /// Maps `mailbox`'s id to it and its roster `slot`; the id's earlier mailbox, if any,
    /// leaves the roster with its place in the map.
    fn put(&self, mailbox: Arc<dyn AnyMailbox>, slot: u32) {
        if let Some(replaced) = self.by_id.insert(mailbox.id(), Registered { mailbox, slot }) {
            self.roster.remove(replaced.slot);
        }
    }

    /// Removes a stopped actor.
    pub(crate) fn remove(&self, id: ActorId, name: Option<&str>) {
        if let Some((_, gone)) = self.by_id.remove(&id) {
            self.roster.remove(gone.slot);
        }
        if let Some(name) = name {
            self.by_name.remove_if(name, |_, owner| *owner == id);
        }
    }

    pub(crate) fn get(&self, id: ActorId) -> Option<Arc<dyn AnyMailbox>> {
        self.by_id.get(&id).map(|e| e.value().mailbox.clone())
    }

    pub(crate) fn by_name(&self, name: &str) -> Result<Arc<dyn AnyMailbox>, LookupError> {
        self.by_name
            .get(name)
            .map(|e| *e.value())
            .and_then(|id| self.get(id))
            .ok_or_else(|| LookupError::NotFound(name.to_owned()))
    }

    /// Calls `f` for every live actor, holding each registry shard's read lock meanwhile.
    /// `f` may take mailbox locks: no path takes a registry lock while holding a mailbox
    /// lock (mailbox locks only nest the late sink, a leaf).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<dyn AnyMailbox>)) -> usize {
        let mut n = 0;
        for entry in self.by_id.iter() {
            f(&entry.value().mailbox);
            n += 1;
        }
        n
    }

    /// Every live actor's mailbox as of now, and how many there are, for the marker
    /// broadcast: O(1) in the number of actors (see [`Roster`]). Like [`for_each`]
    /// (Self::for_each) it holds every actor registered before the call, none after.
    pub(crate) fn mailboxes(&self) -> (Mailboxes, usize) {
        self.roster.list()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The registered names that start with `prefix`, with their actors' ids (a scan of
    /// every name: for occasional use, such as a rebalance).
    pub(crate) fn names_with_prefix(&self, prefix: &str) -> Vec<(String, ActorId)> {
        self.by_name
            .iter()
            .filter(|e| e.key().starts_with(prefix))
            .map(|e| (e.key().to_string(), *e.value()))
            .collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("actors", &self.by_id.len()).finish()
    }
}
