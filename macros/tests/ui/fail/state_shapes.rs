use amber::prelude::*;

#[derive(ActorState)]
enum Light {
    On,
    Off,
}

#[derive(ActorState)]
struct Borrowing<'a> {
    name: &'a str,
}

fn main() {}
