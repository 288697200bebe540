use amber::prelude::*;

#[derive(ActorState)]
#[amber(name = 5, version = "2", colour = "red", skip)]
#[amber(rebuild = 12, name = "x", name = "y")]
struct Account {
    #[amber(default = "Vec::new")]
    history: Vec<u64>,
    #[amber(skip = true, rename = "b")]
    cache: Vec<u64>,
}

#[amber::actor]
impl Account {
    fn len(&mut self) -> usize {
        self.history.len() + self.cache.len()
    }
}

fn main() {}
