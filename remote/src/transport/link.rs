//! One established link: its shared handle and its reader and writer tasks.
//!
//! A link owns one connection, split in two halves. The **writer** task takes encoded frames
//! from the link's queue (bounded in frames, not entries: one entry may carry many frames),
//! coalesces everything queued into one write and one flush
//! (up to [`MAX_BATCH`] bytes), writes a heartbeat when the link has been quiet for a
//! heartbeat interval, and on goodbye drains the queue, writes a `Goodbye` and closes. The
//! **reader** task decodes frames into events and watches for silence. Whoever notices a
//! failure first calls [`Link::close`] with the reason; the reader always runs last: it
//! reports `PeerDown`, removes the link from the peer table and marks it finished.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Shared, lock};
use crate::frame::FrameReader;
use crate::{DownReason, Frame, FrameCodec, FrameError, NodeId, TransportEvent};

/// The most bytes coalesced into one write.
const MAX_BATCH: usize = 256 * 1024;

/// How long a closing link may spend writing its last frames and goodbye.
pub(crate) const GOODBYE_GRACE: Duration = Duration::from_secs(1);

/// The shared handle of one link, held by the peer table, senders and the link's tasks.
#[derive(Debug)]
pub(crate) struct Link {
    /// Unique per transport, for logs.
    pub(crate) id: u64,
    pub(crate) node: NodeId,
    pub(crate) incarnation: u64,
    /// The peer's end of the connection.
    pub(crate) addr: SocketAddr,
    /// Where the peer listens, as far as known.
    pub(crate) listen: SocketAddr,
    queue: mpsc::Sender<Encoded>,
    /// Room in the queue, in frames: a sender takes one permit per frame it queues (at most
    /// `capacity` for one entry), the writer gives them back as it takes entries out. This
    /// is the bound on what waits to be written: entries carry up to 64 KiB of frames each,
    /// so a bound in entries would let a busy link queue hundreds of thousands of frames,
    /// and everything sent later wait behind them.
    room: Semaphore,
    /// The queue's size in frames ([`TransportConfig::send_queue`](crate::TransportConfig)).
    capacity: u32,
    /// Cancelled when the link must stop now; `reason` says why.
    close: CancellationToken,
    /// Set just before `close` is cancelled: the cheap check for the per-frame paths
    /// (`CancellationToken::is_cancelled` takes a lock).
    closing: AtomicBool,
    reason: std::sync::Mutex<Option<DownReason>>,
    /// Cancelled when the link should end gracefully (a child of the transport's shutdown
    /// token); `goodbye` says what to tell the peer.
    goodbye: CancellationToken,
    farewell: std::sync::Mutex<Option<(String, DownReason)>>,
    /// Set once `PeerUp` was reported.
    announced: AtomicBool,
    /// Cancelled once `PeerDown` was reported and the link left the table.
    finished: CancellationToken,
}

/// Encoded frames queued for the writer: one or more frames back to back.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) bytes: Bytes,
    /// How many frames `bytes` holds (for the counters).
    pub(crate) frames: u64,
}

/// A queued frame was not taken: the link is closing or its queue is full.
#[derive(Debug)]
pub(crate) enum Refused {
    Closed,
    Full,
}

impl Link {
    /// A link to `peer` whose graceful end follows `shutdown`, and the receiving end of its
    /// queue for the writer.
    pub(crate) fn new(
        id: u64,
        node: NodeId,
        incarnation: u64,
        addr: SocketAddr,
        listen: SocketAddr,
        queue: usize,
        shutdown: &CancellationToken,
    ) -> (Arc<Link>, mpsc::Receiver<Encoded>) {
        // Every entry holds at least one frame and one permit: the channel never fills first.
        let (tx, rx) = mpsc::channel(queue);
        let capacity = u32::try_from(queue.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let link = Link {
            id,
            node,
            incarnation,
            addr,
            listen,
            queue: tx,
            room: Semaphore::new(capacity as usize),
            capacity,
            close: CancellationToken::new(),
            closing: AtomicBool::new(false),
            reason: std::sync::Mutex::new(None),
            goodbye: shutdown.child_token(),
            farewell: std::sync::Mutex::new(None),
            announced: AtomicBool::new(false),
            finished: CancellationToken::new(),
        };
        (Arc::new(link), rx)
    }

    /// Whether the link is going down (sends to it fail).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether `PeerUp` was reported for it.
    pub(crate) fn is_announced(&self) -> bool {
        self.announced.load(Ordering::Acquire)
    }

    pub(crate) fn set_announced(&self) {
        self.announced.store(true, Ordering::Release);
    }

    /// Stops the link now. The first reason given is the one reported.
    pub(crate) fn close(&self, reason: DownReason) {
        let mut slot = lock(&self.reason);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.closing.store(true, Ordering::Release);
        self.close.cancel();
    }

    /// Ends the link gracefully: what is queued is written, then a goodbye saying `text`;
    /// the link is then reported down with `reason`.
    pub(crate) fn say_goodbye(&self, text: String, reason: DownReason) {
        let mut slot = lock(&self.farewell);
        if slot.is_none() {
            *slot = Some((text, reason));
        }
        drop(slot);
        self.goodbye.cancel();
    }

    /// Waits until the link's `PeerDown` was reported (or, for a link never announced, until
    /// it was dropped).
    pub(crate) async fn finished(&self) {
        self.finished.cancelled().await;
    }

    /// Marks the link finished: its `PeerDown` was reported, or it never had a `PeerUp`.
    pub(crate) fn set_finished(&self) {
        self.finished.cancel();
    }

    /// The permits an entry of `frames` frames takes: one per frame, at most the whole
    /// queue (a larger entry waits for an empty queue).
    fn permits(&self, frames: u64) -> u32 {
        u32::try_from(frames).unwrap_or(u32::MAX).max(1).min(self.capacity)
    }

    /// Queues encoded frames, waiting while the queue is full.
    pub(crate) async fn send(&self, frame: Encoded) -> Result<(), Refused> {
        if self.is_closing() {
            return Err(Refused::Closed);
        }
        let permits = self.permits(frame.frames);
        // Room in the queue: no need to set up the wait below.
        match self.room.try_acquire_many(permits) {
            Ok(taken) => taken.forget(),
            Err(TryAcquireError::Closed) => return Err(Refused::Closed),
            Err(TryAcquireError::NoPermits) => tokio::select! {
                biased;
                taken = self.room.acquire_many(permits) => match taken {
                    Ok(taken) => taken.forget(),
                    Err(_) => return Err(Refused::Closed),
                },
                () = self.close.cancelled() => return Err(Refused::Closed),
            },
        }
        // With room taken, the channel has a slot: it holds fewer entries than frames.
        let frame = match self.queue.try_send(frame) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Refused::Closed),
            Err(mpsc::error::TrySendError::Full(frame)) => frame,
        };
        tokio::select! {
            biased;
            sent = self.queue.send(frame) => sent.map_err(|_| Refused::Closed),
            () = self.close.cancelled() => Err(Refused::Closed),
        }
    }

    /// Queues encoded frames if there is room.
    pub(crate) fn try_send(&self, frame: Encoded) -> Result<(), Refused> {
        if self.is_closing() {
            return Err(Refused::Closed);
        }
        let frames = frame.frames;
        match self.room.try_acquire_many(self.permits(frames)) {
            Ok(taken) => taken.forget(),
            Err(TryAcquireError::NoPermits) => return Err(Refused::Full),
            Err(TryAcquireError::Closed) => return Err(Refused::Closed),
        }
        self.queue.try_send(frame).map_err(|e| {
            self.taken(frames);
            match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }
        })
    }

    /// The writer took an entry of `frames` frames out of the queue: its room is free again.
    fn taken(&self, frames: u64) {
        self.room.add_permits(self.permits(frames) as usize);
    }
}

/// Starts the link's reader and writer on `stream`, whose first unread bytes are `buffered`.
pub(crate) fn spawn<S>(
    shared: &Arc<Shared>,
    link: Arc<Link>,
    queue: mpsc::Receiver<Encoded>,
    stream: S,
    buffered: BytesMut,
    events: mpsc::Sender<TransportEvent>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let codec = FrameCodec::new(shared.config.max_frame);
    let reader = FrameReader::with_buffer(read_half, buffered, codec);
    shared.tasks.spawn(write_loop(shared.clone(), link.clone(), queue, write_half));
    shared.tasks.spawn(read_loop(shared.clone(), link, reader, events));
}

/// The reader task: frames to events, silence to `Timeout`, and the link's last rites.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut reader: FrameReader<R>,
    events: mpsc::Sender<TransportEvent>,
) {
    let timeout = shared.config.peer_timeout;
    let silence = tokio::time::sleep(timeout);
    tokio::pin!(silence);
    let mut counted = 0;
    let failure = loop {
        if link.is_closing() {
            break None;
        }
        // A frame already buffered needs no wait (nor the select's setup).
        let next = match reader.buffered() {
            Ok(None) => tokio::select! {
                biased;
                () = link.close.cancelled() => break None,
                next = reader.next() => next,
                () = &mut silence => {
                    let deadline = reader.last_read() + timeout;
                    if deadline <= Instant::now() {
                        break Some(DownReason::Timeout);
                    }
                    silence.as_mut().reset(deadline);
                    continue;
                }
            },
            buffered => buffered,
        };
        let bytes = reader.bytes_read();
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => break Some(DownReason::Closed),
            Err(FrameError::Io(error)) => break Some(DownReason::Io(error)),
            Err(error) => break Some(DownReason::Frame(error)),
        };
        shared.counters.read(1, bytes - counted);
        counted = bytes;
        match frame {
            Frame::Heartbeat => {}
            Frame::Goodbye { reason } => break Some(DownReason::Goodbye(reason)),
            frame if frame.kind().is_data() => {
                // Closing: frames not yet handed over are dropped.
                if link.is_closing() {
                    break None;
                }
                let event = TransportEvent::Frame { from: link.node.clone(), frame };
                // A dropped receiver means nobody listens; keep the link serving sends.
                if let Err(mpsc::error::TrySendError::Full(event)) = events.try_send(event) {
                    tokio::select! {
                        biased;
                        () = link.close.cancelled() => break None,
                        _ = events.send(event) => {}
                    }
                }
            }
            other => {
                break Some(DownReason::Frame(FrameError::Unexpected {
                    kind: other.kind(),
                    during: "on an established link",
                }));
            }
        }
    };
    if let Some(reason) = failure {
        link.close(reason);
    }
    let reason = lock(&link.reason).take().unwrap_or(DownReason::Closed);
    match &reason {
        DownReason::Timeout | DownReason::Frame(_) | DownReason::Io(_) => tracing::warn!(
            peer = %link.node, addr = %link.addr, link = link.id, reason = %reason,
            "link down"
        ),
        _ => tracing::debug!(
            peer = %link.node, addr = %link.addr, link = link.id, reason = %reason,
            "link down"
        ),
    }
    let _ = events.send(TransportEvent::PeerDown { node: link.node.clone(), reason }).await;
    shared.remove(&link);
    link.set_finished();
}

/// The writer task: batches, heartbeats, goodbye.
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut queue: mpsc::Receiver<Encoded>,
    mut io: W,
) {
    let interval = shared.config.heartbeat_interval;
    let codec = FrameCodec::new(shared.config.max_frame);
    let mut heartbeat = BytesMut::new();
    if let Err(error) = codec.encode_frame(&Frame::Heartbeat, &mut heartbeat) {
        link.close(DownReason::Frame(error));
        return;
    }
    let mut batch = BytesMut::with_capacity(16 * 1024);
    let mut last_write = Instant::now();
    let tick = tokio::time::sleep(interval);
    tokio::pin!(tick);
    loop {
        batch.clear();
        let frames = tokio::select! {
            biased;
            () = link.close.cancelled() => return,
            () = link.goodbye.cancelled() => {
                goodbye(&shared, &link, &mut queue, &mut io, &codec).await;
                return;
            }
            first = queue.recv() => {
                let Some(first) = first else { return };
                batch.extend_from_slice(&first.bytes);
                link.taken(first.frames);
                let mut frames = first.frames;
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(next) => {
                            batch.extend_from_slice(&next.bytes);
                            link.taken(next.frames);
                            frames += next.frames;
                        }
                        Err(_) => break,
                    }
                }
                frames
            }
            () = &mut tick => {
                let due = last_write + interval;
                if due > Instant::now() {
                    tick.as_mut().reset(due);
                    continue;
                }
                tick.as_mut().reset(Instant::now() + interval);
                batch.extend_from_slice(&heartbeat);
                1
            }
        };
        let written = tokio::select! {
            biased;
            () = link.close.cancelled() => return,
            written = write_flush(&mut io, &batch) => written,
        };
        if let Err(error) = written {
            link.close(DownReason::Io(error));
            return;
        }
        shared.counters.wrote(frames, batch.len() as u64);
        last_write = Instant::now();
    }
}

/// Writes what is queued and a goodbye, closes the write side, then closes the link.
async fn goodbye<W: AsyncWrite + Unpin>(
    shared: &Shared,
    link: &Link,
    queue: &mut mpsc::Receiver<Encoded>,
    io: &mut W,
    codec: &FrameCodec,
) {
    let (text, reason) = lock(&link.farewell)
        .take()
        .unwrap_or_else(|| ("shutdown".to_owned(), DownReason::Shutdown));
    queue.close();
    let mut batch = BytesMut::new();
    let mut frames = 1;
    while let Ok(next) = queue.try_recv() {
        batch.extend_from_slice(&next.bytes);
        frames += next.frames;
    }
    if codec.encode_frame(&Frame::Goodbye { reason: text }, &mut batch).is_err() {
        // Only an absurdly long reason could fail; say it shorter.
        let short = Frame::Goodbye { reason: "goodbye".to_owned() };
        let _ = codec.encode_frame(&short, &mut batch);
    }
    let written = tokio::select! {
        biased;
        () = link.close.cancelled() => None,
        written = tokio::time::timeout(GOODBYE_GRACE, async {
            write_flush(io, &batch).await?;
            io.shutdown().await
        }) => Some(written),
    };
    if let Some(Ok(Ok(()))) = written {
        shared.counters.wrote(frames, batch.len() as u64);
    }
    link.close(reason);
}

async fn write_flush<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(queue: usize) -> (Arc<Link>, mpsc::Receiver<Encoded>) {
        let addr = "127.0.0.1:1".parse().unwrap();
        Link::new(1, NodeId::from("peer"), 1, addr, addr, queue, &CancellationToken::new())
    }

    fn entry(frames: u64) -> Encoded {
        Encoded { bytes: Bytes::from_static(b"x"), frames }
    }

    #[test]
    fn the_queue_is_bounded_in_frames_not_entries() {
        let (link, mut queue) = link(8);
        assert!(link.try_send(entry(3)).is_ok());
        assert!(link.try_send(entry(3)).is_ok());
        assert!(matches!(link.try_send(entry(3)), Err(Refused::Full)), "6 of 8 frames taken");
        assert!(link.try_send(entry(2)).is_ok());
        assert!(matches!(link.try_send(entry(1)), Err(Refused::Full)));
        // The writer takes an entry out: its frames' room is free again.
        let taken = queue.try_recv().unwrap();
        link.taken(taken.frames);
        assert!(link.try_send(entry(3)).is_ok());
        assert!(matches!(link.try_send(entry(1)), Err(Refused::Full)));
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_queue_waits_for_all_of_it() {
        let (link, mut queue) = link(4);
        assert!(link.try_send(entry(1)).is_ok());
        assert!(matches!(link.try_send(entry(100)), Err(Refused::Full)));
        let waiting = {
            let link = link.clone();
            tokio::spawn(async move { link.send(entry(100)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one frame is still queued");
        let taken = queue.try_recv().unwrap();
        link.taken(taken.frames);
        assert!(waiting.await.unwrap().is_ok());
        assert!(matches!(link.try_send(entry(1)), Err(Refused::Full)), "it holds the whole queue");
    }

    #[tokio::test]
    async fn a_send_waiting_for_room_fails_when_the_link_closes() {
        let (link, _queue) = link(2);
        assert!(link.try_send(entry(2)).is_ok());
        let waiting = {
            let link = link.clone();
            tokio::spawn(async move { link.send(entry(1)).await })
        };
        tokio::task::yield_now().await;
        link.close(DownReason::Closed);
        assert!(matches!(waiting.await.unwrap(), Err(Refused::Closed)));
    }
}
