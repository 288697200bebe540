//! The handshake exchange over any byte stream.
//!
//! Both sides run the same steps, the initiator (which opened the connection) and the
//! acceptor in parallel:
//!
//! 1. write the preamble (`"AMBR"`, version) and a `Hello` (id, incarnation, listening port,
//!    nonce), then read the peer's and check them;
//! 2. write a `Proof` (HMAC over both ids and nonces, see [`proof`](super::proof)), read the
//!    peer's and verify it in constant time;
//! 3. the acceptor decides whether to keep the connection (one link per node pair) and
//!    writes `Welcome` or `Duplicate`; the initiator reads it.
//!
//! An initiator that learns from the peer's `Hello` that it already has a link to that peer
//! writes `Duplicate` instead of its proof and stops.
//!
//! The stream is generic so that a TLS stream could be handed in instead of a bare TCP one.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::proof::{self, Nonces, Role};
use super::{HANDSHAKE_MAX_FRAME, HandshakeError, MAGIC, PREAMBLE_LEN};
use crate::frame::FrameReader;
use crate::{Frame, FrameCodec, FrameError, NodeId};

/// What this node says about itself in a handshake.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) node: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) listen_port: u16,
    pub(crate) secret: std::sync::Arc<[u8]>,
    pub(crate) version: u16,
}

/// What the peer said about itself, once authenticated.
#[derive(Debug, Clone)]
pub(crate) struct PeerHello {
    pub(crate) node: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) listen_port: u16,
}

/// The acceptor's decision, as the initiator learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// This connection is the link.
    Welcome,
    /// Another connection between the two nodes is the link; this one is dropped.
    Duplicate,
}

/// The codec used until the peer is authenticated.
pub(crate) fn handshake_codec() -> FrameCodec {
    FrameCodec::new(HANDSHAKE_MAX_FRAME)
}

/// Runs the initiator's side. `on_hello` runs once the peer's id is known, before our proof
/// is sent: `Some` goes on (the transport registers the dial there and gets the value back),
/// `None` means this node is already linked to the peer: `Duplicate` is written instead of a
/// proof and the verdict is `Duplicate`.
pub(crate) async fn initiate<S, G>(
    io: &mut FrameReader<S>,
    me: &Identity,
    on_hello: impl FnOnce(&PeerHello) -> Option<G>,
) -> Result<(PeerHello, Verdict, Option<G>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let my_nonce = proof::nonce()?;
    let (peer, peer_nonce) = exchange_hellos(io, me, my_nonce).await?;
    let Some(guard) = on_hello(&peer) else {
        write_frame(io, &Frame::Duplicate).await?;
        return Ok((peer, Verdict::Duplicate, None));
    };
    let nonces = Nonces { initiator: my_nonce, acceptor: peer_nonce };
    let mac = proof::proof(&me.secret, Role::Initiator, &me.node, &peer.node, &nonces);
    write_frame(io, &Frame::Proof { mac }).await?;
    match read_frame(io).await? {
        Frame::Proof { mac } => {
            if !proof::verify(&me.secret, Role::Acceptor, &peer.node, &me.node, &nonces, &mac) {
                return Err(HandshakeError::Auth);
            }
        }
        other => return Err(unexpected(other)),
    }
    let verdict = match read_frame(io).await? {
        Frame::Welcome => Verdict::Welcome,
        Frame::Duplicate => Verdict::Duplicate,
        other => return Err(unexpected(other)),
    };
    Ok((peer, verdict, Some(guard)))
}

/// Runs the acceptor's side. `decide` runs once the peer is authenticated: `Some` keeps the
/// connection (`Welcome` is written), `None` drops it as a duplicate. If writing `Welcome`
/// fails, the `Some` value is dropped and the error returned. A peer that answers
/// `Duplicate` instead of a proof (it is already linked to us) ends the exchange with `None`.
pub(crate) async fn accept<S, T>(
    io: &mut FrameReader<S>,
    me: &Identity,
    decide: impl FnOnce(&PeerHello) -> Option<T>,
) -> Result<(PeerHello, Option<T>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let my_nonce = proof::nonce()?;
    let (peer, peer_nonce) = exchange_hellos(io, me, my_nonce).await?;
    let nonces = Nonces { initiator: peer_nonce, acceptor: my_nonce };
    let mac = proof::proof(&me.secret, Role::Acceptor, &me.node, &peer.node, &nonces);
    write_frame(io, &Frame::Proof { mac }).await?;
    match read_frame(io).await? {
        Frame::Proof { mac } => {
            if !proof::verify(&me.secret, Role::Initiator, &peer.node, &me.node, &nonces, &mac) {
                // Best effort: the peer most likely failed our proof as well.
                let goodbye = Frame::Goodbye { reason: "authentication failed".to_owned() };
                let _ = write_frame(io, &goodbye).await;
                return Err(HandshakeError::Auth);
            }
        }
        Frame::Duplicate => return Ok((peer, None)),
        other => return Err(unexpected(other)),
    }
    let kept = decide(&peer);
    let verdict = if kept.is_some() { Frame::Welcome } else { Frame::Duplicate };
    write_frame(io, &verdict).await?;
    Ok((peer, kept))
}

/// Step 1, both sides: preambles and hellos.
async fn exchange_hellos<S>(
    io: &mut FrameReader<S>,
    me: &Identity,
    nonce: [u8; 32],
) -> Result<(PeerHello, [u8; 32]), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = BytesMut::with_capacity(128);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&me.version.to_be_bytes());
    let hello = Frame::Hello {
        node: me.node.clone(),
        incarnation: me.incarnation,
        listen_port: me.listen_port,
        nonce,
    };
    handshake_codec().encode_frame(&hello, &mut out)?;
    write_all(io, &out).await?;

    let preamble = io.read_raw(PREAMBLE_LEN).await?;
    let got = [preamble[0], preamble[1], preamble[2], preamble[3]];
    if got != MAGIC {
        return Err(HandshakeError::NotAmber { got });
    }
    let theirs = u16::from_be_bytes([preamble[4], preamble[5]]);
    if theirs != me.version {
        return Err(HandshakeError::Version { ours: me.version, theirs });
    }
    match read_frame(io).await? {
        Frame::Hello { node, incarnation, listen_port, nonce } => {
            node.check().map_err(HandshakeError::InvalidNodeId)?;
            if node == me.node {
                return Err(HandshakeError::SameNodeId(node));
            }
            Ok((PeerHello { node, incarnation, listen_port }, nonce))
        }
        other => Err(unexpected(other)),
    }
}

async fn read_frame<S: AsyncRead + Unpin>(
    io: &mut FrameReader<S>,
) -> Result<Frame, HandshakeError> {
    io.next().await?.ok_or(HandshakeError::Closed)
}

async fn write_frame<S: AsyncWrite + AsyncRead + Unpin>(
    io: &mut FrameReader<S>,
    frame: &Frame,
) -> Result<(), HandshakeError> {
    let mut out = BytesMut::with_capacity(64);
    handshake_codec().encode_frame(frame, &mut out)?;
    write_all(io, &out).await
}

async fn write_all<S: AsyncWrite + AsyncRead + Unpin>(
    io: &mut FrameReader<S>,
    bytes: &[u8],
) -> Result<(), HandshakeError> {
    let stream = io.get_mut();
    stream.write_all(bytes).await.map_err(FrameError::Io)?;
    stream.flush().await.map_err(FrameError::Io)?;
    Ok(())
}

/// A goodbye is the peer refusing us; anything else out of place is a protocol error.
fn unexpected(frame: Frame) -> HandshakeError {
    match frame {
        Frame::Goodbye { reason } => HandshakeError::Refused(reason),
        other => HandshakeError::Frame(FrameError::Unexpected {
            kind: other.kind(),
            during: "during the handshake",
        }),
    }
}
