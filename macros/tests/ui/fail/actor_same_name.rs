struct Account;

#[amber::actor]
impl Account {
    fn deposit(&mut self, amount: u64) {
        let _ = amount;
    }

    fn deposit(&mut self, amount: u32) {
        let _ = amount;
    }
}

fn main() {}
