//! The message type names decoded [`Frame::Message`](super::Frame::Message)s carry, shared
//! instead of copied per message.
//!
//! A link carries the same few type names over and over (one per actor type that gets
//! remote messages), and the receiver only keeps them for diagnostics: a copy and a UTF-8
//! check per message were a tenth of a remote tell's cost. A name seen once is kept for the
//! process's life and handed out as `&'static str`; a thread's recent names are found
//! without a lock. The table is bounded ([`MAX_NAMES`] names of at most [`MAX_LEN`] bytes):
//! past it (a peer sending made-up names), names are copied as before.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Mutex;

/// The most names kept.
const MAX_NAMES: usize = 1024;

/// The longest name kept, in bytes.
const MAX_LEN: usize = 256;

/// Recent names per thread, found without the table's lock.
const RECENT: usize = 8;

/// Every name kept.
static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

thread_local! {
    /// This thread's recent names, most recent first.
    static RECENTLY: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// The name `bytes` spell, shared if it is kept (or can be); `None` if they are not UTF-8.
pub(super) fn shared(bytes: &[u8]) -> Option<Cow<'static, str>> {
    let recent = RECENTLY.with(|recent| {
        let recent = recent.borrow();
        recent.iter().copied().find(|name| name.as_bytes() == bytes)
    });
    if let Some(name) = recent {
        return Some(Cow::Borrowed(name));
    }
    let name = std::str::from_utf8(bytes).ok()?;
    match kept(name) {
        Some(kept) => {
            RECENTLY.with(|recent| {
                let mut recent = recent.borrow_mut();
                if recent.len() == RECENT {
                    recent.pop();
                }
                recent.insert(0, kept);
            });
            Some(Cow::Borrowed(kept))
        }
        None => Some(Cow::Owned(name.to_owned())),
    }
}

/// `name` from the table, put there if there is room; `None` if it is too long or the table
/// is full.
fn kept(name: &str) -> Option<&'static str> {
    if name.len() > MAX_LEN {
        return None;
    }
    let mut names = NAMES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(kept) = names.get(name) {
        return Some(kept);
    }
    if names.len() >= MAX_NAMES {
        return None;
    }
    let kept: &'static str = Box::leak(name.into());
    names.insert(kept);
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_shared_once_kept_and_copied_when_it_cannot_be() {
        let a = shared(b"test.names.A").unwrap();
        let b = shared(b"test.names.A").unwrap();
        assert!(matches!((&a, &b), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y)));
        // Found by another thread too, through the table.
        let c = std::thread::spawn(|| shared(b"test.names.A").unwrap()).join().unwrap();
        assert!(matches!((&a, &c), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y)));
        let long = "x".repeat(MAX_LEN + 1);
        assert!(matches!(shared(long.as_bytes()), Some(Cow::Owned(n)) if n == long));
        assert_eq!(shared(b"\xff\xfe"), None, "not UTF-8");
    }

    #[test]
    fn the_table_is_bounded() {
        for i in 0..MAX_NAMES + 10 {
            let name = format!("test.names.many.{i}");
            assert_eq!(shared(name.as_bytes()).unwrap(), name.as_str());
        }
        let kept = NAMES.lock().unwrap().as_ref().map_or(0, HashSet::len);
        assert!(kept <= MAX_NAMES, "{kept} names kept");
    }
}
