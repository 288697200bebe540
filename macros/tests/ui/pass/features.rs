//! Every feature of the macros at once, warning-free, from a crate that depends only on
//! `amber`.
#![deny(warnings, missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(clippy::all)]

use std::collections::HashMap;
use std::marker::PhantomData;

use amber::prelude::*;

/// Hooks, the context anywhere, async and sync handlers, a raw identifier, a `cfg`'d
/// handler, `Self` in arguments.
#[derive(Debug, Default)]
pub struct Everything {
    seen: Vec<String>,
}

#[amber::actor(derive(Clone, PartialEq, Debug), vis = "pub")]
impl Everything {
    /// A constructor is left alone.
    pub fn new() -> Self {
        Everything::default()
    }

    #[on_start]
    fn start(&mut self) {}

    #[on_stop]
    async fn stop_hook(&mut self, ctx: &mut Context<Self>, reason: &ExitReason) {
        let _ = (ctx.id(), reason);
    }

    fn on_child_event(&mut self, event: ChildEvent) {
        self.seen.push(format!("{event:?}"));
    }

    #[on_down]
    fn down(&mut self, _ctx: &Context<Self>, down: Down) {
        self.seen.push(format!("{down:?}"));
    }

    fn r#type(&mut self, name: String) {
        self.seen.push(name);
    }

    async fn two(&mut self, a: u8, ctx: &mut Context<Self>, b: Vec<u8>) -> (u8, usize) {
        let _ = ctx.myself();
        (a, b.len())
    }

    fn peer(&mut self, other: Option<ActorRef<Self>>) -> Option<ActorId> {
        other.map(|o| o.id())
    }

    #[cfg(any())]
    fn never(&mut self, _x: NotSerializable) {}
}

/// Not serializable; used only by a handler that is configured out.
#[derive(Debug)]
pub struct NotSerializable;

/// An actor with no handlers at all.
#[derive(Debug)]
pub struct Idle;

#[amber::actor]
impl Idle {}

/// Generated items for a crate-private actor.
#[derive(Debug)]
pub(crate) struct Private;

#[amber::actor(vis = pub(crate), crate = ::amber)]
impl Private {
    fn ping(&mut self) -> bool {
        true
    }
}

/// amber reached through a re-export.
pub mod reexport {
    pub use amber::*;
}

/// Uses the `crate` escape hatch.
#[derive(Debug, amber::ActorState)]
#[amber(crate = "crate::reexport")]
pub struct Hatch(u8);

#[amber::actor(crate = "crate::reexport")]
impl Hatch {
    fn get(&mut self) -> u8 {
        self.0
    }
}

/// A generic state with a skipped parameter and a where clause.
#[derive(Debug, ActorState)]
#[amber(version = 3, upgrade = Self::upgrade, rebuild = "Self::rebuild")]
pub struct Cache<K, V>
where
    K: std::hash::Hash + Eq,
{
    entries: HashMap<K, u64>,
    #[amber(skip, default = "Vec::new")]
    log: Vec<V>,
    #[amber(skip)]
    _v: PhantomData<V>,
}

impl<K: std::hash::Hash + Eq, V> Cache<K, V> {
    fn upgrade(_from: u32, _bytes: &[u8], _system: &ActorSystem) -> Result<Self, StateError> {
        Err(StateError::Hook("no upgrade path".into()))
    }

    fn rebuild(&mut self, _system: &ActorSystem) -> Result<(), String> {
        self.log.clear();
        Ok(())
    }
}

impl<K, V> Actor for Cache<K, V>
where
    K: std::hash::Hash + Eq + amber::Message + Sync,
    V: Send + 'static,
{
    type Msg = K;
    type Reply = u64;
    async fn handle(&mut self, key: K, _ctx: &mut Context<Self>) -> u64 {
        self.entries.get(&key).copied().unwrap_or_default()
    }
}

/// A unit state.
#[derive(Debug, ActorState)]
pub struct Unit;

#[amber::actor]
impl Unit {
    fn nothing(&mut self) {}
}

fn main() {
    let _ = Everything::new();
    let _: EverythingMsg = EverythingMsg::Type { name: "t".into() };
    let _: EverythingMsg = EverythingMsg::Two { a: 1, b: vec![] };
    assert_eq!(EverythingReply::Two((1, 0)), EverythingReply::Two((1, 0)).clone());
    let _: Option<IdleMsg> = None;
    let _ = PrivateMsg::Ping;
    let _ = HatchMsg::Get;
    assert_eq!(<Cache<String, NotSerializable> as ActorState>::VERSION, 3);
    assert!(<Unit as ActorState>::TYPE_NAME.ends_with("::Unit"));
    assert_eq!(format!("{:?}", UnitMsg::Nothing), "UnitMsg::Nothing");
    let _ = Hatch(1).encode_state();
}
