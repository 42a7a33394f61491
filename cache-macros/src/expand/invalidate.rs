//! `#[invalidate_cache("pattern", ...)]`: after a successful call, delete every matching key.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{cache_ref, krate, run_body, tag_values, write_part};
use crate::args::InvalidateArgs;
use crate::item::MaybeItemFn;
use crate::template::Piece;

/// Expands a function that `crate::valid::invalidate` accepted.
pub(crate) fn expand(args: InvalidateArgs, f: &MaybeItemFn) -> TokenStream {
    let krate = krate(args.krate.as_ref());

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
                    } else {
                        let id = format_ident!("{}", a);
                        quote!(#id)
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

    for c in &args.calls {
        // `f(a, b)` becomes `f_key(a.clone(), b.clone())`: the compiler checks the name, the
        // arity and each type at the user's tokens; the clones leave the arguments to the body.
        let mut func = c.func.clone();
        if let syn::Expr::Path(p) = &mut *func {
            if let Some(last) = p.path.segments.last_mut() {
                last.ident = format_ident!("{}_key", last.ident, span = last.ident.span());
            }
        }
        let call_args = c.args.iter().map(|a| {
            let span = syn::spanned::Spanned::span(a);
            // The `let` types the clone by the argument alone; the block's value is then
            // coerced to the parameter's type (`&String` to `&str`).
            quote::quote_spanned!(span=> { let __a = ::core::clone::Clone::clone(&(#a)); __a })
        });
        patterns.push(quote!({
            let mut __k = #krate::__private::KeyBuf::new();
            __k.push_str(&#func(#(#call_args),*));
            #krate::__private::Invalidation::Key(__k)
        }));
    }

    let (cache_src, cache) = cache_ref(&krate, args.cache.as_ref());
    let body = run_body(f, quote!());
    // Written before the body runs: it may consume the arguments.
    let tags = if args.tags.is_empty() {
        quote! {
            let __cache_tags: [&str; 0] = [];
        }
    } else {
        let values = tag_values(&krate, &args.tags);
        quote! {
            let __cache_tag_bufs = #values;
            let __cache_tags = #krate::__private::tag_refs(&__cache_tag_bufs);
        }
    };
    let new_body = quote! {
        let __cache_patterns: &[#krate::__private::Invalidation] = &[#(#patterns),*];
        #tags
        let __cache_ret = async move #body.await;
        {
            #[allow(unused_imports)]
            use #krate::__private::{RetAny as _, RetResult as _};
            if (&&#krate::__private::Ret(&__cache_ret)).__cache_success() {
                #cache_src
                #krate::__private::invalidate(#cache, __cache_patterns, &__cache_tags).await;
            }
        }
        __cache_ret
    };
    f.with_body(new_body)
}
