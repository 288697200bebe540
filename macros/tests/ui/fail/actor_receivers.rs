struct Account {
    balance: u64,
}

#[amber::actor]
impl Account {
    fn balance(&self) -> u64 {
        self.balance
    }

    fn close(self) -> u64 {
        self.balance
    }

    fn deposit(self: Box<Self>, amount: u64) {
        let _ = amount;
    }

    #[on_start]
    fn start() {}
}

fn main() {}
