use amber::prelude::*;

struct Connection;

#[derive(ActorState)]
struct Session {
    user: String,
    conn: Connection,
}

#[amber::actor]
impl Session {
    fn user(&mut self) -> String {
        self.user.clone()
    }
}

fn main() {}
