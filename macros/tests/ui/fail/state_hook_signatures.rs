use amber::prelude::*;

#[derive(ActorState)]
#[amber(version = 2, upgrade = "Self::upgrade", rebuild = "Self::rebuild")]
struct Account {
    n: u64,
}

impl Account {
    fn upgrade(bytes: &[u8]) -> Self {
        Account { n: bytes.len() as u64 }
    }

    fn rebuild(&mut self) {}
}

#[amber::actor]
impl Account {
    fn n(&mut self) -> u64 {
        self.n
    }
}

fn main() {}
