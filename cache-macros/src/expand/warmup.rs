//! `#[warmup_cache(arg = value, ...)]`: registers a call of a cached function for startup warming.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Attribute, ItemFn};

use super::{has_receiver, krate, params, CACHING_ATTRS};
use crate::args::WarmupArgs;

/// `#[warmup_cache]` written above a caching attribute: checks, registers, leaves the function
/// for the caching attribute to expand.
pub(crate) fn expand(args: WarmupArgs, f: ItemFn, attr_tokens: TokenStream) -> syn::Result<TokenStream> {
    let cached = f.attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| CACHING_ATTRS.iter().any(|c| s.ident == c))
    });
    if !cached {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            "#[warmup_cache] needs a caching attribute (#[cache], #[cache_query], ...) on the same function: \
             warming an uncached function would do nothing",
        ));
    }
    let reg = registration_inner(&krate(None), &f, args, &attr_tokens)?;
    Ok(quote!(#f #reg))
}

/// Registration for a `#[warmup_cache]` found below a caching attribute.
pub(crate) fn registration(
    krate: &TokenStream,
    f: &ItemFn,
    args: WarmupArgs,
    attr: &Attribute,
) -> syn::Result<TokenStream> {
    let tokens = match &attr.meta {
        syn::Meta::List(l) => l.tokens.clone(),
        other => other.to_token_stream(),
    };
    registration_inner(krate, f, args, &tokens)
}

fn registration_inner(
    krate: &TokenStream,
    f: &ItemFn,
    args: WarmupArgs,
    attr_tokens: &TokenStream,
) -> syn::Result<TokenStream> {
    if let Some(r) = has_receiver(f) {
        return Err(syn::Error::new_spanned(
            r,
            "#[warmup_cache] cannot warm a method: there is no instance to call it on at startup",
        ));
    }
    if let Some(g) = f.sig.generics.params.first() {
        return Err(syn::Error::new_spanned(
            g,
            "#[warmup_cache] cannot warm a generic function",
        ));
    }
    let params = params(f);
    let mut call_args = Vec::new();
    for p in &params {
        let p = match p {
            Ok(p) => p,
            Err(pat) => {
                return Err(syn::Error::new_spanned(
                    pat,
                    "#[warmup_cache] needs named arguments; bind this one to a name",
                ))
            }
        };
        match args.values.iter().find(|(n, _)| n == p.name) {
            Some((_, v)) => {
                let ty = p.ty;
                // The type ascription makes a wrong value a type error at the value.
                call_args.push(quote!({ let __v: #ty = #v; __v }));
            }
            None => {
                return Err(syn::Error::new_spanned(
                    attr_tokens,
                    format!("#[warmup_cache] is missing a value for argument `{}`", p.name),
                ))
            }
        }
    }
    for (n, _) in &args.values {
        if !params.iter().any(|p| p.as_ref().is_ok_and(|p| p.name == n)) {
            return Err(syn::Error::new_spanned(
                n,
                format!("`{n}` is not an argument of this function"),
            ));
        }
    }
    let name = &f.sig.ident;
    let name_str = name.to_string();
    let args_str = attr_tokens.to_string();
    Ok(quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::WarmupEntry {
                function: ::core::concat!(::core::module_path!(), "::", #name_str),
                args: #args_str,
                run: || ::std::boxed::Box::pin(async {
                    let __r = #name(#(#call_args),*).await;
                    #[allow(unused_imports)]
                    use #krate::__private::{RetAny as _, RetResult as _};
                    if (&&#krate::__private::Ret(&__r)).__cache_success() {
                        ::core::result::Result::Ok(())
                    } else {
                        ::core::result::Result::Err(::std::borrow::ToOwned::to_owned("returned Err"))
                    }
                }),
            }
        }
    })
}
