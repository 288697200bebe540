//! Refusals across nodes (issue 10, bug 1, remote side): a tell from another node to an
//! actor that cut and then stopped is accepted by the link, so its sender never learns it
//! was refused: it was in flight at the receiver's cut and must be recorded, even once the
//! actor has left its node's registry.

mod support;

use std::future::{Future, poll_fn};
use std::task::Poll;

use amber::prelude::*;
use amber::snapshot::Checkpoint;
use amber::{ActorState, StateError};
use support::bounded;
use support::cluster::{mesh, node, refs_on};
use tokio::sync::oneshot;

#[derive(Default)]
struct Purse {
    balance: u64,
    entered: Option<oneshot::Sender<()>>,
    gate: Option<oneshot::Receiver<()>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum PurseMsg {
    /// Waits on the gate (the first time), then tells `to` a deposit; keeps it if refused.
    Pay {
        to: ActorRef<Purse>,
        amount: u64,
    },
    Deposit(u64),
    /// Tells `to` to quit.
    Poke(ActorRef<Purse>),
    Quit,
    Balance,
}

impl Actor for Purse {
    type Msg = PurseMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: PurseMsg, ctx: &mut Context<Self>) -> u64 {
        match msg {
            PurseMsg::Pay { to, amount } => {
                if let Some(entered) = self.entered.take() {
                    let _ = entered.send(());
                }
                if let Some(gate) = self.gate.take() {
                    let _ = gate.await;
                }
                self.balance -= amount;
                if to.tell(PurseMsg::Deposit(amount)).await.is_err() {
                    self.balance += amount;
                }
            }
            PurseMsg::Deposit(n) => self.balance += n,
            PurseMsg::Poke(to) => {
                let _ = to.tell(PurseMsg::Quit).await;
            }
            PurseMsg::Quit => ctx.stop(),
            PurseMsg::Balance => {}
        }
        self.balance
    }
}

impl ActorState for Purse {
    const TYPE_NAME: &'static str = "test.Purse";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&self.balance)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        Ok(Purse { balance: system.decode(bytes)?, ..Purse::default() })
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
enum PurseView {
    Pay { to: amber::snapshot::ActorId, amount: u64 },
    Deposit(u64),
    Poke(amber::snapshot::ActorId),
    Quit,
    Balance,
}

fn total(checkpoint: &Checkpoint) -> u64 {
    let balances: u64 =
        checkpoint.states.iter().map(|s| rmp_serde::from_slice::<u64>(&s.state).unwrap()).sum();
    let in_flight: u64 = checkpoint
        .in_flight
        .iter()
        .map(|m| match rmp_serde::from_slice::<PurseView>(&m.payload).unwrap() {
            PurseView::Deposit(n) => n,
            _ => 0,
        })
        .sum();
    balances + in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tell_from_another_node_to_an_actor_gone_after_its_cut_is_recorded() {
    let builder = || ActorSystem::builder().register::<Purse>();
    let nodes = [node("x", builder()).await, node("y", builder()).await];
    mesh(&nodes).await;
    let (entered_tx, entered) = oneshot::channel();
    let (open, gate) = oneshot::channel();
    let a = nodes[0]
        .system()
        .spawn(Purse { balance: 100, entered: Some(entered_tx), gate: Some(gate) })
        .unwrap();
    let poker = nodes[0].system().spawn(Purse::default()).unwrap();
    let b = nodes[1].system().spawn(Purse::default()).unwrap();
    let b_from_x = refs_on(&nodes[1], &nodes[0], &[b]).remove(0);
    a.tell(PurseMsg::Pay { to: b_from_x.clone(), amount: 10 }).await.unwrap();
    bounded(entered).await.unwrap(); // A's handler began before the snapshot

    // One poll of the snapshot starts it and puts the markers on x's control lanes.
    let mut snapshot = Box::pin(nodes[0].system().snapshot());
    poll_fn(|cx| {
        assert!(snapshot.as_mut().poll(cx).is_pending(), "A holds the snapshot back");
        Poll::Ready(())
    })
    .await;
    // The poker cuts (its marker overtakes the ask), then tells B to quit, tagged with the
    // snapshot: B cuts before handling it, then stops and leaves y's registry.
    bounded(poker.ask(PurseMsg::Poke(b_from_x.clone()))).await.unwrap();
    bounded(b_from_x.wait_stopped()).await;
    // A pays B: x's link takes the deposit, so A never learns that y refused it.
    open.send(()).unwrap();
    assert_eq!(bounded(a.ask(PurseMsg::Balance)).await.unwrap(), 90);

    let checkpoint = bounded(snapshot).await.expect("snapshot");
    assert_eq!(checkpoint.manifest.actors.len(), 3);
    assert_eq!(total(&checkpoint), 100, "in flight: {:?}", checkpoint.in_flight);
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
