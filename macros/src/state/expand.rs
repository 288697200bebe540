//! Code generation of `#[derive(ActorState)]`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericParam, Ident, LitStr, Member, Type};

use super::ast::{Container, Field, Style};
use crate::internals::types::{mentions_param, replace_self};
use crate::internals::wrap_in_const;

pub(crate) fn expand(cont: &Container<'_>) -> TokenStream {
    let krate = match &cont.attrs.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::amber),
    };
    let serde = quote!(#krate::__private::serde);
    let serde_str = LitStr::new(&format!("{serde}"), Span::call_site());
    let ident = cont.ident;
    let (impl_generics, ty_generics, where_clause) = cont.generics.split_for_impl();
    let self_ty: Type = syn::parse_quote!(#ident #ty_generics);

    let kept: Vec<&Field<'_>> = cont.fields.iter().filter(|f| !f.skip).collect();
    let kept_types: Vec<Type> = kept.iter().map(|f| replace_self(f.ty, &self_ty)).collect();

    // Type parameters a stored field mentions must be (de)serializable; the others
    // (only in skipped fields or phantom data) are left alone.
    let type_params: Vec<&Ident> = cont.generics.type_params().map(|p| &p.ident).collect();
    let stored_params: Vec<&Ident> = type_params
        .iter()
        .copied()
        .filter(|p| kept_types.iter().any(|ty| mentions_param(ty, p)))
        .collect();
    let ser_bound = bound_str(&stored_params, &quote!(#serde::Serialize));
    let de_bound = bound_str(&stored_params, &quote!(#serde::de::DeserializeOwned));

    // The shadow structs: a borrowed view of the stored fields for encoding, an owned one
    // for decoding. Both carry the struct's generics; a phantom field uses them all.
    // The encoding shadow also needs one for its lifetime when no field is stored. (A skipped
    // field changes nothing in the encoding, so the two shadows still agree.)
    let de_phantom = (!type_params.is_empty()).then(|| {
        quote! { ::core::marker::PhantomData<fn() -> (#(#type_params,)*)> }
    });
    let ser_phantom = (!type_params.is_empty() || kept.is_empty()).then(|| {
        quote! { ::core::marker::PhantomData<(&'__amber (), fn() -> (#(#type_params,)*))> }
    });
    let tuple_shadow = cont.style == Style::Tuple && !kept.is_empty();
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
    let phantom_member: Member = if tuple_shadow {
        Member::Unnamed(syn::Index::from(kept.len()))
    } else {
        Member::Named(format_ident!("__amber_phantom"))
    };

    let mut ser_generics = cont.generics.clone();
    ser_generics.params.insert(0, syn::parse_quote!('__amber));
    let ser_params = &ser_generics.params;
    let ser_args = cont.generics.params.iter().map(|p| match p {
        GenericParam::Type(t) => t.ident.to_token_stream(),
        GenericParam::Const(c) => c.ident.to_token_stream(),
        GenericParam::Lifetime(l) => l.lifetime.to_token_stream(),
    });
    let de_params = &cont.generics.params;

    let ser_fields = kept.iter().zip(&kept_types).map(|(f, ty)| {
        let span = f.ty.span();
        let ty = quote_spanned!(span=> &'__amber #ty);
        field_def(tuple_shadow, &f.member, ty)
    });
    let de_fields =
        kept.iter().zip(&kept_types).map(|(f, ty)| field_def(tuple_shadow, &f.member, quote!(#ty)));
    let phantom_def = |phantom: &Option<TokenStream>| {
        phantom.as_ref().map(|p| {
            let def = field_def(tuple_shadow, &phantom_member, p.clone());
            quote!(#[serde(skip)] #def)
        })
    };
    let (ser_phantom_def, de_phantom_def) = (phantom_def(&ser_phantom), phantom_def(&de_phantom));
    let body = |fields: TokenStream| {
        if tuple_shadow {
            quote!(( #fields ) #where_clause ;)
        } else {
            quote!(#where_clause { #fields })
        }
    };
    let ser_body = body(quote!(#(#ser_fields,)* #ser_phantom_def));
    let de_body = body(quote!(#(#de_fields,)* #de_phantom_def));

    // encode_state: borrow every stored field.
    let ser_inits = kept.iter().zip(&shadow_members).map(|(f, m)| {
        let member = &f.member;
        quote!(#m: &self.#member)
    });
    let phantom_init =
        ser_phantom.as_ref().map(|_| quote!(#phantom_member: ::core::marker::PhantomData));

    // decode_state: move stored fields out of the shadow, rebuild the skipped ones.
    let mut shadow_iter = shadow_members.iter();
    let inits: Vec<TokenStream> = cont
        .fields
        .iter()
        .map(|f| {
            let member = &f.member;
            match (f.skip, &f.default) {
                (false, _) => match shadow_iter.next() {
                    Some(m) => quote!(#member: __state.#m),
                    None => TokenStream::new(),
                },
                (true, Some(path)) => quote_spanned!(path.span()=> #member: #path()),
                (true, None) => {
                    quote_spanned!(f.ty.span()=> #member: ::core::default::Default::default())
                }
            }
        })
        .collect();

    let type_name = match &cont.attrs.name {
        Some(name) => quote!(#name),
        None => {
            let ident_str = LitStr::new(&ident.to_string(), ident.span());
            quote!(::core::concat!(::core::module_path!(), "::", #ident_str))
        }
    };
    let version = cont.attrs.version.map_or(1, |(v, _)| v);

    let upgrade = cont.attrs.upgrade.as_ref().map(|path| {
        quote! {
            else if (1..<Self as #krate::ActorState>::VERSION).contains(&version) {
                #path(version, bytes, system)?
            }
        }
    });
    let (rebuild, hook_trait) = match &cont.attrs.rebuild {
        Some(path) => (
            quote! {
                __AmberRebuildResult::__amber_into(#path(&mut state, system))?;
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
    for p in &stored_params {
        where_preds.push(quote!(#p: #serde::Serialize + #serde::de::DeserializeOwned));
    }

    let impls = quote! {
        #[derive(#serde::Serialize)]
        #[serde(crate = #serde_str, bound = #ser_bound)]
        struct __AmberStateRef<#ser_params> #ser_body

        #[derive(#serde::Deserialize)]
        #[serde(crate = #serde_str, bound = #de_bound)]
        struct __AmberStateOwned<#de_params> #de_body

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
                let state = __AmberStateRef::<'_, #(#ser_args),*> {
                    #(#ser_inits,)*
                    #phantom_init
                };
                #krate::encode(&state)
            }

            fn decode_state(
                version: u32,
                bytes: &[u8],
                system: &#krate::ActorSystem,
            ) -> ::core::result::Result<Self, #krate::StateError> {
                let #mut_state state: Self = if version == <Self as #krate::ActorState>::VERSION {
                    let __state: __AmberStateOwned #ty_generics = system.decode(bytes)?;
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

/// `T: Bound, U: Bound` as the string serde's `bound = "..."` takes.
fn bound_str(params: &[&Ident], bound: &TokenStream) -> LitStr {
    let preds: Vec<String> = params.iter().map(|p| format!("{p}: {bound}")).collect();
    LitStr::new(&preds.join(", "), Span::call_site())
}

/// A field of a shadow struct: `name: ty` or, in a tuple struct, `ty`.
fn field_def(tuple: bool, member: &Member, ty: TokenStream) -> TokenStream {
    match (tuple, member) {
        (false, Member::Named(ident)) => quote!(#ident: #ty),
        (false, Member::Unnamed(index)) => {
            let ident = format_ident!("__amber_{}", index.index);
            quote!(#ident: #ty)
        }
        (true, _) => ty,
    }
}
