//! A handler argument that is not `Clone` makes the generated message enum not `Clone`; a
//! timer that repeats such a message is refused, pointing at the argument's type.
use std::time::Duration;

use amber::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Token(u64);

#[derive(Default)]
pub struct Door;

#[amber::actor]
impl Door {
    fn start(&mut self, ctx: &mut Context<Self>) {
        ctx.send_interval(Duration::from_secs(1), DoorMsg::Knock { token: Token(1) });
    }

    fn knock(&mut self, token: Token) {
        let _ = token.0;
    }
}

fn main() {}
