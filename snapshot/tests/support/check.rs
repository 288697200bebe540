//! The consistent-cut checker: compares a completed snapshot with the ground-truth log.

use amber_snapshot::Epoch;

use super::world::{Birth, CutRecord, Kind, Origin, World};

/// What is wrong, and which actors to show in the trace.
#[derive(Debug)]
pub struct Violation {
    pub what: String,
    pub actors: Vec<usize>,
}

fn violation(what: String, actors: &[usize]) -> Result<(), Violation> {
    Err(Violation { what, actors: actors.to_vec() })
}

/// Checks completed snapshot `e` of `w`, at the moment it completed.
///
/// Ground truth is time, not tags: an event of actor `a` is *before the cut* if `a` cut for
/// `e` after it, or if `a` never cut for `e` but was born before the cut (an actor that
/// stopped before cutting: all its events are before the cut). An actor is born before the
/// cut if it was spawned by an event before its parent's cut, or spawned from outside (or
/// created initially) in an epoch below `e`. Outside and timer input is "sent" when it
/// arrives; messages re-enqueued by a restore were sent before everything.
///
/// Checks: membership (every actor born before the cut and still alive has cut); no orphan
/// (nothing processed before its receiver's cut was sent after its sender's cut); the
/// recorded messages of each member are exactly the messages sent before the cut and not
/// processed before the receiver's cut, in arrival order; nothing sent before the cut went
/// to an actor outside the snapshot unless that actor stopped before its cut; and the bank:
/// cut balances + recorded deposits + money destroyed before the cut (by stops and by
/// restarts, which rebuild an account empty) = the initial money.
pub fn snapshot(w: &World, e: Epoch) -> Result<(), Violation> {
    let n = w.actors.len();
    let cut: Vec<Option<CutRecord>> =
        w.actors.iter().map(|a| a.cuts.iter().find(|c| c.from < e && e <= c.to).copied()).collect();
    let mut born_pre = vec![false; n];
    for i in 0..n {
        born_pre[i] = match w.actors[i].birth {
            Birth::Initial(b) | Birth::Outside(b) => b < e,
            Birth::Child { parent, at } => match cut[parent] {
                Some(c) => at < c.at,
                None => born_pre[parent],
            },
        };
    }
    let pre = |i: usize, t: u64| match cut[i] {
        Some(c) => t < c.at,
        None => born_pre[i],
    };

    for (i, a) in w.actors.iter().enumerate() {
        match cut[i] {
            Some(c) if c.to != e => {
                return violation(
                    format!("actor {i} cut from {} past {e} to {}", c.from, c.to),
                    &[i],
                );
            }
            Some(_) if !born_pre[i] => {
                return violation(
                    format!("actor {i} was born after the cut but cut for {e}"),
                    &[i],
                );
            }
            None if born_pre[i] && a.alive => {
                return violation(
                    format!(
                        "actor {i} belongs to the snapshot, is alive and never cut: completed too early"
                    ),
                    &[i],
                );
            }
            _ => {}
        }
    }

    let mut expected: Vec<Vec<(u64, usize)>> = vec![Vec::new(); n];
    let mut destroyed = 0i64;
    for (id, m) in w.log.iter().enumerate() {
        if m.refused {
            // Its sender learnt of the refusal: it was never in flight (and an ask carries
            // no money).
            continue;
        }
        let r = m.receiver;
        let sender = match m.origin {
            Origin::Actor(s) => Some(s),
            _ => None,
        };
        let sent_pre = match m.origin {
            Origin::Actor(s) => pre(s, m.sent),
            // Input arriving while its receiver defers its cut is tagged with the deferred
            // snapshot (`ActorCut::arrival_tag`): it counts as after the cut.
            Origin::Input => match (cut[r], m.arrived) {
                (Some(c), Some(t)) => t < c.at && m.tag < e,
                _ => false,
            },
            Origin::Restored => true,
        };
        let actors: Vec<usize> = sender.into_iter().chain([r]).collect();
        // An ask's reply moves money from the responder (when it answers) to the asker
        // (when it takes the reply in). Answered before the responder's cut but never taken
        // in before the asker's cut (the ask timed out, or nobody awaits a restored request;
        // an asker cannot cut while it awaits): destroyed before the cut.
        if let (Some((at, money)), Kind::Ask { asker, .. }) = (m.answered, m.kind) {
            let taken_pre = match (asker, m.absorbed) {
                (Some(a), Some(t)) => pre(a, t),
                _ => false,
            };
            if money != 0 && pre(r, at) && !taken_pre {
                destroyed += money;
            }
        }
        match cut[r] {
            Some(c) => {
                let processed_pre = m.processed.is_some_and(|t| t < c.at);
                if processed_pre && !sent_pre {
                    return violation(
                        format!(
                            "orphan: message {id} ({:?}) from {:?} was sent after its sender's cut \
                             and processed by actor {r} before its cut",
                            m.kind, m.origin
                        ),
                        &actors,
                    );
                }
                if sent_pre && !processed_pre {
                    match m.arrived {
                        Some(t) => expected[r].push((t, id)),
                        None => {
                            return violation(
                                format!(
                                    "message {id} to actor {r}, sent before the cut, was still in \
                                     transit when the snapshot completed"
                                ),
                                &actors,
                            );
                        }
                    }
                }
            }
            None if sent_pre && m.origin != Origin::Input => {
                if !born_pre[r] {
                    return violation(
                        format!(
                            "message {id} ({:?}) from {:?}, sent before the cut, went to actor {r}, \
                             which was born after the cut: it is in no actor's state and not \
                             recorded",
                            m.kind, m.origin
                        ),
                        &actors,
                    );
                }
                if let (Kind::Deposit(amount), None) = (m.kind, m.processed) {
                    destroyed += amount;
                }
            }
            None => {}
        }
    }

    let mut total = 0i64;
    for r in 0..n {
        let Some(c) = cut[r] else {
            if born_pre[r] {
                destroyed += w.actors[r].stopped.expect("checked above").1;
                // Stopped before its cut: every restart was before it too.
                destroyed += w.actors[r].restarts.iter().map(|&(_, lost)| lost).sum::<i64>();
            }
            continue;
        };
        destroyed += w.actors[r]
            .restarts
            .iter()
            .filter(|&&(t, _)| t < c.at)
            .map(|&(_, lost)| lost)
            .sum::<i64>();
        expected[r].sort_unstable();
        let want: Vec<usize> = expected[r].iter().map(|&(_, id)| id).collect();
        let got: &[usize] = w.actors[r].recorded.get(&e).map_or(&[], |v| v);
        if got != want {
            let missing: Vec<usize> = want.iter().copied().filter(|id| !got.contains(id)).collect();
            let extra: Vec<usize> = got.iter().copied().filter(|id| !want.contains(id)).collect();
            let mut actors = vec![r];
            actors.extend(missing.iter().chain(&extra).filter_map(|&id| match w.log[id].origin {
                Origin::Actor(s) => Some(s),
                _ => None,
            }));
            return violation(
                format!(
                    "actor {r} recorded {got:?}, expected {want:?} (missing {missing:?}, \
                     unexpected {extra:?}{})",
                    if missing.is_empty() && extra.is_empty() { ", wrong order" } else { "" }
                ),
                &actors,
            );
        }
        total += c.balance;
        total += got
            .iter()
            .map(|&id| if let Kind::Deposit(a) = w.log[id].kind { a } else { 0 })
            .sum::<i64>();
    }
    if total + destroyed != w.initial_total {
        // Ask replies that carried information from after a responder's cut into an asker's
        // state before its cut: the one way the specified algorithm lets a cut be crossed.
        let crossed: Vec<(usize, usize, usize)> = w
            .leaks
            .iter()
            .filter_map(|&(at, id)| {
                let m = &w.log[id];
                let Origin::Actor(asker) = m.origin else { return None };
                let after = m.processed.is_some_and(|t| !pre(m.receiver, t));
                (pre(asker, at) && after).then_some((id, asker, m.receiver))
            })
            .collect();
        let actors: Vec<usize> = crossed.iter().flat_map(|&(_, a, r)| [a, r]).collect();
        return violation(
            format!(
                "bank: cut balances + recorded deposits = {total}, destroyed before the cut = \
                 {destroyed}, but the world started with {}; ask replies from after the \
                 responder's cut taken before the asker's cut (request, asker, responder): \
                 {crossed:?}",
                w.initial_total
            ),
            &actors,
        );
    }
    Ok(())
}
