//! One established link: its shared handle and its reader and writer tasks.
//!
//! A link owns one connection, split in two halves. The **writer** task takes encoded frames
//! from the link's two queues ([`Lanes`]), coalesces everything queued into one write and one
//! flush (up to about [`MAX_BATCH`] bytes), writes a heartbeat when the link has been quiet
//! for a heartbeat interval, and on goodbye drains both queues, writes a `Goodbye` and
//! closes. The **reader** task decodes frames into events and watches for silence. Whoever
//! notices a failure first calls [`Link::close`] with the reason; the reader always runs
//! last: it reports `PeerDown`, removes the link from the peer table and marks it finished.
//!
//! # Two lanes
//!
//! Data frames wait in a queue bounded in frames, not entries (the *data lane*: backpressure;
//! one entry may carry many frames). Control frames that
//! must not wait behind a backlog (snapshot messages) take an unbounded queue (the *urgent
//! lane*), which the writer empties ahead of the data lane in every batch: a batch is
//! written as its urgent frames, then its data frames. The ordering this gives, for two
//! frames queued on one link where the first one's send returned before the second's began:
//!
//! - two urgent frames, or two data frames, are written in that order (each lane is FIFO);
//! - an urgent frame queued after a data frame may be written before it (it overtakes what
//!   is still queued; never what was already written);
//! - a data frame queued after an urgent frame is never written before it: once the writer
//!   has taken a data frame for a batch it takes every urgent frame queued by then into the
//!   same batch, ahead of the data (see [`Lanes::fill`]).
//!
//! The data path costs what it did with one queue: the writer polls the urgent queue once
//! per wake-up and twice per batch (a cheap check when it is empty), never per frame.
//!
//! # The data lane
//!
//! The data lane is a buffer under a lock ([`DataLane`]), not a channel of entries: a sender
//! either appends an entry of frames encoded already ([`Link::send`]), or encodes one frame
//! straight into the lane's open chunk ([`Link::try_encode`]: no allocation, no entry per
//! frame). The writer is notified only when the lane goes from empty to not empty: senders
//! that queue while it has a batch in hand do not wake it (it takes what they queued on its
//! next round).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, TryAcquireError, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Events, Shared, lock};
use crate::frame::FrameReader;
use crate::{DownReason, Frame, FrameCodec, FrameError, NodeId, TransportEvent};

/// The most bytes coalesced into one write.
const MAX_BATCH: usize = 256 * 1024;

/// An open chunk of the data lane is sealed once it holds this many bytes: the writer takes
/// chunks whole (up to [`MAX_BATCH`] bytes per batch).
const CHUNK: usize = 64 * 1024;

/// Below this many bytes, a batch waits for one more turn of the worker before it is written
/// (see [`write_loop`]).
const SHORT_BATCH: usize = 32 * 1024;

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
    /// The data lane (see the module docs).
    data: Arc<DataQueue>,
    /// Room in the queue, in frames: a sender takes one permit per frame it queues (at most
    /// `capacity` for one entry), the writer gives them back as it takes entries out. This
    /// is the bound on what waits to be written: entries carry up to 64 KiB of frames each,
    /// so a bound in entries would let a busy link queue hundreds of thousands of frames,
    /// and everything sent later wait behind them.
    room: Semaphore,
    /// The queue's size in frames ([`TransportConfig::send_queue`](crate::TransportConfig)).
    capacity: u32,
    /// Senders waiting for room in the data lane ([`Link::poll_room`]), woken as the writer
    /// takes frames out or the link closes; `room_wanted` says there are some.
    room_waiters: std::sync::Mutex<Vec<Waker>>,
    room_wanted: AtomicBool,
    /// The urgent lane (see the module docs); unbounded, so sending never waits.
    urgent: mpsc::UnboundedSender<Encoded>,
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
    /// Set on a link this node dialled: it redials it if it drops.
    dialled: AtomicBool,
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

/// The receiving ends of a link's two queues, owned by its writer. Dropped, the data lane
/// takes nothing more.
#[derive(Debug)]
pub(crate) struct Lanes {
    data: Arc<DataQueue>,
    urgent: mpsc::UnboundedReceiver<Encoded>,
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.data.close();
    }
}

/// The data lane and the writer's notification.
#[derive(Debug, Default)]
struct DataQueue {
    lane: std::sync::Mutex<DataLane>,
    /// Notified when the lane goes from empty to not empty (the writer takes it all, up to
    /// a batch, on every round).
    ready: Notify,
}

/// Frames queued on the data lane, in order: the sealed chunks, then the open one.
#[derive(Debug, Default)]
struct DataLane {
    sealed: VecDeque<Encoded>,
    open: BytesMut,
    open_frames: u64,
    /// Set when the writer is gone or draining for a goodbye: nothing more is taken.
    closed: bool,
}

impl DataLane {
    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    /// Seals the open chunk (if any) behind the sealed ones.
    fn seal(&mut self) {
        if !self.open.is_empty() {
            let bytes = self.open.split().freeze();
            self.sealed.push_back(Encoded { bytes, frames: std::mem::take(&mut self.open_frames) });
        }
    }
}

impl DataQueue {
    /// Appends `entry` (after sealing the open chunk); `false` if the lane is closed.
    fn push(&self, entry: Encoded) -> bool {
        let mut lane = lock(&self.lane);
        if lane.closed {
            return false;
        }
        let was_empty = lane.is_empty();
        lane.seal();
        lane.sealed.push_back(entry);
        drop(lane);
        if was_empty {
            self.ready.notify_one();
        }
        true
    }

    /// Encodes a frame at the end of the open chunk with `encode`: `Some(true)` if queued,
    /// `Some(false)` if it does not encode, `None` if the lane is closed.
    fn encode(&self, encode: impl FnOnce(&mut BytesMut) -> Result<(), FrameError>) -> Option<bool> {
        let mut lane = lock(&self.lane);
        if lane.closed {
            return None;
        }
        let was_empty = lane.is_empty();
        if encode(&mut lane.open).is_err() {
            return Some(false);
        }
        lane.open_frames += 1;
        if lane.open.len() >= CHUNK {
            lane.seal();
        }
        drop(lane);
        if was_empty {
            self.ready.notify_one();
        }
        Some(true)
    }

    /// Moves queued frames into `batch`, whole chunks, while `batch` is under `limit`
    /// bytes (`open` is an empty buffer for the lane's next open chunk, if it is taken by
    /// swapping); returns how many frames.
    fn take(&self, batch: &mut BytesMut, limit: usize) -> u64 {
        let mut frames = 0;
        let mut lane = lock(&self.lane);
        while batch.len() < limit {
            if let Some(next) = lane.sealed.pop_front() {
                batch.extend_from_slice(&next.bytes);
                frames += next.frames;
            } else if !lane.open.is_empty() {
                if batch.is_empty() {
                    // The writer's empty buffer becomes the open chunk: no copy.
                    std::mem::swap(&mut lane.open, batch);
                } else {
                    batch.extend_from_slice(&lane.open);
                    lane.open.clear();
                }
                frames += std::mem::take(&mut lane.open_frames);
                break;
            } else {
                break;
            }
        }
        let more = !lane.is_empty();
        drop(lane);
        if more {
            // Left for the next batch: nobody else notifies for a lane that stayed full.
            self.ready.notify_one();
        }
        frames
    }

    /// Takes nothing more.
    fn close(&self) {
        lock(&self.lane).closed = true;
    }

    /// Takes the first entry (a sealed chunk, else the open one), if any.
    #[cfg(test)]
    fn pop(&self) -> Option<Encoded> {
        let mut lane = lock(&self.lane);
        lane.seal();
        lane.sealed.pop_front()
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        let lane = lock(&self.lane);
        lane.sealed.len() + usize::from(!lane.open.is_empty())
    }
}

/// A queued frame was not taken: the link is closing or its queue is full.
#[derive(Debug)]
pub(crate) enum Refused {
    Closed,
    Full,
}

impl Link {
    /// A link to `peer` whose graceful end follows `shutdown`, and the receiving ends of its
    /// queues for the writer; `queue` bounds the data lane.
    pub(crate) fn new(
        id: u64,
        node: NodeId,
        incarnation: u64,
        addr: SocketAddr,
        listen: SocketAddr,
        queue: usize,
        shutdown: &CancellationToken,
    ) -> (Arc<Link>, Lanes) {
        let data = Arc::new(DataQueue::default());
        let (urgent_tx, urgent) = mpsc::unbounded_channel();
        let capacity = u32::try_from(queue.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let link = Link {
            id,
            node,
            incarnation,
            addr,
            listen,
            data: data.clone(),
            room: Semaphore::new(capacity as usize),
            capacity,
            room_waiters: std::sync::Mutex::new(Vec::new()),
            room_wanted: AtomicBool::new(false),
            urgent: urgent_tx,
            close: CancellationToken::new(),
            closing: AtomicBool::new(false),
            reason: std::sync::Mutex::new(None),
            goodbye: shutdown.child_token(),
            farewell: std::sync::Mutex::new(None),
            announced: AtomicBool::new(false),
            dialled: AtomicBool::new(false),
            finished: CancellationToken::new(),
        };
        (Arc::new(link), Lanes { data, urgent })
    }

    /// Whether the link is going down (sends to it fail).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether `PeerUp` was reported for it.
    pub(crate) fn is_announced(&self) -> bool {
        self.announced.load(Ordering::Acquire)
    }

    /// Marks the link as dialled by this node (see [`super::redial`]).
    pub(crate) fn set_dialled(&self) {
        self.dialled.store(true, Ordering::Release);
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
        // They find it closing: their sends fail at once.
        self.wake_room_waiters();
    }

    /// Whether the data lane has room for a frame now, or the link is closing (a send
    /// fails at once); if neither, `cx` (if any) is woken once the writer has taken frames
    /// out of the lane or the link closes.
    pub(crate) fn poll_room(&self, cx: Option<&mut Context<'_>>) -> bool {
        if self.is_closing() || self.room.available_permits() > 0 {
            return true;
        }
        let Some(cx) = cx else { return false };
        let mut waiters = lock(&self.room_waiters);
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        // Wanted, then checked again; the writer frees room, then checks whether it is
        // wanted (`wake_room_waiters`): one of the two sees the other.
        self.room_wanted.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.is_closing() || self.room.available_permits() > 0 {
            drop(waiters);
            self.wake_room_waiters();
            return true;
        }
        false
    }

    /// Wakes the senders waiting for room, if any.
    fn wake_room_waiters(&self) {
        fence(Ordering::SeqCst);
        if self.room_wanted.load(Ordering::SeqCst) && self.room_wanted.swap(false, Ordering::SeqCst)
        {
            let waiters = std::mem::take(&mut *lock(&self.room_waiters));
            waiters.into_iter().for_each(Waker::wake);
        }
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
        let frames = frame.frames;
        if self.data.push(frame) {
            Ok(())
        } else {
            self.taken(frames);
            Err(Refused::Closed)
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
        if self.data.push(frame) {
            Ok(())
        } else {
            self.taken(frames);
            Err(Refused::Closed)
        }
    }

    /// Encodes one frame straight into the data lane with `encode` (which writes the
    /// frame at the end of the buffer it is given, or nothing and an error), if there is
    /// room for it: `false` if not queued (no room, the link closing, a frame that does not
    /// encode).
    pub(crate) fn try_encode(
        &self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), FrameError>,
    ) -> bool {
        if self.is_closing() {
            return false;
        }
        match self.room.try_acquire() {
            Ok(taken) => taken.forget(),
            Err(_) => return false,
        }
        if self.data.encode(encode) == Some(true) {
            return true;
        }
        self.taken(1);
        false
    }

    /// `frames` frames left the data lane (the writer took them, or a send gave its room
    /// back): their room is free again, for waiting senders too.
    fn taken(&self, frames: u64) {
        self.room.add_permits(self.permits(frames) as usize);
        self.wake_room_waiters();
    }

    /// Queues encoded frames on the urgent lane; never waits.
    pub(crate) fn send_urgent(&self, frame: Encoded) -> Result<(), Refused> {
        if self.is_closing() {
            return Err(Refused::Closed);
        }
        self.urgent.send(frame).map_err(|_| Refused::Closed)
    }
}

impl Lanes {
    /// Takes what is queued, after a first frame already in `ahead` (urgent) or `batch`
    /// (data): urgent frames into `ahead`, then data frames into `batch`, about
    /// [`MAX_BATCH`] bytes in all; then, if any data frame was taken, every urgent frame
    /// queued by now into `ahead` whatever its size, so that no urgent frame is written
    /// after a data frame queued after it (urgent frames queued before the last data frame
    /// taken are in the queue by now). Returns how many frames it took.
    fn fill(&mut self, link: &Link, ahead: &mut BytesMut, batch: &mut BytesMut) -> u64 {
        let mut frames = 0;
        while ahead.len() < MAX_BATCH {
            let Ok(next) = self.urgent.try_recv() else { break };
            ahead.extend_from_slice(&next.bytes);
            frames += next.frames;
        }
        let data = self.data.take(batch, MAX_BATCH.saturating_sub(ahead.len()));
        if data > 0 {
            link.taken(data);
        }
        frames += data;
        if !batch.is_empty() {
            while let Ok(next) = self.urgent.try_recv() {
                ahead.extend_from_slice(&next.bytes);
                frames += next.frames;
            }
        }
        frames
    }

    /// Stops both queues taking frames.
    fn close(&mut self) {
        self.urgent.close();
        self.data.close();
    }
}

/// Starts the link's reader and writer on `stream`, whose first unread bytes are `buffered`.
pub(crate) fn spawn<S>(
    shared: &Arc<Shared>,
    link: Arc<Link>,
    lanes: Lanes,
    stream: S,
    buffered: BytesMut,
    events: Events,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let codec = FrameCodec::new(shared.config.max_frame);
    let reader = FrameReader::with_buffer(read_half, buffered, codec);
    shared.spawn(write_loop(shared.clone(), link.clone(), lanes, write_half));
    shared.spawn(read_loop(shared.clone(), link, reader, events));
}

/// The reader task: frames to events, silence to `Timeout`, and the link's last rites.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut reader: FrameReader<R>,
    events: Events,
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
        let next = match reader.buffered::<Frame>() {
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
        // On the transport's own thread, a frame costs one unit of the task's budget,
        // buffered or not: a reader with a deep backlog yields after a budget's worth, so
        // that its link's writer (the replies, the snapshot messages this node sends) and
        // the other links run in between, instead of waiting until the socket is drained.
        // Not among the application's tasks: there, a yield waits for a sweep of every
        // runnable actor, and a link that yields often falls behind.
        if shared.io.is_some() {
            tokio::task::consume_budget().await;
        }
        match frame {
            Frame::Heartbeat => {}
            Frame::Goodbye { reason } => break Some(DownReason::Goodbye(reason)),
            frame @ (Frame::Message { .. } | Frame::Reply { .. } | Frame::Control(_)) => {
                // Closing: frames not yet handed over are dropped.
                if link.is_closing() {
                    break None;
                }
                let event = TransportEvent::Frame { from: link.node.clone(), frame };
                // A dropped receiver means nobody listens; keep the link serving sends.
                if let Some(event) = events.try_send(event) {
                    tokio::select! {
                        biased;
                        () = link.close.cancelled() => break None,
                        () = events.send(event) => {}
                    }
                }
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
    let kind = match &reason {
        DownReason::Timeout => "timeout",
        DownReason::Closed => "closed",
        DownReason::Goodbye(_) => "goodbye",
        DownReason::Frame(_) => "frame",
        DownReason::Io(_) => "io",
        DownReason::Replaced => "replaced",
        DownReason::Disconnected(_) => "disconnected",
        DownReason::Shutdown => "shutdown",
    };
    let peer = link.node.to_string();
    metrics::counter!("amber_links_down_total", "peer" => peer, "reason" => kind).increment(1);
    let redial = link.dialled.load(Ordering::Acquire) && super::redial::redials(&reason);
    events.send(TransportEvent::PeerDown { node: link.node.clone(), reason }).await;
    shared.remove(&link);
    link.set_finished();
    if redial {
        shared.start_redial(link.node.clone(), link.listen);
    }
}

/// The writer task: batches (urgent frames first), heartbeats, goodbye.
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut lanes: Lanes,
    mut io: W,
) {
    let interval = shared.config.heartbeat_interval;
    let codec = FrameCodec::new(shared.config.max_frame);
    let mut heartbeat = BytesMut::new();
    if let Err(error) = codec.encode_frame(&Frame::Heartbeat, &mut heartbeat) {
        link.close(DownReason::Frame(error));
        return;
    }
    // A batch is written as `ahead` (urgent frames), then `batch` (data frames).
    let mut ahead = BytesMut::new();
    let mut batch = BytesMut::with_capacity(16 * 1024);
    let mut last_write = Instant::now();
    let tick = tokio::time::sleep(interval);
    tokio::pin!(tick);
    loop {
        ahead.clear();
        batch.clear();
        let mut frames = tokio::select! {
            biased;
            () = link.close.cancelled() => return,
            () = link.goodbye.cancelled() => {
                goodbye(&shared, &link, &mut lanes, &mut io, &codec).await;
                return;
            }
            first = lanes.urgent.recv() => {
                let Some(first) = first else { return };
                ahead.extend_from_slice(&first.bytes);
                first.frames + lanes.fill(&link, &mut ahead, &mut batch)
            }
            () = lanes.data.ready.notified() => {
                // Notified for a lane since emptied (a batch took it): nothing to write.
                match lanes.fill(&link, &mut ahead, &mut batch) {
                    0 => continue,
                    frames => frames,
                }
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
        // A short batch: let the worker run once more, then take what was queued meanwhile
        // (senders queue while this task runs without waking it): under load, fewer and
        // larger writes, and fewer wake-ups of this task per frame.
        if ahead.len() + batch.len() < SHORT_BATCH {
            tokio::task::yield_now().await;
            frames += lanes.fill(&link, &mut ahead, &mut batch);
        }
        let written = tokio::select! {
            biased;
            () = link.close.cancelled() => return,
            written = write_flush(&mut io, &ahead, &batch) => written,
        };
        if let Err(error) = written {
            link.close(DownReason::Io(error));
            return;
        }
        shared.counters.wrote(frames, (ahead.len() + batch.len()) as u64);
        last_write = Instant::now();
    }
}

/// Writes what is queued (urgent frames first) and a goodbye, closes the write side, then
/// closes the link.
async fn goodbye<W: AsyncWrite + Unpin>(
    shared: &Shared,
    link: &Link,
    lanes: &mut Lanes,
    io: &mut W,
    codec: &FrameCodec,
) {
    let (text, reason) = lock(&link.farewell)
        .take()
        .unwrap_or_else(|| ("shutdown".to_owned(), DownReason::Shutdown));
    lanes.close();
    let mut batch = BytesMut::new();
    let mut frames = 1;
    while let Ok(next) = lanes.urgent.try_recv() {
        batch.extend_from_slice(&next.bytes);
        frames += next.frames;
    }
    frames += lanes.data.take(&mut batch, usize::MAX);
    if codec.encode_frame(&Frame::Goodbye { reason: text }, &mut batch).is_err() {
        // Only an absurdly long reason could fail; say it shorter.
        let short = Frame::Goodbye { reason: "goodbye".to_owned() };
        let _ = codec.encode_frame(&short, &mut batch);
    }
    let written = tokio::select! {
        biased;
        () = link.close.cancelled() => None,
        written = tokio::time::timeout(GOODBYE_GRACE, async {
            write_flush(io, &[], &batch).await?;
            io.shutdown().await
        }) => Some(written),
    };
    if let Some(Ok(Ok(()))) = written {
        shared.counters.wrote(frames, batch.len() as u64);
    }
    link.close(reason);
}

/// Writes `ahead`, then `bytes`, then flushes.
async fn write_flush<W: AsyncWrite + Unpin>(
    io: &mut W,
    ahead: &[u8],
    bytes: &[u8],
) -> std::io::Result<()> {
    if !ahead.is_empty() {
        io.write_all(ahead).await?;
    }
    io.write_all(bytes).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(queue: usize) -> (Arc<Link>, Lanes) {
        let addr = "127.0.0.1:1".parse().unwrap();
        Link::new(1, NodeId::from("peer"), 1, addr, addr, queue, &CancellationToken::new())
    }

    fn frames(frames: u64) -> Encoded {
        Encoded { bytes: Bytes::from_static(b"x"), frames }
    }

    #[test]
    fn the_queue_is_bounded_in_frames_not_entries() {
        let (link, queue) = link(8);
        assert!(link.try_send(frames(3)).is_ok());
        assert!(link.try_send(frames(3)).is_ok());
        assert!(matches!(link.try_send(frames(3)), Err(Refused::Full)), "6 of 8 frames taken");
        assert!(link.try_send(frames(2)).is_ok());
        assert!(matches!(link.try_send(frames(1)), Err(Refused::Full)));
        // The writer takes an entry out: its frames' room is free again.
        let taken = queue.data.pop().unwrap();
        link.taken(taken.frames);
        assert!(link.try_send(frames(3)).is_ok());
        assert!(matches!(link.try_send(frames(1)), Err(Refused::Full)));
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_queue_waits_for_all_of_it() {
        let (link, queue) = link(4);
        assert!(link.try_send(frames(1)).is_ok());
        assert!(matches!(link.try_send(frames(100)), Err(Refused::Full)));
        let waiting = {
            let link = link.clone();
            tokio::spawn(async move { link.send(frames(100)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one frame is still queued");
        let taken = queue.data.pop().unwrap();
        link.taken(taken.frames);
        assert!(waiting.await.unwrap().is_ok());
        assert!(matches!(link.try_send(frames(1)), Err(Refused::Full)), "it holds the whole queue");
    }

    #[tokio::test]
    async fn a_send_waiting_for_room_fails_when_the_link_closes() {
        let (link, _queue) = link(2);
        assert!(link.try_send(frames(2)).is_ok());
        let waiting = {
            let link = link.clone();
            tokio::spawn(async move { link.send(frames(1)).await })
        };
        tokio::task::yield_now().await;
        link.close(DownReason::Closed);
        assert!(matches!(waiting.await.unwrap(), Err(Refused::Closed)));
    }

    const KIB: usize = 1024;

    fn lanes() -> (Arc<Link>, Lanes) {
        let addr = "127.0.0.1:1".parse().unwrap();
        Link::new(0, NodeId::from("b"), 1, addr, addr, 16, &CancellationToken::new())
    }

    fn entry(byte: u8, len: usize) -> Encoded {
        Encoded { bytes: Bytes::from(vec![byte; len]), frames: 1 }
    }

    /// Runs `fill` after taking the first entry from the urgent lane or the data lane, as
    /// the writer does; returns the batch's urgent and data bytes and its frame count.
    fn take_batch(link: &Link, lanes: &mut Lanes, urgent_first: bool) -> (BytesMut, BytesMut, u64) {
        let (mut ahead, mut batch) = (BytesMut::new(), BytesMut::new());
        let first = if urgent_first { lanes.urgent.try_recv().ok() } else { lanes.data.pop() };
        let first = first.expect("a first entry");
        if urgent_first {
            ahead.extend_from_slice(&first.bytes);
        } else {
            batch.extend_from_slice(&first.bytes);
        }
        let frames = first.frames + lanes.fill(link, &mut ahead, &mut batch);
        (ahead, batch, frames)
    }

    #[test]
    fn a_batch_takes_the_urgent_lane_first_then_data_up_to_the_limit() {
        let (link, mut lanes) = lanes();
        for _ in 0..12 {
            link.try_send(entry(b'd', 32 * KIB)).unwrap();
        }
        link.send_urgent(entry(b'u', KIB)).unwrap();
        let (ahead, batch, frames) = take_batch(&link, &mut lanes, false);
        assert_eq!(ahead.len(), KIB);
        // The first data entry, then more while the batch is under the limit.
        assert_eq!(batch.len(), 8 * 32 * KIB);
        assert_eq!(frames, 9);
        assert_eq!(lanes.data.entries(), 4);
    }

    #[test]
    fn once_data_is_taken_every_urgent_frame_queued_goes_ahead_of_it() {
        let (link, mut lanes) = lanes();
        link.try_send(entry(b'd', KIB)).unwrap();
        link.try_send(entry(b'd', KIB)).unwrap();
        for _ in 0..3 {
            link.send_urgent(entry(b'u', 200 * KIB)).unwrap();
        }
        // A data frame is in the batch: all three urgent frames go first, past the limit,
        // since any of them may have been queued before it.
        let (ahead, batch, frames) = take_batch(&link, &mut lanes, false);
        assert_eq!((ahead.len(), batch.len(), frames), (600 * KIB, KIB, 4));
        assert!(lanes.urgent.is_empty());
        assert_eq!(lanes.data.entries(), 1);
    }

    #[test]
    fn an_urgent_batch_over_the_limit_leaves_the_data_for_the_next() {
        let (link, mut lanes) = lanes();
        link.try_send(entry(b'd', KIB)).unwrap();
        for _ in 0..3 {
            link.send_urgent(entry(b'u', 200 * KIB)).unwrap();
        }
        let (ahead, batch, frames) = take_batch(&link, &mut lanes, true);
        assert_eq!((ahead.len(), batch.len(), frames), (400 * KIB, 0, 2));
        let (ahead, batch, frames) = take_batch(&link, &mut lanes, true);
        assert_eq!((ahead.len(), batch.len(), frames), (200 * KIB, KIB, 2));
    }

    fn message(n: u8) -> Frame {
        Frame::Control(vec![n; 3])
    }

    #[test]
    fn encoded_frames_and_entries_are_taken_in_the_order_they_were_queued() {
        let (link, mut lanes) = link(4);
        let codec = FrameCodec::new(1024);
        assert!(link.try_encode(|dst| codec.encode_frame(&message(1), dst)));
        assert!(link.try_send(frames(1)).is_ok());
        assert!(link.try_encode(|dst| codec.encode_frame(&message(2), dst)));
        assert!(link.try_encode(|dst| codec.encode_frame(&message(3), dst)));
        assert!(
            !link.try_encode(|dst| codec.encode_frame(&message(4), dst)),
            "4 of 4 frames taken"
        );
        let (mut ahead, mut batch) = (BytesMut::new(), BytesMut::new());
        assert_eq!(lanes.fill(&link, &mut ahead, &mut batch), 4);
        let mut expected = BytesMut::new();
        codec.encode_frame(&message(1), &mut expected).unwrap();
        expected.extend_from_slice(b"x");
        codec.encode_frame(&message(2), &mut expected).unwrap();
        codec.encode_frame(&message(3), &mut expected).unwrap();
        assert_eq!((ahead.len(), &batch[..]), (0, &expected[..]));
        // The room is free again; a closed lane takes nothing.
        assert!(link.try_encode(|dst| codec.encode_frame(&message(5), dst)));
        drop(lanes);
        assert!(!link.try_encode(|dst| codec.encode_frame(&message(6), dst)));
        assert!(matches!(link.try_send(frames(1)), Err(Refused::Closed)));
    }
}
