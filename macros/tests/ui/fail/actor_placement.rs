#[amber::actor]
struct NotAnImpl;

struct Wrapped<T>(T);

#[amber::actor]
impl<T: Send + 'static> Wrapped<T> {
    fn ping(&mut self) {}
}

struct Traity;

trait Ping {
    fn ping(&mut self);
}

#[amber::actor]
impl Ping for Traity {
    fn ping(&mut self) {}
}

fn main() {}
