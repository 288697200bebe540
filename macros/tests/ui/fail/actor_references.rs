struct Account {
    owner: String,
}

#[amber::actor]
impl Account {
    fn rename(&mut self, owner: &str) {
        self.owner = owner.to_owned();
    }

    fn merge(&mut self, other: &Account, log: Vec<&[u8]>) {
        let _ = (other, log);
    }

    fn owner(&mut self) -> &str {
        &self.owner
    }
}

fn main() {}
