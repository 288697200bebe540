//! [`SystemBuilder`]: the settings of a new system, and the actor types it can restore.

use std::sync::Arc;
use std::time::Duration;

use amber_snapshot::Epoch;

use crate::remote::RemoteDirectory;
use crate::snapshot::types::TypeRegistry;
use crate::{ActorState, ActorSystem, MailboxCapacity};

/// Settings of an [`ActorSystem`].
#[derive(Debug, Clone)]
pub struct SystemBuilder {
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) capacity: MailboxCapacity,
    pub(crate) ask_timeout: Duration,
    /// The most messages an actor handles before it lets other tasks run (`u32::MAX`: as
    /// many as tokio's cooperative budget allows).
    pub(crate) messages_per_turn: u32,
    /// How long a snapshot's markers are handed out before busy actors' tasks help.
    pub(crate) cut_help_delay: Duration,
    /// Asks to idle actors of this node are served on the asker's thread.
    pub(crate) inline_asks: bool,
    pub(crate) types: TypeRegistry,
    pub(crate) remote: Option<RemoteHook>,
}

/// The system's directory of actors on other nodes.
#[derive(Clone)]
pub(crate) struct RemoteHook(pub(crate) Arc<dyn RemoteDirectory>);

impl std::fmt::Debug for RemoteHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteDirectory")
    }
}

impl Default for SystemBuilder {
    fn default() -> Self {
        SystemBuilder {
            name: "amber".into(),
            node: "local".into(),
            capacity: MailboxCapacity::default(),
            ask_timeout: Duration::from_secs(5),
            messages_per_turn: u32::MAX,
            cut_help_delay: Duration::from_millis(20),
            inline_asks: true,
            types: TypeRegistry::default(),
            remote: None,
        }
    }
}

impl SystemBuilder {
    /// The system's name, for logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The name of this node, as written into checkpoints (default `"local"`).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }

    /// The most messages (and signals) an actor handles in one turn on a worker before it
    /// lets other tasks run, like the *throughput* setting of Akka's dispatchers. By default
    /// an actor's turn ends when it has nothing left to do or when tokio's cooperative
    /// budget runs out (about 128 messages). A busy node's other tasks — a cluster's link
    /// readers and writers among them — wait for every runnable actor's turn before they
    /// get theirs again, so a smaller number trades some of one node's throughput for
    /// fairness: with 1,000 busy accounts per node, three nodes on two cores moved ~50 %
    /// more deposits, and their snapshots came sooner, at 16 per turn than at the default
    /// (the one-node bank lost 10-20 % of its throughput at 16). At least 1.
    pub fn messages_per_turn(mut self, messages: u32) -> Self {
        self.messages_per_turn = messages.max(1);
        self
    }

    /// How long a snapshot's marker broadcast runs before busy actors' tasks join in
    /// (default 20 ms). The thread that starts a snapshot cuts the node's actors one after
    /// the other (each between two of its messages, on the spot), idle workers help at
    /// once, and every actor's task helps at the start of its next turn once this delay has
    /// passed. With no delay a busy node's cut gets the CPU of every worker and is over
    /// soonest, while the actors stand still; with a delay they keep working while the
    /// snapshot's thread cuts alone, and the snapshot takes longer. Idle nodes are cut at
    /// once either way. Measured on the bank demo (5,000 busy accounts, a snapshot every
    /// 50 ms, two workers; snapshot p50 and the share of deposits the snapshots cost): no
    /// delay 12-14 ms, 22-26 %; 10 ms: 18-20 ms, 17-20 %; 20 ms: 26 ms, 11-12 %; never
    /// (`Duration::MAX`): 35-36 ms, 6-8 %. With 1,000 accounts the snapshot's thread alone
    /// cuts them in about 8 ms, every worker in 3-4 ms (6-8 % either way at 50 ms); with
    /// 30,000 accounts every 100 ms, the p50 is 79 ms with no delay and 97 ms with 20 ms.
    /// See BENCHMARKS.md.
    pub fn cut_help_delay(mut self, delay: Duration) -> Self {
        self.cut_help_delay = delay;
        self
    }

    /// Whether an ask to an idle actor of this node is served on the asker's thread
    /// (default `true`): the asker runs the actor's handler for that one request, as the
    /// actor's own turn, instead of waking the actor's task and waiting to be woken back
    /// (2.8k -> 1.8k instructions per round trip; see README, "Scheduling"). A handler that
    /// awaits is finished by the actor's task. The difference users can see: such a handler
    /// runs on the asker's worker and inside the asker's tokio task, and one that computes
    /// for longer than its ask's timeout without awaiting fails the ask only once it is done
    /// (not timed at all for timeouts of a second or more; see
    /// [`ask_timeout`](crate::ActorRef::ask_timeout)). `false` serves every ask in the
    /// actor's task.
    pub fn inline_asks(mut self, inline: bool) -> Self {
        self.inline_asks = inline;
        self
    }

    /// The default mailbox capacity of actors spawned without one.
    pub fn mailbox_capacity(mut self, capacity: MailboxCapacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long [`ActorRef::ask`](crate::ActorRef::ask) waits for a reply (5 s by default).
    /// Asks time out at most two fiftieths of it late (a tick of 5 to 100 ms each; see
    /// [`ActorRef::ask_timeout`](crate::ActorRef::ask_timeout)).
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.ask_timeout = timeout;
        self
    }

    /// Registers actor type `A` under its [`ActorState::TYPE_NAME`], so snapshots can
    /// capture its actors and a restore can rebuild them. A snapshot of a system holding an
    /// actor of an unregistered type fails with a typed error naming it.
    ///
    /// # Panics
    ///
    /// If another type is already registered under the same name: two types sharing a
    /// stored name would make checkpoints ambiguous, so this is a programming error.
    pub fn register<A: ActorState>(mut self) -> Self {
        self.types.register::<A>();
        self
    }

    /// Connects the system to other nodes: refs to actors that are not local resolve through
    /// `directory` (`amber-remote` provides it), and [`ActorSystem::snapshot`] spans every
    /// node the directory lists as a peer. When the system is built (or restored), the
    /// directory receives its [`Host`](crate::remote::Host) through
    /// [`RemoteDirectory::attach`], to hand it what arrives from other nodes.
    pub fn remote(mut self, directory: Arc<dyn RemoteDirectory>) -> Self {
        self.remote = Some(RemoteHook(directory));
        self
    }

    /// Builds the system. Actors run on the tokio runtime this is called from.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn build(self) -> ActorSystem {
        ActorSystem::from_builder(self, Epoch::ZERO)
    }
}
