//! The IR of `#[derive(ActorState)]`: the struct, its fields and its `#[amber(...)]` keys,
//! parsed from syn's AST. Parsing records every mistake and goes on.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, ExprPath, Fields, Generics, Ident, LitStr, Member, Path, Type};

use crate::internals::Ctxt;
use crate::internals::value::{path_value, set_once, skip_value, str_value, u32_value};

/// A struct deriving `ActorState`.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a Generics,
    pub(crate) style: Style,
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) attrs: ContainerAttrs,
}

/// The shape of the struct.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `struct S { a: A }`
    Named,
    /// `struct S(A);`
    Tuple,
    /// `struct S;`
    Unit,
}

/// One field.
pub(crate) struct Field<'a> {
    pub(crate) member: Member,
    pub(crate) ty: &'a Type,
    /// `#[amber(skip)]`: left out of the snapshot, rebuilt on decode.
    pub(crate) skip: bool,
    /// `#[amber(default)]` or `#[amber(default = "path")]`: how a skipped field is rebuilt
    /// (else `Default`), or how a stored field is filled in when a state encoded before the
    /// field existed lacks it (else such a state is refused).
    pub(crate) default: Option<FieldDefault>,
}

/// How a field is filled in when it is not in the encoded state.
pub(crate) enum FieldDefault {
    /// `#[amber(default)]`: `Default::default()`.
    Trait(Span),
    /// `#[amber(default = path)]`: `path()`.
    Path(ExprPath),
}

/// The struct-level keys: `#[amber(name = "..", version = N, upgrade = "..", rebuild = "..",
/// crate = "..")]`.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u32, Span)>,
    pub(crate) upgrade: Option<ExprPath>,
    pub(crate) rebuild: Option<ExprPath>,
    pub(crate) krate: Option<Path>,
}

impl<'a> Container<'a> {
    /// Parses the derive input; `None` if it is not a struct.
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Container<'a>> {
        let attrs = ContainerAttrs::from_ast(cx, &input.attrs);
        let data = match &input.data {
            Data::Struct(data) => data,
            Data::Enum(data) => {
                cx.error_at(
                    data.enum_token.span,
                    "`ActorState` can only be derived for a struct; keep an enum in a field \
                     of the actor struct",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_at(data.union_token.span, "`ActorState` can only be derived for a struct");
                return None;
            }
        };
        let style = match &data.fields {
            Fields::Named(_) => Style::Named,
            Fields::Unnamed(_) => Style::Tuple,
            Fields::Unit => Style::Unit,
        };
        let fields = data
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| Field::from_ast(cx, i, field))
            .collect();
        Some(Container { ident: &input.ident, generics: &input.generics, style, fields, attrs })
    }
}

impl ContainerAttrs {
    fn from_ast(cx: &Ctxt, attrs: &[syn::Attribute]) -> ContainerAttrs {
        let mut out = ContainerAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("amber")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    if let Some(name) = str_value(cx, "name", &meta, "\"bank.Account\"")? {
                        set_once(cx, &meta, &mut out.name, name);
                    }
                } else if meta.path.is_ident("version") {
                    if let Some(version) = u32_value(cx, "version", &meta)? {
                        set_once(cx, &meta, &mut out.version, version);
                    }
                } else if meta.path.is_ident("upgrade") {
                    if let Some(path) = path_value(cx, "upgrade", &meta, "\"Self::upgrade\"")? {
                        set_once(cx, &meta, &mut out.upgrade, path);
                    }
                } else if meta.path.is_ident("rebuild") {
                    if let Some(path) = path_value(cx, "rebuild", &meta, "\"Self::rebuild\"")? {
                        set_once(cx, &meta, &mut out.rebuild, path);
                    }
                } else if meta.path.is_ident("crate") {
                    if let Some(path) = path_value(cx, "crate", &meta, "\"::amber\"")? {
                        set_once(cx, &meta, &mut out.krate, path);
                    }
                } else if meta.path.is_ident("skip") || meta.path.is_ident("default") {
                    cx.error_spanned_by(
                        &meta.path,
                        "`skip` and `default` go on a field, not on the struct",
                    );
                    skip_value(&meta)?;
                } else {
                    cx.error_spanned_by(
                        &meta.path,
                        format_args!(
                            "unknown `amber` key `{}` on a struct; expected `name`, `version`, \
                             `upgrade`, `rebuild` or `crate`",
                            quote::ToTokens::to_token_stream(&meta.path)
                        ),
                    );
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        out
    }
}

impl<'a> Field<'a> {
    fn from_ast(cx: &Ctxt, index: usize, field: &'a syn::Field) -> Field<'a> {
        let member = match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(syn::Index { index: index as u32, span: field.ty.span() }),
        };
        let mut skip: Option<Span> = None;
        let mut default: Option<FieldDefault> = None;
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("amber")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("skip") {
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        cx.error_spanned_by(&meta.path, "`skip` takes no value: `#[amber(skip)]`");
                        skip_value(&meta)?;
                    }
                    let span = meta.path.span();
                    set_once(cx, &meta, &mut skip, span);
                } else if meta.path.is_ident("default") {
                    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
                        let bare = FieldDefault::Trait(meta.path.span());
                        set_once(cx, &meta, &mut default, bare);
                    } else if let Some(path) = path_value(cx, "default", &meta, "\"Vec::new\"")? {
                        set_once(cx, &meta, &mut default, FieldDefault::Path(path));
                    }
                } else {
                    cx.error_spanned_by(
                        &meta.path,
                        format_args!(
                            "unknown `amber` key `{}` on a field; expected `skip` or `default`",
                            quote::ToTokens::to_token_stream(&meta.path)
                        ),
                    );
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        Field { member, ty: &field.ty, skip: skip.is_some(), default }
    }
}
