//! The companions of a cached function `f`: `f_key`, `f_invalidate`, `f_invalidate_all`,
//! `f_refresh`, `f_uncached`, `f_peek`, written beside it with its visibility, generics and
//! `cfg`s. `f_uncached` holds the body as the user wrote it, and `f` calls it on a miss; the
//! others build the key with the same code `f` does, so they cannot disagree with it.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::{parse_quote, Attribute, FnArg, Ident, Pat, Signature};

use super::has_receiver;
use crate::item::MaybeItemFn;

/// Whether the tokens name `Self` or `self` (`word`).
pub(crate) fn mentions(tokens: TokenStream, word: &str) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == word,
        TokenTree::Group(g) => mentions(g.stream(), word),
        _ => false,
    })
}

/// A call of the function's sibling `name` from its own body: `Self::x({ self }, ..)` for a
/// method (the block moves a `&mut self` rather than reborrowing it), `Self::x(..)` when the
/// signature names `Self`, else `x(..)`, with the generic arguments named when the call can (not
/// beside `impl Trait` arguments). An associated function that names neither `self` nor `Self`
/// cannot be told from a free one: it needs `companions = false`.
pub(crate) fn sibling_call(f: &MaybeItemFn, name: &Ident, args: &[TokenStream]) -> TokenStream {
    let params: Vec<TokenStream> = f
        .sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t.ident.to_token_stream()),
            syn::GenericParam::Const(c) => Some(c.ident.to_token_stream()),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    let impl_args = f.sig.inputs.iter().any(|a| mentions(a.to_token_stream(), "impl"));
    let turbofish = (!params.is_empty() && !impl_args).then(|| quote!(::<#(#params),*>));
    if has_receiver(f).is_some() {
        quote!(Self::#name #turbofish({ self }, #(#args),*))
    } else if mentions(f.sig.to_token_stream(), "Self") {
        quote!(Self::#name #turbofish(#(#args),*))
    } else {
        quote!(#name #turbofish(#(#args),*))
    }
}

/// `sig` without the generic parameters its inputs and output no longer name (a companion that
/// takes only the key's arguments could not infer them), nor the bounds on them.
fn prune_generics(sig: &mut Signature) {
    let used = {
        let inputs = &sig.inputs;
        let output = &sig.output;
        quote!(#inputs #output)
    };
    let keep = |p: &syn::GenericParam| match p {
        syn::GenericParam::Type(t) => mentions(used.clone(), &t.ident.to_string()),
        syn::GenericParam::Const(c) => mentions(used.clone(), &c.ident.to_string()),
        syn::GenericParam::Lifetime(_) => true,
    };
    let dropped: Vec<String> = sig
        .generics
        .params
        .iter()
        .filter(|p| !keep(p))
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t.ident.to_string()),
            syn::GenericParam::Const(c) => Some(c.ident.to_string()),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    if dropped.is_empty() {
        return;
    }
    sig.generics.params = std::mem::take(&mut sig.generics.params)
        .into_iter()
        .filter(|p| keep(p))
        .collect();
    if let Some(w) = &mut sig.generics.where_clause {
        w.predicates = std::mem::take(&mut w.predicates)
            .into_iter()
            .filter(|pred| !dropped.iter().any(|d| mentions(pred.to_token_stream(), d)))
            .collect();
    }
}

/// The signature the cached function keeps, and the arguments its body call passes on: a
/// destructured argument gets a name (`__cache_arg{i}`), and `mut` goes (the body that needs it
/// moved to `f_uncached`).
pub(crate) fn forwarding_sig(sig: &Signature) -> (Signature, Vec<TokenStream>) {
    let mut sig = sig.clone();
    let mut call = Vec::new();
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        if let FnArg::Typed(t) = arg {
            match &mut *t.pat {
                Pat::Ident(p) if p.subpat.is_none() => {
                    p.mutability = None;
                    let id = &p.ident;
                    // A block moves a `&mut` argument instead of reborrowing it, which the
                    // closure that makes the call could not return.
                    call.push(quote!({ #id }));
                }
                other => {
                    let id = format_ident!("__cache_arg{}", i);
                    *other = parse_quote!(#id);
                    call.push(quote!({ #id }));
                }
            }
        }
    }
    (sig, call)
}

/// The attributes a companion shares with the function: its `cfg`s and `allow`s. (Not
/// `cfg_attr`, which may wrap an attribute about arguments a companion lacks, nor `expect`,
/// which a companion's own `allow` would leave unfulfilled.)
pub(crate) fn shared_attrs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().get_ident().is_some_and(|i| i == "cfg" || i == "allow"))
        .collect()
}

/// What the expansion of `f` knows that its companions need.
pub(crate) struct Parts<'a> {
    pub f: &'a MaybeItemFn,
    pub krate: &'a TokenStream,
    /// Statements that declare `__cache_key` (a `KeyBuf`) and write the key into it.
    pub build: &'a TokenStream,
    /// The glob of every key of the function, as statements over `__cache_space`.
    pub space: &'a TokenStream,
    /// `let __cache_src = ..;` and the `&Cache` expression.
    pub cache_src: &'a TokenStream,
    pub cache: &'a TokenStream,
    /// `cache_src` for `f_refresh`, which passes every argument on to the body: a cache named
    /// by an argument is cloned first (`&Cache`, `Arc<Cache>` and `Cache` are `Clone`).
    pub refresh_cache_src: &'a TokenStream,
    /// `__cache_opts`, `__cache_rule` and the statistics, as in the function.
    pub setup: &'a TokenStream,
    /// `let __cache_rule = ..;`: how the return type is cached, as in the function.
    pub rule: &'a TokenStream,
    /// The tags of a call, as statements, and their reference.
    pub make_tags: &'a TokenStream,
    pub tags: &'a TokenStream,
    pub skip_none: bool,
    pub unless: &'a TokenStream,
    pub ret: &'a TokenStream,
    /// The arguments that make the key.
    pub key_args: Vec<&'a FnArg>,
    /// The arguments the `cache = ..` expression names (the key companions that reach the
    /// cache take them too).
    pub cache_args: Vec<&'a FnArg>,
    /// `let __cache_on: bool = ..;` (`condition`), or nothing.
    pub condition: &'a TokenStream,
    /// `LoadOptions` for `f_peek`: only whether L1 is read.
    pub peek_opts: &'a TokenStream,
    /// Whether `self` names the cache: the companions that reach it take `&self`.
    pub light_self: bool,
    /// Whether `self` makes the key (`include_self`, or `{self}` in the template): `f_key`
    /// takes `&self`.
    pub key_self: bool,
    /// Whether the function is `async` (else `f_refresh` and `f_uncached` are synchronous).
    pub is_async: bool,
}

/// The six companions.
pub(crate) fn companions(p: &Parts<'_>) -> TokenStream {
    let f = p.f;
    let name = &f.sig.ident;
    let vis = &f.vis;
    let krate = p.krate;
    let attrs = shared_attrs(&f.attrs);
    let allow =
        quote!(#[allow(dead_code, unused_variables, clippy::too_many_arguments, clippy::needless_lifetimes)]);
    // `#[inline]`: a companion nobody calls is then never compiled to machine code (what
    // `scripts/compile-cost.sh` measures would otherwise grow with every unused one).
    let lazy = quote!(#[inline]);
    let doc_name = name.to_string();

    // `f_uncached`: the body as written, under the original signature.
    let uncached_name = format_ident!("{}_uncached", name);
    let mut sig = f.sig.clone();
    sig.ident = uncached_name.clone();
    let inner = &f.inner_attrs;
    let body = &f.body;
    // The user's braces' span: an error about the block as a whole points there.
    let mut block = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, quote!(#(#inner)* #body));
    block.set_span(f.brace_token.span.join());
    let doc = format!(" Runs `{doc_name}`'s body without the cache: nothing is read or stored.");
    let uncached = quote! {
        #(#attrs)* #allow #[doc = #doc]
        #vis #sig #block
    };

    // `f_refresh`: all the arguments, as `f` takes them.
    let (fwd, call) = forwarding_sig(&f.sig);
    let mut sig = fwd;
    sig.ident = format_ident!("{}_refresh", name);
    let call_uncached = sibling_call(f, &uncached_name, &call);
    let condition = p.condition;
    let (make_tags, tags, unless) = (p.make_tags, p.tags, p.unless);
    let skip_none = p.skip_none;
    let dot_await = p.is_async.then(|| quote!(.await));
    let bypass =
        (!condition.is_empty()).then(|| quote!(if !__cache_on { return #call_uncached #dot_await; }));
    let store = if p.is_async {
        quote!(__cache_rule.refresh(__cache, &__cache_key, __cache_fp, __cache_opts, &__CACHE_FN, #skip_none, #tags, #unless,
                #call_uncached).await)
    } else {
        quote!(__cache_rule.run_sync(__cache, &__cache_key, __cache_fp, &__cache_opts, &__CACHE_FN, #skip_none, #unless,
                move || #call_uncached))
    };
    let (cache_src, cache, setup, build) = (p.refresh_cache_src, p.cache, p.setup, p.build);
    let doc = format!(
        " Runs `{doc_name}`'s body now and stores what it returns, as a miss would, without reading \
         the cache first (warmers, after a write). A value the function does not cache (an `Err`, \
         `None` under `skip_none`, one `unless` refuses) is returned; for the last two the stale \
         entry is deleted."
    );
    let refresh = quote! {
        #(#attrs)* #allow #lazy #[doc = #doc]
        #vis #sig {
            #condition
            #bypass
            #build
            #cache_src
            let __cache = #cache;
            #setup
            let __cache_fp = __cache_key.fingerprint();
            #make_tags
            #store
        }
    };
    let cache_src = p.cache_src;

    // The key companions: the key's arguments only.
    // `with_args`: the key's arguments; `with_cache`: the argument naming the cache, if any.
    let light = |suffix: &str, asyncness: bool, output: TokenStream, with_args: bool, with_cache: bool| {
        let mut sig = f.sig.clone();
        sig.ident = format_ident!("{}_{}", name, suffix);
        sig.asyncness = asyncness.then(|| syn::token::Async(Span::call_site()));
        let mut inputs: Vec<FnArg> = Vec::new();
        if (p.light_self && with_cache) || (p.key_self && with_args) {
            inputs.push(parse_quote!(&self));
        }
        // In the function's order.
        inputs.extend(
            f.sig
                .inputs
                .iter()
                .filter(|a| (with_args && p.key_args.contains(a)) || (with_cache && p.cache_args.contains(a)))
                .map(|a| strip_mut(a.clone())),
        );
        sig.inputs = inputs.into_iter().collect();
        sig.output = syn::parse2(quote!(-> #output)).unwrap_or(syn::ReturnType::Default);
        prune_generics(&mut sig);
        sig
    };
    let ret = p.ret;
    let sig = light("key", false, quote!(::std::string::String), true, false);
    let doc =
        format!(" The cache key of `{doc_name}` for these arguments: the exact text it reads and writes.");
    let key = quote! {
        #(#attrs)* #allow #lazy #[doc = #doc]
        #vis #sig {
            #build
            ::std::string::ToString::to_string(__cache_key.as_str())
        }
    };
    let sig = light("invalidate", true, quote!(#krate::Result<bool>), true, true);
    let doc = format!(
        " Deletes `{doc_name}`'s entry for these arguments from L1, Redis and the disk tier, and \
         from other instances' L1; `Ok(true)` when there was one."
    );
    let invalidate = quote! {
        #(#attrs)* #allow #lazy #[doc = #doc]
        #vis #sig {
            #build
            #cache_src
            #krate::__private::invalidate_key(#cache, __cache_key.as_str()).await
        }
    };
    let sig = light("invalidate_all", true, quote!(#krate::Result<u64>), false, true);
    let space = p.space;
    let doc = format!(" Deletes every entry of `{doc_name}`, whatever its arguments; returns how many.");
    let invalidate_all = quote! {
        #(#attrs)* #allow #lazy #[doc = #doc]
        #vis #sig {
            let mut __cache_space = #krate::__private::KeySpace::new();
            #space
            #cache_src
            #krate::__private::invalidate_space(#cache, __cache_space.as_str()).await
        }
    };
    let (peek_opts, rule) = (p.peek_opts, p.rule);
    let sig = light("peek", true, quote!(::core::option::Option<#ret>), true, true);
    let doc = format!(
        " `{doc_name}`'s cached answer for these arguments, from L1 or Redis, or `None`; never \
         runs the body."
    );
    let peek = quote! {
        #(#attrs)* #allow #lazy #[doc = #doc]
        #vis #sig {
            #build
            #cache_src
            #rule
            __cache_rule.peek(#cache, &__cache_key, &#peek_opts).await
        }
    };
    quote!(#uncached #refresh #key #invalidate #invalidate_all #peek)
}

fn strip_mut(mut a: FnArg) -> FnArg {
    if let FnArg::Typed(t) = &mut a {
        if let Pat::Ident(p) = &mut *t.pat {
            p.mutability = None;
        }
    }
    a
}
