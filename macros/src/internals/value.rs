//! Values of `key = value` attribute arguments: each helper records a clear error at the
//! value's span when it has the wrong kind, and always consumes the value so that parsing
//! goes on with the next key.

use proc_macro2::{Group, Span};
use syn::meta::ParseNestedMeta;
use syn::parse::Parse;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Token};

use super::Ctxt;

/// Consumes the value of a key that was rejected (`= expr` or `(...)`), if any.
pub(crate) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: Group = meta.input.parse()?;
    }
    Ok(())
}

/// Parses `= <expr>`, looking through invisible groups.
fn expr_value(meta: &ParseNestedMeta<'_>) -> syn::Result<Expr> {
    let mut expr: Expr = meta.value()?.parse()?;
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    Ok(expr)
}

/// `key = "string"`.
pub(crate) fn str_value(
    cx: &Ctxt,
    key: &str,
    meta: &ParseNestedMeta<'_>,
    example: &str,
) -> syn::Result<Option<LitStr>> {
    match expr_value(meta)? {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Ok(Some(lit)),
        other => {
            cx.error_spanned_by(
                other,
                format_args!("`{key}` takes a string literal, e.g. `{key} = {example}`"),
            );
            Ok(None)
        }
    }
}

/// `key = 123`, as a `u32`.
pub(crate) fn u32_value(
    cx: &Ctxt,
    key: &str,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<(u32, Span)>> {
    match expr_value(meta)? {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => match int.base10_parse::<u32>() {
            Ok(value) => Ok(Some((value, int.span()))),
            Err(_) => {
                cx.error_spanned_by(&int, format_args!("`{key}` must fit in a `u32`"));
                Ok(None)
            }
        },
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
            cx.error_spanned_by(
                &s,
                format_args!(
                    "`{key}` takes an integer, not a string: write `{key} = {}`",
                    s.value().trim()
                ),
            );
            Ok(None)
        }
        other => {
            cx.error_spanned_by(
                other,
                format_args!("`{key}` takes an integer literal, e.g. `{key} = 2`"),
            );
            Ok(None)
        }
    }
}

/// `key = "path"` or `key = path`, parsed as `T` (a path to a function, or a crate path).
pub(crate) fn path_value<T: Parse>(
    cx: &Ctxt,
    key: &str,
    meta: &ParseNestedMeta<'_>,
    example: &str,
) -> syn::Result<Option<T>> {
    let expr = expr_value(meta)?;
    let parsed = match &expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => s.parse::<T>(),
        Expr::Path(path) => syn::parse2::<T>(quote::ToTokens::to_token_stream(path)),
        _ => Err(syn::Error::new(expr.span(), "")),
    };
    match parsed {
        Ok(value) => Ok(Some(value)),
        Err(_) => {
            cx.error_spanned_by(
                &expr,
                format_args!("`{key}` takes a path, e.g. `{key} = {example}`"),
            );
            Ok(None)
        }
    }
}

/// Records "duplicate key" if `slot` is already set.
pub(crate) fn set_once<T>(cx: &Ctxt, meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(
            &meta.path,
            format_args!("duplicate `{}`", quote::ToTokens::to_token_stream(&meta.path)),
        );
    } else {
        *slot = Some(value);
    }
}
