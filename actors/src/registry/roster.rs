//! Every live actor's mailbox in a list the marker broadcast can take whole in O(1).
//!
//! A snapshot's marker broadcast needs the node's actors as they are when it starts. Taken
//! from the registry's map, that was a clone of every mailbox's `Arc` (a cache miss per
//! actor, on one thread) and a sort into memory order: 18 ms of a 72 ms snapshot of 100k
//! idle actors, before any actor was cut. The roster keeps the mailboxes in slots, in
//! chunks shared copy-on-write: the broadcast clones the chunks' `Arc`s (one per
//! [`CHUNK`] actors) and walks the slots, which are in spawn order (roughly memory order)
//! where none has been reused. A spawn or a stop that changes a chunk the broadcast holds
//! copies that chunk first; the broadcast keeps the list as it was when it started, as the
//! registry's iteration did.

use std::sync::{Arc, Mutex, PoisonError};

/// Slots per chunk.
pub(crate) const CHUNK: usize = 1024;

/// One chunk's slots: a live actor's mailbox, or nothing (never used, or its actor left).
pub(crate) type Chunk<T> = Vec<Option<T>>;

/// The roster's chunks as they were when [`Roster::list`] took them.
pub(crate) type List<T> = Vec<Arc<Chunk<T>>>;

/// The live actors' mailboxes (`T`: `Arc<dyn AnyMailbox>`), by slot.
pub(crate) struct Roster<T> {
    inner: Mutex<Slots<T>>,
}

struct Slots<T> {
    chunks: List<T>,
    /// Slots given back by actors that left, reused first.
    free: Vec<u32>,
    /// Slots ever used (the next new one).
    used: u32,
    /// Slots holding a mailbox.
    live: usize,
}

impl<T> Default for Roster<T> {
    fn default() -> Self {
        Roster {
            inner: Mutex::new(Slots { chunks: Vec::new(), free: Vec::new(), used: 0, live: 0 }),
        }
    }
}

impl<T: Clone> Roster<T> {
    /// Adds `mailbox`; returns its slot, for [`remove`](Self::remove).
    pub(crate) fn insert(&self, mailbox: T) -> u32 {
        self.lock().insert(mailbox)
    }

    /// Adds every one of `mailboxes` under one lock (a restore registers its actors from
    /// several threads at once: a lock per actor made them take turns); returns their
    /// slots, in order.
    pub(crate) fn insert_all(&self, mailboxes: impl IntoIterator<Item = T>) -> Vec<u32> {
        let mut slots = self.lock();
        mailboxes.into_iter().map(|mailbox| slots.insert(mailbox)).collect()
    }

    /// Takes the mailbox out of `slot` (its actor left the registry).
    pub(crate) fn remove(&self, slot: u32) {
        let mut slots = self.lock();
        let taken = slots.at(slot).take();
        if taken.is_some() {
            slots.live -= 1;
            slots.free.push(slot);
        }
        drop(slots);
        drop(taken); // outside the lock: it may be the mailbox's last reference
    }

    /// Every live actor's mailbox as of now, with how many there are: the chunks are
    /// shared, not copied (see the module's documentation).
    pub(crate) fn list(&self) -> (List<T>, usize) {
        let slots = self.lock();
        (slots.chunks.clone(), slots.live)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone> Slots<T> {
    fn insert(&mut self, mailbox: T) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.used;
                self.used += 1;
                if slot as usize / CHUNK == self.chunks.len() {
                    self.chunks.push(Arc::new(vec![None; CHUNK]));
                }
                slot
            }
        };
        *self.at(slot) = Some(mailbox);
        self.live += 1;
        slot
    }

    /// `slot`, in a chunk of its own (copied first if a list holds it).
    fn at(&mut self, slot: u32) -> &mut Option<T> {
        let (chunk, i) = (slot as usize / CHUNK, slot as usize % CHUNK);
        &mut Arc::make_mut(&mut self.chunks[chunk])[i]
    }
}

/// The mailbox at flat position `i` of `list` (`None` past its end or in an empty slot).
pub(crate) fn slot<T>(list: &List<T>, i: usize) -> Option<&T> {
    list.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn live(list: &List<Arc<u32>>) -> Vec<u32> {
        (0..list.len() * CHUNK).filter_map(|i| slot(list, i)).map(|v| **v).collect()
    }

    #[test]
    fn a_list_keeps_the_roster_as_it_was_while_actors_come_and_go() {
        let roster = Roster::default();
        let slots: Vec<u32> = (0..3000).map(|n| roster.insert(Arc::new(n))).collect();
        assert_eq!(slots, (0..3000).collect::<Vec<_>>(), "new slots in spawn order");
        let (before, n) = roster.list();
        assert_eq!(n, 3000);
        assert_eq!(before.len(), 3);
        // Actors leave and arrive while the list is held: it does not see them.
        roster.remove(5);
        roster.remove(6);
        let reused = roster.insert(Arc::new(9999));
        assert_eq!(reused, 6, "the last slot given back is reused first");
        for n in 3000..3100 {
            roster.insert(Arc::new(n));
        }
        assert_eq!(live(&before), (0..3000).collect::<Vec<_>>());
        let (after, n) = roster.list();
        assert_eq!(n, 3000 - 2 + 1 + 100);
        let now = live(&after);
        assert_eq!(now.len(), n);
        assert!(!now.contains(&5) && now.contains(&9999) && now.contains(&3099));
        // A chunk no change touched is shared, not copied; the others were copied.
        assert!(Arc::ptr_eq(&before[1], &after[1]));
        assert!(!Arc::ptr_eq(&before[0], &after[0]) && !Arc::ptr_eq(&before[2], &after[2]));
        assert_eq!(after.len(), 4);
    }

    #[test]
    fn a_batch_takes_slots_as_single_inserts_would() {
        let roster = Roster::default();
        let a = roster.insert(Arc::new(1));
        roster.insert(Arc::new(2));
        roster.remove(a);
        let slots = roster.insert_all((10..1500).map(Arc::new));
        assert_eq!(slots[0], a, "a free slot first");
        assert_eq!(slots[1..], (2..1491).collect::<Vec<_>>()[..]);
        let (list, n) = roster.list();
        assert_eq!(n, 1491);
        assert_eq!(live(&list)[..3], [10, 2, 11]);
    }

    #[test]
    fn removing_a_slot_twice_or_an_empty_one_changes_nothing() {
        let roster = Roster::default();
        let a = roster.insert(Arc::new(1));
        let b = roster.insert(Arc::new(2));
        roster.remove(a);
        roster.remove(a);
        assert_eq!(roster.list().1, 1);
        assert_eq!(roster.insert(Arc::new(3)), a, "given back once, reused once");
        assert_eq!(roster.insert(Arc::new(4)), 2);
        assert_eq!(live(&roster.list().0), vec![3, 2, 4]);
        let _ = b;
    }

    #[test]
    fn the_last_reference_to_a_mailbox_goes_with_its_slot_unless_a_list_holds_it() {
        let roster = Roster::default();
        let mailbox = Arc::new(7);
        let slot = roster.insert(mailbox.clone());
        let (held, _) = roster.list();
        roster.remove(slot);
        assert_eq!(Arc::strong_count(&mailbox), 2, "the held list keeps it");
        drop(held);
        assert_eq!(Arc::strong_count(&mailbox), 1);
    }
}
