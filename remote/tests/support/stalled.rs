//! A link that can be stalled: a TCP relay whose copying from the dialling side pauses on
//! demand, and an actor that checks it is told numbers once each, in order.

use std::net::SocketAddr;
use std::time::Duration;

use amber_actors::{Actor, ActorRef, ActorSystem, Context};
use amber_remote::{Cluster, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Counts what it is told, and checks it comes in order.
#[derive(Default)]
pub struct Tally {
    pub next: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum TallyMsg {
    /// The sender's `n`th message (from 0).
    Add(u64),
    Get,
}

impl Actor for Tally {
    type Msg = TallyMsg;
    type Reply = u64;
    async fn handle(&mut self, msg: TallyMsg, _: &mut Context<Self>) -> u64 {
        if let TallyMsg::Add(n) = msg {
            assert_eq!(n, self.next, "messages arrive once each, in order");
            self.next += 1;
        }
        self.next
    }
}

/// A TCP relay to `to` whose copying from the dialling side stops while `paused` holds
/// `true` (it then reads nothing, so the dialling side's socket fills) and resumes after.
pub async fn relay(to: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (pause, paused) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(to).await else { continue };
            let (mut in_read, mut in_write) = inbound.into_split();
            let (mut out_read, mut out_write) = outbound.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
            });
            let mut paused = paused.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 16 * 1024];
                loop {
                    if paused.wait_for(|p| !*p).await.is_err() {
                        return;
                    }
                    let n = tokio::select! {
                        n = in_read.read(&mut buf) => n,
                        _ = paused.wait_for(|p| *p) => continue,
                    };
                    match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) if out_write.write_all(&buf[..n]).await.is_err() => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, pause)
}

/// Two nodes, `a` dialling `b` through a [`relay`], with a [`Tally`] on `b` as `a` sees it.
pub struct StalledPair {
    pub a: Cluster,
    pub b: Cluster,
    /// `true` stalls the link from `a` to `b`.
    pub pause: watch::Sender<bool>,
    pub tally: ActorRef<Tally>,
}

/// Starts a [`StalledPair`] whose node `a` has small queues (`queue` messages) and socket
/// buffers, and a peer timeout longer than any test (a paused link stays up).
pub async fn stalled_pair(queue: usize) -> StalledPair {
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = |name: &str| {
        TransportConfig::new(name, addr, b"stalled link test secret".to_vec())
            .with_heartbeat(Duration::from_millis(100), Duration::from_secs(60))
    };
    let a_config = config("a").with_queues(queue, 1024).with_socket_buffer(4096);
    let a = Cluster::start(ActorSystem::builder(), a_config).await.unwrap();
    let b = Cluster::start(ActorSystem::builder(), config("b")).await.unwrap();
    let (via, pause) = relay(b.local_addr()).await;
    let peer = super::bounded(a.connect(via)).await.unwrap();
    b.system().spawn_named("tally", Tally::default()).unwrap();
    let tally = super::bounded(a.lookup::<Tally>(&peer, "tally")).await.unwrap();
    assert_eq!(super::bounded(tally.ask(TallyMsg::Get)).await.unwrap(), 0);
    StalledPair { a, b, pause, tally }
}
