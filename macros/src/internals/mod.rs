//! What both macros share: error collection, attribute values, type rewriting.

pub(crate) mod ctxt;
pub(crate) mod types;
pub(crate) mod value;

pub(crate) use ctxt::Ctxt;

/// Wraps impls in `const _: () = { ... };` so that the helper items they need (private
/// traits, shadow structs) add nothing to the user's namespace.
pub(crate) fn wrap_in_const(items: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    quote::quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            #items
        };
    }
}
