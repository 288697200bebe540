//! Questions about types and rewrites of types, for checks and for the generated items.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;

/// How a type reads in an error message: `Vec<u8>`, not `Vec < u8 >`.
pub(crate) fn type_string(ty: &impl ToTokens) -> String {
    let mut out = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("[ ", "["),
        (" ]", "]"),
        ("( ", "("),
        (" )", ")"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// Gives every token of `tokens` the span `span`, so that errors about a copied type point
/// at the place it was copied for.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                TokenTree::Group(group)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// Replaces `Self` in a type by `self_ty`: a type copied out of an `impl` block or a struct
/// definition into another item (an enum variant, a shadow struct) must not change meaning.
pub(crate) fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    let mut ty = ty.clone();
    ReplaceSelf { self_ty }.visit_type_mut(&mut ty);
    ty
}

struct ReplaceSelf<'a> {
    self_ty: &'a Type,
}

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty
            && path.qself.is_none()
            && path.path.leading_colon.is_none()
            && let Some(first) = path.path.segments.first()
            && first.ident == "Self"
            && first.arguments.is_none()
        {
            let span = first.ident.span();
            let self_ty = respan(self.self_ty.to_token_stream(), span);
            if path.path.segments.len() == 1 {
                *ty = syn::parse2(self_ty).unwrap_or_else(|_| self.self_ty.clone());
            } else {
                let rest = path.path.segments.iter().skip(1);
                *ty = syn::parse_quote_spanned!(span=> <#self_ty> #(:: #rest)*);
            }
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// The first reference type (`&T`, `&str`, `&mut T`) anywhere inside `ty`.
pub(crate) fn find_reference(ty: &Type) -> Option<&syn::TypeReference> {
    struct Find<'ast>(Option<&'ast syn::TypeReference>);
    impl<'ast> Visit<'ast> for Find<'ast> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if self.0.is_none() {
                self.0 = Some(r);
            }
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}

/// The first `impl Trait` anywhere inside `ty`.
pub(crate) fn find_impl_trait(ty: &Type) -> Option<&syn::TypeImplTrait> {
    struct Find<'ast>(Option<&'ast syn::TypeImplTrait>);
    impl<'ast> Visit<'ast> for Find<'ast> {
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            if self.0.is_none() {
                self.0 = Some(t);
            }
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}

/// Whether `ty` is `()`.
pub(crate) fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(t) => t.elems.is_empty(),
        Type::Paren(p) => is_unit(&p.elem),
        Type::Group(g) => is_unit(&g.elem),
        _ => false,
    }
}

/// If `ty` is a path whose last segment is `name` (e.g. `Context<Self>`,
/// `amber::Context<Self>`), that segment.
pub(crate) fn last_segment_named<'a>(ty: &'a Type, name: &str) -> Option<&'a syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().filter(|s| s.ident == name),
        Type::Paren(p) => last_segment_named(&p.elem, name),
        Type::Group(g) => last_segment_named(&g.elem, name),
        _ => None,
    }
}
