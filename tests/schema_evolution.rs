//! Schema evolution without ceremony: a stored field added with a default restores older
//! checkpoints without a version bump, and so does a field added with `#[serde(default)]` to
//! a message recorded in flight. Both are tested against checkpoints written by the previous
//! version of the type (`v1`), restored into the next (`v2`), which has the same stable name.
#![allow(unreachable_pub, missing_debug_implementations)]

use amber::prelude::*;
use amber::snapshot::InFlightRecord;

mod v1 {
    use amber::prelude::*;

    #[derive(ActorState, Default)]
    #[amber(name = "evolution.Account")]
    pub struct Account {
        pub balance: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub enum AccountMsg {
        Deposit { amount: u64 },
        Get,
    }

    impl Actor for Account {
        type Msg = AccountMsg;
        type Reply = u64;
        async fn handle(&mut self, msg: AccountMsg, _ctx: &mut Context<Self>) -> u64 {
            if let AccountMsg::Deposit { amount } = msg {
                self.balance += amount;
            }
            self.balance
        }
    }

    /// A tuple state of two stored fields: encoded as an array.
    #[derive(ActorState, Default)]
    #[amber(name = "evolution.Pair")]
    pub struct Pair(pub u64, pub u64);

    impl Actor for Pair {
        type Msg = ();
        type Reply = ();
        async fn handle(&mut self, _msg: (), _ctx: &mut Context<Self>) {}
    }
}

mod v2 {
    use amber::prelude::*;

    /// `v1::Account` plus two stored fields with defaults; same name, same version.
    #[derive(ActorState, Default)]
    #[amber(name = "evolution.Account")]
    pub struct Account {
        pub balance: u64,
        #[amber(default)]
        pub deposits: u32,
        #[amber(default = Account::default_currency)]
        pub currency: String,
    }

    impl Account {
        fn default_currency() -> String {
            "EUR".to_owned()
        }
    }

    /// `v1::AccountMsg` with a field added to a variant, with serde's default.
    #[derive(Serialize, Deserialize)]
    pub enum AccountMsg {
        Deposit {
            amount: u64,
            #[serde(default)]
            memo: String,
        },
        Get,
    }

    impl Actor for Account {
        type Msg = AccountMsg;
        type Reply = (u64, u32, String);
        async fn handle(
            &mut self,
            msg: AccountMsg,
            _ctx: &mut Context<Self>,
        ) -> (u64, u32, String) {
            let mut memo = String::new();
            if let AccountMsg::Deposit { amount, memo: m } = msg {
                self.balance += amount;
                self.deposits += 1;
                memo = m;
            }
            (self.balance, self.deposits, format!("{}{memo}", self.currency))
        }
    }

    /// `v1::Pair` with a trailing stored field with a default.
    #[derive(ActorState, Default)]
    #[amber(name = "evolution.Pair")]
    pub struct Pair(pub u64, pub u64, #[amber(default = Pair::seven)] pub u64);

    impl Pair {
        fn seven() -> u64 {
            7
        }
    }

    impl Actor for Pair {
        type Msg = ();
        type Reply = (u64, u64, u64);
        async fn handle(&mut self, _msg: (), _ctx: &mut Context<Self>) -> (u64, u64, u64) {
            (self.0, self.1, self.2)
        }
    }

    /// `v1::Account` with a stored field added *without* a default.
    #[derive(ActorState, Default)]
    #[amber(name = "evolution.Account")]
    pub struct Strict {
        pub balance: u64,
        pub deposits: u32,
    }

    impl Actor for Strict {
        type Msg = ();
        type Reply = ();
        async fn handle(&mut self, _msg: (), _ctx: &mut Context<Self>) {}
    }
}

#[tokio::test]
async fn a_stored_field_added_with_a_default_restores_older_checkpoints() {
    let old = ActorSystem::builder().register::<v1::Account>().build();
    let account = old.spawn(v1::Account { balance: 5 }).unwrap();
    let id = account.id();
    let checkpoint = old.snapshot().await.unwrap();
    old.shutdown().await;

    let new = ActorSystem::builder().register::<v2::Account>().restore(&checkpoint).unwrap();
    let account = new.lookup_id::<v2::Account>(id).unwrap();
    assert_eq!(account.ask(v2::AccountMsg::Get).await.unwrap(), (5, 0, "EUR".to_owned()));
    new.shutdown().await;

    // Without a default, the older state is refused with a clear error, not made up.
    let bytes = &checkpoint.states[0].state;
    let err = match v2::Strict::decode_state(1, bytes, &ActorSystem::new()) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a state lacking a field without a default decoded"),
    };
    assert!(err.contains("deposits"), "{err}");
}

#[tokio::test]
async fn a_removed_or_renamed_field_needs_a_version_and_an_upgrade() {
    let system = ActorSystem::new();
    // Written by v2 (balance, deposits, currency); v1 knows only `balance`.
    let v2 = v2::Account { balance: 5, deposits: 2, currency: "EUR".to_owned() };
    let bytes = v2.encode_state().unwrap();
    let err = match v1::Account::decode_state(1, &bytes, &system) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a state with a field the type does not know decoded"),
    };
    assert!(err.contains("unknown field"), "{err}");
    system.shutdown().await;
}

#[tokio::test]
async fn a_trailing_field_with_a_default_restores_older_tuple_states() {
    let old = ActorSystem::builder().register::<v1::Pair>().build();
    let pair = old.spawn(v1::Pair(3, 4)).unwrap();
    let id = pair.id();
    let checkpoint = old.snapshot().await.unwrap();
    old.shutdown().await;

    let new = ActorSystem::builder().register::<v2::Pair>().restore(&checkpoint).unwrap();
    let pair = new.lookup_id::<v2::Pair>(id).unwrap();
    assert_eq!(pair.ask(()).await.unwrap(), (3, 4, 7));

    // A tuple state of one stored field is encoded as that value, not as an array: growing
    // it changes the shape, which needs a version and an upgrade.
    let newtype = amber::encode(&3u64).unwrap();
    assert!(v2::Pair::decode_state(1, &newtype, &new).is_err());
    new.shutdown().await;
}

#[tokio::test]
async fn a_message_field_added_with_a_default_restores_older_in_flight_messages() {
    let old = ActorSystem::builder().register::<v1::Account>().build();
    let account = old.spawn(v1::Account { balance: 5 }).unwrap();
    let id = account.id();
    let mut checkpoint = old.snapshot().await.unwrap();
    old.shutdown().await;
    // A deposit recorded in flight by the old code (in flight across the cut: sent before
    // it, tagged with an older epoch).
    let payload = amber::encode(&v1::AccountMsg::Deposit { amount: 10 }).unwrap();
    checkpoint.in_flight.push(InFlightRecord {
        to: id,
        from: None,
        epoch: amber::Epoch::ZERO,
        ask: false,
        payload: payload.into(),
    });

    let new = ActorSystem::builder().register::<v2::Account>().restore(&checkpoint).unwrap();
    let account = new.lookup_id::<v2::Account>(id).unwrap();
    // The recorded deposit is handled first, with the new field's default.
    assert_eq!(account.ask(v2::AccountMsg::Get).await.unwrap(), (15, 1, "EUR".to_owned()));
    new.shutdown().await;
}
