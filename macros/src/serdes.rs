//! `#[derive(Serialize)]` and `#[derive(Deserialize)]` of `amber::prelude`: serde's derives,
//! through amber's copy of serde, for crates that do not depend on serde.
//!
//! serde's derives name the `serde` crate unless the item says otherwise with
//! `#[serde(crate = "...")]`, and a derive cannot add an attribute to the item it is on. So
//! these derives copy the item as a private "remote" twin (serde's `#[serde(remote = "...")]`)
//! that carries the item's `#[serde(...)]` attributes plus `crate = "<amber>::__private::serde"`,
//! let serde's own derive expand on the twin, and implement the trait for the item by calling
//! what serde generated. The encoding is serde's, attribute for attribute.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Fields, GenericParam, LitStr, Meta, Token};

use crate::internals::wrap_in_const;

/// Which of serde's traits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trait {
    Serialize,
    Deserialize,
}

pub(crate) fn derive(input: &DeriveInput, which: Trait) -> syn::Result<TokenStream> {
    if let Some(lifetime) = input.generics.lifetimes().next() {
        return Err(syn::Error::new_spanned(
            lifetime,
            "amber's serde derives do not take lifetime parameters (messages and states own \
             their data); derive with serde itself for a borrowing type",
        ));
    }
    let krate = quote!(::amber);
    let serde = quote!(#krate::__private::serde);
    let serde_str = LitStr::new(&serde.to_string(), Span::call_site());
    let ident = &input.ident;
    let remote = LitStr::new(&ident.to_string(), ident.span());
    let twin = format_ident!("__Amber{}{}", trait_name(which), ident);

    let mut item = input.clone();
    item.ident = twin.clone();
    item.vis = syn::Visibility::Inherited;
    item.attrs = serde_attrs(&input.attrs);
    match &mut item.data {
        Data::Struct(data) => keep_serde_attrs_of_fields(&mut data.fields),
        Data::Enum(data) => {
            for variant in &mut data.variants {
                variant.attrs = serde_attrs(&variant.attrs);
                variant.discriminant = None;
                keep_serde_attrs_of_fields(&mut variant.fields);
            }
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(ident, "serde does not derive for unions"));
        }
    }
    let derive_path = match which {
        Trait::Serialize => quote!(#serde::Serialize),
        Trait::Deserialize => quote!(#serde::Deserialize),
    };
    let item = match item.data {
        Data::Struct(data) => {
            let attrs = &item.attrs;
            let generics = &item.generics;
            let where_clause = &generics.where_clause;
            match data.fields {
                Fields::Named(fields) => {
                    quote!(#(#attrs)* struct #twin #generics #where_clause #fields)
                }
                Fields::Unnamed(fields) => {
                    quote!(#(#attrs)* struct #twin #generics #fields #where_clause;)
                }
                Fields::Unit => quote!(#(#attrs)* struct #twin #generics #where_clause;),
            }
        }
        Data::Enum(data) => {
            let attrs = &item.attrs;
            let generics = &item.generics;
            let where_clause = &generics.where_clause;
            let variants = data.variants.iter();
            quote!(#(#attrs)* enum #twin #generics #where_clause { #(#variants),* })
        }
        Data::Union(_) => unreachable!("unions are refused above"),
    };

    // Every type parameter is bounded by the trait (serde bounds those its fields use).
    let type_params: Vec<_> = input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            _ => None,
        })
        .collect();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> =
        where_clause.map(|w| w.predicates.iter().map(|p| quote!(#p)).collect()).unwrap_or_default();
    let imp = match which {
        Trait::Serialize => {
            predicates.extend(type_params.iter().map(|t| quote!(#t: #serde::Serialize)));
            quote! {
                #[automatically_derived]
                impl #impl_generics #serde::Serialize for #ident #ty_generics
                where #(#predicates),*
                {
                    fn serialize<__S>(
                        &self,
                        __serializer: __S,
                    ) -> ::core::result::Result<__S::Ok, __S::Error>
                    where
                        __S: #serde::Serializer,
                    {
                        #twin::serialize(self, __serializer)
                    }
                }
            }
        }
        Trait::Deserialize => {
            predicates.extend(type_params.iter().map(|t| quote!(#t: #serde::Deserialize<'de>)));
            let mut with_de = input.generics.clone();
            with_de.params.insert(0, syn::parse_quote!('de));
            let (impl_generics, _, _) = with_de.split_for_impl();
            quote! {
                #[automatically_derived]
                impl #impl_generics #serde::Deserialize<'de> for #ident #ty_generics
                where #(#predicates),*
                {
                    fn deserialize<__D>(
                        __deserializer: __D,
                    ) -> ::core::result::Result<Self, __D::Error>
                    where
                        __D: #serde::Deserializer<'de>,
                    {
                        #twin::deserialize(__deserializer)
                    }
                }
            }
        }
    };
    Ok(wrap_in_const(quote! {
        #[derive(#derive_path)]
        #[serde(crate = #serde_str, remote = #remote)]
        #[allow(dead_code, non_camel_case_types, clippy::all)]
        #item

        #imp
    }))
}

fn trait_name(which: Trait) -> &'static str {
    match which {
        Trait::Serialize => "Serialize",
        Trait::Deserialize => "Deserialize",
    }
}

/// The `#[serde(...)]` attributes among `attrs`, without `crate = ...` (the twin names
/// amber's serde itself). Other attributes belong to other derives and are left out.
fn serde_attrs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|attr| {
            let Ok(metas) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                // Not parsable as a list of metas: serde reports it as it is.
                return Some(attr.clone());
            };
            let kept: Vec<&Meta> = metas.iter().filter(|m| !m.path().is_ident("crate")).collect();
            if kept.is_empty() {
                return None;
            }
            Some(syn::parse_quote!(#[serde(#(#kept),*)]))
        })
        .collect()
}

fn keep_serde_attrs_of_fields(fields: &mut Fields) {
    for field in fields.iter_mut() {
        field.attrs = serde_attrs(&field.attrs);
        field.vis = syn::Visibility::Inherited;
    }
}
