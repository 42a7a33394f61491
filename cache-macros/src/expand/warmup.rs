//! `#[warmup_cache(arg = value, ...)]`: registers a call of a cached function for startup warming.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::Attribute;

use super::{krate, params};
use crate::args::WarmupArgs;
use crate::item::MaybeItemFn;

/// `#[warmup_cache]` written above a caching attribute (accepted by `crate::valid::warmup_above`):
/// registers, and leaves the function for the caching attribute to expand.
pub(crate) fn expand(args: &WarmupArgs, f: &MaybeItemFn, attr_tokens: &TokenStream) -> TokenStream {
    let reg = registration_inner(&krate(None), f, args, attr_tokens);
    quote!(#f #reg)
}

/// The tokens inside `#[warmup_cache(..)]`.
pub(crate) fn attr_args(attr: &Attribute) -> TokenStream {
    match &attr.meta {
        syn::Meta::List(l) => l.tokens.clone(),
        other => other.to_token_stream(),
    }
}

/// Registration for a `#[warmup_cache]` found below a caching attribute.
pub(crate) fn registration(
    krate: &TokenStream,
    f: &MaybeItemFn,
    args: &WarmupArgs,
    attr: &Attribute,
) -> TokenStream {
    registration_inner(krate, f, args, &attr_args(attr))
}

fn registration_inner(
    krate: &TokenStream,
    f: &MaybeItemFn,
    args: &WarmupArgs,
    attr_tokens: &TokenStream,
) -> TokenStream {
    // `valid::warmup` saw a value for every argument.
    let call_args = params(f).into_iter().flatten().filter_map(|p| {
        let (_, v) = args.values.iter().find(|(n, _)| n == p.name)?;
        let ty = p.ty;
        // The type ascription makes a wrong value a type error at the value.
        Some(quote!({ let __v: #ty = #v; __v }))
    });
    let name = &f.sig.ident;
    let name_str = name.to_string();
    let args_str = attr_tokens.to_string();
    quote! {
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
    }
}
