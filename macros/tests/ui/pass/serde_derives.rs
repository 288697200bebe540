//! The prelude's `Serialize`/`Deserialize` derives in a crate that does not depend on serde
//! (this one depends on `amber` and `tokio` only), with serde's attributes, generics, every
//! shape of type, and the encoding serde's own derive gives.
#![deny(warnings)]

use amber::prelude::*;

/// A message with every variant shape and a generic field.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
enum Command<T> {
    Add(u64),
    Put { key: String, value: T },
    Reset,
}

/// serde's field attributes.
#[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
struct Settings {
    #[serde(rename = "n")]
    count: u32,
    #[serde(default)]
    label: String,
    #[serde(skip)]
    cache: Vec<u8>,
}

/// A tuple struct, a unit struct, and a type that already names amber's serde itself.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pair(u8, String);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(crate = "amber::serde")]
struct Named {
    commands: Vec<Command<bool>>,
}

/// The same type with serde's own derive, through amber's copy of serde: the encoding must
/// be the same.
#[derive(amber::serde::Serialize)]
#[serde(crate = "amber::serde", rename_all = "snake_case")]
enum SerdeCommand<T> {
    #[allow(dead_code)]
    Add(u64),
    Put {
        key: String,
        value: T,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let system = ActorSystem::new();
    let put = Command::Put { key: "k".to_owned(), value: 7u8 };
    let bytes = system.encode(&put).unwrap();
    assert_eq!(bytes, system.encode(&SerdeCommand::Put { key: "k".to_owned(), value: 7u8 }).unwrap());
    assert_eq!(system.decode::<Command<u8>>(&bytes).unwrap(), put);
    for command in [Command::Add(1), Command::Reset] {
        let bytes = system.encode(&command).unwrap();
        assert_eq!(system.decode::<Command<u8>>(&bytes).unwrap(), command);
    }

    let settings = Settings { count: 3, label: "x".to_owned(), cache: vec![1] };
    let decoded: Settings = system.decode(&system.encode(&settings).unwrap()).unwrap();
    assert_eq!(decoded, Settings { cache: Vec::new(), ..settings });

    let pair = Pair(1, "one".to_owned());
    assert_eq!(system.decode::<Pair>(&system.encode(&pair).unwrap()).unwrap(), pair);
    assert_eq!(system.decode::<Unit>(&system.encode(&Unit).unwrap()).unwrap(), Unit);
    let named = Named { commands: vec![Command::Reset, Command::Add(2)] };
    assert_eq!(system.decode::<Named>(&system.encode(&named).unwrap()).unwrap(), named);
    system.shutdown().await;
}
