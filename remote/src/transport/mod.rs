//! The TCP transport: listening, dialling, links, sends, events.

mod accept;
mod config;
mod error;
mod event;
mod gate;
mod io;
mod link;
mod peers;
mod redial;
mod stats;
#[cfg(test)]
mod tests;
#[cfg(feature = "tls")]
mod tls;

pub use config::{ConfigError, MIN_SECRET_LEN, TransportConfig};
pub use error::{DownReason, TransportError};
pub use event::TransportEvent;
pub use redial::ReconnectPolicy;
pub use stats::TransportStats;
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::event::{Events, Handler};
use self::gate::HandshakeGate;
pub(crate) use self::link::Link;
use self::link::{Encoded, GOODBYE_GRACE, Lanes, Refused};
use self::peers::{Admission, PeerTable};
use self::stats::Counters;
use crate::frame::{FrameReader, MessageRef};
use crate::handshake::exchange::{self, Identity, PeerHello, Verdict};
use crate::handshake::proof::{self, Role};
use crate::log_limit::LogLimit;
use crate::net;
use crate::{Frame, FrameCodec, HandshakeError, NodeId, PROTOCOL_VERSION};

/// A node's TCP endpoint: it listens for peers, dials them, keeps one authenticated link per
/// peer node, and moves [`Frame`]s over those links.
///
/// `Transport` is a cheap handle (clone it freely); what happens on the links arrives on the
/// event receiver returned by [`bind`](Transport::bind). Dropping the last handle shuts the
/// transport down like [`shutdown`](Transport::shutdown), without waiting.
///
/// See the [crate docs](crate) for the guarantees (ordering, backpressure, failure detection,
/// reconnection).
#[derive(Debug, Clone)]
pub struct Transport {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Cancels the transport when the last [`Transport`] handle goes.
#[derive(Debug)]
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// State shared by the handles and the tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    config: TransportConfig,
    identity: Identity,
    local_addr: SocketAddr,
    codec: FrameCodec,
    peers: Mutex<PeerTable>,
    /// Bumped whenever a link is reported up or removed.
    changes: watch::Sender<()>,
    /// Taken out at shutdown, so that the event stream ends when the last task does.
    events: Mutex<Option<Events>>,
    shutdown: CancellationToken,
    /// Set as `shutdown` is cancelled, before it (see [`Shared::stop`]): read per message
    /// sent, where the token's own check takes a lock (`tokio_util` 0.7).
    stopping: AtomicBool,
    tasks: TaskTracker,
    /// The runtime of the transport's own thread, if it has one
    /// ([`TransportConfig::io_thread`]); else its tasks run on the runtime that bound it.
    pub(crate) io: Option<Handle>,
    counters: Counters,
    next_link: AtomicU64,
    /// Places for incoming connections in their handshake.
    gate: Arc<HandshakeGate>,
    /// Slots for refused connections being told so (as many as handshake places).
    refusals: Arc<Semaphore>,
    /// Warning budgets per remote address, for failed incoming handshakes and refusals.
    warnings: Mutex<LogLimit<IpAddr>>,
    /// The nodes a redial task is working on (one task per node).
    redialling: Mutex<HashSet<NodeId>>,
}

/// Locks a std mutex, ignoring poisoning (no invariant spans a panic in this crate).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Transport {
    /// Listens on `config.listen` and returns the transport and the receiver of its events.
    ///
    /// The receiver must be drained: when it is full, links stop reading (TCP backpressure)
    /// and handshakes wait to report. Dropping it discards later events.
    pub async fn bind(
        config: TransportConfig,
    ) -> Result<(Transport, mpsc::Receiver<TransportEvent>), TransportError> {
        config.check().map_err(TransportError::Config)?;
        let (events, receiver) = mpsc::channel(config.event_queue);
        let transport = Transport::start(config, Events::Channel(events)).await?;
        Ok((transport, receiver))
    }

    /// Listens on `config.listen` and calls `handler` with every event, in place, on the
    /// transport's own tasks instead of queueing it for a receiver: a link's reader hands
    /// each frame over as soon as it is decoded, with no task switch, so the frames a link
    /// has read never wait for another task's turn.
    ///
    /// The order is the same as [`bind`](Self::bind)'s, and calls never overlap for one
    /// link: a link's `PeerUp`, then its frames, then its `PeerDown`, each call returning
    /// before the next starts; a peer's next link's `PeerUp` only after the previous link's
    /// `PeerDown` returned. Calls for different links run concurrently, on whichever
    /// workers run their tasks. The handler must not block: while it runs, its link reads
    /// nothing (as a full event channel would hold it).
    ///
    /// ```
    /// # async fn demo() -> Result<(), amber_remote::TransportError> {
    /// use amber_remote::{Transport, TransportConfig, TransportEvent};
    /// let config = TransportConfig::new("a", "127.0.0.1:0".parse().unwrap(), vec![7; 32]);
    /// let transport = Transport::bind_with_handler(config, |event| {
    ///     if let TransportEvent::Frame { from, frame } = event {
    ///         println!("{from}: {frame:?}");
    ///     }
    /// })
    /// .await?;
    /// # transport.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind_with_handler(
        config: TransportConfig,
        handler: impl Fn(TransportEvent) + Send + Sync + 'static,
    ) -> Result<Transport, TransportError> {
        let handler: Handler = Arc::new(handler);
        Transport::start(config, Events::Inline(handler)).await
    }

    async fn start(config: TransportConfig, events: Events) -> Result<Transport, TransportError> {
        config.check().map_err(TransportError::Config)?;
        let bind_error = |source| TransportError::Bind { addr: config.listen, source };
        // Inside a turmoil simulation (feature `turmoil`) the listener is the simulated
        // host's, and the transport's tasks run on that host's runtime (no thread of its own).
        let listener = match net::bind_simulated(config.listen).await {
            Some(bound) => Opened::Simulated(bound.map_err(bind_error)?),
            None => {
                let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
                listener.set_nonblocking(true).map_err(bind_error)?;
                Opened::Os(listener)
            }
        };
        let local_addr = match &listener {
            Opened::Os(listener) => listener.local_addr(),
            Opened::Simulated(bound) => bound.local_addr(),
        }
        .map_err(bind_error)?;
        let incarnation = proof::incarnation().map_err(|e| match e {
            HandshakeError::Entropy(e) => TransportError::Entropy(e),
            other => TransportError::Entropy(other.to_string()),
        })?;
        let identity = Identity {
            node: config.node.clone(),
            incarnation,
            listen_port: local_addr.port(),
            secret: config.secret.clone().into(),
            version: PROTOCOL_VERSION,
        };
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let io = match config.io_thread && matches!(listener, Opened::Os(_)) {
            true => Some(
                io::start(config.node.as_str(), shutdown.clone(), tasks.clone())
                    .map_err(TransportError::Thread)?,
            ),
            false => None,
        };
        // Registered with the reactor of the runtime that runs the transport's tasks.
        let listener = match listener {
            Opened::Os(listener) => {
                let _context = io.as_ref().map(Handle::enter);
                net::Bound::Tokio(TcpListener::from_std(listener).map_err(bind_error)?)
            }
            Opened::Simulated(bound) => bound,
        };
        let shared = Arc::new(Shared {
            codec: FrameCodec::new(config.max_frame),
            gate: HandshakeGate::new(config.max_pending_handshakes, config.max_pending_per_address),
            refusals: Arc::new(Semaphore::new(config.max_pending_handshakes)),
            warnings: Mutex::new(LogLimit::new()),
            redialling: Mutex::new(HashSet::new()),
            config,
            identity,
            local_addr,
            peers: Mutex::new(PeerTable::default()),
            changes: watch::Sender::new(()),
            events: Mutex::new(Some(events)),
            shutdown,
            stopping: AtomicBool::new(false),
            tasks,
            io,
            counters: Counters::default(),
            next_link: AtomicU64::new(1),
        });
        match listener {
            net::Bound::Tokio(listener) => {
                shared.spawn(accept::accept_loop(shared.clone(), listener));
            }
            #[cfg(feature = "turmoil")]
            net::Bound::Turmoil(listener) => {
                shared.spawn(accept::accept_loop(shared.clone(), listener));
            }
        }
        tracing::debug!(node = %shared.identity.node, addr = %local_addr, "transport listening");
        Ok(Transport { _owner: Arc::new(Owner(shared.clone())), shared })
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.shared.identity.node
    }

    /// The cluster's shared secret (for keys derived from it: the membership's gossip).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.shared.identity.secret
    }

    /// The address the transport listens on (with the actual port if port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Dials `addr`, runs the handshake and returns the peer's node id once the link is up
    /// and its [`TransportEvent::PeerUp`] reported.
    ///
    /// If a link to that node is already up (or comes up through the peer dialling this node
    /// at the same moment), no second link is made: the call returns the peer's id and no
    /// new `PeerUp` is reported. The TCP connect and the handshake are each bounded by
    /// `handshake_timeout`. A link made here is redialled by this node if it drops (see
    /// [`TransportConfig::reconnect`]); call `connect` again after a `PeerDown` that is not
    /// redialled (a goodbye, a disconnect) or after [`TransportEvent::GaveUp`].
    /// Cancelling the returned future abandons the wait, not the handshake: the link may
    /// still come up and be reported.
    pub async fn connect(&self, addr: SocketAddr) -> Result<NodeId, TransportError> {
        self.shared.dial_addr(addr).await
    }

    /// Queues `frame` for `to`, waiting while that peer's send queue is full.
    ///
    /// Frames to one peer are written in the order their `send` calls returned (frames sent
    /// with [`send_urgent`](Transport::send_urgent) may overtake them). `Ok` means
    /// queued, not delivered: a frame still queued when the link dies is lost. Fails at once
    /// with [`TransportError::UnknownPeer`] or [`TransportError::PeerDown`] if there is no
    /// live link, and with `PeerDown` if the link dies while waiting; never waits longer than
    /// it takes to detect a dead peer. Only `Message`, `Reply` and `Control` frames can be
    /// sent ([`TransportError::Reserved`] otherwise).
    pub async fn send(&self, to: &NodeId, frame: &Frame) -> Result<(), TransportError> {
        let (link, bytes) = self.prepare(to, frame)?;
        link.send(bytes).await.map_err(|_| TransportError::PeerDown(to.clone()))
    }

    /// Queues `frames` for `to`, in order: the same as calling [`send`](Transport::send) for
    /// each in turn and stopping at the first error, but cheaper (one look-up of the link,
    /// the frames encoded into a few buffers, each queued as one entry).
    ///
    /// On an error the frames before the failing one are queued, that one and the rest are
    /// not; the error is the one `send` would give for it (except that a link down or a
    /// transport shut down is reported before a frame's [`Reserved`](TransportError::Reserved)
    /// or encoding error).
    pub async fn send_all(&self, to: &NodeId, frames: &[Frame]) -> Result<(), TransportError> {
        /// Encoded bytes queued as one entry; a few fill one write (`MAX_BATCH`).
        const CHUNK: usize = 64 * 1024;
        if self.shared.is_stopping() {
            return Err(TransportError::Shutdown);
        }
        let link = lock(&self.shared.peers).link(to)?;
        let down = |_| TransportError::PeerDown(to.clone());
        let room = frames.iter().map(|f| 64 + f.payload_len()).sum::<usize>();
        let mut bytes = BytesMut::with_capacity(room.min(CHUNK + 1024));
        let mut count = 0;
        for frame in frames {
            let encoded = if frame.kind().is_data() {
                self.shared.codec.encode_frame(frame, &mut bytes).map_err(TransportError::Frame)
            } else {
                Err(TransportError::Reserved(frame.kind()))
            };
            if let Err(error) = encoded {
                if count > 0 {
                    let taken = Encoded { bytes: bytes.split().freeze(), frames: count };
                    link.send(taken).await.map_err(down)?;
                }
                return Err(error);
            }
            count += 1;
            if bytes.len() >= CHUNK {
                let taken = Encoded { bytes: bytes.split().freeze(), frames: count };
                link.send(taken).await.map_err(down)?;
                count = 0;
            }
        }
        if count > 0 {
            link.send(Encoded { bytes: bytes.freeze(), frames: count }).await.map_err(down)?;
        }
        Ok(())
    }

    /// Like [`send`](Transport::send) but never waits: a full queue is
    /// [`TransportError::Full`].
    pub fn try_send(&self, to: &NodeId, frame: &Frame) -> Result<(), TransportError> {
        let (link, bytes) = self.prepare(to, frame)?;
        link.try_send(bytes).map_err(|refused| match refused {
            Refused::Full => TransportError::Full(to.clone()),
            Refused::Closed => TransportError::PeerDown(to.clone()),
        })
    }

    /// The live link to `to`, for a caller that sends on it many times without looking
    /// it up each time ([`try_send_message_on`](Self::try_send_message_on)).
    pub(crate) fn link(&self, to: &NodeId) -> Result<Arc<Link>, TransportError> {
        lock(&self.shared.peers).link(to)
    }

    /// [`try_send`](Self::try_send) of the `Message` frame with `message`'s fields, on
    /// `link` (from [`link`](Self::link)): encodes it straight into the link's data lane if
    /// there is room, never waits. `false` if it was not queued (no room, the link closing,
    /// the transport shut down, a frame too large): the caller sends it another way.
    pub(crate) fn try_send_message_on(&self, link: &Link, message: &MessageRef<'_>) -> bool {
        if self.shared.is_stopping() {
            return false;
        }
        link.try_encode(|dst| self.shared.codec.encode_message(message, dst))
    }

    /// Whether the transport's tasks run on a runtime of its own
    /// ([`TransportConfig::io_thread`]), not on the one that bound it.
    pub(crate) fn has_own_runtime(&self) -> bool {
        self.shared.io.is_some()
    }

    /// Queues the control `frame` for `to` on the link's **urgent lane**, ahead of the data
    /// frames still queued for that peer; never waits.
    ///
    /// The writer empties the urgent lane before the data lane in every batch, so the frame
    /// waits neither for the send queue's room nor behind its backlog (a busy link may hold
    /// up to [`send_queue`](TransportConfig::send_queue) frames). What
    /// it cannot overtake is what was already written: the current write (up to about
    /// 256 KiB), the TCP buffers of both ends, and, on the receiving side, the frames the
    /// link has read but the application has not taken from the event channel. Ordering,
    /// for frames to one peer where the first send returned before the second began:
    ///
    /// - frames sent with `send_urgent` are written in that order, as are frames sent with
    ///   [`send`](Transport::send), [`send_all`](Transport::send_all) and
    ///   [`try_send`](Transport::try_send);
    /// - an urgent frame may overtake data frames queued before it;
    /// - a data frame never overtakes an urgent frame queued before it.
    ///
    /// The receiving side sees frames in the order they were written: nothing marks an
    /// urgent frame there. Only [`Frame::Control`] may take the lane
    /// ([`TransportError::NotUrgent`] otherwise): it is for a protocol above the transport
    /// whose messages do not need to stay behind the data sent before them (snapshot
    /// messages). The lane is unbounded (sending never waits nor fails for lack of room):
    /// the caller bounds what it sends. Errors as for [`try_send`](Transport::try_send),
    /// but never [`TransportError::Full`].
    pub fn send_urgent(&self, to: &NodeId, frame: &Frame) -> Result<(), TransportError> {
        if !matches!(frame, Frame::Control(_)) {
            return Err(TransportError::NotUrgent(frame.kind()));
        }
        let (link, bytes) = self.prepare(to, frame)?;
        link.send_urgent(bytes).map_err(|_| TransportError::PeerDown(to.clone()))
    }

    /// Closes the link to `node` gracefully: frames already queued are written, then a
    /// `Goodbye` carrying `reason`; `PeerDown` with [`DownReason::Disconnected`] follows.
    pub fn disconnect(&self, node: &NodeId, reason: &str) -> Result<(), TransportError> {
        let link = lock(&self.shared.peers).link(node)?;
        link.say_goodbye(reason.to_owned(), DownReason::Disconnected(reason.to_owned()));
        Ok(())
    }

    /// Whether a link to `node` is up.
    pub fn is_up(&self, node: &NodeId) -> bool {
        lock(&self.shared.peers).is_up(node)
    }

    /// The nodes with a link up, in no particular order.
    pub fn peers(&self) -> Vec<NodeId> {
        lock(&self.shared.peers).up().map(|link| link.node.clone()).collect()
    }

    /// Counters over all links.
    pub fn stats(&self) -> TransportStats {
        let links = lock(&self.shared.peers).up().count();
        self.shared.counters.snapshot(links)
    }

    /// Stops listening, writes what is queued and a `Goodbye` to every peer, closes every
    /// link, and waits (a bounded time) for the links' tasks to end.
    ///
    /// Every link reports `PeerDown` with [`DownReason::Shutdown`]; the event stream ends
    /// after the last one. Later calls fail with [`TransportError::Shutdown`].
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.stop();
        lock(&shared.events).take();
        shared.tasks.close();
        let _ = tokio::time::timeout(2 * GOODBYE_GRACE, shared.tasks.wait()).await;
    }

    fn prepare(&self, to: &NodeId, frame: &Frame) -> Result<(Arc<Link>, Encoded), TransportError> {
        if !frame.kind().is_data() {
            return Err(TransportError::Reserved(frame.kind()));
        }
        if self.shared.is_stopping() {
            return Err(TransportError::Shutdown);
        }
        let link = lock(&self.shared.peers).link(to)?;
        let mut bytes = BytesMut::with_capacity(64 + frame.payload_len());
        self.shared.codec.encode_frame(frame, &mut bytes).map_err(TransportError::Frame)?;
        Ok((link, Encoded { bytes: bytes.freeze(), frames: 1 }))
    }
}

impl Shared {
    /// Shuts the transport down: the flag first, then the token its tasks wait on, so
    /// whoever sees the token cancelled also sees [`is_stopping`](Self::is_stopping).
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.shutdown.cancel();
    }

    /// Whether the transport is shutting down.
    #[inline]
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Dials `addr`: what [`Transport::connect`] does (also used to redial).
    async fn dial_addr(self: &Arc<Shared>, addr: SocketAddr) -> Result<NodeId, TransportError> {
        let events = self.events()?;
        // The connection, the handshake and the link's start run in their own task, on the
        // transport's runtime (whose reactor the socket is registered with): cancelling
        // `connect` must not leave a half-made link behind (the link may still come up).
        match self.spawn(self.clone().connect_tcp(addr, events)).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(TransportError::Shutdown),
        }
    }

    /// Opens a TCP connection to `addr` and dials over it.
    async fn connect_tcp(
        self: Arc<Shared>,
        addr: SocketAddr,
        events: Events,
    ) -> Result<NodeId, TransportError> {
        #[cfg(feature = "turmoil")]
        if net::simulated() {
            let stream = self.open(turmoil::net::TcpStream::connect(addr), addr).await?;
            return self.dial_tcp(stream, addr, events).await;
        }
        let stream = self.open(TcpStream::connect(addr), addr).await?;
        self.dial_tcp(stream, addr, events).await
    }

    /// Waits for a TCP connect (bounded by `handshake_timeout`) and tunes the stream.
    async fn open<S: net::Stream>(
        &self,
        connect: impl Future<Output = std::io::Result<S>>,
        addr: SocketAddr,
    ) -> Result<S, TransportError> {
        let timeout = self.config.handshake_timeout;
        let stream = tokio::select! {
            () = self.shutdown.cancelled() => return Err(TransportError::Shutdown),
            stream = tokio::time::timeout(timeout, connect) => stream,
        };
        let stream = stream
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))
            .and_then(|stream| stream)
            .map_err(|source| TransportError::Connect { addr, source })?;
        self.tune(&stream).map_err(|source| TransportError::Connect { addr, source })?;
        Ok(stream)
    }

    /// Runs `task` among the transport's tasks, on its own thread if it has one.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.io {
            Some(io) => self.tasks.spawn_on(task, io),
            None => self.tasks.spawn(task),
        }
    }

    /// Sets a new connection's socket options: `TCP_NODELAY`, [`UNSENT_LIMIT`], and the
    /// buffer sizes if the configuration bounds them.
    /// (None on simulated sockets, which have no options.)
    fn tune<S: net::Stream>(&self, stream: &S) -> std::io::Result<()> {
        stream.tune(UNSENT_LIMIT, self.config.socket_buffer)
    }

    fn events(&self) -> Result<Events, TransportError> {
        match &*lock(&self.events) {
            Some(events) if !self.is_stopping() => Ok(events.clone()),
            _ => Err(TransportError::Shutdown),
        }
    }

    fn new_link(&self, peer: &PeerHello, addr: SocketAddr, listen: SocketAddr) -> NewLink {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (link, lanes) = Link::new(
            id,
            peer.node.clone(),
            peer.incarnation,
            addr,
            listen,
            self.config.send_queue,
            &self.shutdown,
        );
        NewLink { link, lanes }
    }

    /// Judges an authenticated connection; on success the link is in the table, and leaves
    /// it again if the returned registration is dropped before it is announced.
    fn admit(self: &Arc<Shared>, new: NewLink, role: Role) -> Option<Registration> {
        if self.is_stopping() {
            return None;
        }
        let admission = lock(&self.peers).admit(&self.identity.node, &new.link, role);
        match admission {
            Admission::Installed { replaced } => {
                Some(Registration { shared: self.clone(), new: Some(new), replaced })
            }
            Admission::Duplicate => None,
        }
    }

    /// Takes a link out of the table (if still there) and tells waiters.
    fn remove(&self, link: &Arc<Link>) {
        if lock(&self.peers).remove(link) {
            self.changes.send_replace(());
        }
    }

    /// The dialling side of a connection, after the TCP connect: over TLS if configured.
    async fn dial_tcp<S: net::Stream>(
        self: Arc<Shared>,
        stream: S,
        addr: SocketAddr,
        events: Events,
    ) -> Result<NodeId, TransportError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.config.tls.clone() {
            return self.dial_tls(tls, stream, addr, events).await;
        }
        self.dial(stream, addr, events).await
    }

    /// The dialling side of a connection over TLS: the TLS handshake, then [`Self::dial`].
    #[cfg(feature = "tls")]
    async fn dial_tls<S: net::Stream>(
        self: Arc<Shared>,
        tls: TlsConfig,
        stream: S,
        addr: SocketAddr,
        events: Events,
    ) -> Result<NodeId, TransportError> {
        let connector = tokio_rustls::TlsConnector::from(tls.client);
        let connect = connector.connect(tls.server_name, stream);
        let wrapped = tokio::select! {
            () = self.shutdown.cancelled() => return Err(TransportError::Shutdown),
            wrapped = tokio::time::timeout(self.config.handshake_timeout, connect) => wrapped,
        };
        match wrapped {
            Ok(Ok(stream)) => self.dial(stream, addr, events).await,
            Ok(Err(error)) => {
                Err(self.handshake_failed(addr, HandshakeError::Tls(error.to_string())))
            }
            Err(_) => {
                let source = HandshakeError::Timeout(self.config.handshake_timeout);
                Err(self.handshake_failed(addr, source))
            }
        }
    }

    /// The dialling side of a connection, once its stream is set up.
    async fn dial<S>(
        self: Arc<Shared>,
        stream: S,
        addr: SocketAddr,
        events: Events,
    ) -> Result<NodeId, TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut io = FrameReader::with_buffer(stream, BytesMut::new(), exchange::handshake_codec());
        let handshake = exchange::initiate(&mut io, &self.identity, |peer| {
            let started = lock(&self.peers).start_dial(&peer.node, peer.incarnation);
            started.then(|| DialGuard { shared: self.clone(), node: peer.node.clone() })
        });
        let outcome = tokio::select! {
            () = self.shutdown.cancelled() => return Err(TransportError::Shutdown),
            outcome = tokio::time::timeout(self.config.handshake_timeout, handshake) => outcome,
        };
        let (peer, verdict, dial) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(source)) => return Err(self.handshake_failed(addr, source)),
            Err(_) => {
                let source = HandshakeError::Timeout(self.config.handshake_timeout);
                return Err(self.handshake_failed(addr, source));
            }
        };
        if verdict == Verdict::Duplicate {
            drop(dial);
            tracing::debug!(peer = %peer.node, %addr, "already linked; connection dropped");
            return self.wait_up(&peer.node).await;
        }
        if self.is_stopping() {
            return Err(TransportError::Shutdown);
        }
        let new = self.new_link(&peer, addr, addr);
        new.link.set_dialled();
        let registration = match self.admit(new, Role::Initiator) {
            Some(registration) => registration,
            None => {
                drop(dial);
                tracing::error!(peer = %peer.node, %addr, "peer welcomed a duplicate link");
                return self.wait_up(&peer.node).await;
            }
        };
        drop(dial);
        let (stream, buffered) = io.into_parts();
        registration.announce(stream, buffered, events).await;
        Ok(peer.node)
    }

    fn handshake_failed(&self, addr: SocketAddr, source: HandshakeError) -> TransportError {
        tracing::warn!(%addr, error = %source, "outgoing handshake failed; connection dropped");
        TransportError::Handshake { addr, source }
    }

    /// After a `Duplicate` verdict: the winning link is up or about to be.
    async fn wait_up(&self, node: &NodeId) -> Result<NodeId, TransportError> {
        let mut changes = self.changes.subscribe();
        let up = async {
            loop {
                if lock(&self.peers).is_up(node) {
                    return true;
                }
                if changes.changed().await.is_err() {
                    return false;
                }
            }
        };
        match tokio::time::timeout(self.config.handshake_timeout, up).await {
            Ok(true) => Ok(node.clone()),
            _ => Err(TransportError::Duplicate(node.clone())),
        }
    }
}

/// A listening socket just opened: the operating system's, not yet registered with a
/// runtime, or a simulated host's (feature `turmoil`).
enum Opened {
    Os(std::net::TcpListener),
    Simulated(net::Bound),
}

/// A link not yet in the table, and its queues' receiving ends.
#[derive(Debug)]
struct NewLink {
    link: Arc<Link>,
    lanes: Lanes,
}

/// A link in the table whose `PeerUp` is not reported yet. Dropped unannounced, it leaves
/// the table without any event.
#[derive(Debug)]
struct Registration {
    shared: Arc<Shared>,
    new: Option<NewLink>,
    replaced: Option<Arc<Link>>,
}

impl Registration {
    /// Reports `PeerUp` (after the replaced link's `PeerDown`) and starts the link's tasks.
    async fn announce<S>(mut self, stream: S, buffered: BytesMut, events: Events)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        if let Some(old) = self.replaced.take() {
            old.finished().await;
        }
        let Some(NewLink { link, lanes }) = self.new.take() else { return };
        if link.is_closing() {
            // Replaced or shut down before it was reported: it never existed for the
            // application.
            self.shared.remove(&link);
            link.set_finished();
            return;
        }
        tracing::debug!(peer = %link.node, addr = %link.addr, link = link.id, "link up");
        metrics::counter!("amber_links_up_total", "peer" => link.node.to_string()).increment(1);
        let up = TransportEvent::PeerUp {
            node: link.node.clone(),
            addr: link.addr,
            listen: link.listen,
            incarnation: link.incarnation,
        };
        events.send(up).await;
        link.set_announced();
        self.shared.changes.send_replace(());
        link::spawn(&self.shared, link, lanes, stream, buffered, events);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(new) = self.new.take() {
            new.link.close(DownReason::Shutdown);
            self.shared.remove(&new.link);
            new.link.set_finished();
        }
    }
}

/// A dial registered in the peer table, unregistered on drop.
#[derive(Debug)]
struct DialGuard {
    shared: Arc<Shared>,
    node: NodeId,
}

impl Drop for DialGuard {
    fn drop(&mut self) {
        lock(&self.shared.peers).dial_ended(&self.node);
    }
}

/// The most bytes a link leaves unsent in the kernel's send buffer (`TCP_NOTSENT_LOWAT`,
/// where the platform has it): the backlog of a link whose peer reads slowly stays in the
/// link's queue, where urgent frames overtake it, instead of megabytes of socket buffer
/// that nothing overtakes. Bytes sent and not yet acknowledged are not limited by it, so
/// it does not cap a long link's throughput.
const UNSENT_LIMIT: u32 = 128 * 1024;
