//! A TCP relay to a node that a test can cut, close and open again, like the network between
//! two nodes: links through it drop without a goodbye, and dials through it fail while it
//! is closed.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the relay does with connections (see [`Relay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    /// Bumped by every cut: connections of an older generation end.
    generation: u64,
    /// Whether new connections are passed on (else they are closed at once).
    open: bool,
}

/// A relay listening on its own port and passing connections on to `to`.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    state: watch::Sender<State>,
    tasks: JoinSet<()>,
}

impl Relay {
    /// Starts a relay to `to`, open.
    pub async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, watcher) = watch::channel(State { generation: 0, open: true });
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let now = *watcher.borrow();
                if !now.open {
                    drop(inbound); // refused, in effect: the dialler reads an end of stream
                    continue;
                }
                let watcher = watcher.clone();
                connections.spawn(pass(inbound, to, now.generation, watcher));
                while connections.try_join_next().is_some() {}
            }
        });
        Relay { addr, state, tasks }
    }

    /// Where to dial through the relay.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection through the relay (both ends see the stream end) and, if
    /// `open` is false, closes new ones at once until [`open`](Self::open).
    pub fn cut(&self, open: bool) {
        self.state.send_modify(|s| {
            s.generation += 1;
            s.open = open;
        });
    }

    /// Passes new connections on again.
    pub fn open(&self) {
        self.state.send_modify(|s| s.open = true);
    }

    /// Stops the relay: its port and connections close.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Copies both ways between `inbound` and a new connection to `to` until either ends or the
/// relay is cut past `generation`.
async fn pass(
    mut inbound: TcpStream,
    to: SocketAddr,
    generation: u64,
    mut state: watch::Receiver<State>,
) {
    let Ok(mut outbound) = TcpStream::connect(to).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = state.wait_for(|s| s.generation != generation) => {}
    }
    let _ = inbound.shutdown().await;
    let _ = outbound.shutdown().await;
}
