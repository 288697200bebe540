//! An actor that watches the actors it is sent and reports every `Down` it hears.

use std::marker::PhantomData;

use amber_actors::{Actor, ActorRef, Context, Down};
use amber_remote::Cluster;
use tokio::sync::mpsc;

/// Watches each `ActorRef<T>` it is sent and reports every `Down` on its channel.
pub struct Watcher<T> {
    downs: mpsc::UnboundedSender<Down>,
    target: PhantomData<fn() -> T>,
}

impl<T: Actor> Actor for Watcher<T> {
    type Msg = ActorRef<T>;
    type Reply = ();
    async fn handle(&mut self, target: ActorRef<T>, ctx: &mut Context<Self>) {
        ctx.watch(&target);
    }
    async fn on_down(&mut self, _: &mut Context<Self>, down: Down) {
        let _ = self.downs.send(down);
    }
}

/// A watcher on `cluster`'s system, and where its `Down`s arrive.
pub fn watcher<T: Actor>(
    cluster: &Cluster,
) -> (ActorRef<Watcher<T>>, mpsc::UnboundedReceiver<Down>) {
    let (downs, rx) = mpsc::unbounded_channel();
    (cluster.system().spawn(Watcher { downs, target: PhantomData }).unwrap(), rx)
}
