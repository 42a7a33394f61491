//! `#[invalidate_cache("pattern", ...)]`: after a successful call, delete every matching key.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

use super::{cache_ref, check_fn, krate, params, write_part};
use crate::args::InvalidateArgs;
use crate::template::Piece;

pub(crate) fn expand(args: InvalidateArgs, mut f: ItemFn) -> syn::Result<TokenStream> {
    check_fn(&f, "invalidate_cache")?;
    let krate = krate(args.krate.as_ref());
    let params = params(&f);
    let named: Vec<_> = params.iter().filter_map(|p| p.as_ref().ok()).collect();

    let mut patterns = Vec::new();
    for t in &args.patterns {
        // Without a wildcard of its own the template names one key: build the key itself (its
        // arguments written as in the cached function's key) and delete it by name.
        let literal = t.pieces.iter().all(|p| match p {
            Piece::Text(s) => !s.contains(['*', '?', '[', '\\']),
            Piece::Arg(_) => true,
        });
        let mut build = Vec::new();
        for piece in &t.pieces {
            match piece {
                Piece::Text(s) => build.push(quote!(__k.push_str(#s);)),
                Piece::Arg(a) => {
                    let value = if a == "self" {
                        quote!(self)
                    } else if named.iter().any(|p| p.name == a) {
                        let id = format_ident!("{}", a);
                        quote!(#id)
                    } else {
                        let known: Vec<String> = named.iter().map(|p| p.name.to_string()).collect();
                        return Err(syn::Error::new_spanned(
                            &t.lit,
                            format!(
                                "unknown argument `{a}` in pattern; arguments: {}",
                                known.join(", ")
                            ),
                        ));
                    };
                    if literal {
                        build.push(write_part(&krate, &format_ident!("__k"), value));
                    } else {
                        let write = write_part(&krate, &format_ident!("__a"), value);
                        // The value is escaped: user input must never widen the pattern.
                        build.push(quote!({
                            let mut __a = #krate::__private::KeyBuf::new();
                            #write
                            __k.push_str(&#krate::__private::escape_glob(&__a));
                        }));
                    }
                }
            }
        }
        let variant = if literal {
            quote!(Key(__k))
        } else {
            quote!(Pattern(::std::borrow::ToOwned::to_owned(__k.as_str())))
        };
        patterns.push(quote!({
            let mut __k = #krate::__private::KeyBuf::new();
            #(#build)*
            #krate::__private::Invalidation::#variant
        }));
    }

    let (cache_src, cache) = cache_ref(&krate, args.cache.as_ref());
    let body = &f.block;
    let new_body: syn::Block = syn::parse_quote!({
        let __cache_patterns = [#(#patterns),*];
        let __cache_ret = async move #body.await;
        {
            #[allow(unused_imports)]
            use #krate::__private::{RetAny as _, RetResult as _};
            if (&&#krate::__private::Ret(&__cache_ret)).__cache_success() {
                #cache_src
                #krate::__private::invalidate(#cache, &__cache_patterns).await;
            }
        }
        __cache_ret
    });
    *f.block = new_body;
    Ok(quote!(#f))
}
