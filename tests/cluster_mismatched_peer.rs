//! A peer running other code behind the same registered name: the generated ask methods of
//! `#[amber::actor]` get a reply of another variant than the one they asked for, and answer
//! with a typed error, `AskError::UnexpectedReply`, never a panic.

mod support;

use amber::prelude::*;
use amber::{AskError, SystemBuilder};
use support::bounded;
use support::cluster::{mesh, node};

/// The code the asking node runs.
#[derive(ActorState, Debug, Default)]
#[amber(name = "test.Meter")]
pub struct Meter {
    reading: u64,
}

#[amber::actor]
impl Meter {
    /// The current reading.
    async fn read(&mut self) -> u64 {
        self.reading
    }

    /// The meter's label.
    async fn label(&mut self) -> String {
        "meter".into()
    }
}

/// Other code registered under the same name on the answering node: it speaks the same
/// messages, but answers a reading with a label.
#[derive(ActorState, Debug, Default)]
#[amber(name = "test.Meter")]
pub struct Impostor {
    answered: u64,
}

impl Actor for Impostor {
    type Msg = MeterMsg;
    type Reply = MeterReply;

    async fn handle(&mut self, _msg: MeterMsg, _ctx: &mut Context<Self>) -> MeterReply {
        self.answered += 1;
        MeterReply::Label("not a reading".into())
    }
}

fn honest() -> SystemBuilder {
    ActorSystem::builder().register::<Meter>()
}

fn impostor() -> SystemBuilder {
    ActorSystem::builder().register::<Impostor>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_of_another_variant_is_a_typed_error() {
    let nodes = vec![node("a", honest()).await, node("b", impostor()).await];
    mesh(&nodes).await;
    let there = nodes[1].system().spawn(Impostor::default()).unwrap();
    // On node a, the impostor is a `Meter` (refs travel as ids; the type is the asker's).
    let bytes = nodes[1].system().encode(&there).unwrap();
    let meter: ActorRef<Meter> = nodes[0].system().decode(&bytes).unwrap();
    let asked = bounded(meter.read()).await;
    match asked {
        Err(AskError::UnexpectedReply(expected)) => {
            assert!(expected.contains("MeterReply::Read"), "names what it expected: {expected}")
        }
        other => panic!("a reading answered with a label must be a typed error: {other:?}"),
    }
    // The variant it answers is the one `label` expects: that ask works.
    assert_eq!(bounded(meter.label()).await.unwrap(), "not a reading");
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
