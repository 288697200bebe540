struct Store {
    items: Vec<String>,
}

#[amber::actor]
impl Store {
    fn put<T: ToString>(&mut self, item: T) {
        self.items.push(item.to_string());
    }

    fn put_all(&mut self, items: impl IntoIterator<Item = String>) {
        self.items.extend(items);
    }

    fn push(&mut self, (a, b): (String, String)) {
        self.items.push(a + &b);
    }

    fn count(&mut self) -> impl Into<u64> {
        self.items.len() as u64
    }
}

fn main() {}
