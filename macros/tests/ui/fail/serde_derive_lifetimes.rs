//! The prelude's serde derives refuse borrowing types with one clear error.
use amber::prelude::*;

#[derive(Serialize, Deserialize)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
