//! A panic in a state's `Serialize` during a cut behaves like a panicking handler: the
//! actor is restarted or stopped by its policy, watchers are told, asks to it do not hang,
//! and the snapshot fails at once with an error naming the actor (issue 10, bug 5).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use amber::prelude::*;
use amber::{ActorState, AskError, CaptureProblem, Down, SnapshotError, StateError};
use support::bounded;
use tokio::sync::mpsc;

/// An actor whose state's `Serialize` panics while `explode` is set.
struct Fragile {
    state: FragileState,
    downs: Option<mpsc::UnboundedSender<Down>>,
}

struct FragileState {
    count: u64,
    explode: bool,
}

impl Serialize for FragileState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(!self.explode, "told to panic while serializing");
        self.count.serialize(s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum FragileMsg {
    Add(u64),
    Get,
    Watch(ActorRef<Fragile>),
}

impl Fragile {
    fn new(explode: bool) -> Self {
        Fragile { state: FragileState { count: 0, explode }, downs: None }
    }
}

impl Actor for Fragile {
    type Msg = FragileMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: FragileMsg, ctx: &mut Context<Self>) -> u64 {
        match msg {
            FragileMsg::Add(n) => self.state.count += n,
            FragileMsg::Get => {}
            FragileMsg::Watch(other) => ctx.watch(&other),
        }
        self.state.count
    }

    async fn on_down(&mut self, _ctx: &mut Context<Self>, down: Down) {
        if let Some(downs) = &self.downs {
            let _ = downs.send(down);
        }
    }
}

impl ActorState for Fragile {
    const TYPE_NAME: &'static str = "test.Fragile";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&self.state)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        let count = system.decode(bytes)?;
        Ok(Fragile { state: FragileState { count, explode: false }, downs: None })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_state_encoder_fails_the_snapshot_at_once_and_supervision_applies() {
    let system = ActorSystem::builder().register::<Fragile>().build();
    // Stops when it panics (an instance, no factory).
    let stopping = system.spawn(Fragile::new(true)).unwrap();
    // Restarts when it panics: only its first instance explodes.
    let made = Arc::new(AtomicU32::new(0));
    let policy = RestartPolicy::on_panic(5, Duration::from_secs(60));
    let restarting = system
        .spawn_with(SpawnOptions::new().restart(policy), {
            let made = made.clone();
            move || Fragile::new(made.fetch_add(1, Ordering::Relaxed) == 0)
        })
        .unwrap();
    bounded(restarting.ask(FragileMsg::Add(7))).await.unwrap();
    let (tx, mut downs) = mpsc::unbounded_channel();
    let watcher = system.spawn(Fragile { downs: Some(tx), ..Fragile::new(false) }).unwrap();
    bounded(watcher.ask(FragileMsg::Watch(stopping.clone()))).await.unwrap();

    let started = Instant::now();
    match bounded(system.snapshot()).await {
        Err(SnapshotError::Capture { actors, problems, .. }) => {
            let mut named = actors.clone();
            named.sort();
            let mut expected = vec![stopping.id(), restarting.id()];
            expected.sort();
            assert_eq!(named, expected, "{problems:?}");
            assert!(
                problems.iter().all(|p| matches!(p, CaptureProblem::EncoderPanicked { .. })),
                "{problems:?}"
            );
            assert!(problems.iter().all(|p| p.to_string().contains("panicked")), "{problems:?}");
        }
        other => panic!("expected a capture error naming the actors, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "the snapshot waited for its deadline");

    // The stopping one stopped as a panicking handler does, and its watcher was told.
    let down = support::next(&mut downs).await;
    assert_eq!(down.actor, stopping.id());
    assert!(matches!(down.reason, ExitReason::Panicked(_)), "{:?}", down.reason);
    assert!(matches!(bounded(stopping.ask(FragileMsg::Get)).await, Err(AskError::Stopped)));
    // The restarting one is a fresh instance.
    assert_eq!(bounded(restarting.ask(FragileMsg::Get)).await.unwrap(), 0);
    assert_eq!(made.load(Ordering::Relaxed), 2);

    let checkpoint = bounded(system.snapshot()).await.expect("the next snapshot works");
    let mut ids: Vec<_> = checkpoint.manifest.actors.iter().map(|a| a.id).collect();
    ids.sort();
    let mut expected = vec![restarting.id(), watcher.id()];
    expected.sort();
    assert_eq!(ids, expected);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_state_encoder_fails_a_migration_and_supervision_applies() {
    use amber::ClusterError;
    use amber::actors::migrate::MigrateError;

    let builder = || ActorSystem::builder().register::<Fragile>();
    let nodes = [
        support::cluster::node("m0", builder()).await,
        support::cluster::node("m1", builder()).await,
    ];
    support::cluster::mesh(&nodes).await;
    let moving = nodes[0].system().spawn(Fragile::new(true)).unwrap();
    let (tx, mut downs) = mpsc::unbounded_channel();
    let watcher =
        nodes[0].system().spawn(Fragile { downs: Some(tx), ..Fragile::new(false) }).unwrap();
    bounded(watcher.ask(FragileMsg::Watch(moving.clone()))).await.unwrap();

    match bounded(nodes[0].migrate(moving.id(), nodes[1].node())).await {
        Err(ClusterError::Migrate(MigrateError::Codec { actor, error })) => {
            assert_eq!(actor, moving.id());
            assert!(error.contains("panicked"), "{error}");
        }
        other => panic!("expected a codec error, got {other:?}"),
    }
    let down = support::next(&mut downs).await;
    assert_eq!(down.actor, moving.id());
    assert!(matches!(down.reason, ExitReason::Panicked(_)), "{:?}", down.reason);
    assert!(matches!(bounded(moving.ask(FragileMsg::Get)).await, Err(AskError::Stopped)));
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

/// A message whose `Serialize` panics.
#[derive(Debug, Clone, Deserialize)]
struct Bomb;

impl Serialize for Bomb {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("told to panic while serializing a message");
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum PostMsg {
    /// Waits for the test's go-ahead.
    Hold,
    Parcel(Bomb),
    Count,
}

/// Counts parcels; `Hold` waits for the test.
struct Post {
    parcels: u64,
    entered: mpsc::UnboundedSender<()>,
    go: Arc<tokio::sync::Notify>,
}

impl Actor for Post {
    type Msg = PostMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: PostMsg, _ctx: &mut Context<Self>) -> u64 {
        match msg {
            PostMsg::Hold => {
                let _ = self.entered.send(());
                self.go.notified().await;
            }
            PostMsg::Parcel(_) => self.parcels += 1,
            PostMsg::Count => {}
        }
        self.parcels
    }
}

impl ActorState for Post {
    const TYPE_NAME: &'static str = "test.Post";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&self.parcels)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        let (entered, _) = mpsc::unbounded_channel();
        Ok(Post { parcels: system.decode(bytes)?, entered, go: Arc::default() })
    }
}

/// A message queued across the cut whose `Serialize` panics cannot be recorded: the snapshot
/// fails at once naming it (it used to take the actor's task down mid-cut, and the snapshot
/// waited for its deadline), and the actor goes on handling its messages.
///
/// The parcel is in flight at the cut only if the snapshot's marker reaches the actor while
/// its handler holds: a helper of the broadcast may still be on its way to the actor when
/// the test sees the snapshot running and lets the handler end, and the actor then handles
/// the parcel first and is cut after it (a consistent snapshot without the parcel in flight,
/// checked as such). That attempt is run again, up to twenty times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_message_encoder_at_a_cut_fails_the_snapshot_and_the_actor_goes_on() {
    for attempt in 1..=20 {
        if panicking_parcel_at_a_cut().await {
            return;
        }
        eprintln!("attempt {attempt}: the actor was cut after the parcel; again");
    }
    panic!("in twenty attempts the marker never reached the actor while its handler held");
}

/// One attempt of the test above: `true` if the parcel was in flight at the cut (and the
/// snapshot failed naming it), `false` if the actor handled it before its cut.
async fn panicking_parcel_at_a_cut() -> bool {
    let system = ActorSystem::builder().register::<Post>().build();
    let (entered, mut inside) = mpsc::unbounded_channel();
    let go = Arc::new(tokio::sync::Notify::new());
    let post = system.spawn(Post { parcels: 0, entered, go: go.clone() }).unwrap();
    post.tell(PostMsg::Hold).await.unwrap();
    support::next(&mut inside).await;
    // Queued behind the held handler, before the snapshot: in flight at the actor's cut.
    post.tell(PostMsg::Parcel(Bomb)).await.unwrap();
    let snapshot = tokio::spawn({
        let system = system.clone();
        async move { system.snapshot_within(Duration::from_secs(15)).await }
    });
    bounded(async {
        while system.snapshot_running().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The marker waits on the actor's control lane; the handler ends, the actor cuts.
    go.notify_one();
    let started = Instant::now();
    let recorded = match bounded(snapshot).await.unwrap() {
        Err(SnapshotError::Capture { problems, .. }) => {
            assert!(
                problems.iter().any(
                    |p| matches!(p, CaptureProblem::MessageEncode { to, .. } if *to == post.id())
                        && p.to_string().contains("panicked")
                ),
                "{problems:?}"
            );
            true
        }
        // The actor was cut after the parcel: handled, so not in flight.
        Ok(checkpoint) => {
            assert!(checkpoint.in_flight.is_empty(), "{checkpoint:?}");
            let state = &checkpoint.states[0].state;
            assert_eq!(amber::decode::<u64>(state).unwrap(), 1, "the parcel is in the state");
            false
        }
        other => panic!("expected a capture error naming the message, got {other:?}"),
    };
    assert!(started.elapsed() < Duration::from_secs(10), "the snapshot waited for its deadline");
    // The parcel was handled (only its recording failed), and the actor still answers.
    assert_eq!(bounded(post.ask(PostMsg::Count)).await.unwrap(), 1);
    bounded(system.shutdown()).await;
    recorded
}
