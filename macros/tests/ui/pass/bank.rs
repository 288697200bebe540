//! The bank account with both macros, from a crate that depends only on `amber`, under the
//! strictest lints.
#![deny(warnings, missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(clippy::all)]

use amber::prelude::*;

/// An account.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.Account")]
pub struct Account {
    balance: u64,
}

#[amber::actor]
impl Account {
    /// Adds to the balance.
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// Takes out of the balance if it is there.
    fn withdraw(&mut self, amount: u64) -> Result<u64, String> {
        if amount > self.balance {
            return Err(format!("balance {} < {amount}", self.balance));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// Moves money to another account.
    async fn transfer(&mut self, to: ActorRef<Account>, amount: u64) -> bool {
        self.withdraw(amount).is_ok() && to.deposit(amount).await.is_ok()
    }

    /// The balance.
    fn balance(&mut self) -> u64 {
        self.balance
    }
}

fn main() {
    assert_eq!(<Account as ActorState>::TYPE_NAME, "bank.Account");
    let _: AccountMsg = AccountMsg::Deposit { amount: 1 };
    let _: AccountMsg = AccountMsg::Balance;
    let _: AccountReply = AccountReply::Withdraw(Ok(1));
    let bytes = Account { balance: 3 }.encode_state().unwrap();
    assert!(!bytes.is_empty());
}
