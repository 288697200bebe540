//! amber-remote: the TCP transport between amber nodes.
//!
//! A [`Transport`] is one node's endpoint. It listens on a TCP address, dials other nodes,
//! authenticates every connection with a shared secret, keeps **one link per pair of
//! nodes**, and moves [`Frame`]s over those links: length-prefixed frames in amber's own
//! binary layout (a type byte, then fixed fields), with opaque payload bytes. What it knows
//! of actors is their addressing: a `Frame::Message` names its receiving and sending actors,
//! the sender's epoch and an ask's id and depth, so that a node routes a message without
//! decoding it; the messages themselves, replies and the runtime's own protocols (snapshots,
//! lookups, spawns) are opaque bytes in `Frame::Message`, `Frame::Reply` and `Frame::Control`.
//! What happens on the links arrives as [`TransportEvent`]s on one channel.
//!
//! ```
//! use amber_remote::{Frame, Transport, TransportConfig, TransportEvent};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"the cluster's long random shared secret".to_vec();
//! let any_port = "127.0.0.1:0".parse()?;
//! let (a, _a_events) = Transport::bind(TransportConfig::new("a", any_port, secret.clone())).await?;
//! let (b, mut b_events) = Transport::bind(TransportConfig::new("b", any_port, secret)).await?;
//!
//! let b_id = a.connect(b.local_addr()).await?;
//! assert_eq!(b_id.as_str(), "b");
//! a.send(&b_id, &Frame::Control(b"hello".to_vec())).await?;
//!
//! // B sees the link come up, then the frame.
//! assert!(matches!(b_events.recv().await, Some(TransportEvent::PeerUp { .. })));
//! match b_events.recv().await {
//!     Some(TransportEvent::Frame { from, frame: Frame::Control(bytes) }) => {
//!         assert_eq!(from.as_str(), "a");
//!         assert_eq!(bytes, b"hello");
//!     }
//!     other => panic!("unexpected event {other:?}"),
//! }
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Frames
//!
//! On the wire a frame is a `u32` big-endian body length followed by the body: one type byte
//! ([`FrameKind`]) and the frame's fields in a fixed order, integers as LEB128 varints and
//! byte strings counted (the table of types and fields is in [`FrameCodec`]). The handshake's
//! frames are a type of their own, [`HandshakeFrame`]: a link never accepts one, and the
//! handshake accepts nothing else. Bodies are limited to [`TransportConfig::max_frame`]
//! (8 MiB by default) on both ends: a sender gets [`TransportError::Frame`] for an oversized
//! frame, a receiver closes the link on an oversized length prefix *before* reserving memory
//! for it. The decoder never panics, never allocates more than about one maximum frame (a
//! message's payload is a slice of the read buffer, not a copy), and refuses unknown types,
//! fields cut short, bytes after the last field and invalid values; every failure is a typed
//! [`FrameError`].
//!
//! # Handshake
//!
//! The dialling side speaks first and proves first; nothing but handshake frames (at most
//! 1 KiB each) is accepted until the handshake completes, and the whole of it is bounded by
//! [`TransportConfig::handshake_timeout`].
//!
//! 1. **Preamble**, dialler first: the 4 bytes `AMBR` and the protocol version as `u16`
//!    big-endian. Other bytes are [`HandshakeError::NotAmber`]; another version is
//!    [`HandshakeError::Version`] with both versions, on both sides (the accepting side
//!    answers with its own preamble before it checks the version).
//! 2. **Hello** ([`HandshakeFrame::Hello`]), dialler first, the acceptor's right after its
//!    preamble: node id, incarnation (random per transport start), listening port, and a
//!    fresh random 32-byte nonce. A peer claiming this node's own id is refused.
//! 3. **Proof** ([`HandshakeFrame::Proof`]), dialler first: `HMAC-SHA256(secret, "amber-v1"
//!    || role || own id || peer id || initiator nonce || acceptor nonce)`, where role is one
//!    byte (1 for the side that dialled, 2 for the side that accepted) and ids are `u32`
//!    big-endian length + UTF-8. The acceptor checks it in constant time; if it fails, the
//!    acceptor answers [`HandshakeFrame::Refuse`]`(`[`Refusal::Auth`]`)` and closes: it never
//!    sends anything keyed by the secret to a dialler that has not proven it knows it.
//!    Otherwise the acceptor sends its own proof, which the dialler checks. A bad proof is
//!    [`HandshakeError::Auth`] on both sides. The secret never crosses the wire; the nonces
//!    make every proof single-use and the role byte stops a peer from reflecting our own
//!    proof.
//! 4. **Verdict**: the accepting side follows its proof with [`HandshakeFrame::Welcome`] or
//!    [`HandshakeFrame::Duplicate`] (see below). A dialling side that learns from the `Hello`
//!    that it already has a link to that peer sends `Duplicate` instead of its proof and stops
//!    there.
//!
//! **What a proof gives away.** A proof is an HMAC over values the receiver knows, so whoever
//! receives one can test guesses of the secret offline. The acceptor, which answers anyone
//! who can reach its port, therefore proves nothing before the dialler has; the dialler
//! shows its proof only to the address it chose to dial. A secret of 16 random bytes or more
//! is beyond such guessing; shorter ones are refused when the transport starts
//! ([`ConfigError::ShortSecret`], [`MIN_SECRET_LEN`]), and a password-like secret of any
//! length is not safe: draw it at random.
//!
//! **Connections in their handshake are bounded.** At most
//! [`TransportConfig::max_pending_handshakes`] incoming connections (64 by default) may be in
//! their handshake at once, and at most [`TransportConfig::max_pending_per_address`] (8) from
//! one IP address; a connection past either bound is answered with its preamble and
//! [`HandshakeFrame::Refuse`]`(`[`Refusal::TooManyPending`]`)` and closed, which the dialler's
//! [`Transport::connect`] reports as [`HandshakeError::TooManyPending`] ("handshake refused:
//! too many pending"; retry later). A dialler must send its first byte within
//! [`TransportConfig::first_byte_timeout`] (1 s), or its connection is dropped
//! ([`HandshakeError::Idle`]). So idle connections from one address hold that address's
//! places for a second each, and nodes dialling from other addresses still get in.
//!
//! **Warnings are limited per peer.** Failed incoming handshakes are logged at most 5 times
//! per remote address in 10 s (the next line logged carries `suppressed`, the number held
//! back); every one is still reported as [`TransportEvent::HandshakeFailed`]. A
//! [`Cluster`] likewise limits the warnings a linked peer causes, and drops a peer that
//! sends 16 control messages it cannot read within 10 s, with one warning naming it.
//!
//! A failed handshake drops the connection, logs a `tracing` warning naming the address and
//! the reason, and is reported: by [`Transport::connect`]'s error on the dialling side, by
//! [`TransportEvent::HandshakeFailed`] on the accepting side.
//!
//! The handshake authenticates nodes; by itself it does not encrypt or protect frames
//! afterwards. With [`TransportConfig::with_tls`] every connection is first wrapped in TLS
//! (rustls; [`TlsConfig::from_pem`] sets up mutual TLS from a cluster CA), and the same
//! handshake then runs inside it as the cluster-membership check; a TLS failure is reported
//! like any other ([`HandshakeError::Tls`]). The TLS handshake and amber's are each bounded by
//! `handshake_timeout`. Without TLS, run clusters on trusted networks.
//!
//! # One link per node pair
//!
//! If two nodes dial each other at the same moment, or one dials twice, exactly one
//! connection becomes the link, the same one on both sides, and each side reports exactly
//! one [`TransportEvent::PeerUp`]: a dialler already linked to the peer abandons its
//! connection, the accepting side of every other connection decides, and while both sides
//! dial, the connection dialled by the node with the smaller id wins. Every `connect`
//! involved returns the peer's id. A connection from a peer that restarted (a new
//! incarnation) replaces the old link, reported as `PeerDown` ([`DownReason::Replaced`])
//! then `PeerUp`.
//!
//! # Ordering and backpressure
//!
//! Each link is one TCP connection, written by one writer task from two queues, and frames
//! arrive in the order they were written:
//!
//! - the **data lane**, a bounded queue ([`TransportConfig::send_queue`] entries), fed by
//!   [`Transport::send`], [`Transport::send_all`] and [`Transport::try_send`]: frames from
//!   one node to another arrive in the order their sends returned;
//! - the **urgent lane**, an unbounded queue fed by [`Transport::send_urgent`] (control
//!   frames only, for messages such as the snapshot protocol's that must not wait behind a
//!   backlog): its frames arrive in the order their sends returned, and the writer takes
//!   them ahead of the data lane in every batch. An urgent frame may overtake data frames
//!   queued before it; a data frame never overtakes an urgent frame whose send returned
//!   before its own began.
//!
//! The writer takes everything queued (urgent frames first, up to about 256 KiB in all) and
//! writes it with one flush, so a busy link batches many frames per system call, and a lone
//! frame is written at once: the writer never waits for more. `TCP_NODELAY` is set, and on
//! Linux and Android `TCP_NOTSENT_LOWAT` (128 KiB): a link whose peer reads slowly keeps its
//! backlog in its own queue, where urgent frames overtake it, not in megabytes of kernel
//! send buffer (bytes in flight are not limited, so a long link's throughput is not). What
//! an urgent frame cannot overtake is what was written before it: the write under way, the
//! TCP buffers, and on the receiving side the frames read but not yet taken from the event
//! channel (the receiver hands frames over in the order they arrived and cannot tell urgent
//! ones apart).
//!
//! [`Transport::send`] encodes the frame in the caller's task and waits while the queue is
//! full; [`Transport::try_send`] fails with [`TransportError::Full`] instead. Neither hangs on
//! a dead peer: sends to an unknown or down peer fail at once
//! ([`TransportError::UnknownPeer`], [`TransportError::PeerDown`]), and a waiting send fails
//! when its link goes down. On the receiving side, when the application does not drain the
//! event channel ([`TransportConfig::event_queue`] events), links stop reading and TCP pushes
//! back on the senders. [`Transport::bind_with_handler`] has no channel: each link's reader
//! calls the application's handler with each event, in place (a [`Cluster`] works so), and
//! reads on once it returns.
//!
//! Under a stream faster than the peer reads, every queue on the way fills, and a frame sent
//! behind it waits for all of them: the send queue (counted in frames, whatever
//! [`Transport::send_all`] packs into one entry), the kernel's socket buffers, the peer's
//! event channel. The kernel sizes its buffers itself by default, up to megabytes on Linux,
//! which is tens to hundreds of milliseconds for such a frame;
//! [`TransportConfig::socket_buffer`] bounds them, and with smaller queues that delay with
//! them, at the cost of throughput where the bandwidth-delay product is large.
//!
//! # Failure detection
//!
//! A writer that has written nothing for [`TransportConfig::heartbeat_interval`] writes a
//! [`Frame::Heartbeat`]. A reader that has received nothing (not one byte) for
//! [`TransportConfig::peer_timeout`] declares the peer down with [`DownReason::Timeout`] and
//! closes the connection. A malformed, oversized, truncated or unexpected frame closes that
//! link only, with [`DownReason::Frame`] and a logged warning; the node keeps serving its other
//! links. A peer closing the connection, even mid-frame, is reported at once.
//!
//! # Reconnection
//!
//! The node that dialled a link redials it after it drops unasked (timeout, closed or reset
//! connection, malformed frame), with exponential backoff and jitter, following
//! [`TransportConfig::reconnect`] ([`ReconnectPolicy`]): until the peer is linked again (a new
//! `PeerUp`), the policy gives up ([`TransportEvent::GaveUp`]), or the transport shuts down.
//! The accepting node never redials, so the two nodes do not race to make two links. A
//! goodbye from the peer, [`Transport::disconnect`] and a replaced link are not redialled;
//! call [`Transport::connect`] again then (the `listen` address from `PeerUp` is where the
//! peer accepts connections); a restarted peer may also dial in. `PeerUp` carries the peer's
//! incarnation (random per transport start): another one than before means it restarted.
//! What a link's death loses:
//! frames still in its send queue or in flight in TCP buffers (a successful `send` means
//! *queued*, not delivered), and frames received but not yet handed to the event channel.
//! What it never does: reorder frames of one lane (or let a data frame overtake an urgent
//! one sent before it), duplicate frames, deliver frames of a link after its
//! `PeerDown`, or deliver a frame of the next link before that link's `PeerUp`. Anything that
//! must survive a link's death needs an acknowledgement above the transport (asks time out;
//! snapshots in progress abort on `PeerDown`).
//!
//! # Membership
//!
//! [`Cluster::join`] starts a node that forms its cluster from seed addresses: members learn
//! each other through gossip (SWIM, by the `foca` crate, over UDP beside the links, every
//! datagram authenticated with a key derived from the shared secret) and link to each other
//! by themselves; a member the gossip declares down has its link closed, with the
//! consequences of any lost link. See [`MembershipConfig`] and [`Cluster::members`].
//!
//! # Shutdown
//!
//! [`Transport::shutdown`] stops listening, writes what is queued and a `Goodbye` to every
//! peer, and closes the links; peers report [`DownReason::Goodbye`]. Dropping the last
//! `Transport` handle does the same without waiting.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cluster;
mod frame;
mod handshake;
mod log_limit;
mod net;
mod node;
mod transport;

pub use cluster::{
    Cluster, ClusterError, ClusterEvent, EntityRef, GossipStats, KeeperMsg, KeeperReply,
    LostShards, Member, MemberStatus, MembershipConfig, Placement, PlacementError, Rebalance,
    RestartSourceError, Restarted, ShardKeeper, ShardRefusal, Sharding, ShardingConfig,
    ShardingError, SpawnRefusal, TellError,
};
pub use frame::{
    DEFAULT_MAX_FRAME, Frame, FrameBody, FrameCodec, FrameError, FrameKind, HEADER_LEN,
    HandshakeFrame,
};
pub use handshake::{HandshakeError, PROTOCOL_VERSION, Refusal};
pub use node::{NodeId, NodeIdError};
pub use transport::{
    ConfigError, DownReason, MIN_SECRET_LEN, ReconnectPolicy, Transport, TransportConfig,
    TransportError, TransportEvent, TransportStats,
};
#[cfg(feature = "tls")]
pub use transport::{TlsConfig, TlsError};
