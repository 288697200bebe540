//! Remote tell and ask between two processes over 127.0.0.1, against a raw framed-TCP
//! baseline in the same run: the receiving side runs in a child process (this program,
//! started again with `--serve-amber` or `--serve-raw`), the sender here.
//!
//! - amber: a `Cluster` node here tells N small messages to a named actor of the child's
//!   node, then asks once to confirm they all arrived; then sequential asks.
//! - raw: the same messages as length-prefixed MessagePack frames (rmp-serde) over one
//!   buffered TCP stream, read and counted by a task in the child, which answers a `Get`
//!   frame with the count; then sequential `Get` round trips.
//!
//! `cargo run --release -p amber-remote --example link_bench [-- MESSAGES ROUNDS ASKS]`
//! (ASKS 0 measures tells only, e.g. under a profiler)

#[path = "support/counter.rs"]
mod counter;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amber_actors::{ActorRef, ActorSystem};
use amber_remote::{Cluster, TransportConfig};
use counter::{Count, Counter};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &[u8] = b"benchmark secret, 32 bytes long!";

fn builder() -> amber_actors::SystemBuilder {
    ActorSystem::builder().ask_timeout(Duration::from_secs(30))
}

/// The child's amber node: a counter named "counter", until the parent closes stdin.
async fn serve_amber() {
    let addr = "127.0.0.1:0".parse().expect("an address");
    let node = Cluster::start(builder(), TransportConfig::new("b", addr, SECRET.to_vec()))
        .await
        .expect("start");
    node.system().spawn_named("counter", Counter::default()).expect("spawn");
    println!("{}", node.local_addr());
    wait_for_parent().await;
    node.shutdown().await;
}

/// The child's raw server: counts `Add` frames, answers `Get` with the count.
async fn serve_raw() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().expect("address"));
    let (stream, _) = listener.accept().await.expect("accept");
    stream.set_nodelay(true).expect("nodelay");
    let (read, write) = stream.into_split();
    let (mut read, mut write) = (AsyncBufReader::new(read), BufWriter::new(write));
    let (mut count, mut frame) = (0u64, Vec::new());
    while let Ok(len) = read.read_u32().await {
        frame.resize(len as usize, 0);
        if read.read_exact(&mut frame).await.is_err() {
            break;
        }
        match rmp_serde::from_slice::<Count>(&frame).expect("a frame") {
            Count::Add(n) => count += n,
            Count::Get => {
                let reply = rmp_serde::to_vec(&count).expect("encodes");
                write.write_u32(reply.len() as u32).await.expect("write");
                write.write_all(&reply).await.expect("write");
                write.flush().await.expect("flush");
            }
        }
    }
}

/// Returns once the parent closes this process's stdin (or goes away).
async fn wait_for_parent() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// Starts this program as the child `mode`; returns it and the address it prints.
fn child(mode: &str) -> (Child, std::net::SocketAddr) {
    let exe = std::env::current_exe().expect("this program");
    let mut child = Command::new(exe)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("read");
    (child, line.trim().parse().expect("the child prints its address"))
}

struct Raw {
    read: AsyncBufReader<tokio::net::tcp::OwnedReadHalf>,
    write: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
}

impl Raw {
    async fn send(&mut self, msg: &Count) {
        let frame = rmp_serde::to_vec(msg).expect("encodes");
        self.write.write_u32(frame.len() as u32).await.expect("write");
        self.write.write_all(&frame).await.expect("write");
    }

    async fn get(&mut self) -> u64 {
        self.send(&Count::Get).await;
        self.write.flush().await.expect("flush");
        let len = self.read.read_u32().await.expect("reply");
        let mut reply = vec![0; len as usize];
        self.read.read_exact(&mut reply).await.expect("reply");
        rmp_serde::from_slice(&reply).expect("a count")
    }
}

async fn amber_tells(counter: &ActorRef<Counter>, n: u64) -> f64 {
    let before = counter.ask(Count::Get).await.expect("ask");
    let start = Instant::now();
    for _ in 0..n {
        counter.tell(Count::Add(1)).await.expect("tell");
    }
    assert_eq!(counter.ask(Count::Get).await.expect("ask"), before + n);
    n as f64 / start.elapsed().as_secs_f64()
}

async fn raw_tells(raw: &mut Raw, n: u64) -> f64 {
    let before = raw.get().await;
    let start = Instant::now();
    for _ in 0..n {
        raw.send(&Count::Add(1)).await;
    }
    assert_eq!(raw.get().await, before + n);
    n as f64 / start.elapsed().as_secs_f64()
}

fn p50_us(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn parent(messages: u64, rounds: usize, asks: usize) {
    let (mut amber_child, amber_addr) = child("--serve-amber");
    let (mut raw_child, raw_addr) = child("--serve-raw");
    let addr = "127.0.0.1:0".parse().expect("an address");
    let node = Cluster::start(builder(), TransportConfig::new("a", addr, SECRET.to_vec()))
        .await
        .expect("start");
    let peer = node.connect(amber_addr).await.expect("connect");
    let counter = node.lookup::<Counter>(&peer, "counter").await.expect("lookup");
    let stream = TcpStream::connect(raw_addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, write) = stream.into_split();
    let mut raw = Raw { read: AsyncBufReader::new(read), write: BufWriter::new(write) };

    amber_tells(&counter, messages / 10).await; // warm-up
    raw_tells(&mut raw, messages / 10).await;
    let (mut amber, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        amber.push(amber_tells(&counter, messages).await);
        baseline.push(raw_tells(&mut raw, messages).await);
    }
    let (mut amber_asks, mut raw_asks) = (Vec::new(), Vec::new());
    for _ in 0..asks {
        let t = Instant::now();
        counter.ask(Count::Get).await.expect("ask");
        amber_asks.push(t.elapsed());
        let t = Instant::now();
        raw.get().await;
        raw_asks.push(t.elapsed());
    }
    let (tell_a, tell_r) = (median(amber.clone()), median(baseline.clone()));
    let rates = |v: &[f64]| v.iter().map(|x| format!("{:.2}", x / 1e6)).collect::<Vec<_>>();
    println!("two processes over 127.0.0.1, 2 workers each, {messages} messages per round");
    println!(
        "tell  amber {:.2} M msg/s  raw framed TCP {:.2} M msg/s  ratio {:.2}x  (rounds: amber {:?}, raw {:?})",
        tell_a / 1e6,
        tell_r / 1e6,
        tell_a / tell_r,
        rates(&amber),
        rates(&baseline)
    );
    if asks > 0 {
        let (ask_a, ask_r) = (p50_us(amber_asks), p50_us(raw_asks));
        println!(
            "ask   amber p50 {ask_a:.1} us  raw p50 {ask_r:.1} us  ratio {:.2}x  ({asks} sequential each, alternating)",
            ask_a / ask_r
        );
    }
    node.shutdown().await;
    drop(raw);
    for child in [&mut amber_child, &mut raw_child] {
        drop(child.stdin.take());
        let _ = child.wait();
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--serve-amber") => runtime.block_on(serve_amber()),
        Some("--serve-raw") => runtime.block_on(serve_raw()),
        _ => {
            let number = |i: usize, default: u64| {
                args.get(i).map_or(default, |a| a.replace('_', "").parse().expect("a number"))
            };
            let (messages, rounds) = (number(0, 500_000), number(1, 5) as usize);
            runtime.block_on(parent(messages, rounds, number(2, 10_000) as usize));
            std::io::stdout().flush().expect("flush");
        }
    }
}
