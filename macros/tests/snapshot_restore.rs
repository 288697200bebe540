//! Actors written only with the macros go through the runtime's real snapshot and restore:
//! their derived `ActorState` is what the checkpoint stores and what restore decodes.

use amber::prelude::*;

/// A bank account whose ledger of peers is stored as refs.
#[derive(ActorState, Debug, Default)]
#[amber(name = "macros-test.Account", rebuild = Self::rebuild)]
pub struct Account {
    balance: u64,
    peers: Vec<ActorRef<Account>>,
    #[amber(skip)]
    restored: bool,
}

#[amber::actor]
impl Account {
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    async fn transfer(&mut self, to: ActorRef<Self>, amount: u64) -> bool {
        if amount > self.balance {
            return false;
        }
        self.balance -= amount;
        if !self.peers.contains(&to) {
            self.peers.push(to.clone());
        }
        to.deposit(amount).await.is_ok()
    }

    fn balance(&mut self) -> u64 {
        self.balance
    }

    fn peers(&mut self) -> Vec<ActorRef<Account>> {
        self.peers.clone()
    }

    fn was_restored(&mut self) -> bool {
        self.restored
    }
}

impl Account {
    fn rebuild(&mut self, _system: &ActorSystem) {
        self.restored = true;
    }
}

#[tokio::test]
async fn a_snapshot_of_macro_actors_restores() {
    let system = ActorSystem::builder().register::<Account>().build();
    let names = ["a", "b", "c"];
    let mut accounts = Vec::new();
    for name in names {
        let account = system.spawn_named(name, Account::default()).unwrap();
        account.deposit(100).await.unwrap();
        accounts.push(account);
    }
    assert!(accounts[0].transfer(accounts[1].clone(), 30).await.unwrap());
    assert!(accounts[1].transfer(accounts[2].clone(), 80).await.unwrap());
    assert!(!accounts[2].transfer(accounts[0].clone(), 1000).await.unwrap());
    let before: Vec<u64> = {
        let mut v = Vec::new();
        for a in &accounts {
            v.push(a.balance().await.unwrap());
        }
        v
    };
    assert_eq!(before.iter().sum::<u64>(), 300);

    let checkpoint = system.snapshot().await.expect("snapshot");
    system.shutdown().await;

    let restored = ActorSystem::builder().register::<Account>().restore(&checkpoint).unwrap();
    let mut after = Vec::new();
    for name in names {
        let account = restored.lookup::<Account>(name).unwrap();
        assert!(account.was_restored().await.unwrap(), "the rebuild hook ran");
        after.push(account.balance().await.unwrap());
    }
    assert_eq!(after, before);

    // Refs inside the restored states point at the restored actors.
    let a = restored.lookup::<Account>("a").unwrap();
    let b = restored.lookup::<Account>("b").unwrap();
    assert_eq!(a.peers().await.unwrap(), std::slice::from_ref(&b));
    assert!(a.transfer(b.clone(), 70).await.unwrap());
    assert_eq!(b.balance().await.unwrap(), before[1] + 70);
    restored.shutdown().await;
}
