//! Checks of the `ActorState` IR that parsing alone does not catch.

use syn::GenericParam;

use super::ast::Container;
use crate::internals::Ctxt;

pub(crate) fn check(cx: &Ctxt, cont: &Container<'_>) {
    check_generics(cx, cont);
    check_name(cx, cont);
    check_version(cx, cont);
}

/// Actors are `'static`: a borrowed field can be neither kept across messages nor stored.
fn check_generics(cx: &Ctxt, cont: &Container<'_>) {
    for param in &cont.generics.params {
        if let GenericParam::Lifetime(lt) = param {
            cx.error_spanned_by(
                lt,
                "an actor's state cannot borrow: actors are `'static` and their state is \
                 stored in checkpoints; use owned fields",
            );
        }
    }
}

fn check_name(cx: &Ctxt, cont: &Container<'_>) {
    if let Some(name) = &cont.attrs.name
        && name.value().trim().is_empty()
    {
        cx.error_spanned_by(name, "the stable type `name` cannot be empty");
    }
}

fn check_version(cx: &Ctxt, cont: &Container<'_>) {
    let version = cont.attrs.version;
    if let Some((0, span)) = version {
        cx.error_at(span, "state versions start at 1");
    }
    if let Some(upgrade) = &cont.attrs.upgrade {
        let current = version.map_or(1, |(v, _)| v);
        if current <= 1 {
            cx.error_spanned_by(
                upgrade,
                "an `upgrade` hook reads states of older versions, so it needs `version = 2` \
                 or higher",
            );
        }
    }
}
