//! Lying length fields do not make `decode` allocate: measured with a counting allocator.
//!
//! One test in this binary, so that no other test's allocations are counted.

mod checkpoint_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use amber_snapshot::{decode, decode_manifest, encode};
use checkpoint_support::{actor, file_header, record, records, sample};

/// The largest single allocation since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation `f` made.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    f();
    LARGEST.load(Ordering::Relaxed)
}

#[test]
fn lying_lengths_allocate_nothing_large() {
    const LIMIT: usize = 2 << 20;
    let checkpoint = sample(1);
    let manifest = rmp_serde::to_vec_named(&checkpoint.manifest).unwrap();

    // A record header claiming a 4 GiB payload.
    let mut header_lies = file_header();
    header_lies.push(1);
    header_lies.extend_from_slice(&u32::MAX.to_le_bytes());
    header_lies.extend_from_slice(&0u32.to_le_bytes());
    header_lies.extend_from_slice(&[0; 64]);

    // A state claiming (MessagePack bin 32) 4 GiB of state bytes.
    let mut state = vec![0x83, 0xa2, b'i', b'd'];
    state.extend(rmp_serde::to_vec_named(&actor(1)).unwrap());
    state.extend([0xa5, b's', b't', b'a', b't', b'e', 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
    let mut bin_lies = file_header();
    bin_lies.extend(record(1, &manifest));
    bin_lies.extend(record(2, &state));

    // A manifest claiming 4 billion actors.
    let at = manifest.windows(7).position(|w| w == b"\xa6actors").unwrap() + 7;
    let mut actors = manifest[..at].to_vec();
    actors.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    let mut array_lies = file_header();
    array_lies.extend(record(1, &actors));

    // The same in format version 2: a batch claiming 4 billion states, a state claiming
    // 4 GiB of bytes, a manifest claiming 4 billion actors.
    let v2 = encode(&checkpoint).unwrap();
    let manifest_v2 = &v2[..12 + 9 + records(&v2)[0].2];
    let mut batch_lies_v2 = manifest_v2.to_vec();
    batch_lies_v2.extend(record(2, &[0xdd, 0xff, 0xff, 0xff, 0xff]));
    let mut bin_lies_v2 = manifest_v2.to_vec();
    bin_lies_v2.extend(record(2, &[0x91, 0x93, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]));
    let mut empty = sample(1);
    empty.manifest.actors.clear();
    empty.states.clear();
    empty.in_flight.clear();
    let empty = encode(&empty).unwrap();
    let (_, _, len) = records(&empty)[0];
    let mut payload = empty[12 + 9..12 + 9 + len].to_vec();
    assert_eq!(payload.pop(), Some(0x90), "the actors come last, here none");
    payload.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    let mut array_lies_v2 = empty[..12].to_vec();
    array_lies_v2.extend(record(1, &payload));

    for (name, bytes) in [
        ("header", header_lies),
        ("bin", bin_lies),
        ("array", array_lies),
        ("batch v2", batch_lies_v2),
        ("bin v2", bin_lies_v2),
        ("array v2", array_lies_v2),
    ] {
        let largest = largest_allocation(|| {
            assert!(decode(&bytes).is_err());
            assert!(decode_manifest(&bytes).is_err() || name.starts_with("b"));
        });
        assert!(largest < LIMIT, "{name}: allocated {largest} bytes at once");
    }

    // The check can fail: decoding a real 4 MiB state does allocate that much.
    let mut big = sample(1);
    big.states[0].state = vec![7; 4 << 20];
    let bytes = encode(&big).unwrap();
    let largest = largest_allocation(|| assert!(decode(&bytes).is_ok()));
    assert!(largest >= 4 << 20, "{largest}");
}
