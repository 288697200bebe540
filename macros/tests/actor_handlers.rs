//! Behaviour of `#[amber::actor]`: an actor written only with the macros is spawned, told
//! and asked; the generated ref methods behave like the plain `tell`/`ask` with the
//! generated message enum; hooks run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amber::prelude::*;

/// The bank account of the docs.
#[derive(ActorState, Default, Debug)]
#[amber(name = "test.Account")]
pub struct Account {
    balance: u64,
}

#[amber::actor(derive(Clone, PartialEq, Debug))]
impl Account {
    /// Adds to the balance.
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    fn withdraw(&mut self, amount: u64) -> Result<u64, String> {
        if amount > self.balance {
            return Err(format!("balance {} < {amount}", self.balance));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    async fn transfer(&mut self, to: ActorRef<Self>, amount: u64) -> bool {
        self.withdraw(amount).is_ok() && to.deposit(amount).await.is_ok()
    }

    fn balance(&mut self) -> u64 {
        self.balance
    }
}

#[tokio::test]
async fn tell_and_ask_through_the_generated_ref() {
    let system = ActorSystem::builder().register::<Account>().build();
    let a = system.spawn(Account::default()).unwrap();
    let b = system.spawn(Account::default()).unwrap();
    a.deposit(100).await.unwrap();
    assert_eq!(a.withdraw(30).await.unwrap(), Ok(70));
    assert_eq!(a.withdraw(300).await.unwrap(), Err("balance 70 < 300".to_owned()));
    assert!(a.transfer(b.clone(), 50).await.unwrap());
    assert!(!a.transfer(b.clone(), 50).await.unwrap());
    assert_eq!(a.balance().await.unwrap(), 20);
    assert_eq!(b.balance_timeout(Duration::from_secs(1)).await.unwrap(), 50);
    system.shutdown().await;
}

#[tokio::test]
async fn generated_methods_match_plain_tell_and_ask() {
    let system = ActorSystem::new();
    let a = system.spawn(Account::default()).unwrap();
    let b = system.spawn(Account::default()).unwrap();

    a.deposit(10).await.unwrap();
    b.tell(AccountMsg::Deposit { amount: 10 }).await.unwrap();
    assert_eq!(
        a.ask(AccountMsg::Balance).await.unwrap(),
        AccountReply::Balance(b.balance().await.unwrap())
    );
    assert_eq!(
        b.ask(AccountMsg::Withdraw { amount: 4 }).await.unwrap(),
        AccountReply::Withdraw(a.withdraw(4).await.unwrap())
    );
    // A handler returning nothing still answers an ask, with a unit variant.
    assert_eq!(a.ask(AccountMsg::Deposit { amount: 1 }).await.unwrap(), AccountReply::Deposit);

    // Errors are the plain ones: a stopped actor gives the message back.
    a.stop();
    a.wait_stopped().await;
    assert_eq!(a.deposit(5).await, Err(SendError(AccountMsg::Deposit { amount: 5 })));
    assert_eq!(a.deposit(5).await, a.tell(AccountMsg::Deposit { amount: 5 }).await);
    assert_eq!(a.balance().await, Err(AskError::Stopped));
    assert_eq!(
        a.balance_timeout(Duration::from_millis(50)).await,
        a.ask_timeout(AccountMsg::Balance, Duration::from_millis(50)).await.map(|_| 0)
    );
    system.shutdown().await;
}

#[tokio::test]
async fn the_timeout_variant_times_out() {
    let system = ActorSystem::new();
    let slow = system.spawn(Slow).unwrap();
    let err = slow.nap_timeout(200, Duration::from_millis(10)).await.unwrap_err();
    assert_eq!(err, AskError::Timeout(Duration::from_millis(10)));
    assert_eq!(slow.nap(1).await.unwrap(), 1);
    system.shutdown().await;
}

/// An actor whose handler takes its time.
#[derive(Debug)]
pub struct Slow;

#[amber::actor]
impl Slow {
    async fn nap(&mut self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

/// Records what happens to it. Crate-visible, as its generated items are.
#[derive(Debug)]
pub(crate) struct Watcher {
    log: Arc<Mutex<Vec<String>>>,
    fail_start: bool,
}

impl Watcher {
    fn note(&mut self, line: impl Into<String>) {
        self.log.lock().unwrap().push(line.into());
    }
}

#[amber::actor(vis = "pub(crate)")]
impl Watcher {
    /// Associated functions without a receiver are left alone.
    fn new(log: Arc<Mutex<Vec<String>>>, fail_start: bool) -> Self {
        Watcher { log, fail_start }
    }

    #[on_start]
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        if self.fail_start {
            return Err("refused to start".into());
        }
        let _ = ctx.id();
        Ok(())
    }

    fn on_stop(&mut self, reason: &ExitReason) {
        let line = format!("stopped: {reason:?}");
        self.note(line);
    }

    #[on_down]
    fn saw_down(&mut self, down: Down, _ctx: &Context<Self>) {
        let line = format!("down: {:?}", down.reason);
        self.note(line);
    }

    /// Watches another actor; takes the context anywhere in the argument list.
    fn watch(&mut self, ctx: &mut Context<Self>, other: ActorRef<Account>) {
        ctx.watch(&other);
    }

    fn whoami(&mut self, ctx: &Context<Self>) -> ActorId {
        ctx.id()
    }

    async fn echo(&mut self, text: String, times: usize) -> String {
        tokio::task::yield_now().await;
        text.repeat(times)
    }
}

#[tokio::test]
async fn hooks_and_context() {
    let system = ActorSystem::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let watcher = system.spawn(Watcher::new(log.clone(), false)).unwrap();
    let account = system.spawn(Account::default()).unwrap();
    assert_eq!(watcher.whoami().await.unwrap(), watcher.id());
    assert_eq!(watcher.echo("ab".into(), 3).await.unwrap(), "ababab");
    watcher.watch(account.clone()).await.unwrap();
    assert_eq!(watcher.whoami().await.unwrap(), watcher.id());
    account.stop();
    account.wait_stopped().await;
    // The down notice arrives on the control lane; give it a moment.
    for _ in 0..100 {
        if !log.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    watcher.stop();
    watcher.wait_stopped().await;
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with("down: "), "{log:?}");
    assert!(log[1].starts_with("stopped: "), "{log:?}");
    system.shutdown().await;
}

#[tokio::test]
async fn on_start_error_stops_the_actor() {
    let system = ActorSystem::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let watcher = system.spawn(Watcher::new(log, true)).unwrap();
    let reason = watcher.wait_stopped().await;
    assert!(format!("{reason:?}").contains("refused to start"), "{reason:?}");
    assert!(watcher.whoami().await.is_err());
    system.shutdown().await;
}

#[test]
fn generated_debug_names_the_variant_only() {
    assert_eq!(format!("{:?}", SlowMsg::Nap { millis: 3 }), "SlowMsg::Nap { .. }");
    assert_eq!(format!("{:?}", SlowReply::Nap(3)), "SlowReply::Nap(..)");
    assert_eq!(format!("{:?}", WatcherMsg::Whoami), "WatcherMsg::Whoami");
}

/// Ticks on its own timer; no `derive` key: the generated enums are `Clone` because every
/// handler argument and reply is.
#[derive(Default, Debug)]
pub struct Metronome {
    ticks: Vec<u32>,
    timer: Option<amber::TimerId>,
}

#[amber::actor]
impl Metronome {
    fn start_ticking(&mut self, ctx: &mut Context<Self>, every_ms: u64, label: u32) {
        let tick = MetronomeMsg::Tick { label };
        self.timer = Some(ctx.send_interval(Duration::from_millis(every_ms), tick));
    }

    fn tick(&mut self, ctx: &mut Context<Self>, label: u32) {
        self.ticks.push(label);
        if self.ticks.len() == 3
            && let Some(timer) = self.timer.take()
        {
            ctx.cancel_timer(timer);
        }
    }

    fn ticks(&mut self) -> Vec<u32> {
        self.ticks.clone()
    }
}

#[tokio::test]
async fn generated_messages_are_clone_so_timers_can_repeat_them() {
    fn assert_clone<T: Clone>() {}
    assert_clone::<MetronomeMsg>();
    assert_clone::<MetronomeReply>();
    let copy = MetronomeMsg::Tick { label: 7 }.clone();
    assert!(matches!(copy, MetronomeMsg::Tick { label: 7 }));
    assert!(matches!(MetronomeReply::Ticks(vec![1]).clone(), MetronomeReply::Ticks(v) if v == [1]));

    let system = ActorSystem::new();
    let metronome = system.spawn(Metronome::default()).unwrap();
    metronome.start_ticking(5, 9).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metronome.ticks().await.unwrap().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the interval timer did not tick 3 times");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(metronome.ticks().await.unwrap(), [9, 9, 9], "cancelled after the third tick");
    system.shutdown().await;
}
