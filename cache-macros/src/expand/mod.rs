//! One `expand` function per attribute, plus what they share.

pub(crate) mod batch;
pub(crate) mod cache;
pub(crate) mod companions;
pub(crate) mod invalidate;
pub(crate) mod warmup;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, Path, ReturnType, Type};

use crate::item::MaybeItemFn;

/// The crate path generated code names; `crate = path` overrides it.
pub(crate) fn krate(path: Option<&Path>) -> TokenStream {
    match path {
        Some(p) => quote!(#p),
        None => quote!(::cache_core),
    }
}

/// The cache a call uses: `(statement, expression)`. `let src = &(expr);` extends the life of a
/// temporary (e.g. `cache = my_cache()`) to the end of the function body.
pub(crate) fn cache_ref(krate: &TokenStream, cache: Option<&syn::Expr>) -> (TokenStream, TokenStream) {
    match cache {
        Some(e) => (
            quote!(let __cache_src = &(#e);),
            quote!(#krate::__private::AsCache::as_cache(__cache_src)),
        ),
        None => (quote!(), quote!(#krate::__private::global())),
    }
}

/// `Option<Duration>` tokens for an optional duration option.
pub(crate) fn duration_option(krate: &TokenStream, d: Option<std::time::Duration>) -> TokenStream {
    match d {
        Some(d) => {
            let ms = d.as_millis() as u64;
            quote!(::core::option::Option::Some(#krate::__private::Duration::from_millis(#ms)))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// On error: the original item plus the error, so the function still exists for the IDE and
/// for the rest of the crate, and only the real mistake is reported.
pub(crate) fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let e = err.to_compile_error();
    quote!(#item #e)
}

/// Attributes that expand into caching code; `#[warmup_cache]` needs one of them.
pub(crate) const CACHING_ATTRS: [&str; 6] = [
    "cache",
    "cache_result",
    "cache_query",
    "cache_resource",
    "cache_analysis",
    "cache_batch",
];

/// `#[warmup_cache(..)]`, however it is spelled (`#[cache_core::warmup_cache(..)]` too).
pub(crate) fn is_warmup_attr(a: &syn::Attribute) -> bool {
    a.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "warmup_cache")
}

/// A named parameter of the function.
pub(crate) struct Param<'a> {
    pub name: &'a Ident,
    pub ty: &'a Type,
}

/// The named parameters; a destructuring pattern is an error unless `allow_pattern` says it
/// may be left out (it is then skipped).
pub(crate) fn params(f: &MaybeItemFn) -> Vec<Result<Param<'_>, &Pat>> {
    f.sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Receiver(_) => None,
            FnArg::Typed(t) => Some(match &*t.pat {
                Pat::Ident(p) if p.subpat.is_none() => Ok(Param {
                    name: &p.ident,
                    ty: &t.ty,
                }),
                other => Err(other),
            }),
        })
        .collect()
}

pub(crate) fn has_receiver(f: &MaybeItemFn) -> Option<&syn::Receiver> {
    f.sig.inputs.iter().find_map(|a| match a {
        FnArg::Receiver(r) => Some(r),
        FnArg::Typed(_) => None,
    })
}

/// Appends one value to a `KeyBuf` by the `KeyPart` → `Display` → `Serialize` rule.
pub(crate) fn write_part(krate: &TokenStream, buf: &Ident, value: TokenStream) -> TokenStream {
    let span = value.span();
    quote_spanned! {span=>
        {
            #[allow(unused_imports)]
            use #krate::__private::{ViaDisplay as _, ViaKeyPart as _, ViaSerialize as _};
            (&&&#krate::__private::KeyArg(&#value)).__cache_write_key(&mut #buf);
        }
    }
}

/// The tags of one call, as an array expression of `KeyBuf`s: each template's text, and its
/// `{arg}`s written as in keys (the same injective encoding).
pub(crate) fn tag_values(krate: &TokenStream, tags: &[crate::template::Template]) -> TokenStream {
    let buf = quote::format_ident!("__t");
    let tags = tags.iter().map(|t| {
        let build = t.pieces.iter().map(|piece| match piece {
            crate::template::Piece::Text(s) => quote!(#buf.push_str(#s);),
            crate::template::Piece::Arg(a) if a == "self" => write_part(krate, &buf, quote!(self)),
            crate::template::Piece::Arg(a) => {
                let id = quote::format_ident!("{}", a);
                write_part(krate, &buf, quote!(#id))
            }
        });
        quote!({
            let mut #buf = #krate::__private::KeyBuf::new();
            #(#build)*
            #buf
        })
    });
    quote!([#(#tags),*])
}

/// The written return type (`()` when there is none), for the expansion to name: in the type
/// ascription of the body, and in `__private::Returns::<R>`, which picks how it is cached.
pub(crate) fn return_type(sig: &syn::Signature) -> TokenStream {
    match &sig.output {
        ReturnType::Default => quote_spanned!(sig.ident.span()=> ()),
        ReturnType::Type(_, ty) => quote!(#ty),
    }
}

/// The user's body as the block an expansion runs (inside `async move`), after `before`, with the
/// declared return type ascribed: `{ before; let __cache_ret: R = { body }; __cache_ret }`, as
/// tracing-attributes pins an instrumented body's type. A body of another type is then an error
/// at its own tail expression naming the declared type, not an unmet `Future<Output = R>` bound
/// of the generic cache call the body is passed to.
pub(crate) fn run_body(f: &MaybeItemFn, before: TokenStream) -> TokenStream {
    let ret = return_type(&f.sig);
    let body = f.body_block();
    quote! {{
        #before
        let __cache_ret: #ret = #body;
        __cache_ret
    }}
}
