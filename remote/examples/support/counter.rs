//! The counter the remote benchmarks drive: `Add(n)` adds, every message answers the count.
//! Its state travels (`ActorState`), so `sharding_bench` starts it as a sharded entity.

use amber_actors::{Actor, ActorState, ActorSystem, CodecError, Context, StateError};
use serde::{Deserialize, Serialize};

#[derive(Default)]
pub(crate) struct Counter(u64);

/// The counter's message (also the raw baseline's frame in `link_bench`).
#[derive(Debug, Serialize, Deserialize)]
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

impl ActorState for Counter {
    const TYPE_NAME: &'static str = "bench.Counter";
    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(&self.0)
    }
    fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        Ok(Counter(system.decode(bytes)?))
    }
}
