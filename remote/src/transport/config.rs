//! Transport configuration.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::ReconnectPolicy;
#[cfg(feature = "tls")]
use super::TlsConfig;
use crate::frame::DEFAULT_MAX_FRAME;
use crate::handshake::HANDSHAKE_MAX_FRAME;
use crate::{NodeId, NodeIdError};

/// The shortest shared secret a [`TransportConfig`] accepts, in bytes: 16 random bytes (128
/// bits) are out of reach of an offline guessing attack on a handshake proof; a password-like
/// secret of that length is not, so draw it at random (32 bytes recommended).
pub const MIN_SECRET_LEN: usize = 16;

/// How a [`Transport`](crate::Transport) names itself, where it listens, whom it trusts, and
/// its limits and timers.
///
/// Build one with [`TransportConfig::new`] and adjust fields or use the `with_*` methods;
/// [`Transport::bind`](crate::Transport::bind) checks it. `Debug` does not print the secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// This node's id; unique in the cluster, 1 to [`NodeId::MAX_LEN`] bytes.
    pub node: NodeId,
    /// Where to accept connections; port 0 picks a free port (see
    /// [`Transport::local_addr`](crate::Transport::local_addr)).
    pub listen: SocketAddr,
    /// The cluster's shared secret; every node must have the same one. It never crosses the
    /// wire, but a node that dials a stranger shows it an HMAC keyed with it (see
    /// [the handshake](crate#handshake)), which the stranger can attack offline: use 32
    /// random bytes or more. Shorter than [`MIN_SECRET_LEN`] (16) bytes is refused
    /// ([`ConfigError::ShortSecret`]).
    pub secret: Vec<u8>,
    /// The largest frame body this node sends or accepts, in bytes. Default 8 MiB.
    pub max_frame: usize,
    /// A link on which nothing was written for this long gets a heartbeat. Default 1 s.
    pub heartbeat_interval: Duration,
    /// A peer from which nothing arrived for this long is declared down. Must exceed the
    /// peers' heartbeat interval (with margin for load); default 5 s.
    pub peer_timeout: Duration,
    /// The longest a TCP connect plus handshake may take (on the accepting side, counted
    /// from the dialler's first byte); a peer that stops half-way is dropped after it.
    /// Default 5 s.
    pub handshake_timeout: Duration,
    /// How long an incoming connection may stay silent: the dialler must send its first
    /// byte within this of connecting, or the connection is dropped
    /// ([`HandshakeError::Idle`](crate::HandshakeError::Idle)) and its handshake place
    /// freed. An amber dialler writes at once. Default 1 s.
    pub first_byte_timeout: Duration,
    /// Frames that may wait on one peer's data lane (counted one by one, also when
    /// [`send_all`](crate::Transport::send_all) queues many in one entry) before
    /// [`send`](crate::Transport::send) waits (and
    /// [`try_send`](crate::Transport::try_send) fails). Default 1024. The urgent lane
    /// ([`send_urgent`](crate::Transport::send_urgent)) is not bounded. A
    /// [`Cluster`](crate::Cluster) also lets at most this many data messages wait for one
    /// peer before a bounded `tell` waits.
    pub send_queue: usize,
    /// Events that may wait for the application before the links stop reading. Default 1024.
    /// Unused by [`Transport::bind_with_handler`](crate::Transport::bind_with_handler),
    /// which hands events over in place.
    pub event_queue: usize,
    /// Incoming connections that may be in their handshake at once, from all addresses.
    /// Default 64. One past it, or past
    /// [`max_pending_per_address`](Self::max_pending_per_address), is refused on arrival:
    /// the dialler is sent [`Refusal::TooManyPending`](crate::Refusal::TooManyPending)
    /// (reported by its `connect` as
    /// [`HandshakeError::TooManyPending`](crate::HandshakeError::TooManyPending); under TLS,
    /// which comes first, as a TLS error) and the connection is closed.
    pub max_pending_handshakes: usize,
    /// Incoming connections from one IP address that may be in their handshake at once.
    /// Default 8. A flood of idle connections from one address then takes that address's
    /// places only (for at most [`first_byte_timeout`](Self::first_byte_timeout) each), so
    /// nodes dialling from other addresses still get in; it takes
    /// `max_pending_handshakes / max_pending_per_address` flooding addresses to fill every
    /// place.
    pub max_pending_per_address: usize,
    /// The kernel's send and receive buffer sizes (`SO_SNDBUF`, `SO_RCVBUF`) for every
    /// link's socket, in bytes; `None` (the default) leaves them to the kernel, which grows
    /// them with the traffic (on Linux up to `net.ipv4.tcp_rmem` and `tcp_wmem`, megabytes).
    ///
    /// Under a stream faster than the peer reads, these buffers fill, and every frame sent
    /// behind it waits for them to drain: a few megabytes are tens to hundreds of
    /// milliseconds of latency for each later frame (replies, snapshot messages, a moving
    /// actor). A bound keeps that short, at the cost of throughput on links whose
    /// bandwidth-delay product exceeds it. The kernel may round the size (Linux doubles it).
    pub socket_buffer: Option<usize>,
    /// How this node redials a link it dialled after the link drops unasked (timeout,
    /// closed or reset connection, malformed frame); `None`: never. Default
    /// [`ReconnectPolicy::default`]: from 100 ms, doubling up to 5 s, forever (until the
    /// peer is back, says goodbye, or this transport shuts down).
    pub reconnect: Option<ReconnectPolicy>,
    /// Whether the transport runs its tasks (accepting, handshakes, every link's reader and
    /// writer, redials) on a thread of its own, with a single-threaded runtime, instead of
    /// on the runtime that bound it. Default `false`.
    ///
    /// On the application's runtime, a link's reader and writer are two tasks among all the
    /// actors: when every worker is busy, each waits for its turn behind every runnable
    /// actor, so what a link carries (snapshot messages, replies, heartbeats) waits up to a
    /// sweep of the run queue at each end. The transport's own thread is woken by the
    /// kernel when its sockets or queues are ready and sleeps otherwise: the operating
    /// system gives it the CPU as soon as it has work, whatever the actors do. The price is
    /// a hand-over between threads for every batch sent and every actor woken by a
    /// delivery, and a third thread competing for the cores. Measured on 2 cores, with 2
    /// workers, three nodes of a saturated bank in one process: snapshots' p50 about the
    /// same or a little lower, deposits 20-25 % fewer; two processes flooding one actor:
    /// 15-25 % fewer remote tells (BENCHMARKS.md). Worth it where cores outnumber the
    /// workers. What the transport hands the application runs on the application's
    /// runtime either way. Ignored by a node inside a turmoil simulation (feature
    /// `turmoil`): its tasks run on its simulated host.
    pub io_thread: bool,
    /// TLS on every link ([`TlsConfig`]); `None` (the default): plain TCP, with amber's
    /// authenticated handshake. Every node of a cluster must agree.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConfig>,
}

impl TransportConfig {
    /// A configuration with the default limits and timers.
    pub fn new(
        node: impl Into<NodeId>,
        listen: SocketAddr,
        secret: impl Into<Vec<u8>>,
    ) -> TransportConfig {
        TransportConfig {
            node: node.into(),
            listen,
            secret: secret.into(),
            max_frame: DEFAULT_MAX_FRAME,
            heartbeat_interval: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(1),
            send_queue: 1024,
            event_queue: 1024,
            max_pending_handshakes: 64,
            max_pending_per_address: 8,
            socket_buffer: None,
            reconnect: Some(ReconnectPolicy::default()),
            io_thread: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Sets [`max_frame`](Self::max_frame).
    #[must_use]
    pub fn with_max_frame(mut self, max_frame: usize) -> TransportConfig {
        self.max_frame = max_frame;
        self
    }

    /// Sets [`heartbeat_interval`](Self::heartbeat_interval) and
    /// [`peer_timeout`](Self::peer_timeout).
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Duration, peer_timeout: Duration) -> TransportConfig {
        self.heartbeat_interval = interval;
        self.peer_timeout = peer_timeout;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TransportConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`first_byte_timeout`](Self::first_byte_timeout).
    #[must_use]
    pub fn with_first_byte_timeout(mut self, timeout: Duration) -> TransportConfig {
        self.first_byte_timeout = timeout;
        self
    }

    /// Sets [`max_pending_handshakes`](Self::max_pending_handshakes) and
    /// [`max_pending_per_address`](Self::max_pending_per_address).
    #[must_use]
    pub fn with_pending_handshakes(mut self, total: usize, per_address: usize) -> TransportConfig {
        self.max_pending_handshakes = total;
        self.max_pending_per_address = per_address;
        self
    }

    /// Sets [`send_queue`](Self::send_queue) and [`event_queue`](Self::event_queue).
    #[must_use]
    pub fn with_queues(mut self, send_queue: usize, event_queue: usize) -> TransportConfig {
        self.send_queue = send_queue;
        self.event_queue = event_queue;
        self
    }

    /// Sets [`tls`](Self::tls): every link runs over TLS.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> TransportConfig {
        self.tls = Some(tls);
        self
    }

    /// Sets [`reconnect`](Self::reconnect): `None` turns redialling off.
    #[must_use]
    pub fn with_reconnect(mut self, policy: Option<ReconnectPolicy>) -> TransportConfig {
        self.reconnect = policy;
        self
    }

    /// Sets [`io_thread`](Self::io_thread).
    #[must_use]
    pub fn with_io_thread(mut self, own_thread: bool) -> TransportConfig {
        self.io_thread = own_thread;
        self
    }

    /// Sets [`socket_buffer`](Self::socket_buffer).
    #[must_use]
    pub fn with_socket_buffer(mut self, bytes: usize) -> TransportConfig {
        self.socket_buffer = Some(bytes);
        self
    }

    /// What is wrong with this configuration, if anything.
    /// [`Transport::bind`](crate::Transport::bind) runs it first; call it to check a
    /// configuration earlier (say, when it is read from a file).
    pub fn check(&self) -> Result<(), ConfigError> {
        self.node.check()?;
        if self.secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        if self.secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::ShortSecret { len: self.secret.len(), min: MIN_SECRET_LEN });
        }
        if self.max_frame < HANDSHAKE_MAX_FRAME || self.max_frame > u32::MAX as usize {
            return Err(ConfigError::MaxFrame(self.max_frame));
        }
        if self.heartbeat_interval.is_zero()
            || self.handshake_timeout.is_zero()
            || self.first_byte_timeout.is_zero()
        {
            return Err(ConfigError::ZeroInterval);
        }
        if self.peer_timeout <= self.heartbeat_interval {
            return Err(ConfigError::PeerTimeout {
                peer_timeout: self.peer_timeout,
                heartbeat_interval: self.heartbeat_interval,
            });
        }
        if self.send_queue == 0
            || self.event_queue == 0
            || self.max_pending_handshakes == 0
            || self.max_pending_per_address == 0
        {
            return Err(ConfigError::ZeroQueue);
        }
        if let Some(bytes) = self.socket_buffer.filter(|&b| b == 0 || b > i32::MAX as usize) {
            return Err(ConfigError::SocketBuffer(bytes));
        }
        if let Some(policy) = self.reconnect.filter(|p| !p.is_valid()) {
            return Err(ConfigError::Reconnect(policy));
        }
        Ok(())
    }
}

/// What is wrong with a [`TransportConfig`]
/// ([`TransportError::Config`](crate::TransportError::Config)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The node's name is unusable.
    #[error(transparent)]
    Node(#[from] NodeIdError),
    /// The shared secret is empty.
    #[error("the shared secret must not be empty")]
    EmptySecret,
    /// The shared secret is shorter than [`MIN_SECRET_LEN`]: guessable offline from one
    /// handshake proof.
    #[error("the shared secret is {len} bytes; at least {min} random bytes are needed")]
    ShortSecret {
        /// The secret's length.
        len: usize,
        /// [`MIN_SECRET_LEN`].
        min: usize,
    },
    /// `max_frame` (the value given) is out of range.
    #[error("max_frame must be between {HANDSHAKE_MAX_FRAME} and {max} bytes, not {0}", max = u32::MAX)]
    MaxFrame(usize),
    /// `heartbeat_interval`, `handshake_timeout` or `first_byte_timeout` is zero.
    #[error("heartbeat_interval, handshake_timeout and first_byte_timeout must not be zero")]
    ZeroInterval,
    /// `peer_timeout` does not exceed `heartbeat_interval`.
    #[error(
        "peer_timeout ({peer_timeout:?}) must exceed heartbeat_interval ({heartbeat_interval:?})"
    )]
    PeerTimeout {
        /// The peer timeout given.
        peer_timeout: Duration,
        /// The heartbeat interval given.
        heartbeat_interval: Duration,
    },
    /// A queue size, `max_pending_handshakes` or `max_pending_per_address` is zero.
    #[error("queue sizes and the limits on pending handshakes must not be zero")]
    ZeroQueue,
    /// The [`ReconnectPolicy`] (given) waits zero, has `max` below `initial`, or allows no
    /// attempt.
    #[error(
        "reconnect policy {0:?}: initial must not be zero, max not below initial, attempts not zero"
    )]
    Reconnect(ReconnectPolicy),
    /// `socket_buffer` (the value given) is out of range.
    #[error("socket_buffer must be between 1 and {max} bytes, not {0}", max = i32::MAX)]
    SocketBuffer(usize),
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("TransportConfig");
        out.field("node", &self.node)
            .field("listen", &self.listen)
            .field("secret", &format_args!("<{} bytes, redacted>", self.secret.len()))
            .field("max_frame", &self.max_frame)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("peer_timeout", &self.peer_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("send_queue", &self.send_queue)
            .field("event_queue", &self.event_queue)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .field("max_pending_per_address", &self.max_pending_per_address)
            .field("socket_buffer", &self.socket_buffer)
            .field("reconnect", &self.reconnect)
            .field("io_thread", &self.io_thread);
        #[cfg(feature = "tls")]
        out.field("tls", &self.tls);
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        TransportConfig::new("n", "127.0.0.1:0".parse().unwrap(), b"sixteen byte key".to_vec())
    }

    #[test]
    fn defaults_are_valid_and_the_secret_is_redacted() {
        assert_eq!(config().check(), Ok(()));
        let shown = format!("{:?}", config());
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(!shown.contains("sixteen"), "{shown}");
        assert!(shown.contains("<16 bytes, redacted>"), "{shown}");
    }

    #[test]
    fn refuses_bad_values() {
        let ms = Duration::from_millis;
        let check = |c: TransportConfig| c.check();
        assert_eq!(
            check(TransportConfig { secret: vec![], ..config() }),
            Err(ConfigError::EmptySecret)
        );
        assert_eq!(
            check(TransportConfig { secret: vec![7; MIN_SECRET_LEN - 1], ..config() }),
            Err(ConfigError::ShortSecret { len: MIN_SECRET_LEN - 1, min: MIN_SECRET_LEN })
        );
        assert_eq!(
            check(TransportConfig { node: NodeId::from(""), ..config() }),
            Err(ConfigError::Node(NodeIdError::Empty))
        );
        assert_eq!(check(config().with_max_frame(10)), Err(ConfigError::MaxFrame(10)));
        assert_eq!(
            check(config().with_heartbeat(ms(100), ms(100))),
            Err(ConfigError::PeerTimeout { peer_timeout: ms(100), heartbeat_interval: ms(100) })
        );
        assert_eq!(check(config().with_heartbeat(ms(0), ms(100))), Err(ConfigError::ZeroInterval));
        assert_eq!(check(config().with_queues(0, 1)), Err(ConfigError::ZeroQueue));
        assert_eq!(check(config().with_pending_handshakes(8, 0)), Err(ConfigError::ZeroQueue));
        assert_eq!(check(config().with_first_byte_timeout(ms(0))), Err(ConfigError::ZeroInterval));
        assert_eq!(check(config().with_heartbeat(ms(100), ms(300))), Ok(()));
        assert_eq!(check(config().with_socket_buffer(0)), Err(ConfigError::SocketBuffer(0)));
        assert_eq!(check(config().with_socket_buffer(64 * 1024)), Ok(()));
    }
}
