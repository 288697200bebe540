struct A;

#[amber::actor(vis = 5, colour = "red", derive = Clone, crate = 1)]
impl A {
    fn ping(&mut self) {}
}

struct B;

#[amber::actor(vis = "public")]
impl B {
    fn ping(&mut self) {}
}

fn main() {}
