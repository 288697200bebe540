//! The handshake exchange over any byte stream.
//!
//! The initiator (which opened the connection) speaks first, and proves first:
//!
//! 1. the initiator writes the preamble (`"AMBR"`, version) and its `Hello` (id,
//!    incarnation, listening port, nonce); the acceptor reads the preamble, answers with its
//!    own preamble and `Hello`, then checks the version and reads the initiator's `Hello`;
//!    the initiator reads and checks the acceptor's;
//! 2. the initiator writes its `Proof` (HMAC over both ids and nonces, see
//!    [`proof`](super::proof)); the acceptor verifies it in constant time and, if it fails,
//!    writes `Refuse(Auth)` and stops: a dialler without the secret never sees anything
//!    derived from it;
//! 3. the acceptor decides whether to keep the connection (one link per node pair) and
//!    writes its own `Proof` followed by `Welcome` or `Duplicate`; the initiator verifies
//!    the proof and reads the verdict.
//!
//! An initiator that learns from the peer's `Hello` that it already has a link to that peer
//! writes `Duplicate` instead of its proof and stops.
//!
//! The acceptor writes nothing until the initiator's preamble has arrived, and nothing
//! keyed by the secret until the initiator has proven it knows it. The initiator does show
//! its proof to whomever it dialled: see [the handshake](crate#handshake) for what that
//! means for the secret.
//!
//! The stream is generic so that a TLS stream could be handed in instead of a bare TCP one.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::proof::{self, Nonces, Role};
use super::{HANDSHAKE_MAX_FRAME, HandshakeError, MAGIC, PREAMBLE_LEN, Refusal};
use crate::frame::FrameReader;
use crate::{FrameCodec, FrameError, HandshakeFrame, NodeId};

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
    let mut out = BytesMut::with_capacity(128);
    put_preamble(&mut out, me);
    put_frame(&mut out, &hello(me, my_nonce))?;
    write_all(io, &out).await?;
    read_preamble(io, me).await?;
    let (peer, peer_nonce) = read_hello(io, me).await?;
    let Some(guard) = on_hello(&peer) else {
        write_frame(io, &HandshakeFrame::Duplicate).await?;
        return Ok((peer, Verdict::Duplicate, None));
    };
    let nonces = Nonces { initiator: my_nonce, acceptor: peer_nonce };
    let mac = proof::proof(&me.secret, Role::Initiator, &me.node, &peer.node, &nonces);
    write_frame(io, &HandshakeFrame::Proof { mac }).await?;
    match read_frame(io).await? {
        HandshakeFrame::Proof { mac } => {
            if !proof::verify(&me.secret, Role::Acceptor, &peer.node, &me.node, &nonces, &mac) {
                return Err(HandshakeError::Auth);
            }
        }
        other => return Err(unexpected(other)),
    }
    let verdict = match read_frame(io).await? {
        HandshakeFrame::Welcome => Verdict::Welcome,
        HandshakeFrame::Duplicate => Verdict::Duplicate,
        other => return Err(unexpected(other)),
    };
    Ok((peer, verdict, Some(guard)))
}

/// Runs the acceptor's side. `decide` runs once the peer is authenticated: `Some` keeps the
/// connection (our proof and `Welcome` are written), `None` drops it as a duplicate (our
/// proof and `Duplicate`). If that write fails, the `Some` value is dropped and the error
/// returned. A peer that answers `Duplicate` instead of a proof (it is already linked to us)
/// ends the exchange with `None`.
pub(crate) async fn accept<S, T>(
    io: &mut FrameReader<S>,
    me: &Identity,
    decide: impl FnOnce(&PeerHello) -> Option<T>,
) -> Result<(PeerHello, Option<T>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let my_nonce = proof::nonce()?;
    // The dialler speaks first: nothing is written to a connection that has not sent an
    // amber preamble. Ours and our hello go out before the version check, so that a dialler
    // of another version learns ours and reports the mismatch too.
    let theirs = read_magic(io).await?;
    let mut out = BytesMut::with_capacity(128);
    put_preamble(&mut out, me);
    put_frame(&mut out, &hello(me, my_nonce))?;
    write_all(io, &out).await?;
    check_version(me, theirs)?;
    let (peer, peer_nonce) = read_hello(io, me).await?;
    let nonces = Nonces { initiator: peer_nonce, acceptor: my_nonce };
    match read_frame(io).await? {
        HandshakeFrame::Proof { mac } => {
            if !proof::verify(&me.secret, Role::Initiator, &peer.node, &me.node, &nonces, &mac) {
                // Best effort: tell the dialler why, without anything keyed by the secret.
                let _ = write_frame(io, &HandshakeFrame::Refuse(Refusal::Auth)).await;
                return Err(HandshakeError::Auth);
            }
        }
        HandshakeFrame::Duplicate => return Ok((peer, None)),
        other => return Err(unexpected(other)),
    }
    let mac = proof::proof(&me.secret, Role::Acceptor, &me.node, &peer.node, &nonces);
    let kept = decide(&peer);
    let verdict = if kept.is_some() { HandshakeFrame::Welcome } else { HandshakeFrame::Duplicate };
    let mut out = BytesMut::with_capacity(128);
    put_frame(&mut out, &HandshakeFrame::Proof { mac })?;
    put_frame(&mut out, &verdict)?;
    write_all(io, &out).await?;
    Ok((peer, kept))
}

/// The bytes an acceptor writes to turn a connection away before its handshake: its
/// preamble, then `Refuse(reason)`. The dialler reads the preamble as usual, then the
/// refusal where it expects a `Hello`.
pub(crate) fn refusal(version: u16, reason: Refusal) -> Result<BytesMut, HandshakeError> {
    let mut out = BytesMut::with_capacity(32);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    put_frame(&mut out, &HandshakeFrame::Refuse(reason))?;
    Ok(out)
}

fn hello(me: &Identity, nonce: [u8; 32]) -> HandshakeFrame {
    HandshakeFrame::Hello {
        node: me.node.clone(),
        incarnation: me.incarnation,
        listen_port: me.listen_port,
        nonce,
    }
}

fn put_preamble(out: &mut BytesMut, me: &Identity) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&me.version.to_be_bytes());
}

fn put_frame(out: &mut BytesMut, frame: &HandshakeFrame) -> Result<(), HandshakeError> {
    Ok(handshake_codec().encode_frame(frame, out)?)
}

/// Reads the peer's preamble and checks its magic; returns its version.
/// A peer that closes before sending anything (e.g. an acceptor with no room to tell us why)
/// is [`HandshakeError::Closed`], not a truncated frame.
async fn read_magic<S: AsyncRead + Unpin>(io: &mut FrameReader<S>) -> Result<u16, HandshakeError> {
    let preamble = match io.read_raw(PREAMBLE_LEN).await {
        Ok(preamble) => preamble,
        Err(FrameError::Truncated { have: 0, .. }) => return Err(HandshakeError::Closed),
        Err(error) => return Err(error.into()),
    };
    let got = [preamble[0], preamble[1], preamble[2], preamble[3]];
    if got != MAGIC {
        return Err(HandshakeError::NotAmber { got });
    }
    Ok(u16::from_be_bytes([preamble[4], preamble[5]]))
}

fn check_version(me: &Identity, theirs: u16) -> Result<(), HandshakeError> {
    if theirs != me.version {
        return Err(HandshakeError::Version { ours: me.version, theirs });
    }
    Ok(())
}

async fn read_preamble<S: AsyncRead + Unpin>(
    io: &mut FrameReader<S>,
    me: &Identity,
) -> Result<(), HandshakeError> {
    let theirs = read_magic(io).await?;
    check_version(me, theirs)
}

/// Reads the peer's `Hello` and checks its id.
async fn read_hello<S: AsyncRead + Unpin>(
    io: &mut FrameReader<S>,
    me: &Identity,
) -> Result<(PeerHello, [u8; 32]), HandshakeError> {
    match read_frame(io).await? {
        HandshakeFrame::Hello { node, incarnation, listen_port, nonce } => {
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
) -> Result<HandshakeFrame, HandshakeError> {
    io.next().await?.ok_or(HandshakeError::Closed)
}

async fn write_frame<S: AsyncWrite + AsyncRead + Unpin>(
    io: &mut FrameReader<S>,
    frame: &HandshakeFrame,
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

/// A refusal is the peer turning us away; any other frame out of place is a protocol error
/// (a link frame during the handshake is one already, as it is decoded).
fn unexpected(frame: HandshakeFrame) -> HandshakeError {
    match frame {
        HandshakeFrame::Refuse(Refusal::Auth) => HandshakeError::Auth,
        HandshakeFrame::Refuse(Refusal::TooManyPending) => HandshakeError::TooManyPending,
        other => HandshakeError::Frame(FrameError::Unexpected {
            kind: other.kind(),
            during: "during the handshake",
        }),
    }
}
