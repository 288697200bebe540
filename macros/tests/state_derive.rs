//! Behaviour of `#[derive(ActorState)]`: encoding and decoding a state, skipped fields
//! rebuilt by `Default`, a `default` function or the rebuild hook, refs resolved against the
//! system, a v1 → v2 upgrade of stored bytes, and unknown versions refused.

use std::collections::HashMap;

use amber::prelude::*;
use v2::LedgerRef;

/// Accounts as they were in version 1 of the program.
pub mod v1 {
    use amber::prelude::*;

    #[derive(ActorState, Debug)]
    #[amber(name = "test.Ledger")]
    pub struct Ledger {
        pub owner: String,
        pub balance: u64,
    }

    #[amber::actor]
    impl Ledger {
        fn balance(&mut self) -> u64 {
            self.balance
        }
    }
}

/// Version 2: balances in cents, a history, a cache that is never stored, an audit ref.
pub mod v2 {
    use std::collections::HashMap;

    use amber::prelude::*;

    /// The layout of version 1, to read old checkpoints.
    #[derive(amber::serde::Deserialize)]
    #[serde(crate = "amber::serde")]
    struct LedgerV1 {
        owner: String,
        balance: u64,
    }

    #[derive(ActorState, Debug)]
    #[amber(name = "test.Ledger", version = 2, upgrade = "Self::upgrade", rebuild = Self::rebuild)]
    pub struct Ledger {
        pub owner: String,
        pub cents: u128,
        pub history: Vec<i64>,
        pub audit: Option<ActorRef<super::Audit>>,
        /// Rebuilt by the hook from `history`.
        #[amber(skip)]
        pub by_sign: HashMap<bool, usize>,
        /// Rebuilt by its `default` function.
        #[amber(skip, default = "Ledger::fresh_note")]
        pub note: String,
        /// Rebuilt by `Default`.
        #[amber(skip)]
        pub hits: u32,
    }

    impl Ledger {
        pub fn new(owner: &str) -> Self {
            Ledger {
                owner: owner.into(),
                cents: 0,
                history: Vec::new(),
                audit: None,
                by_sign: HashMap::new(),
                note: "live".into(),
                hits: 7,
            }
        }

        fn fresh_note() -> String {
            "rebuilt".into()
        }

        fn upgrade(from: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
            assert_eq!(from, 1);
            let old: LedgerV1 = system.decode(bytes)?;
            let mut ledger = Ledger::new(&old.owner);
            ledger.cents = u128::from(old.balance) * 100;
            ledger.history.push(old.balance as i64);
            Ok(ledger)
        }

        fn rebuild(&mut self, _system: &ActorSystem) -> Result<(), StateError> {
            if self.owner.is_empty() {
                return Err(StateError::Hook("a ledger needs an owner".into()));
            }
            self.by_sign.clear();
            for amount in &self.history {
                *self.by_sign.entry(*amount >= 0).or_default() += 1;
            }
            Ok(())
        }
    }

    #[amber::actor]
    impl Ledger {
        fn book(&mut self, amount: i64) {
            self.history.push(amount);
            *self.by_sign.entry(amount >= 0).or_default() += 1;
            self.cents = self.cents.saturating_add_signed(i128::from(amount) * 100);
            self.hits += 1;
        }

        fn cents(&mut self) -> u128 {
            self.cents
        }
    }
}

/// A plain actor other states refer to.
#[derive(ActorState, Debug, Default)]
pub struct Audit;

#[amber::actor]
impl Audit {
    fn ping(&mut self) -> bool {
        true
    }
}

#[tokio::test]
async fn round_trip_rebuilds_skipped_fields() {
    let system = ActorSystem::new();
    let audit = system.spawn(Audit).unwrap();
    let mut ledger = v2::Ledger::new("ada");
    ledger.audit = Some(audit.clone());
    for amount in [5, -2, 7] {
        ledger.history.push(amount);
    }
    ledger.cents = 1000;
    let bytes = ledger.encode_state().unwrap();

    let back = v2::Ledger::decode_state(2, &bytes, &system).unwrap();
    assert_eq!(back.owner, "ada");
    assert_eq!(back.cents, 1000);
    assert_eq!(back.history, [5, -2, 7]);
    assert_eq!(back.by_sign, HashMap::from([(true, 2), (false, 1)]));
    assert_eq!(back.note, "rebuilt");
    assert_eq!(back.hits, 0);
    // The ref inside resolved against the system: it reaches the live actor.
    let audit_back = back.audit.clone().unwrap();
    assert_eq!(audit_back, audit);
    assert!(audit_back.ping().await.unwrap());
    system.shutdown().await;
}

#[tokio::test]
async fn the_encoding_is_a_map_of_stored_fields_by_name() {
    let system = ActorSystem::new();
    let ledger = v1::Ledger { owner: "bo".into(), balance: 3 };
    let bytes = ledger.encode_state().unwrap();

    /// What an outside reader sees.
    #[derive(amber::serde::Deserialize, PartialEq, Debug)]
    #[serde(crate = "amber::serde")]
    struct Fields {
        owner: String,
        balance: u64,
    }
    let fields: Fields = system.decode(&bytes).unwrap();
    assert_eq!(fields, Fields { owner: "bo".into(), balance: 3 });

    // Skipped fields are not in the bytes.
    let v2_bytes = v2::Ledger::new("x").encode_state().unwrap();
    let map: HashMap<String, amber::serde::de::IgnoredAny> = system.decode(&v2_bytes).unwrap();
    let mut keys: Vec<_> = map.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["audit", "cents", "history", "owner"]);
    system.shutdown().await;
}

#[tokio::test]
async fn a_v1_checkpoint_is_upgraded_by_v2() {
    let system = ActorSystem::new();
    let old = v1::Ledger { owner: "cy".into(), balance: 42 };
    let bytes = old.encode_state().unwrap();
    assert_eq!(<v1::Ledger as ActorState>::VERSION, 1);

    let new = v2::Ledger::decode_state(<v1::Ledger as ActorState>::VERSION, &bytes, &system)
        .expect("v2 reads v1 through its upgrade hook");
    assert_eq!(new.owner, "cy");
    assert_eq!(new.cents, 4200);
    assert_eq!(new.history, [42]);
    // The rebuild hook ran after the upgrade too.
    assert_eq!(new.by_sign, HashMap::from([(true, 1)]));

    // The upgraded actor runs.
    let ledger = system.spawn(new).unwrap();
    ledger.book(-2).await.unwrap();
    assert_eq!(ledger.cents().await.unwrap(), 4000);
    system.shutdown().await;
}

#[tokio::test]
async fn unknown_versions_are_refused() {
    let system = ActorSystem::new();
    let bytes = v2::Ledger::new("dee").encode_state().unwrap();
    for found in [0, 3, u32::MAX] {
        match v2::Ledger::decode_state(found, &bytes, &system) {
            Err(StateError::UnknownVersion { type_name, found: f, current }) => {
                assert_eq!((type_name, f, current), ("test.Ledger", found, 2));
            }
            other => panic!("version {found}: {other:?}"),
        }
    }
    // v1 has no upgrade hook: the state of a newer program is refused, not misread.
    match v1::Ledger::decode_state(2, &bytes, &system) {
        Err(StateError::UnknownVersion { found: 2, current: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    system.shutdown().await;
}

#[tokio::test]
async fn bad_bytes_and_failing_hooks_are_errors() {
    let system = ActorSystem::new();
    assert!(matches!(
        v2::Ledger::decode_state(2, b"\xc1 not messagepack", &system),
        Err(StateError::Codec(_))
    ));
    // The bytes of another layout do not decode as this one.
    let v1_bytes = v1::Ledger { owner: "e".into(), balance: 1 }.encode_state().unwrap();
    assert!(matches!(v2::Ledger::decode_state(2, &v1_bytes, &system), Err(StateError::Codec(_))));
    // The rebuild hook's error comes back as it is.
    let nameless = v2::Ledger::new("").encode_state().unwrap();
    assert_eq!(
        v2::Ledger::decode_state(2, &nameless, &system).unwrap_err(),
        StateError::Hook("a ledger needs an owner".into())
    );
    system.shutdown().await;
}

/// Default type name: `module_path!()` + `::` + the type's name.
#[derive(ActorState, Debug, Default)]
pub struct Unnamed {
    n: u8,
}

#[amber::actor]
impl Unnamed {
    fn n(&mut self) -> u8 {
        self.n
    }
}

pub mod nested {
    /// In a module: its path is part of the default name.
    #[derive(amber::ActorState, Debug)]
    pub struct Deep(pub u8, #[amber(skip)] pub Vec<u8>, pub String);

    #[amber::actor]
    impl Deep {
        fn first(&mut self) -> u8 {
            self.0
        }
    }
}

#[tokio::test]
async fn default_names_and_registration() {
    assert_eq!(<Unnamed as ActorState>::TYPE_NAME, "state_derive::Unnamed");
    assert_eq!(<nested::Deep as ActorState>::TYPE_NAME, "state_derive::nested::Deep");
    assert_eq!(<Audit as ActorState>::TYPE_NAME, "state_derive::Audit");
    let system = ActorSystem::builder()
        .register::<Unnamed>()
        .register::<v2::Ledger>()
        .register::<nested::Deep>()
        .build();
    assert_eq!(system.registered_name::<v2::Ledger>(), Some("test.Ledger"));
    assert_eq!(system.registered_name::<Unnamed>(), Some("state_derive::Unnamed"));
    assert_eq!(system.registered_name::<Audit>(), None);

    // A tuple struct round-trips, its skipped field rebuilt.
    let deep = nested::Deep(9, vec![1, 2], "s".into());
    let back = nested::Deep::decode_state(1, &deep.encode_state().unwrap(), &system).unwrap();
    assert_eq!((back.0, back.1.len(), back.2.as_str()), (9, 0, "s"));
    let unnamed = Unnamed { n: 4 };
    assert_eq!(Unnamed::decode_state(1, &unnamed.encode_state().unwrap(), &system).unwrap().n, 4);
    system.shutdown().await;
}

/// A generic actor: parameters in stored fields must be serializable, the others not.
#[derive(ActorState, Debug)]
#[amber(name = "test.Cell")]
pub struct Cell<T, M> {
    value: T,
    #[amber(skip)]
    _marker: std::marker::PhantomData<M>,
}

/// Not serializable: only ever in a skipped field.
#[derive(Debug)]
pub struct Unserializable;

impl<T, M> Actor for Cell<T, M>
where
    T: amber::Message + Clone + Sync,
    M: Send + 'static,
{
    type Msg = ();
    type Reply = T;
    async fn handle(&mut self, _msg: (), _ctx: &mut Context<Self>) -> T {
        self.value.clone()
    }
}

#[tokio::test]
async fn generic_state() {
    let system = ActorSystem::new();
    let cell: Cell<Vec<String>, Unserializable> =
        Cell { value: vec!["a".into()], _marker: std::marker::PhantomData };
    let bytes = cell.encode_state().unwrap();
    let back = Cell::<Vec<String>, Unserializable>::decode_state(1, &bytes, &system).unwrap();
    assert_eq!(back.value, ["a"]);
    let cell = system.spawn(back).unwrap();
    assert_eq!(cell.ask(()).await.unwrap(), ["a"]);
    system.shutdown().await;
}
