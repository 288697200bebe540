//! Code generation of `#[derive(ActorState)]`.
//!
//! The stored fields go through two private "shadow" structs that derive serde's traits:
//! one borrowing the fields for encoding, one owning them for decoding. The shadows are
//! generic over their field types (`F0, F1, ...`), so serde's derived code can never fail to
//! compile; the `impl ActorState` instead requires `FieldType: StateField` for every stored
//! field, spanned at the field. A field type that is not serializable thus gets one error,
//! at that field, with amber's message (the trait's `on_unimplemented`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Member};

use super::ast::{Container, Field, FieldDefault, Style};
use crate::internals::types::respan;
use crate::internals::wrap_in_const;

pub(crate) fn expand(cont: &Container<'_>) -> TokenStream {
    let krate = match &cont.attrs.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::amber),
    };
    let serde = quote!(#krate::__private::serde);
    let serde_str = LitStr::new(&serde.to_string(), Span::call_site());
    let ident = cont.ident;
    let (impl_generics, ty_generics, where_clause) = cont.generics.split_for_impl();

    let kept: Vec<&Field<'_>> = cont.fields.iter().filter(|f| !f.skip).collect();
    let params: Vec<Ident> = (0..kept.len()).map(|i| format_ident!("__F{}", i)).collect();
    let tuple_shadow = cont.style == Style::Tuple && !kept.is_empty();
    // The shadows' members: a named struct keeps the field names (they are the keys of the
    // encoded map); a tuple struct renumbers the stored fields.
    let shadow_members: Vec<Member> = kept
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.member {
            Member::Named(ident) => Member::Named(ident.clone()),
            Member::Unnamed(_) => {
                Member::Unnamed(syn::Index { index: i as u32, span: f.ty.span() })
            }
        })
        .collect();
    let stored = quote!(#krate::__private::stored);
    let ser_with = LitStr::new(&format!("{stored}::serialize"), Span::call_site());
    let de_with = LitStr::new(&format!("{stored}::deserialize"), Span::call_site());
    let shadow = |with: TokenStream, field_ty: &dyn Fn(&Ident) -> TokenStream| {
        let fields = shadow_members.iter().zip(&params).map(|(m, p)| {
            let ty = field_ty(p);
            match (tuple_shadow, m) {
                (true, _) => quote!(#[serde(#with)] #ty),
                (false, m) => quote!(#[serde(#with)] #m: #ty),
            }
        });
        if tuple_shadow { quote!((#(#fields),*);) } else { quote!({ #(#fields),* }) }
    };
    let ser_body = shadow(quote!(serialize_with = #ser_with), &|p| quote!(&'__amber #p));
    // A stored field with a default is optional in the decoding shadow: a state encoded
    // before the field existed lacks it (a map without its key, or an array that ends
    // before it), and it is filled in by the default after decoding.
    let de_some = LitStr::new(&format!("{stored}::deserialize_some"), Span::call_site());
    let de_none = LitStr::new(&format!("{stored}::none"), Span::call_site());
    let de_fields = shadow_members.iter().zip(&params).zip(&kept).map(|((m, p), f)| {
        let attr = if f.default.is_some() {
            quote!(#[serde(deserialize_with = #de_some, default = #de_none)])
        } else {
            quote!(#[serde(deserialize_with = #de_with)])
        };
        let ty = if f.default.is_some() { quote!(::core::option::Option<#p>) } else { quote!(#p) };
        match (tuple_shadow, m) {
            (true, _) => quote!(#attr #ty),
            (false, m) => quote!(#attr #m: #ty),
        }
    });
    let de_body =
        if tuple_shadow { quote!((#(#de_fields),*);) } else { quote!({ #(#de_fields),* }) };
    let bounded = quote!(#(#params: #krate::__private::StateField),*);
    let (ser_generics, de_generics) = if params.is_empty() {
        (TokenStream::new(), TokenStream::new())
    } else {
        (quote!(<'__amber, #bounded>), quote!(<#bounded>))
    };

    let kept_types: Vec<&syn::Type> = kept.iter().map(|f| f.ty).collect();
    let ref_args = (!kept.is_empty()).then(|| quote!(<'_, #(#kept_types),*>));
    let owned_args = (!kept.is_empty()).then(|| quote!(<#(#kept_types),*>));

    // encode_state: borrow every stored field.
    let ser_inits = kept.iter().zip(&shadow_members).map(|(f, m)| {
        let member = &f.member;
        quote!(#m: &self.#member)
    });

    // decode_state: move stored fields out of the shadow, rebuild the skipped ones.
    let mut shadow_iter = shadow_members.iter();
    let inits: Vec<TokenStream> = cont
        .fields
        .iter()
        .map(|f| {
            let member = &f.member;
            let default = match &f.default {
                Some(FieldDefault::Path(path)) => quote_spanned!(path.span()=> #path()),
                Some(FieldDefault::Trait(span)) => {
                    quote_spanned!(*span=> ::core::default::Default::default())
                }
                None => quote_spanned!(f.ty.span()=> ::core::default::Default::default()),
            };
            match (f.skip, &f.default) {
                (false, None) => match shadow_iter.next() {
                    Some(m) => quote!(#member: __state.#m),
                    None => TokenStream::new(),
                },
                (false, Some(_)) => match shadow_iter.next() {
                    Some(m) => quote! {
                        #member: match __state.#m {
                            ::core::option::Option::Some(__value) => __value,
                            ::core::option::Option::None => #default,
                        }
                    },
                    None => TokenStream::new(),
                },
                (true, _) => quote!(#member: #default),
            }
        })
        .collect();

    let type_name = match &cont.attrs.name {
        Some(name) => quote!(#name),
        None => {
            let ident_str = LitStr::new(&ident.unraw().to_string(), ident.span());
            quote!(::core::concat!(::core::module_path!(), "::", #ident_str))
        }
    };
    let version = cont.attrs.version.map_or(1, |(v, _)| v);

    // The hooks are first coerced to function pointers of the documented signatures, so that
    // a hook with another signature gets one error naming the expected one, at the path.
    let upgrade = cont.attrs.upgrade.as_ref().map(|path| {
        let hook = quote_spanned! {path.span()=>
            let __upgrade: fn(
                u32,
                &[u8],
                &#krate::ActorSystem,
            ) -> ::core::result::Result<Self, #krate::StateError> = #path;
        };
        quote! {
            else if (1..<Self as #krate::ActorState>::VERSION).contains(&version) {
                #hook
                __upgrade(version, bytes, system)?
            }
        }
    });
    let (rebuild, hook_trait) = match &cont.attrs.rebuild {
        Some(path) => (
            quote_spanned! {path.span()=>
                let __rebuild: fn(&mut Self, &#krate::ActorSystem) -> _ = #path;
                __AmberRebuildResult::__amber_into(__rebuild(&mut state, system))?;
            },
            quote! {
                /// What a rebuild hook may return: nothing, or a result.
                trait __AmberRebuildResult {
                    fn __amber_into(self) -> ::core::result::Result<(), #krate::StateError>;
                }
                impl __AmberRebuildResult for () {
                    fn __amber_into(self) -> ::core::result::Result<(), #krate::StateError> {
                        ::core::result::Result::Ok(())
                    }
                }
                impl __AmberRebuildResult for ::core::result::Result<(), #krate::StateError> {
                    fn __amber_into(self) -> ::core::result::Result<(), #krate::StateError> {
                        self
                    }
                }
                impl __AmberRebuildResult
                    for ::core::result::Result<(), ::std::string::String>
                {
                    fn __amber_into(self) -> ::core::result::Result<(), #krate::StateError> {
                        self.map_err(#krate::StateError::Hook)
                    }
                }
            },
        ),
        None => (TokenStream::new(), TokenStream::new()),
    };
    let mut_state = if cont.attrs.rebuild.is_some() { quote!(mut) } else { TokenStream::new() };

    let mut where_preds: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(ToTokens::to_token_stream).collect())
        .unwrap_or_default();
    where_preds.push(quote!(Self: #krate::Actor));
    for ty in &kept_types {
        // Spanned at the field type: a type that is not serializable gets one error, there,
        // worded by the trait's `on_unimplemented` (the shadows need no more than this).
        let span = ty.span();
        let bound = respan(quote!(#krate::__private::StateField), span);
        where_preds.push(quote_spanned!(span=> #ty: #bound));
    }

    let impls = quote! {
        #[derive(#serde::Serialize)]
        #[serde(crate = #serde_str)]
        struct __AmberStateRef #ser_generics #ser_body

        #[derive(#serde::Deserialize)]
        #[serde(crate = #serde_str, deny_unknown_fields)]
        struct __AmberStateOwned #de_generics #de_body

        #hook_trait

        #[automatically_derived]
        impl #impl_generics #krate::ActorState for #ident #ty_generics
        where
            #(#where_preds,)*
        {
            const TYPE_NAME: &'static str = #type_name;
            const VERSION: u32 = #version;

            fn encode_state(
                &self,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::CodecError> {
                let state: __AmberStateRef #ref_args = __AmberStateRef { #(#ser_inits,)* };
                #krate::__private::encode_state(&state)
            }

            fn decode_state(
                version: u32,
                bytes: &[u8],
                system: &#krate::ActorSystem,
            ) -> ::core::result::Result<Self, #krate::StateError> {
                let #mut_state state: Self = if version == <Self as #krate::ActorState>::VERSION {
                    let __state: __AmberStateOwned #owned_args = system.decode(bytes)?;
                    Self { #(#inits,)* }
                }
                #upgrade
                else {
                    return ::core::result::Result::Err(#krate::StateError::UnknownVersion {
                        type_name: <Self as #krate::ActorState>::TYPE_NAME,
                        found: version,
                        current: <Self as #krate::ActorState>::VERSION,
                    });
                };
                #rebuild
                ::core::result::Result::Ok(state)
            }
        }
    };
    wrap_in_const(impls)
}
