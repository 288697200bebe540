//! A tour of the local runtime: tell and ask, a supervised worker that panics and is
//! restarted, a timer, a watch, and an ordered shutdown.
//!
//! `cargo run --release --example quickstart`

use std::time::{Duration, Instant};

use amber::prelude::*;

/// Keeps a running total; panics when asked to add a negative amount.
#[derive(Default)]
struct Tally {
    total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum TallyMsg {
    Add(i64),
    Total,
}

impl Actor for Tally {
    type Msg = TallyMsg;
    type Reply = i64;

    async fn handle(&mut self, msg: TallyMsg, _ctx: &mut Context<Self>) -> i64 {
        match msg {
            TallyMsg::Add(n) if n < 0 => panic!("negative amount {n}"),
            TallyMsg::Add(n) => self.total += n,
            TallyMsg::Total => {}
        }
        self.total
    }
}

/// Supervises one Tally (restarting it on panic), reports on it, and ticks on a timer.
struct Boss {
    tally: Option<ActorRef<Tally>>,
    ticks: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum BossMsg {
    Tally,
    Tick,
    Ticks,
}

#[derive(Debug, Serialize, Deserialize)]
enum BossReply {
    Tally(Option<ActorRef<Tally>>),
    Ticks(u32),
    Done,
}

impl Actor for Boss {
    type Msg = BossMsg;
    type Reply = BossReply;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        let policy = RestartPolicy::on_panic(3, Duration::from_secs(10));
        let tally =
            ctx.spawn_with(SpawnOptions::new().name("tally").restart(policy), Tally::default)?;
        ctx.watch(&tally);
        self.tally = Some(tally);
        ctx.send_interval(Duration::from_millis(10), BossMsg::Tick);
        Ok(())
    }

    async fn handle(&mut self, msg: BossMsg, _ctx: &mut Context<Self>) -> BossReply {
        match msg {
            BossMsg::Tally => BossReply::Tally(self.tally.clone()),
            BossMsg::Tick => {
                self.ticks += 1;
                BossReply::Done
            }
            BossMsg::Ticks => BossReply::Ticks(self.ticks),
        }
    }

    async fn on_child_event(&mut self, _ctx: &mut Context<Self>, event: ChildEvent) {
        println!("  boss heard: {event:?}");
    }

    async fn on_stop(&mut self, _ctx: &mut Context<Self>, reason: &ExitReason) {
        println!(
            "  boss stopping ({reason}) after {} timer ticks; its child already stopped",
            self.ticks
        );
    }
}

/// A tour of the local runtime: tell and ask, a supervised worker that panics and is
/// restarted, a timer, a watch, and an ordered shutdown.
#[derive(Debug, clap::Parser)]
#[command(name = "quickstart")]
struct Args {}

#[tokio::main]
async fn main() {
    <Args as clap::Parser>::parse();
    // Panics inside handlers are caught by amber; print them as one line instead of the
    // default multi-line report.
    std::panic::set_hook(Box::new(|info| eprintln!("  (a handler panicked: {info})")));
    let system = ActorSystem::new();
    let boss = system.spawn_named("boss", Boss { tally: None, ticks: 0 }).expect("spawn boss");
    let BossReply::Tally(Some(tally)) = boss.ask(BossMsg::Tally).await.expect("ask boss") else {
        unreachable!("the boss always has a tally after on_start")
    };
    println!("spawned {:?} under {:?}", tally, boss);

    let start = Instant::now();
    let n = 100_000;
    for _ in 0..n {
        tally.tell(TallyMsg::Add(1)).await.expect("tell");
    }
    let total = tally.ask(TallyMsg::Total).await.expect("ask");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "told {n} messages and asked once: total {total} ({:.1} M msg/s)",
        n as f64 / secs / 1e6
    );

    println!("telling the tally a negative amount (it panics, the boss restarts it):");
    tally.tell(TallyMsg::Add(-1)).await.expect("tell");
    tally.tell(TallyMsg::Add(5)).await.expect("queued behind the panic, kept");
    let after = tally.ask(TallyMsg::Total).await.expect("same ref works after the restart");
    println!("  same ref, fresh state: total {after}");

    let found = system.lookup::<Tally>("tally").expect("lookup by name");
    println!(
        "lookup(\"tally\") -> {found:?}; lookup as the wrong type -> {}",
        system.lookup::<Boss>("tally").unwrap_err()
    );

    while let BossReply::Ticks(t) = boss.ask(BossMsg::Ticks).await.expect("ask") {
        if t >= 3 {
            break;
        }
        tokio::task::yield_now().await;
    }
    println!("shutting down ({} actors)", system.actor_count());
    system.shutdown().await;
    println!(
        "after shutdown: {} actors; telling the tally now fails: {:?}",
        system.actor_count(),
        tally.tell(TallyMsg::Total).await.err()
    );
}
