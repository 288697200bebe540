struct Account;

#[amber::actor]
impl Account {
    fn read_all(&mut self) -> u64 {
        0
    }

    fn read__all(&mut self) -> u64 {
        1
    }

    fn balance(&mut self) -> u64 {
        2
    }

    fn balance_timeout(&mut self) {}

    fn stop(&mut self) {}

    fn name(&mut self) -> String {
        String::new()
    }
}

fn main() {}
