//! Counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Totals over all links since the transport started, from
/// [`Transport::stats`](crate::Transport::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Links up right now.
    pub links: usize,
    /// Frames written after handshakes (data, heartbeats, goodbyes).
    pub frames_sent: u64,
    /// Write-and-flush rounds; under load one round carries many frames.
    pub writes: u64,
    /// Bytes written after handshakes, length prefixes included.
    pub bytes_sent: u64,
    /// Frames read after handshakes.
    pub frames_received: u64,
    /// Bytes read after handshakes.
    pub bytes_received: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    frames_sent: AtomicU64,
    writes: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl Counters {
    pub(crate) fn wrote(&self, frames: u64, bytes: u64) {
        self.frames_sent.fetch_add(frames, Relaxed);
        self.writes.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn read(&self, frames: u64, bytes: u64) {
        self.frames_received.fetch_add(frames, Relaxed);
        self.bytes_received.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn snapshot(&self, links: usize) -> TransportStats {
        TransportStats {
            links,
            frames_sent: self.frames_sent.load(Relaxed),
            writes: self.writes.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
        }
    }
}
