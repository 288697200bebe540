//! The engine of one node driven by hand: commands and messages from other nodes arrive in
//! orders that links which are not ordered with each other allow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amber_snapshot::{
    AbortReason, ActorEntry, ActorId, Cut, Epoch, InFlightRecord, NodeCommand, Refusal,
    StateRecord, SystemId,
};

use super::{CutReport, Effects, SnapshotEngine};
use crate::mailbox::core::Late;
use crate::remote::{Host, RemoteDirectory, RemoteRoute, RouteError};
use crate::snapshot::wire::{NodePart, Wire};
use crate::snapshot::{AbortCause, SnapshotError};

/// Records what the engine hands to the links.
#[derive(Default)]
struct Links {
    sent: Mutex<Vec<(String, Wire)>>,
}

impl RemoteDirectory for Links {
    fn attach(&self, _: Host) {}

    fn route_to(&self, _: ActorId) -> Option<Arc<dyn RemoteRoute>> {
        None
    }

    fn peers(&self) -> Vec<String> {
        vec!["a".into(), "c".into()]
    }

    fn send_snapshot(&self, node: &str, bytes: Vec<u8>) -> Result<(), RouteError> {
        let wire = Wire::decode(&bytes).expect("the engine writes what it reads");
        self.sent.lock().unwrap().push((node.to_owned(), wire));
        Ok(())
    }
}

/// Node `b` with one actor in epoch 0.
fn node_b() -> (Arc<SnapshotEngine>, Arc<Links>, ActorId) {
    let links = Arc::new(Links::default());
    let engine = Arc::new(SnapshotEngine::new("b".into(), Epoch::ZERO, Some(links.clone())));
    let ((), epoch, marker) = engine.admit(None, |_| Ok::<_, ()>(())).unwrap();
    assert_eq!((epoch, marker), (Epoch::ZERO, None));
    (engine, links, ActorId::new(SystemId(2), 1))
}

fn command(engine: &Arc<SnapshotEngine>, from: &str, command: NodeCommand<String>) -> Effects {
    engine.on_wire(from, Wire::Command(command))
}

/// `b`'s actor cuts for `to` (from `from`), capturing its state.
fn cut(engine: &SnapshotEngine, actor: ActorId, from: Epoch, to: Epoch) -> Effects {
    let entry = ActorEntry {
        id: actor,
        type_name: "t".into(),
        name: None,
        node: "b".into(),
        parent: None,
        watchers: Vec::new(),
        watching: Vec::new(),
        state_version: 1,
        capacity: Default::default(),
        restart: Default::default(),
    };
    let state = Ok(StateRecord { id: actor, state: vec![7], timers: Vec::new() });
    engine.cut(
        Cut { from, to, depth: 0 },
        CutReport {
            backlog: amber_snapshot::Backlog::builder(entry.id).finish(),
            entry,
            state,
            unrecorded: Vec::new(),
            crossed: false,
        },
    )
}

/// The actors of the part `b` owes for `epoch`, from the effects of its `Complete`.
fn part_actors(mut effects: Effects, epoch: Epoch) -> Vec<ActorId> {
    let outgoing = effects.part.take().expect("b sends its part");
    assert_eq!((outgoing.to.as_str(), outgoing.epoch), ("a", epoch));
    outgoing.part.actors.iter().map(|a| a.id).collect()
}

#[test]
fn a_completed_snapshot_overtaken_by_the_next_still_sends_its_whole_part() {
    let (b, links, actor) = node_b();
    // a coordinates snapshot 1; b's actor cuts, b reports to a.
    let effects = command(&b, "a", NodeCommand::Start(Epoch(1)));
    assert_eq!(effects.markers, Some(Epoch(1)));
    let _ = cut(&b, actor, Epoch::ZERO, Epoch(1));
    assert!(
        links
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|(to, w)| to == "a" && matches!(w, Wire::Report(r) if r.locally_done))
    );
    // a decides completion and sends Complete(1) to b and c; c gets it first, completes,
    // starts snapshot 2 and tells b's actor something tagged 2, which reaches b first.
    let effects = b.remote_received("c", Epoch(2));
    assert_eq!(effects.markers, Some(Epoch(2)));
    // Then a's Complete(1): b's part of snapshot 1 still holds its actor.
    let effects = command(&b, "a", NodeCommand::Complete(Epoch(1)));
    assert_eq!(part_actors(effects, Epoch(1)), vec![actor]);
    // Snapshot 2 goes on: the actor cuts for it and b follows c.
    let _ = command(&b, "c", NodeCommand::Start(Epoch(2)));
    let _ = cut(&b, actor, Epoch(1), Epoch(2));
    assert!(links.sent.lock().unwrap().iter().any(|(to, w)| to == "c"
        && matches!(w, Wire::Report(r) if r.epoch == Epoch(2) && r.locally_done)));
}

#[test]
fn the_overtaken_part_is_still_owed_after_the_next_coordinators_start() {
    let (b, _links, actor) = node_b();
    let _ = command(&b, "a", NodeCommand::Start(Epoch(1)));
    let _ = cut(&b, actor, Epoch::ZERO, Epoch(1));
    let _ = b.remote_received("c", Epoch(2));
    // c's Start(2) arrives before a's Complete(1): b now follows c for 2, and still owes a.
    let _ = command(&b, "c", NodeCommand::Start(Epoch(2)));
    let effects = command(&b, "a", NodeCommand::Complete(Epoch(1)));
    assert_eq!(part_actors(effects, Epoch(1)), vec![actor]);
}

#[test]
fn an_overtaken_round_is_dropped_by_its_abort_or_its_coordinator_going_down() {
    for down in [false, true] {
        let (b, _links, actor) = node_b();
        let _ = command(&b, "a", NodeCommand::Start(Epoch(1)));
        let _ = cut(&b, actor, Epoch::ZERO, Epoch(1));
        let _ = b.remote_received("c", Epoch(2));
        assert!(b.lock().rounds.contains_key(&Epoch(1)), "owed to a");
        let _ = if down {
            b.node_down("a")
        } else {
            let reason = amber_snapshot::AbortReason::Deadline;
            command(&b, "a", NodeCommand::Abort { epoch: Epoch(1), reason })
        };
        assert!(!b.lock().rounds.contains_key(&Epoch(1)), "down: {down}");
        // A Complete(1) after that (no coordinator sends one) gets no part that looks whole:
        // one without actors that says why, which the coordinator refuses.
        let mut effects = command(&b, "a", NodeCommand::Complete(Epoch(1)));
        let part = effects.part.take().map(|o| o.part);
        assert!(part.is_none_or(|p| p.actors.is_empty() && !p.problems.is_empty()), "down: {down}");
    }
}

#[test]
fn a_refused_start_reaches_the_coordinator_as_a_typed_refusal() {
    // b follows a for snapshot 1, so c's Start(1) is refused: over the wire (encoded, then
    // decoded by the links), the refusal keeps its type.
    let (b, links, _actor) = node_b();
    let _ = command(&b, "a", NodeCommand::Start(Epoch(1)));
    let _ = command(&b, "c", NodeCommand::Start(Epoch(1)));
    let refusal = Refusal::FollowsOther { coordinator: "a".to_owned(), epoch: Epoch(1) };
    let sent = links.sent.lock().unwrap();
    let rejects: Vec<_> = sent
        .iter()
        .filter_map(|(to, w)| match w {
            Wire::Reject { epoch, reason } => Some((to.as_str(), *epoch, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(rejects, [("c", Epoch(1), &refusal)]);
    // The coordinator's snapshot aborts naming the refusing node and why.
    let c =
        Arc::new(SnapshotEngine::new("c".into(), Epoch::ZERO, Some(Arc::new(Links::default()))));
    let (epoch, mut outcome, effects) = c.start(Duration::from_secs(5)).unwrap();
    assert_eq!(epoch, Epoch(1));
    let _ = effects; // c has no actors to mark
    let mut effects = c.on_wire("a", Wire::Reject { epoch, reason: refusal.clone() });
    effects.resolve();
    let expected = AbortReason::Rejected { node: "a".to_owned(), reason: refusal };
    match outcome.try_recv() {
        Ok(Err(SnapshotError::Aborted { epoch: e, reason: AbortCause::Protocol(reason) })) => {
            assert_eq!((e, &reason), (epoch, &expected));
            assert_eq!(
                reason.to_string(),
                format!("node \"a\" refused: it follows \"a\" for snapshot {epoch}")
            );
        }
        other => panic!("not a refusal: {other:?}"),
    }
}

/// A message recorded in flight for `to` in snapshot `epoch`, as a mailbox records it.
fn record_late(engine: &SnapshotEngine, to: ActorId, epoch: Epoch, payload: u8) {
    let record =
        InFlightRecord { to, from: None, epoch, ask: false, payload: vec![payload].into() };
    engine.late.push(Late { snapshot: epoch, record: Ok(record) });
}

#[test]
fn an_overtaken_part_keeps_its_late_records_when_the_snapshot_that_overtook_it_aborts() {
    let (b, _links, actor) = node_b();
    let _ = command(&b, "a", NodeCommand::Start(Epoch(1)));
    let _ = cut(&b, actor, Epoch::ZERO, Epoch(1));
    // Recorded for 1 after the actor's cut: part of snapshot 1's channel state.
    record_late(&b, actor, Epoch(1), 1);
    // c's snapshot 2 overtakes 1 here, records something of its own, then aborts (c's
    // deadline) before a's Complete(1) arrives.
    let _ = b.remote_received("c", Epoch(2));
    let _ = command(&b, "c", NodeCommand::Start(Epoch(2)));
    record_late(&b, actor, Epoch(2), 2);
    let reason = AbortReason::Deadline;
    let _ = command(&b, "c", NodeCommand::Abort { epoch: Epoch(2), reason });
    assert!(!b.lock().rounds.contains_key(&Epoch(2)), "2 is dropped");
    let mut effects = command(&b, "a", NodeCommand::Complete(Epoch(1)));
    let part = effects.part.take().expect("b owes a its part of 1").part;
    assert_eq!(part.actors.iter().map(|a| a.id).collect::<Vec<_>>(), vec![actor]);
    let payloads: Vec<_> = part.in_flight.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(payloads, vec![vec![1]], "1's recording stays; 2's is gone with it");
    assert!(
        b.late.take(Epoch(2)).records.is_empty(),
        "the aborted snapshot's recording was dropped"
    );
}

#[test]
fn a_settled_node_sends_its_part_before_the_decision_and_nothing_at_the_complete() {
    let (b, _links, actor) = node_b();
    let _ = command(&b, "a", NodeCommand::Start(Epoch(1)));
    let _ = cut(&b, actor, Epoch::ZERO, Epoch(1));
    // c sent b one message before its cut: the coordinator expects it here.
    let expect = NodeCommand::Expect { epoch: Epoch(1), from: vec![("c".to_owned(), 1)] };
    let mut effects = command(&b, "a", expect);
    assert!(effects.part.take().is_none(), "not settled: a message is still on its way");
    // It arrives after the actor's cut: recorded, then counted. The node is settled.
    record_late(&b, actor, Epoch(1), 4);
    let mut effects = b.remote_received("c", Epoch::ZERO);
    let outgoing = effects.part.take().expect("the settled node sends its part at once");
    assert_eq!((outgoing.to.as_str(), outgoing.epoch), ("a", Epoch(1)));
    assert_eq!(outgoing.part.actors.iter().map(|a| a.id).collect::<Vec<_>>(), vec![actor]);
    let payloads: Vec<_> = outgoing.part.in_flight.iter().map(|r| r.payload.to_vec()).collect();
    assert_eq!(payloads, vec![vec![4]]);
    // The decision's Complete sends nothing more, and the round is gone.
    let mut effects = command(&b, "a", NodeCommand::Complete(Epoch(1)));
    assert!(effects.part.take().is_none(), "sent already");
    assert!(b.lock().rounds.is_empty());
}

#[test]
fn a_coordinator_takes_a_settled_nodes_part_before_its_decision() {
    // b coordinates a snapshot of b, a and c (its links list a and c).
    let links = Arc::new(Links::default());
    let b = Arc::new(SnapshotEngine::new("b".into(), Epoch::ZERO, Some(links.clone())));
    let (epoch, mut outcome, effects) = b.start(Duration::from_secs(5)).unwrap();
    drop(effects);
    // Node a settles first and sends its (empty) part: it is taken before any decision.
    let part = NodePart::default();
    for piece in part.pieces(epoch).expect("encodes") {
        let mut effects = b.on_wire("a", Wire::decode(&piece).unwrap());
        effects.resolve();
    }
    assert!(b.lock().collect.as_ref().is_some_and(|c| c.parts.contains_key("a")));
    assert!(outcome.try_recv().is_err(), "no decision yet");
    assert!(!b.lock().coordinator.takes_part(epoch, &"a".to_owned()), "in already");
}
