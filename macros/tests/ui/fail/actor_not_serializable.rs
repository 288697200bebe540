struct Socket;

struct Server;

#[amber::actor]
impl Server {
    fn attach(&mut self, socket: Socket) {
        let _ = socket;
    }

    fn socket(&mut self) -> Socket {
        Socket
    }
}

fn main() {}
