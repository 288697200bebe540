use amber::prelude::*;

#[derive(ActorState)]
#[amber(upgrade = "Self::upgrade")]
struct NoVersion {
    n: u64,
}

#[derive(ActorState)]
#[amber(version = 0, name = "")]
struct Zero {
    n: u64,
}

impl NoVersion {
    fn upgrade(_: u32, _: &[u8], _: &ActorSystem) -> Result<Self, StateError> {
        Ok(NoVersion { n: 0 })
    }
}

#[amber::actor]
impl NoVersion {
    fn n(&mut self) -> u64 {
        self.n
    }
}

#[amber::actor]
impl Zero {
    fn n(&mut self) -> u64 {
        self.n
    }
}

fn main() {}
