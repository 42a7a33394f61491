//! `#[cache_batch(prefix = "resource:users")]` on `async fn f(ids: &[Id], ..) -> HashMap<Id, V>`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, GenericArgument, Pat, PathArguments, Type};

use super::{cache_ref, duration_option, krate, return_type, run_body, write_part};
use crate::args::CacheArgs;
use crate::item::MaybeItemFn;

/// The id collection parameter: its name, element type, and whether it is a slice (`&[Id]`).
pub(crate) fn id_param(f: &MaybeItemFn) -> syn::Result<(syn::Ident, Type, bool)> {
    let first = f.sig.inputs.iter().find_map(|a| match a {
        FnArg::Typed(t) => Some(t),
        FnArg::Receiver(_) => None,
    });
    let Some(arg) = first else {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            "#[cache_batch] needs the ids as the first argument (`ids: &[Id]` or `ids: Vec<Id>`)",
        ));
    };
    let Pat::Ident(name) = &*arg.pat else {
        return Err(syn::Error::new_spanned(&arg.pat, "name the ids argument"));
    };
    let not_ids = || syn::Error::new_spanned(&arg.ty, "the ids argument must be `&[Id]` or `Vec<Id>`");
    match &*arg.ty {
        Type::Reference(r) => match &*r.elem {
            Type::Slice(s) => Ok((name.ident.clone(), (*s.elem).clone(), true)),
            _ => Err(not_ids()),
        },
        Type::Path(p) => {
            let seg = p.path.segments.last().ok_or_else(not_ids)?;
            match (&seg.arguments, seg.ident == "Vec") {
                (PathArguments::AngleBracketed(a), true) => match a.args.first() {
                    Some(GenericArgument::Type(t)) => Ok((name.ident.clone(), t.clone(), false)),
                    _ => Err(not_ids()),
                },
                _ => Err(not_ids()),
            }
        }
        _ => Err(not_ids()),
    }
}

/// Expands a function that `crate::valid::batch` accepted.
pub(crate) fn expand(args: CacheArgs, f: &MaybeItemFn) -> syn::Result<TokenStream> {
    let prefix = args.prefix.as_ref().map(syn::LitStr::value).unwrap_or_default();
    let (ids, id_ty, slice) = id_param(f)?;
    let krate = krate(args.krate.as_ref());
    let ret = return_type(&f.sig);
    let check_return = quote::quote_spanned!(syn::spanned::Spanned::span(&ret)=>
        #krate::__private::batch_returns::<#ret, #id_ty>();
    );
    let head = format!("{prefix}:");
    let k = format_ident!("__k");
    let write = write_part(&krate, &k, quote!(__id));
    let (cache_src, cache) = cache_ref(&krate, args.cache.as_ref());
    let ttl = duration_option(&krate, args.ttl.map(|t| t.0));
    let (as_slice, rebind) = if slice {
        (quote!(#ids), quote!(let #ids: &[#id_ty] = &__missing[..];))
    } else {
        (
            quote!((&#ids[..])),
            quote!(let #ids: ::std::vec::Vec<#id_ty> = __missing;),
        )
    };
    let body = run_body(f, rebind);
    let fn_name = f.sig.ident.to_string();
    let new_body = quote! {
        static __CACHE_FN: #krate::__private::FnStats =
            #krate::__private::FnStats::new(::core::concat!(::core::module_path!(), "::", #fn_name));
        // Trait methods by their path: the caller's module may have no prelude.
        let __cache_keys: ::std::vec::Vec<#krate::__private::KeyBuf> = ::core::iter::Iterator::collect(
            ::core::iter::Iterator::map(#as_slice.iter(), |__id| {
                let mut #k = #krate::__private::KeyBuf::new();
                #k.push_str(#head);
                #write
                #k
            }),
        );
        #check_return
        #cache_src
        #krate::__private::outlined(#krate::__private::cached_batch(
            #cache,
            #as_slice,
            &__cache_keys,
            #ttl,
            &__CACHE_FN,
            move |__missing: ::std::vec::Vec<#id_ty>| async move #body,
        ))
        .await
    };
    // `#[warmup_cache(ids = ..)]` below this attribute: a batch warmup through the same path.
    let (warmups, rest): (Vec<syn::Attribute>, Vec<syn::Attribute>) =
        f.attrs.iter().cloned().partition(crate::expand::is_warmup_attr);
    let f = &MaybeItemFn {
        attrs: rest,
        ..f.clone()
    };
    let mut registrations = Vec::new();
    for w in &warmups {
        registrations.push(super::warmup::registration(&krate, f, &w.parse_args()?, w));
    }
    let f = f.with_body(new_body);
    Ok(quote!(#f #(#registrations)*))
}
