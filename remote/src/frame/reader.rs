//! Reading frames from a byte stream.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::codec::frame_len;
use super::{FrameBody, FrameCodec, FrameError};

/// Room asked for before a read when the buffer is nearly full and no large frame is pending.
const READ_CHUNK: usize = 8 * 1024;

/// An empty buffer larger than this (left over from a large frame) is given back.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Frames out of an [`AsyncRead`], with the time of the last successful read (any bytes, not
/// just whole frames, so a large frame arriving slowly still shows the peer is alive).
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    codec: FrameCodec,
    last_read: Instant,
    bytes_read: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `io` whose first bytes are already in `buf`.
    pub(crate) fn with_buffer(io: R, buf: BytesMut, codec: FrameCodec) -> FrameReader<R> {
        FrameReader { io, buf, codec, last_read: Instant::now(), bytes_read: 0 }
    }

    /// The next frame, read as an `F` (a link's [`Frame`](super::Frame) or a
    /// [`HandshakeFrame`](super::HandshakeFrame)), or `None` if the stream ended cleanly
    /// between frames.
    ///
    /// Cancel-safe: bytes read before a cancellation stay buffered.
    pub(crate) async fn next<F: FrameBody>(&mut self) -> Result<Option<F>, FrameError> {
        loop {
            if let Some(frame) = self.codec.decode_as(&mut self.buf)? {
                return Ok(Some(frame));
            }
            self.make_room();
            let n = self.io.read_buf(&mut self.buf).await?;
            if n == 0 {
                return self.codec.decode_eof_as(&mut self.buf);
            }
            self.last_read = Instant::now();
            self.bytes_read += n as u64;
        }
    }

    /// The next frame if it is already buffered, without reading.
    pub(crate) fn buffered<F: FrameBody>(&mut self) -> Result<Option<F>, FrameError> {
        self.codec.decode_as(&mut self.buf)
    }

    /// The next `n` raw bytes (the handshake preamble); the stream ending first is
    /// [`FrameError::Truncated`].
    pub(crate) async fn read_raw(&mut self, n: usize) -> Result<BytesMut, FrameError> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            let read = self.io.read_buf(&mut self.buf).await?;
            if read == 0 {
                return Err(FrameError::Truncated { have: self.buf.len(), need: n });
            }
            self.last_read = Instant::now();
            self.bytes_read += read as u64;
        }
        Ok(self.buf.split_to(n))
    }

    /// When bytes last arrived.
    pub(crate) fn last_read(&self) -> Instant {
        self.last_read
    }

    /// Bytes read from the stream so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The stream, for writing during the handshake.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// The stream and the bytes read from it but not yet decoded.
    pub(crate) fn into_parts(self) -> (R, BytesMut) {
        (self.io, self.buf)
    }

    /// Makes sure a read has reasonable room, without growing past what a pending large frame
    /// announced (the codec reserved exactly that).
    fn make_room(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        let spare = self.buf.capacity() - self.buf.len();
        if spare < READ_CHUNK / 8 && frame_len(&self.buf) <= READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::Frame;

    #[tokio::test]
    async fn reads_frames_split_across_writes_then_eof() {
        let codec = FrameCodec::default();
        let mut bytes = BytesMut::new();
        codec.encode_frame(&Frame::Control(vec![1; 100]), &mut bytes).unwrap();
        codec.encode_frame(&Frame::Heartbeat, &mut bytes).unwrap();
        let (mut tx, rx) = tokio::io::duplex(16);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(7) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::with_buffer(rx, BytesMut::new(), codec);
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Control(vec![1; 100])));
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Heartbeat));
        writer.await.unwrap();
        assert_eq!(reader.next::<Frame>().await.unwrap(), None);
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncated() {
        let (mut tx, rx) = tokio::io::duplex(64);
        tx.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(tx);
        let mut reader = FrameReader::with_buffer(rx, BytesMut::new(), FrameCodec::default());
        let err = reader.next::<Frame>().await.unwrap_err();
        assert!(matches!(err, FrameError::Truncated { have: 6, need: 13 }), "{err}");
    }
}
