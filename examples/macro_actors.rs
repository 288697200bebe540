//! Actors written with amber's macros, end to end: `cargo run --example macro_actors`.
//!
//! - `#[amber::actor]` turns the methods of an impl block into message handlers, and
//!   generates `AccountMsg`, `AccountReply` and the `AccountRef` trait whose typed methods
//!   (`deposit`, `transfer`, `balance`, ...) work on any `ActorRef<Account>`;
//! - `#[derive(ActorState)]` makes the account's state storable in snapshots: encoded
//!   without the struct deriving serde, rebuilt on restore (refs resolved, skipped fields
//!   rebuilt), and upgradable from older versions;
//! - timers: the generated message enum is `Clone` when every handler argument is, so a
//!   handler's message can be sent by `ctx.send_interval`.

use std::time::Duration;

use amber::prelude::*;

/// A bank account: the whole actor is the struct, the impl block below, and two derives.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.Account", rebuild = Self::rebuild)]
pub struct Account {
    owner: String,
    balance: u64,
    /// Where every movement is reported, if anywhere. Refs are stored as actor ids.
    audit: Option<ActorRef<Audit>>,
    /// How many messages this incarnation has handled: not worth storing.
    #[amber(skip)]
    handled: u64,
}

#[amber::actor]
impl Account {
    /// Opens an account (an associated function: not a handler).
    pub fn open(owner: &str, audit: Option<ActorRef<Audit>>) -> Self {
        Account { owner: owner.into(), audit, ..Account::default() }
    }

    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        println!("  [{}] account of {} is open", ctx.id(), self.owner);
    }

    /// Adds to the balance. Returns nothing, so `deposit` on a ref is a `tell`.
    async fn deposit(&mut self, amount: u64) {
        self.handled += 1;
        self.balance += amount;
        self.report(format!("{} +{amount}", self.owner)).await;
    }

    /// Takes money out if it is there. Returns a value, so `withdraw` on a ref is an `ask`.
    async fn withdraw(&mut self, amount: u64) -> Result<u64, String> {
        self.handled += 1;
        if amount > self.balance {
            return Err(format!("{} has {}, cannot withdraw {amount}", self.owner, self.balance));
        }
        self.balance -= amount;
        self.report(format!("{} -{amount}", self.owner)).await;
        Ok(self.balance)
    }

    /// Moves money to another account: awaits a reply from nobody, tells the other one.
    async fn transfer(&mut self, to: ActorRef<Account>, amount: u64) -> Result<u64, String> {
        let left = self.withdraw(amount).await?;
        to.deposit(amount).await.map_err(|e| e.to_string())?;
        Ok(left)
    }

    fn balance(&mut self) -> u64 {
        self.handled += 1;
        self.balance
    }
}

impl Account {
    /// Helpers that are not handlers live in another impl block.
    async fn report(&self, line: String) {
        if let Some(audit) = &self.audit {
            let _ = audit.record(line).await;
        }
    }

    /// Runs after every decode of a stored state.
    fn rebuild(&mut self, _system: &ActorSystem) {
        self.handled = 0;
    }
}

/// Collects the lines the accounts report.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.Audit")]
pub struct Audit {
    lines: Vec<String>,
}

#[amber::actor]
impl Audit {
    fn record(&mut self, line: String) {
        self.lines.push(line);
    }

    fn lines(&mut self) -> Vec<String> {
        self.lines.clone()
    }
}

/// Counts the ticks of its own timer. `send_interval` sends a clone of its message every
/// period; the generated `ClockMsg` is `Clone` because every handler argument is.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.Clock")]
pub struct Clock {
    ticks: u64,
}

#[amber::actor]
impl Clock {
    #[on_start]
    fn start(&mut self, ctx: &mut Context<Self>) {
        ctx.send_interval(Duration::from_millis(10), ClockMsg::Tick { by: 1 });
    }

    fn tick(&mut self, by: u64) {
        self.ticks += by;
    }

    fn ticks(&mut self) -> u64 {
        self.ticks
    }
}

/// Actors written with amber's macros, end to end: handlers, typed refs, storable state,
/// timers.
#[derive(Debug, clap::Parser)]
#[command(name = "macro_actors")]
struct Args {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    <Args as clap::Parser>::parse();
    println!("spawning an audit log and three accounts");
    let system = ActorSystem::builder()
        .register::<Account>()
        .register::<Audit>()
        .register::<Clock>()
        .build();
    let audit = system.spawn(Audit::default())?;
    let alice = system.spawn(Account::open("alice", Some(audit.clone())))?;
    let bob = system.spawn(Account::open("bob", Some(audit.clone())))?;
    let carol = system.spawn(Account::open("carol", None))?;

    println!("\ntelling and asking through the generated AccountRef methods");
    alice.deposit(100).await?;
    bob.deposit(20).await?;
    println!("  alice.transfer(bob, 30)   -> {:?}", alice.transfer(bob.clone(), 30).await?);
    println!("  bob.transfer(carol, 500)  -> {:?}", bob.transfer(carol.clone(), 500).await?);
    println!("  carol.withdraw(1)         -> {:?}", carol.withdraw(1).await?);
    println!(
        "  balances                  -> alice {}, bob {}, carol {}",
        alice.balance().await?,
        bob.balance().await?,
        carol.balance_timeout(Duration::from_secs(1)).await?
    );

    println!("\nthe same through the generated message enum and the plain ActorRef API");
    bob.tell(AccountMsg::Deposit { amount: 5 }).await?;
    match bob.ask(AccountMsg::Balance).await? {
        AccountReply::Balance(b) => {
            println!("  bob.ask(AccountMsg::Balance) -> AccountReply::Balance({b})")
        }
        other => println!("  unexpected reply {other:?}"),
    }
    println!("  audit log: {:?}", audit.lines().await?);

    println!("\na timer: a clock ticking every 10 ms (ctx.send_interval in its on_start)");
    let clock = system.spawn(Clock::default())?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("  ticks after 100 ms: {}", clock.ticks().await?);

    println!("\nstate through ActorState (what a checkpoint stores)");
    let state = Account::open("dave", Some(audit.clone()));
    let bytes = state.encode_state()?;
    println!(
        "  {} v{}: {} bytes of MessagePack (the skipped field is not in them)",
        Account::TYPE_NAME,
        Account::VERSION,
        bytes.len()
    );
    let restored = Account::decode_state(Account::VERSION, &bytes, &system)?;
    println!(
        "  decoded: owner {:?}, balance {}, audit ref resolved to the live actor: {}",
        restored.owner,
        restored.balance,
        restored.audit.as_ref() == Some(&audit)
    );
    match Account::decode_state(Account::VERSION + 1, &bytes, &system) {
        Err(e) => println!("  a version this code does not know is refused: {e}"),
        Ok(_) => println!("  unexpected: a future version decoded"),
    }
    let dave = system.spawn(restored)?;
    dave.deposit(7).await?;
    println!("  the restored account runs: balance {}", dave.balance().await?);

    system.shutdown().await;
    println!("\nshut down");
    Ok(())
}
