//! The network under the transport and the membership: the operating system's, through
//! tokio, or — with feature `turmoil`, and only inside a turmoil simulation — turmoil's
//! simulated hosts and links, so that partitions, lossy or slow links and restarted nodes
//! can be tested deterministically in one process.
//!
//! The choice is made once per socket, where it is opened ([`simulated`]): the links and
//! the gossip driver are generic over the stream type ([`Stream`], [`Listener`]), so the
//! tokio path is monomorphic, as it was before the seam, and without the feature there is
//! nothing else to choose (no check is made). Turmoil's sockets have no options to set (no `TCP_NODELAY`,
//! buffer sizes or `TCP_NOTSENT_LOWAT`): [`Stream::tune`] does nothing for them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// Whether sockets opened here now belong to a turmoil simulation: when called from a
/// simulated host's software (or a task it spawned). Without feature `turmoil` the question
/// does not arise: every socket is the operating system's.
#[cfg(feature = "turmoil")]
pub(crate) fn simulated() -> bool {
    turmoil::in_simulation()
}

/// A connected TCP stream the transport can run a link over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Sets a new connection's socket options: `TCP_NODELAY`, `unsent` as
    /// `TCP_NOTSENT_LOWAT` where the platform has it, and the buffer sizes if `buffer` bounds
    /// them. Sockets that have no options (simulated ones) keep none.
    fn tune(&self, unsent: u32, buffer: Option<usize>) -> io::Result<()>;

    /// Reads without taking: waits for the first bytes of the connection.
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

/// A listening TCP socket the transport accepts connections on.
pub(crate) trait Listener: Send + Sync + 'static {
    /// The streams it accepts.
    type Stream: Stream;

    /// The next incoming connection and its peer's address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Stream for tokio::net::TcpStream {
    fn tune(&self, unsent: u32, buffer: Option<usize>) -> io::Result<()> {
        self.set_nodelay(true)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        socket2::SockRef::from(self).set_tcp_notsent_lowat(unsent)?;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = unsent;
        if let Some(bytes) = buffer {
            let socket = socket2::SockRef::from(self);
            socket.set_send_buffer_size(bytes)?;
            socket.set_recv_buffer_size(bytes)?;
        }
        Ok(())
    }

    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        tokio::net::TcpStream::peek(self, buf)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send {
        tokio::net::TcpListener::accept(self)
    }
}

#[cfg(feature = "turmoil")]
impl Stream for turmoil::net::TcpStream {
    fn tune(&self, _unsent: u32, _buffer: Option<usize>) -> io::Result<()> {
        Ok(())
    }

    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        turmoil::net::TcpStream::peek(self, buf)
    }
}

#[cfg(feature = "turmoil")]
impl Listener for turmoil::net::TcpListener {
    type Stream = turmoil::net::TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send {
        turmoil::net::TcpListener::accept(self)
    }
}

/// A bound listener of either network, before its accept loop starts.
pub(crate) enum Bound {
    /// The operating system's.
    Tokio(tokio::net::TcpListener),
    /// A simulated host's.
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::TcpListener),
}

impl Bound {
    /// Where it listens (with the actual port if port 0 was asked for).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Bound::Tokio(listener) => listener.local_addr(),
            #[cfg(feature = "turmoil")]
            Bound::Turmoil(listener) => listener.local_addr(),
        }
    }
}

/// Binds a TCP listener on the simulated host running this code; `None` outside a
/// simulation (then the caller binds a real socket).
pub(crate) async fn bind_simulated(addr: SocketAddr) -> Option<io::Result<Bound>> {
    #[cfg(feature = "turmoil")]
    if simulated() {
        return Some(turmoil::net::TcpListener::bind(addr).await.map(Bound::Turmoil));
    }
    let _ = addr;
    None
}

/// The gossip (UDP) socket of either network.
pub(crate) enum Datagrams {
    /// The operating system's.
    Tokio(tokio::net::UdpSocket),
    /// A simulated host's.
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::UdpSocket),
}

impl Datagrams {
    /// Binds `addr` on the simulated host running this code inside a simulation, else on
    /// the operating system's network.
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<Datagrams> {
        #[cfg(feature = "turmoil")]
        if simulated() {
            return turmoil::net::UdpSocket::bind(addr).await.map(Datagrams::Turmoil);
        }
        tokio::net::UdpSocket::bind(addr).await.map(Datagrams::Tokio)
    }

    /// Where it is bound.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Datagrams::Tokio(socket) => socket.local_addr(),
            #[cfg(feature = "turmoil")]
            Datagrams::Turmoil(socket) => socket.local_addr(),
        }
    }

    /// Receives a datagram into `buf`: its length and sender.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Datagrams::Tokio(socket) => socket.recv_from(buf).await,
            #[cfg(feature = "turmoil")]
            Datagrams::Turmoil(socket) => socket.recv_from(buf).await,
        }
    }

    /// Sends `buf` to `to`.
    pub(crate) async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            Datagrams::Tokio(socket) => socket.send_to(buf, to).await,
            #[cfg(feature = "turmoil")]
            Datagrams::Turmoil(socket) => socket.send_to(buf, to).await,
        }
    }
}
