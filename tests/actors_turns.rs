//! How many messages an actor handles in one turn on a worker before other tasks run
//! (`SystemBuilder::messages_per_turn`).

mod support;

use std::sync::{Arc, Mutex};

use amber::prelude::*;
use support::bounded;

/// Notes each message it handles in a log it shares with the test.
struct Logger(Arc<Mutex<Vec<&'static str>>>);

#[derive(Serialize, Deserialize)]
struct Note;

impl Actor for Logger {
    type Msg = Note;
    type Reply = ();
    async fn handle(&mut self, _: Note, _: &mut Context<Self>) {
        self.0.lock().unwrap().push("actor");
    }
}

/// Ten messages queued for an actor, and another task ready to run behind it on the one
/// worker: where the other task's entry falls in the log says how many messages the actor
/// handled before it let the worker go.
async fn handled_before_the_other_task(system: ActorSystem) -> usize {
    let log = Arc::new(Mutex::new(Vec::new()));
    let logger = system.spawn(Logger(log.clone())).unwrap();
    for _ in 0..10 {
        logger.tell(Note).await.unwrap();
    }
    let other = tokio::spawn({
        let log = log.clone();
        async move { log.lock().unwrap().push("other") }
    });
    bounded(other).await.unwrap();
    // Everything handled: the ten notes and the other task.
    bounded(async {
        while log.lock().unwrap().len() < 11 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    bounded(system.shutdown()).await;
    let log = log.lock().unwrap();
    log.iter().position(|e| *e == "other").expect("the other task ran")
}

#[tokio::test(flavor = "current_thread")]
async fn an_actor_lets_other_tasks_run_after_its_turns_messages() {
    let three = ActorSystem::builder().messages_per_turn(3).build();
    assert_eq!(handled_before_the_other_task(three).await, 3);
    // By default the turn lasts as long as the actor has messages (within tokio's budget).
    assert_eq!(handled_before_the_other_task(ActorSystem::new()).await, 10);
}
