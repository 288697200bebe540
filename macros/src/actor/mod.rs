//! `#[amber::actor]`: parse → check → expand.

mod ast;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ItemImpl;

use crate::internals::Ctxt;

pub(crate) fn actor(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let err = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[amber::actor]` goes on an impl block whose methods are the handlers: \
                 `#[amber::actor] impl MyActor { ... }`",
            );
            let mut out = err.to_compile_error();
            out.extend(input);
            return out;
        }
    };
    let cx = Ctxt::new();
    let args = ast::Args::from_tokens(&cx, args);
    let mut actor = ast::ActorImpl::from_ast(&cx, args, &mut item);
    if let Some(actor) = &mut actor {
        check::check(&cx, actor);
    }
    // The impl block is emitted in any case (without the hook attributes), and so is the
    // code of every sound handler, so that the errors shown are the real ones and not a
    // flood of "`Actor` is not implemented" after them.
    let mut out = item.into_token_stream();
    if let Some(actor) = &actor {
        out.extend(expand::expand(actor));
    }
    if let Err(err) = cx.check() {
        out.extend(err.to_compile_error());
    }
    out
}
