//! The counter both remote benchmarks drive: `Add(n)` adds, every message answers the count.

use amber_actors::{Actor, Context};
use serde::{Deserialize, Serialize};

#[derive(Default)]
pub(crate) struct Counter(u64);

/// The counter's message (also the raw baseline's frame in `link_bench`).
#[derive(Serialize, Deserialize)]
pub(crate) enum Count {
    Add(u64),
    Get,
}

impl Actor for Counter {
    type Msg = Count;
    type Reply = u64;
    async fn handle(&mut self, msg: Count, _: &mut Context<Self>) -> u64 {
        if let Count::Add(n) = msg {
            self.0 += n;
        }
        self.0
    }
}
