//! Helpers shared by the CLI's integration tests: a small bank written with amber's runtime
//! (checkpoints as a running system writes them), and running the `amber` binary.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use amber::prelude::*;
use serde_json::Value;

/// One bank account: money moves only as `deposit` messages, each of which, while it has hops
/// left, passes part of the balance on to a neighbour.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.Account")]
pub struct Account {
    pub balance: u64,
    /// The accounts this one pays (stored as actor ids, rehydrated as refs).
    pub neighbours: Vec<ActorRef<Account>>,
    /// Deposits received so far.
    pub received: u64,
    /// Random state for picking neighbours and amounts.
    pub seed: u64,
}

#[amber::actor]
impl Account {
    /// Money arriving; with hops left, part of the balance goes on to a neighbour.
    async fn deposit(&mut self, amount: u64, hops: u32) {
        self.balance += amount;
        self.received += 1;
        if hops > 0 && !self.neighbours.is_empty() {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let part = (1 + self.seed % 50).min(self.balance);
            let neighbour =
                self.neighbours[(self.seed >> 8) as usize % self.neighbours.len()].clone();
            self.balance -= part;
            if neighbour.deposit(part, hops - 1).await.is_err() {
                self.balance += part; // the neighbour is gone: keep the money
            }
        }
    }

    fn link(&mut self, neighbours: Vec<ActorRef<Account>>, seed: u64) {
        self.neighbours = neighbours;
        self.seed = seed | 1;
    }
}

/// What every account holds at the start.
pub const EACH: u64 = 1_000;

/// Spawns `n` accounts on `system` (their balance taken out of thin air, so a test knows the
/// total).
pub fn spawn_accounts(system: &ActorSystem, n: usize) -> Vec<ActorRef<Account>> {
    (0..n).map(|_| system.spawn(Account { balance: EACH, ..Account::default() }).unwrap()).collect()
}

/// Links every account to all of `all` and starts one long deposit chain at each.
pub async fn start_trading(accounts: &[ActorRef<Account>], all: &[ActorRef<Account>]) {
    for (i, account) in accounts.iter().enumerate() {
        account.link(all.to_vec(), 7919 * (i as u64 + 1)).await.unwrap();
    }
    for account in accounts {
        account.deposit(0, u32::MAX).await.unwrap();
    }
}

/// Runs `fut`, failing the test if it takes longer than 30 s.
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut).await.expect("test step hung for 30 s")
}

/// Runs the `amber` binary.
pub fn amber(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber")).args(args).output().unwrap()
}

pub fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs `amber` and returns its output, asserting that it succeeded quietly.
pub fn ok(args: &[&str]) -> String {
    let output = amber(args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
    assert_eq!(stderr(&output), "", "{args:?}");
    stdout(&output)
}

/// Runs `amber` with JSON output and parses it.
pub fn json(args: &[&str]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?}: {err}\n{text}"))
}

/// Asserts a failure with exit code `code`, no panic, and stderr lines that start with
/// `amber: ` and contain every `needle`.
pub fn assert_fails(output: &Output, code: i32, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert!(err.starts_with("amber: ") || err.starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// The sum of the balances of the accounts in `inspect --json` output, and of the amounts of
/// the deposits in flight.
pub fn money(inspect: &Value) -> (u64, u64) {
    let balances = inspect["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"]["balance"].as_u64().unwrap())
        .sum();
    let in_flight = inspect["in_flight"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["payload"]["Deposit"]["amount"].as_u64())
        .sum();
    (balances, in_flight)
}

/// Parses an SVG document, asserting that it is well-formed XML with an `svg` root.
pub fn parse_svg(text: &str) -> roxmltree::Document<'_> {
    let document = roxmltree::Document::parse(text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(document.root_element().tag_name().name(), "svg");
    document
}
