//! The accepting side: the accept loop, the gate on pending handshakes, refusals, and the
//! handshake of each incoming connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

#[cfg(feature = "tls")]
use super::TlsConfig;
use super::gate::{Full, GatePass};
use super::{Events, Role, Shared, TransportEvent, lock};
use crate::frame::FrameReader;
use crate::handshake::exchange;
use crate::net::{Listener, Stream};
use crate::{HandshakeError, Refusal};

/// The most a refused connection is read (and dropped) before it is closed: enough for an
/// amber dialler's preamble and hello, so that closing does not reset the connection under
/// the refusal it has not read yet.
const REFUSAL_DRAIN: usize = 2 * 1024;

/// Accepts connections until shutdown; each runs its handshake in its own task.
pub(super) async fn accept_loop<L: Listener>(shared: Arc<Shared>, listener: L) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pass = match shared.gate.enter(addr.ip()) {
            Ok(pass) => pass,
            Err(full) => {
                shared.refuse(stream, addr, full);
                continue;
            }
        };
        if let Err(error) = shared.tune(&stream) {
            tracing::warn!(%addr, %error, "cannot set the socket's options; connection dropped");
            continue;
        }
        shared.spawn(shared.clone().serve_tcp(stream, addr, pass));
    }
    // Links say goodbye by themselves: their goodbye tokens are children of `shutdown`.
}

impl Shared {
    /// Turns away a connection the gate has no place for: logs it (within the address's
    /// warning budget) and, if a refusal slot is free and the link is not TLS, writes the
    /// typed refusal before closing; otherwise closes at once.
    fn refuse<S: Stream>(self: &Arc<Shared>, stream: S, addr: SocketAddr, full: Full) {
        metrics::counter!("amber_handshakes_refused_total").increment(1);
        if let Some(suppressed) = lock(&self.warnings).admit(&addr.ip(), Instant::now()) {
            let bound = match full {
                Full::Address => "from this address",
                Full::Total => "in all",
            };
            tracing::warn!(
                %addr,
                suppressed,
                "too many connections in their handshake {bound}; connection refused"
            );
        }
        #[cfg(feature = "tls")]
        if self.config.tls.is_some() {
            return;
        }
        let Ok(slot) = self.refusals.clone().try_acquire_owned() else { return };
        let Ok(bytes) = exchange::refusal(self.identity.version, Refusal::TooManyPending) else {
            return;
        };
        let linger = self.config.first_byte_timeout;
        let shutdown = self.shutdown.clone();
        self.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = tokio::time::timeout(linger, write_refusal(stream, bytes, slot)) => {}
            }
        });
    }

    /// The accepting side of a connection: waits for its first byte, then runs the TLS
    /// handshake if configured, then amber's.
    async fn serve_tcp<S: Stream>(
        self: Arc<Shared>,
        mut stream: S,
        addr: SocketAddr,
        pass: GatePass,
    ) {
        let Ok(events) = self.events() else { return };
        let timeout = self.config.first_byte_timeout;
        let mut first = [0; 1];
        let arrived = tokio::select! {
            () = self.shutdown.cancelled() => return,
            arrived = tokio::time::timeout(timeout, stream.peek(&mut first)) => arrived,
        };
        let silent = match arrived {
            Ok(Ok(n)) if n > 0 => None,
            Ok(Ok(_)) => Some(HandshakeError::Closed),
            Ok(Err(error)) => Some(HandshakeError::Frame(error.into())),
            Err(_) => Some(HandshakeError::Idle(timeout)),
        };
        if let Some(error) = silent {
            drop(pass);
            return self.incoming_failed(addr, error, events).await;
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = self.config.tls.clone() {
            return self.serve_tls(tls, stream, addr, pass, events).await;
        }
        self.serve(stream, addr, pass, events).await
    }

    /// The accepting side of a connection over TLS: the TLS handshake, then [`Self::serve`].
    #[cfg(feature = "tls")]
    async fn serve_tls<S: Stream>(
        self: Arc<Shared>,
        tls: TlsConfig,
        stream: S,
        addr: SocketAddr,
        pass: GatePass,
        events: Events,
    ) {
        let accept = tokio_rustls::TlsAcceptor::from(tls.server).accept(stream);
        let wrapped = tokio::select! {
            () = self.shutdown.cancelled() => return,
            wrapped = tokio::time::timeout(self.config.handshake_timeout, accept) => wrapped,
        };
        let error = match wrapped {
            Ok(Ok(stream)) => return self.serve(stream, addr, pass, events).await,
            Ok(Err(error)) => HandshakeError::Tls(error.to_string()),
            Err(_) => HandshakeError::Timeout(self.config.handshake_timeout),
        };
        drop(pass);
        self.incoming_failed(addr, error, events).await;
    }

    /// The accepting side of a connection, once its stream is set up.
    async fn serve<S>(
        self: Arc<Shared>,
        stream: S,
        addr: SocketAddr,
        pass: GatePass,
        events: Events,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut io = FrameReader::with_buffer(stream, BytesMut::new(), exchange::handshake_codec());
        let handshake = exchange::accept(&mut io, &self.identity, |peer| {
            let listen = SocketAddr::new(addr.ip(), peer.listen_port);
            self.admit(self.new_link(peer, addr, listen), Role::Acceptor)
        });
        let outcome = tokio::select! {
            () = self.shutdown.cancelled() => return,
            outcome = tokio::time::timeout(self.config.handshake_timeout, handshake) => outcome,
        };
        drop(pass);
        let error = match outcome {
            Ok(Ok((_, Some(registration)))) => {
                let (stream, buffered) = io.into_parts();
                registration.announce(stream, buffered, events).await;
                return;
            }
            Ok(Ok((peer, None))) => {
                tracing::debug!(peer = %peer.node, %addr, "duplicate connection dropped");
                return;
            }
            Ok(Err(error)) => error,
            Err(_) => HandshakeError::Timeout(self.config.handshake_timeout),
        };
        self.incoming_failed(addr, error, events).await;
    }

    /// Logs a failed incoming handshake (within the address's warning budget) and reports it.
    async fn incoming_failed(&self, addr: SocketAddr, error: HandshakeError, events: Events) {
        if let Some(suppressed) = lock(&self.warnings).admit(&addr.ip(), Instant::now()) {
            tracing::warn!(%addr, %error, suppressed, "incoming handshake failed; connection dropped");
        }
        events.send(TransportEvent::HandshakeFailed { addr, error }).await;
    }
}

/// Writes the refusal, ends our side of the connection, and reads what the dialler sent
/// until it closes too (bounded by [`REFUSAL_DRAIN`]; the caller bounds the time), so the
/// dialler reads the refusal instead of a reset. Holds a refusal slot throughout.
async fn write_refusal<S: Stream>(mut stream: S, bytes: BytesMut, _slot: OwnedSemaphorePermit) {
    if stream.write_all(&bytes).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0; 512];
    let mut drained = 0;
    while drained < REFUSAL_DRAIN {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}
