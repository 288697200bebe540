//! Checks across the handlers and hooks of an `#[amber::actor]` block. A handler or hook an
//! error is found in is marked unsound, and no code is generated for it.

use std::collections::HashMap;

use syn::Ident;
use syn::ext::IdentExt;

use super::ast::ActorImpl;
use crate::internals::Ctxt;

/// The inherent methods of `ActorRef`: a generated ref method of the same name would be
/// shadowed by them (inherent methods win), so `actor.stop()` would silently call the wrong
/// one.
const ACTOR_REF_METHODS: &[&str] = &[
    "id",
    "name",
    "tell",
    "try_tell",
    "ask",
    "ask_timeout",
    "stop",
    "drain",
    "wait_stopped",
    "is_stopped",
    "queued",
    "clone",
];

pub(crate) fn check(cx: &Ctxt, actor: &mut ActorImpl) {
    check_duplicate_methods(cx, actor);
    check_variants(cx, actor);
    check_ref_methods(cx, actor);
    check_hooks(cx, actor);
}

fn check_duplicate_methods(cx: &Ctxt, actor: &mut ActorImpl) {
    let mut seen: HashMap<String, Ident> = HashMap::new();
    let mut dups = Vec::new();
    for method in &actor.method_names {
        let name = method.unraw().to_string();
        if seen.insert(name.clone(), method.clone()).is_some() {
            cx.error_spanned_by(
                method,
                format_args!(
                    "duplicate handler `{name}`: each handler becomes one message variant"
                ),
            );
            dups.push(name);
        }
    }
    // The first of each name keeps its code; the later ones are unsound.
    let mut handler_names = Vec::new();
    for handler in &mut actor.handlers {
        let name = handler.method.unraw().to_string();
        if dups.contains(&name) && handler_names.contains(&name) {
            handler.sound = false;
        }
        handler_names.push(name);
    }
}

fn check_variants(cx: &Ctxt, actor: &mut ActorImpl) {
    let mut seen: HashMap<String, Ident> = HashMap::new();
    let mut bad = Vec::new();
    for (i, handler) in actor.handlers.iter().enumerate().filter(|(_, h)| h.sound) {
        let variant = handler.variant.as_str();
        let valid = variant.chars().next().is_some_and(char::is_alphabetic)
            && variant != "Self"
            && syn::parse_str::<Ident>(variant).is_ok();
        if !valid {
            cx.error_spanned_by(
                &handler.method,
                format_args!(
                    "the handler `{}` does not make a message variant name (got `{variant}`); \
                     rename it",
                    handler.method
                ),
            );
            bad.push(i);
            continue;
        }
        match seen.get(variant) {
            Some(first) => {
                cx.error_spanned_by(
                    &handler.method,
                    format_args!(
                        "the handlers `{first}` and `{}` both become the message variant \
                         `{}Msg::{variant}`; rename one",
                        handler.method, actor.ident
                    ),
                );
                bad.push(i);
            }
            None => {
                seen.insert(variant.to_owned(), handler.method.clone());
            }
        }
    }
    for i in bad {
        actor.handlers[i].sound = false;
    }
}

fn check_ref_methods(cx: &Ctxt, actor: &mut ActorImpl) {
    // `balance` also makes `balance_timeout`; a handler with that name would clash.
    let mut generated: HashMap<String, &Ident> = HashMap::new();
    for handler in actor.handlers.iter().filter(|h| h.reply.is_some()) {
        generated.insert(format!("{}_timeout", handler.method.unraw()), &handler.method);
    }
    let mut bad = Vec::new();
    for (i, handler) in actor.handlers.iter().enumerate() {
        let name = handler.method.unraw().to_string();
        if ACTOR_REF_METHODS.contains(&name.as_str()) {
            cx.error_spanned_by(
                &handler.method,
                format_args!(
                    "a handler cannot be named `{name}`: `ActorRef::{name}` already exists, and \
                     would be called instead of the generated `{}Ref::{name}`; rename it",
                    actor.ident
                ),
            );
            bad.push(i);
        }
        if let Some(ask) = generated.get(&name) {
            cx.error_spanned_by(
                &handler.method,
                format_args!(
                    "`{}Ref::{name}` is already generated for the handler `{ask}` (an ask with a \
                     timeout); rename this handler",
                    actor.ident
                ),
            );
            bad.push(i);
        }
    }
    for i in bad {
        actor.handlers[i].sound = false;
    }
}

fn check_hooks(cx: &Ctxt, actor: &mut ActorImpl) {
    for i in 0..actor.hooks.len() {
        let hook = &actor.hooks[i];
        if let Some(first) = actor.hooks[..i].iter().find(|h| h.kind == hook.kind) {
            cx.error_at(
                hook.span,
                format_args!(
                    "the `{}` hook is already `{}`; an actor has one of each hook",
                    hook.kind.name(),
                    first.method
                ),
            );
            actor.hooks[i].sound = false;
        }
    }
}
