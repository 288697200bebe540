//! A peer written by hand from the documented wire format: preamble, length-prefixed
//! frames, HMAC-SHA256 proofs. It lets tests misbehave at any step.

use std::net::SocketAddr;

use amber_remote::{FrameBody, FrameCodec, HandshakeFrame, NodeId, PROTOCOL_VERSION};
use bytes::{BufMut, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection to a transport, driven by the test.
#[derive(Debug)]
pub struct RawPeer {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub peer: Option<NodeId>,
}

/// The preamble for `version`.
pub fn preamble(version: u16) -> Vec<u8> {
    let mut bytes = b"AMBR".to_vec();
    bytes.extend_from_slice(&version.to_be_bytes());
    bytes
}

/// One frame with its length prefix.
pub fn encode<F: FrameBody>(frame: &F) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    FrameCodec::default().encode_frame(frame, &mut bytes).unwrap();
    bytes.to_vec()
}

/// The proof a node sends: `role` 1 = dialler, 2 = acceptor.
pub fn proof(
    secret: &[u8],
    role: u8,
    prover: &str,
    verifier: &str,
    initiator_nonce: &[u8; 32],
    acceptor_nonce: &[u8; 32],
) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    let mut msg = b"amber-v1".to_vec();
    msg.push(role);
    for id in [prover, verifier] {
        msg.put_u32(id.len() as u32);
        msg.extend_from_slice(id.as_bytes());
    }
    msg.extend_from_slice(initiator_nonce);
    msg.extend_from_slice(acceptor_nonce);
    mac.update(&msg);
    mac.finalize().into_bytes().into()
}

impl RawPeer {
    /// Opens a TCP connection without saying anything.
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawPeer { stream, buf: BytesMut::new(), peer: None }
    }

    /// Dials `addr` and completes the handshake as `node` with `secret`, checking the
    /// transport's proof on the way.
    pub async fn handshake(addr: SocketAddr, node: &str, secret: &[u8]) -> RawPeer {
        let mut raw = RawPeer::connect(addr).await;
        let nonce = [0x5a; 32];
        let mut hello = preamble(PROTOCOL_VERSION);
        hello.extend(encode(&HandshakeFrame::Hello {
            node: NodeId::from(node),
            incarnation: 0x1234,
            listen_port: 9,
            nonce,
        }));
        raw.write(&hello).await;
        assert_eq!(raw.read_exact(6).await, preamble(PROTOCOL_VERSION));
        let Some(HandshakeFrame::Hello { node: peer, nonce: peer_nonce, .. }) =
            raw.read_frame().await
        else {
            panic!("expected the transport's hello")
        };
        let mac = proof(secret, 1, node, peer.as_str(), &nonce, &peer_nonce);
        raw.write(&encode(&HandshakeFrame::Proof { mac })).await;
        let Some(HandshakeFrame::Proof { mac }) = raw.read_frame().await else {
            panic!("expected the transport's proof")
        };
        assert_eq!(mac, proof(secret, 2, peer.as_str(), node, &nonce, &peer_nonce));
        assert_eq!(raw.read_frame().await, Some(HandshakeFrame::Welcome));
        raw.peer = Some(peer);
        raw
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let read = self.stream.read_buf(&mut self.buf).await.unwrap();
            assert!(read > 0, "connection closed");
        }
        self.buf.split_to(n).to_vec()
    }

    /// The next frame (a link's `Frame` or a `HandshakeFrame`), or `None` at the end of the
    /// stream (or a reset).
    pub async fn read_frame<F: FrameBody>(&mut self) -> Option<F> {
        let codec = FrameCodec::default();
        loop {
            if let Some(frame) = codec.decode_as(&mut self.buf).unwrap() {
                return Some(frame);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Every byte left to read until the transport closes the connection (or resets it).
    pub async fn stream_bytes_until_closed(&mut self) -> Vec<u8> {
        loop {
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return self.buf.split().to_vec(),
                Ok(_) => {}
            }
        }
    }

    /// Reads (and drops) frames until the transport closes the connection.
    pub async fn read_until_closed<F: FrameBody>(&mut self) -> Vec<F> {
        let mut frames = Vec::new();
        while let Some(frame) = self.read_frame().await {
            frames.push(frame);
        }
        frames
    }
}
