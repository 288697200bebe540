//! The snapshot protocol as pure state machines: inputs are events, outputs are actions.
//!
//! Nothing here does I/O, reads a clock or spawns a task; the runtime drives three machines:
//!
//! - [`ActorCut`], one per actor, under its mailbox lock: when the actor cuts, which
//!   messages it records as in flight.
//! - [`NodeSnapshot`], one per node: which local actors still have to cut, and how many
//!   epoch-tagged messages crossed each link to and from each peer node.
//! - [`Coordinator`], one per system: one snapshot at a time, completion by counting, aborts.
//!
//! # The algorithm
//!
//! Epoch colouring (Lai–Yang) with per-link counting (Mattern); markers only wake actors up.
//!
//! 1. Every actor has an epoch `e`, starting at 0. Every data message is tagged with its
//!    sender's epoch at send time. Messages from outside the system and timer messages are
//!    tagged on arrival with the receiver's epoch: they are input, each either reflected in
//!    the receiver's cut state, recorded (queued at the cut), or after the cut; never twice.
//! 2. Snapshot `E` (one at a time, `E` = last epoch + 1) starts at the coordinator; each
//!    node puts `Marker(E)` on the control lane of every live local actor with `e < E`. The
//!    control lane overtakes queued data, so latency does not grow with backlogs: the backlog
//!    simply becomes recorded channel state. A node that sees an epoch above its own (a
//!    message from a peer that started first) starts `E` right away, as if told to.
//! 3. An actor cuts for `E` between two messages, at the first of: it dequeues `Marker(E)`;
//!    it dequeues a data message tagged `>= E` (cutting before processing it). At the cut its
//!    state is captured, `e := E`, and, atomically with respect to enqueues, every queued
//!    message tagged `< E` is recorded in queue order.
//! 4. After the cut, every message enqueued with a tag `< E` is recorded on arrival, then
//!    processed as usual. A message *refused* after the cut (the actor stopped or drained)
//!    is recorded only if its sender never learns of the refusal (a tell from another node,
//!    which the link took): it is lost in the channel, like a dead letter. A refusal the
//!    sender is told of (a local send's error, an ask's error reply) leaves what the message
//!    carried with the sender, so it is not in flight and is not recorded.
//! 5. Children inherit their parent's epoch; actors spawned from outside take the running
//!    snapshot's epoch (they are not part of it). A child born behind the snapshot gets its
//!    own marker, since it may have missed the broadcast.
//! 6. A node is locally done when no live local actor has `e < E`. The snapshot is complete
//!    when every node is locally done and, for every ordered pair of nodes, the messages
//!    tagged `< E` sent from one to the other equal those received (arrived) there.
//! 7. A node that goes down or a deadline that passes aborts the snapshot; epochs never go
//!    back, so the next snapshot is `E + 1`.
//! 8. Each node's share (its actors' cut states, what they recorded) goes to the coordinator
//!    with the `Complete`, or earlier, as soon as the node is *settled*
//!    ([`NodeSnapshot::settled`]): locally done, and every message tagged `< E` that the
//!    others sent it has arrived (the coordinator's `Expect` numbers). Nothing more can be
//!    recorded there for `E` then (no local sender is behind, no remote one's message is
//!    still coming), so the share is final before the decision.
//!
//! # Why the result is a consistent cut
//!
//! Call an event of an actor *before the cut* if it happened while the actor's epoch was
//! `< E`. Tags make "sent before the sender's cut" visible to the receiver: tag `< E`.
//!
//! - **No orphans.** A message received before its receiver's cut has tag `< E`: the actor
//!   cuts before processing any message tagged `>= E` (step 3). So every receive inside the
//!   cut has its send inside the cut.
//! - **Channel state, exactly once.** Take a message tagged `< E` that its receiver did not
//!   process before its cut. Enqueue and cut are serialized by the mailbox lock, so the
//!   message was either queued at the cut (recorded then, step 3) or enqueued after it
//!   (recorded then, step 4): once, in arrival order. A message tagged `>= E` is never
//!   recorded, and a message processed before the cut was dequeued, so it is in neither set.
//! - **Nothing is missing at completion.** Once a node is locally done, none of its actors
//!   can send another message tagged `< E` (none is behind, and newborns are not behind), so
//!   its sent counts are final; equal counts on every link mean every such message has
//!   arrived and was processed before its receiver's cut, recorded, or dropped as a dead
//!   letter of an actor that left the snapshot (arrivals are counted after they are enqueued
//!   and recorded). Local sends enqueue synchronously and are never in transit, so only
//!   links need counters: O(nodes) per node, never O(actors).
//! - **Membership.** An actor belongs to snapshot `E` if it cut for `E`. Actors born
//!   behind `E` (children of uncut parents) must cut or stop before the node is done; actors
//!   born in `E` are after the cut (their spawn happened after the cut of whoever spawned
//!   them, or is input from outside).
//!
//! # Driving it
//!
//! - **Send** from a handler: tag with [`ActorCut::epoch`]. To a peer node, count it with
//!   [`NodeSnapshot::remote_sent`] once the link has taken it. Outside and timer messages are
//!   tagged on arrival and never counted; ask replies are neither tagged nor counted.
//! - **Enqueue**, under the receiver's mailbox lock: tag-on-arrival if untagged, then
//!   [`ActorCut::recording`]; if it answers `Some(e)`, append a copy to snapshot `e`'s
//!   recording for that actor. Same for a message refused by a stopped actor whose sender
//!   is never told (a tell from a peer node), never for one whose sender is. For a message from
//!   a peer node, then (after the lock) [`NodeSnapshot::remote_received`], dead letters to
//!   unknown actors included.
//! - **Between two messages**, under the mailbox lock: the control lane first
//!   ([`ActorCut::on_marker`]), else the next data message ([`ActorCut::on_dequeue`]). On a
//!   [`Cut`]: capture the state, record every still-queued message (the consumer's
//!   already-taken batch too) for which `recording` answers, then
//!   [`NodeSnapshot::actor_cut`], and only then process the dequeued message.
//! - **Spawn / stop**, under the node lock: [`NodeSnapshot::actor_spawned`] (deliver the
//!   marker it may return, make the actor visible to marker broadcasts before unlocking),
//!   [`NodeSnapshot::actor_stopped`] once the actor runs no more handlers.
//! - **Control**: coordinator commands to [`NodeSnapshot::handle_command`], node reports to
//!   [`Coordinator::handle_report`], failures to [`Coordinator::node_down`], time to
//!   [`Coordinator::handle_timeout`]; after every call, drain `poll` and carry the actions out
//!   (after releasing the lock that guards the machine, if they touch mailboxes).
//!
//! # Known limits of the algorithm (the simulation demonstrates both holes)
//!
//! - **Ask replies cross the cut, unless cuts are ordered.** A handler awaiting a reply
//!   cannot cut, and a reply is not a channel message: if B cuts for `E` and then answers an
//!   ask of A (still in `E-1`), A's cut state depends on B's post-cut state, an orphan no tag
//!   shows (with money-moving replies the snapshot holds value twice). The *ask rule*
//!   ([`ActorCut::on_marker_at`], [`ActorCut::on_dequeue_at`], [`NodeSnapshot::released`])
//!   orders the cuts: responders learn their ask depth and defer their cuts until the
//!   coordinator releases it (no node has a shallower actor behind: [`NodeCommand::Release`]),
//!   answering pre-cut asks meanwhile. An ask that still crosses a cut (first contact, a
//!   cycle) releases every deferred cut on every node ([`NodeSnapshot::ask_crossed`]); the
//!   runtime tags replies with the responder's epoch and
//!   refuses the snapshot an asker taints. The simulation checks both: conservation of
//!   money-moving asks in every untainted snapshot, and that acyclic asks get their
//!   snapshots.
//! - **References to actors born after the cut.** An actor spawned from outside while `E`
//!   runs is born in `E` and is not part of `E`. If outside code (an outside message, a
//!   name registry) hands its reference to an actor still in `E-1`, that actor's messages
//!   to it (tag `E-1`) are in neither a cut state nor a recording: they vanish from the
//!   snapshot. Fixes: spawn outside actors during `E` "born cut" (their initial state is
//!   their cut state for `E`, and they record tags below `E`), or have lookups from an
//!   actor in `e` not see actors born in a later epoch.
//! - **Timers pending at the cut** fire after it, are tagged on arrival and are not
//!   recorded: a restored actor does not get them again unless the checkpoint keeps its
//!   pending timers.
//!
//! # Example: one node, one actor
//!
//! ```
//! use amber_snapshot::{
//!     ActorCut, Coordinator, CoordinatorAction, Epoch, NodeAction, NodeSnapshot,
//! };
//!
//! let mut coordinator = Coordinator::new(Epoch::ZERO);
//! let mut node = NodeSnapshot::new("n1", Epoch::ZERO);
//! let mut actor = ActorCut::new(node.spawn_epoch());
//! assert_eq!(node.actor_spawned(actor.epoch()), None);
//!
//! let epoch = coordinator.start(["n1"], None).unwrap();
//! while let Some(CoordinatorAction::Send { command, .. }) = coordinator.poll() {
//!     node.handle_command(command);
//! }
//! // The node asks for markers; the actor dequeues its marker between two messages.
//! assert_eq!(node.poll(), Some(NodeAction::Markers(epoch)));
//! let cut = actor.on_marker(epoch).expect("the actor is behind the snapshot");
//! // ... capture the actor's state, record its queued messages tagged below `epoch` ...
//! node.actor_cut(cut);
//!
//! let Some(NodeAction::Report(report)) = node.poll() else { panic!("no report") };
//! assert!(report.locally_done);
//! coordinator.handle_report(report);
//! let actions: Vec<_> = std::iter::from_fn(|| coordinator.poll()).collect();
//! assert_eq!(actions.last(), Some(&CoordinatorAction::Completed(epoch)));
//! ```

mod control;
mod coordinator;
mod cut;
mod node;
mod participant;

pub use control::{AbortReason, NodeCommand, NodeReport, Refusal};
pub use coordinator::{Coordinator, CoordinatorAction, StartError};
pub use cut::{ActorCut, Cut, Dequeue, MAX_DEPTH, Marker};
pub use node::{NodeAction, NodeSnapshot};
pub use participant::{CommandVerdict, Participant, StartVerdict};
