//! The IR of `#[amber::actor]`: the impl block's handlers and lifecycle hooks, and the
//! attribute's own keys, parsed from syn's AST. Parsing records every mistake and goes on.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Pat, Path, ReturnType, Type,
    Visibility,
};

use crate::internals::Ctxt;
use crate::internals::types::{
    find_impl_trait, find_reference, is_unit, last_segment_named, replace_self, type_string,
};
use crate::internals::value::{path_value, set_once, skip_value};

/// An `impl` block under `#[amber::actor]`.
pub(crate) struct ActorImpl {
    /// The actor type as written after `impl`.
    pub(crate) self_ty: Type,
    /// Its last path segment, the stem of the generated names.
    pub(crate) ident: Ident,
    pub(crate) handlers: Vec<Handler>,
    pub(crate) hooks: Vec<Hook>,
    /// Every method name of the block, in order, for the duplicate check.
    pub(crate) method_names: Vec<Ident>,
    pub(crate) args: Args,
}

/// The attribute's keys: `#[amber::actor(crate = "..", vis = "..", derive(..))]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) krate: Option<Path>,
    pub(crate) vis: Option<Visibility>,
    pub(crate) derives: Vec<Path>,
}

/// A method that becomes a message.
pub(crate) struct Handler {
    pub(crate) method: Ident,
    /// The message (and reply) variant, e.g. `Deposit` for `deposit`.
    pub(crate) variant: String,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) cfgs: Vec<Attribute>,
    pub(crate) is_async: bool,
    pub(crate) inputs: Vec<Input>,
    /// The reply type; `None` for a handler returning `()`, which makes a tell.
    pub(crate) reply: Option<Type>,
    /// No error was found in it: code is generated for it. (Code is generated for the sound
    /// handlers even when others have errors, so that the only errors shown are the real
    /// ones, not a flood of "`Actor` is not implemented".)
    pub(crate) sound: bool,
}

/// One argument of a handler or hook.
pub(crate) enum Input {
    /// `ctx: &mut Context<Self>` (or `&Context<Self>`): passed through, not sent.
    Ctx { mutable: bool },
    /// A message field.
    Field { name: Ident, ty: Box<Type> },
    /// The payload of a hook (`reason: &ExitReason`, `event: ChildEvent`, `down: Down`).
    Payload,
}

/// The lifecycle hooks of the `Actor` trait that a method can stand for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    Start,
    Stop,
    ChildEvent,
    Down,
}

impl HookKind {
    pub(crate) const ALL: [HookKind; 4] =
        [HookKind::Start, HookKind::Stop, HookKind::ChildEvent, HookKind::Down];

    pub(crate) fn name(self) -> &'static str {
        match self {
            HookKind::Start => "on_start",
            HookKind::Stop => "on_stop",
            HookKind::ChildEvent => "on_child_event",
            HookKind::Down => "on_down",
        }
    }

    /// The payload argument the trait hook passes besides the context, if any.
    fn payload(self) -> Option<&'static str> {
        match self {
            HookKind::Start => None,
            HookKind::Stop => Some("reason: &ExitReason"),
            HookKind::ChildEvent => Some("event: ChildEvent"),
            HookKind::Down => Some("down: Down"),
        }
    }

    fn from_ident(ident: &Ident) -> Option<HookKind> {
        HookKind::ALL.into_iter().find(|k| ident == k.name())
    }
}

/// A method that stands for a lifecycle hook.
pub(crate) struct Hook {
    pub(crate) kind: HookKind,
    pub(crate) method: Ident,
    /// Where the hook is declared: its attribute, or the method name.
    pub(crate) span: Span,
    pub(crate) is_async: bool,
    pub(crate) inputs: Vec<Input>,
    /// No error was found in it (see [`Handler::sound`]).
    pub(crate) sound: bool,
}

impl Args {
    pub(crate) fn from_tokens(cx: &Ctxt, tokens: TokenStream) -> Args {
        let mut args = Args::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                if let Some(path) = path_value(cx, "crate", &meta, "\"::amber\"")? {
                    set_once(cx, &meta, &mut args.krate, path);
                }
            } else if meta.path.is_ident("vis") {
                let value = meta.value()?;
                let help = "`vis` takes a visibility, e.g. `vis = \"pub(crate)\"`";
                let vis = if value.peek(LitStr) {
                    let lit: LitStr = value.parse()?;
                    match lit.parse::<Visibility>() {
                        Ok(vis) => Some(vis),
                        Err(_) => {
                            cx.error_spanned_by(&lit, help);
                            None
                        }
                    }
                } else if value.peek(syn::Token![pub]) {
                    Some(value.parse::<Visibility>()?)
                } else {
                    let other: syn::Expr = value.parse()?;
                    cx.error_spanned_by(other, help);
                    None
                };
                if let Some(vis) = vis {
                    set_once(cx, &meta, &mut args.vis, vis);
                }
            } else if meta.path.is_ident("derive") {
                if !meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`derive` takes a list of traits, e.g. `derive(Clone, Debug)`",
                    );
                    skip_value(&meta)?;
                } else {
                    meta.parse_nested_meta(|inner| {
                        args.derives.push(inner.path.clone());
                        Ok(())
                    })?;
                }
            } else {
                cx.error_spanned_by(
                    &meta.path,
                    format_args!(
                        "unknown `amber::actor` key `{}`; expected `crate`, `vis` or `derive`",
                        quote::ToTokens::to_token_stream(&meta.path)
                    ),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(tokens) {
            cx.syn_error(err);
        }
        args
    }
}

impl ActorImpl {
    /// Parses the impl block, removing the hook attributes (`#[on_start]`, ...) from it so
    /// that it can be emitted again as it is. `None` if it is not an impl block of a named
    /// type (an error is recorded).
    pub(crate) fn from_ast(cx: &Ctxt, args: Args, item: &mut ItemImpl) -> Option<ActorImpl> {
        let mut ok = true;
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "`#[amber::actor]` goes on an inherent impl block (`impl MyActor { ... }`); it \
                 writes the `Actor` impl itself",
            );
            ok = false;
        }
        if let Some(unsafety) = &item.unsafety {
            cx.error_spanned_by(unsafety, "an actor's impl block cannot be `unsafe`");
        }
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            ok = false;
            cx.error_spanned_by(
                &item.generics,
                "`#[amber::actor]` does not support generic impl blocks; implement `Actor` by \
                 hand for a generic actor",
            );
        }
        let ident = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        };
        let Some(ident) = ident else {
            cx.error_spanned_by(&item.self_ty, "an actor must be a named struct or enum type");
            return None;
        };
        let self_ty = (*item.self_ty).clone();

        let mut handlers = Vec::new();
        let mut hooks = Vec::new();
        let mut method_names = Vec::new();
        for impl_item in &mut item.items {
            let ImplItem::Fn(func) = impl_item else { continue };
            method_names.push(func.sig.ident.clone());
            let marked = take_hook_attr(cx, func);
            let kind = marked.map(|(k, _)| k).or_else(|| HookKind::from_ident(&func.sig.ident));
            let span = marked.map_or(func.sig.ident.span(), |(_, s)| s);
            let has_receiver = func.sig.receiver().is_some();
            if !has_receiver && kind.is_none() {
                // An associated function (`fn new() -> Self`): not a handler, left alone.
                continue;
            }
            let errors_before = cx.error_count();
            check_signature(cx, func, kind);
            let inputs = parse_inputs(cx, func, kind, &self_ty);
            let is_async = func.sig.asyncness.is_some();
            match kind {
                Some(kind) => {
                    check_hook_output(cx, func, kind);
                    let sound = cx.error_count() == errors_before;
                    let method = func.sig.ident.clone();
                    hooks.push(Hook { kind, method, span, is_async, inputs, sound });
                }
                None => {
                    let reply = parse_reply(cx, &func.sig.output, &self_ty);
                    let sound = cx.error_count() == errors_before;
                    handlers.push(Handler {
                        method: func.sig.ident.clone(),
                        variant: variant_name(&func.sig.ident),
                        docs: attrs_named(&func.attrs, "doc"),
                        cfgs: attrs_named(&func.attrs, "cfg"),
                        is_async,
                        inputs,
                        reply,
                        sound,
                    });
                }
            }
        }
        ok.then_some(ActorImpl { self_ty, ident, handlers, hooks, method_names, args })
    }
}

/// Removes `#[on_start]` & co. from `func`, returning the hook it marks and the span.
fn take_hook_attr(cx: &Ctxt, func: &mut ImplItemFn) -> Option<(HookKind, Span)> {
    let mut found: Option<(HookKind, Span)> = None;
    func.attrs.retain(|attr| {
        let Some(kind) = attr.path().get_ident().and_then(HookKind::from_ident) else {
            return true;
        };
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            cx.error_spanned_by(attr, format_args!("`#[{}]` takes no arguments", kind.name()));
        }
        match found {
            Some((first, _)) => cx.error_spanned_by(
                attr,
                format_args!(
                    "this method is already the `{}` hook; one method stands for one hook",
                    first.name()
                ),
            ),
            None => found = Some((kind, attr.path().span())),
        }
        false
    });
    if let Some((kind, span)) = found
        && let Some(named) = HookKind::from_ident(&func.sig.ident)
        && named != kind
    {
        cx.error_at(
            span,
            format_args!(
                "a method named `{}` is that hook; it cannot also be the `{}` hook",
                named.name(),
                kind.name()
            ),
        );
    }
    found
}

const RECEIVER_HELP: &str = "the actor handles one message at a time with exclusive access to \
                             its state";

/// The receiver, generics and qualifiers of a handler or hook.
fn check_signature(cx: &Ctxt, func: &ImplItemFn, kind: Option<HookKind>) {
    let sig = &func.sig;
    let what = match kind {
        Some(kind) => format!("the `{}` hook", kind.name()),
        None => "a handler".to_owned(),
    };
    match sig.receiver() {
        None => cx.error_spanned_by(
            &sig.ident,
            format_args!("{what} takes `&mut self`: add it as the first argument"),
        ),
        Some(receiver) => {
            let (is_ref, is_mut) = match (&receiver.reference, &receiver.colon_token) {
                (Some(_), _) => (true, receiver.mutability.is_some()),
                (None, None) => (false, false),
                (None, Some(_)) => match &*receiver.ty {
                    Type::Reference(r) => (true, r.mutability.is_some()),
                    _ => (false, false),
                },
            };
            let typed = receiver.colon_token.is_some() && !is_ref;
            if is_ref && !is_mut {
                cx.error_spanned_by(
                    receiver,
                    format_args!(
                        "{what} takes `&mut self`, not `&self`: {RECEIVER_HELP}. Write \
                         `&mut self` (also when it only reads), or move this method to another \
                         impl block"
                    ),
                );
            } else if typed {
                cx.error_spanned_by(
                    receiver,
                    format_args!(
                        "{what} takes `&mut self`, not `self: {}`: {RECEIVER_HELP}",
                        type_string(&receiver.ty)
                    ),
                );
            } else if !is_ref {
                cx.error_spanned_by(
                    receiver,
                    format_args!(
                        "{what} takes `&mut self`, not `self` by value: the actor keeps its \
                         state between messages"
                    ),
                );
            }
        }
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format_args!(
                "{what} cannot be generic: each handler becomes one message variant whose \
                 fields have concrete types (a helper that is not a handler goes in another \
                 impl block)"
            ),
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(where_clause, format_args!("{what} cannot have a `where` clause"));
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(unsafety, format_args!("{what} cannot be `unsafe`"));
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format_args!("{what} cannot be variadic"));
    }
}

/// The arguments after the receiver: the context, message fields, or a hook's payload.
fn parse_inputs(
    cx: &Ctxt,
    func: &ImplItemFn,
    kind: Option<HookKind>,
    self_ty: &Type,
) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut ctx_seen = false;
    let mut payload_seen = false;
    for arg in &func.sig.inputs {
        let FnArg::Typed(arg) = arg else { continue };
        let ty = &*arg.ty;
        if let Type::Reference(r) = ty
            && last_segment_named(&r.elem, "Context").is_some()
        {
            if ctx_seen {
                cx.error_spanned_by(ty, "the context is already an argument; take it once");
            }
            ctx_seen = true;
            inputs.push(Input::Ctx { mutable: r.mutability.is_some() });
            continue;
        }
        if last_segment_named(ty, "Context").is_some() {
            cx.error_spanned_by(
                ty,
                "take the context by reference: `ctx: &mut Context<Self>`; it stays with the \
                 actor and is not part of the message",
            );
            continue;
        }
        if let Some(kind) = kind {
            match kind.payload() {
                Some(_) if !payload_seen => payload_seen = true,
                Some(payload) => cx.error_spanned_by(
                    arg,
                    format_args!(
                        "the `{}` hook takes `&mut self`, then optionally `ctx: &mut \
                         Context<Self>` and `{payload}`",
                        kind.name()
                    ),
                ),
                None => cx.error_spanned_by(
                    arg,
                    format_args!(
                        "the `{}` hook takes only `&mut self` and optionally `ctx: &mut \
                         Context<Self>`",
                        kind.name()
                    ),
                ),
            }
            inputs.push(Input::Payload);
            continue;
        }
        let name = match &*arg.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.clone()),
            _ => None,
        };
        let Some(name) = name else {
            cx.error_spanned_by(
                &arg.pat,
                "a handler argument needs a plain name: it becomes the name of the message field",
            );
            continue;
        };
        if let Some(reference) = find_reference(ty) {
            cx.error_spanned_by(reference, owned_help("a message argument", reference));
            continue;
        }
        if let Some(impl_trait) = find_impl_trait(ty) {
            cx.error_spanned_by(
                impl_trait,
                "a handler argument cannot be `impl Trait`: it becomes a message field, which \
                 needs a concrete type (a helper that is not a handler goes in another impl \
                 block)",
            );
            continue;
        }
        inputs.push(Input::Field { name, ty: Box::new(replace_self(ty, self_ty)) });
    }
    inputs
}

/// "must be owned" with the owned type to use instead.
fn owned_help(what: &str, reference: &syn::TypeReference) -> String {
    let elem = &*reference.elem;
    let instead = match elem {
        Type::Path(p) if p.path.is_ident("str") => "`String`".to_owned(),
        Type::Slice(s) => format!("`Vec<{}>`", type_string(&s.elem)),
        Type::Path(p) if p.path.is_ident("Path") => "`PathBuf`".to_owned(),
        other => format!("`{}`", type_string(other)),
    };
    let hint = if what == "a reply" {
        ""
    } else {
        " (a helper that is not a handler goes in another impl block)"
    };
    format!(
        "{what} cannot be a reference: messages are sent through a mailbox, may cross the \
         network and are stored in snapshots, so they must own their data; use {instead}{hint}"
    )
}

/// The reply type of a handler; `None` for `()`.
fn parse_reply(cx: &Ctxt, output: &ReturnType, self_ty: &Type) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else { return None };
    if is_unit(ty) {
        return None;
    }
    if let Some(reference) = find_reference(ty) {
        cx.error_spanned_by(reference, owned_help("a reply", reference));
        return None;
    }
    if let Some(impl_trait) = find_impl_trait(ty) {
        cx.error_spanned_by(
            impl_trait,
            "a reply cannot be `impl Trait`: it is sent back as a value of a concrete type",
        );
        return None;
    }
    Some(replace_self(ty, self_ty))
}

/// Hooks other than `on_start` return nothing.
fn check_hook_output(cx: &Ctxt, func: &ImplItemFn, kind: HookKind) {
    if kind == HookKind::Start {
        return;
    }
    if let ReturnType::Type(_, ty) = &func.sig.output
        && !is_unit(ty)
    {
        cx.error_spanned_by(ty, format_args!("the `{}` hook returns nothing", kind.name()));
    }
}

/// `deposit` → `Deposit`, `transfer_to` → `TransferTo`, `r#type` → `Type`.
fn variant_name(method: &Ident) -> String {
    method
        .unraw()
        .to_string()
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

fn attrs_named(attrs: &[Attribute], name: &str) -> Vec<Attribute> {
    attrs.iter().filter(|a| a.path().is_ident(name)).cloned().collect()
}
