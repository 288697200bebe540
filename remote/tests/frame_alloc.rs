//! Memory bounds: decoding never allocates much more than the frame limit, whatever the
//! input. A tracking allocator records the largest single allocation made by this thread.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use amber_remote::{DEFAULT_MAX_FRAME, Frame, FrameCodec, FrameError, HEADER_LEN};
use bytes::BytesMut;
use proptest::prelude::*;
use support::raw::{RawPeer, encode};
use support::{Node, SECRET, config};
use tokio_util::codec::Decoder;

struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns the largest single allocation it made on this thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|largest| largest.set(0));
    TRACKING.with(|tracking| tracking.set(true));
    let result = f();
    TRACKING.with(|tracking| tracking.set(false));
    (result, LARGEST.with(Cell::get))
}

/// What the reader may add on top of one frame: a read chunk and small-buffer growth.
const SLACK: usize = 192 * 1024;

/// Bytes around a maximal `Control` payload: its type byte and a 4-byte varint length.
const OVERHEAD: usize = 5;

/// Decodes like the transport's reader does: bytes land in the buffer's spare room, which
/// only grows when it is full.
fn decode_like_a_socket(codec: &mut FrameCodec, input: &[u8]) -> Result<Vec<Frame>, FrameError> {
    const READ: usize = 8 * 1024;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        if buf.capacity() == buf.len() {
            buf.reserve(READ);
        }
        let n = (buf.capacity() - buf.len()).min(input.len() - pos);
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        while let Some(frame) = codec.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

#[test]
fn an_oversized_prefix_allocates_nothing_large() {
    let (result, largest) = largest_allocation(|| {
        let mut bytes = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        FrameCodec::default().decode(&mut bytes)
    });
    assert!(matches!(result, Err(FrameError::TooLarge { .. })));
    assert!(largest < 4096, "largest allocation {largest}");
}

#[test]
fn frames_up_to_the_limit_cost_at_most_the_limit_plus_slack() {
    let max = DEFAULT_MAX_FRAME;
    // A Control's type byte and 4-byte length are 5 bytes around the payload.
    let sizes = [10, 1000, 100_000, 1_000_000, max - OVERHEAD];
    let frames: Vec<_> = sizes.iter().map(|&n| Frame::Control(vec![7; n])).collect();
    let input: Vec<u8> = frames.iter().flat_map(encode).collect();
    assert_eq!(
        encode(frames.last().unwrap()).len(),
        max + HEADER_LEN,
        "the last one is at the limit"
    );
    let (decoded, largest) =
        largest_allocation(|| decode_like_a_socket(&mut FrameCodec::default(), &input));
    assert_eq!(decoded.unwrap(), frames);
    assert!(largest >= max - OVERHEAD, "the tracker sees the payload's own allocation");
    assert!(largest <= max + HEADER_LEN + SLACK, "largest allocation {largest} for limit {max}");
}

#[test]
fn a_small_body_announcing_huge_contents_allocates_nothing_large() {
    // Bodies that claim 4 GiB (or 2^64 - 1 byte) strings and byte strings inside a few bytes.
    for claim in [
        &b"\x14\xff\xff\xff\xff\x0f"[..],
        b"\x12\xff\xff\xff\xff\x0f",
        b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x10\x00\0\0\0\0\0\0\0\x01\x01\x00\x00\xff\xff\xff\xff\x0f",
        b"\x10\x00\0\0\0\0\0\0\0\x01\x01\x00\x00\x00\xff\xff\xff\xff\x0f",
        b"\x11\x01\x01\x00\xff\xff\xff\xff\x0f",
    ] {
        let mut input = (claim.len() as u32).to_be_bytes().to_vec();
        input.extend_from_slice(claim);
        let (result, largest) =
            largest_allocation(|| decode_like_a_socket(&mut FrameCodec::default(), &input));
        assert!(result.is_err());
        assert!(largest <= SLACK, "largest allocation {largest}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_stay_within_the_limit(bytes in prop::collection::vec(any::<u8>(), 0..8192)) {
        let max = 4096;
        let (_, largest) =
            largest_allocation(|| decode_like_a_socket(&mut FrameCodec::new(max), &bytes));
        prop_assert!(largest <= max + HEADER_LEN + SLACK, "largest allocation {}", largest);
    }
}

#[tokio::test]
async fn the_transport_receives_a_maximal_frame_within_the_limit() {
    // Current-thread runtime: the transport's reader runs on this thread, so it is tracked.
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::handshake(b.addr(), "raw", SECRET).await;
    b.expect_up().await;
    let frame = Frame::Control(vec![3; DEFAULT_MAX_FRAME - OVERHEAD]);
    let bytes = encode(&frame);
    let writing = tokio::spawn(async move {
        raw.write(&bytes).await;
        raw
    });
    LARGEST.with(|largest| largest.set(0));
    TRACKING.with(|tracking| tracking.set(true));
    let received = b.expect_frame().await;
    TRACKING.with(|tracking| tracking.set(false));
    let largest = LARGEST.with(Cell::get);
    assert_eq!(received.1, frame);
    assert!(
        largest >= DEFAULT_MAX_FRAME - OVERHEAD,
        "the tracker sees the payload's own allocation"
    );
    assert!(
        largest <= DEFAULT_MAX_FRAME + HEADER_LEN + SLACK,
        "largest allocation {largest} receiving a {DEFAULT_MAX_FRAME}-byte frame"
    );
    let _raw = writing.await.unwrap();
}
