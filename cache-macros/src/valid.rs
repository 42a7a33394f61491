//! Every check of an attribute against the function it is written on, between parsing (`args`,
//! `item`) and expansion (`expand`), as thiserror's `ast → valid → expand`. Each error is built
//! at the offending token; the expansion that follows may take what is checked here for granted.
//!
//! (Checks of the attribute's own syntax, such as a malformed TTL or template, are made while it
//! is parsed, in `args` and `template`.)

use proc_macro2::TokenStream;
use syn::{ReturnType, Type};

use crate::args::{CacheArgs, InvalidateArgs, WarmupArgs};
use crate::expand::cache::Preset;
use crate::expand::{has_receiver, is_warmup_attr, params, CACHING_ATTRS};
use crate::item::MaybeItemFn;

/// `#[cache]` and its presets, with the `#[warmup_cache]`s written below them.
pub(crate) fn cache(preset: Preset, args: &CacheArgs, f: &MaybeItemFn) -> syn::Result<()> {
    let attr = preset.attr();
    check_fn(f, attr, true)?;
    if f.sig.asyncness.is_none() {
        sync_options(args, f)?;
    }
    returns(&f.sig, attr)?;

    if let (Some(fixed), Some(p)) = (preset.fixed_prefix(), &args.prefix) {
        return Err(syn::Error::new_spanned(
            p,
            format!("#[{attr}] always uses the prefix \"{fixed}\"; use #[cache(prefix = ..)] for another"),
        ));
    }
    if let (Some(p), Some(_)) = (&args.prefix, &args.key) {
        return Err(syn::Error::new_spanned(
            p,
            "`key` already names the whole key; put the prefix into the key template instead",
        ));
    }
    if let (Some((soft, _)), None) = (&args.soft_timeout, &args.stale_if_error) {
        return Err(syn::Error::new_spanned(
            soft,
            "`soft_timeout` serves a stale value, so it needs `stale_if_error = ..` to keep one",
        ));
    }
    if args.auto_ttl.is_none() {
        let needs_auto = args
            .max_stale
            .as_ref()
            .map(|(n, _)| n)
            .or(args.ttl_bounds.as_ref().map(|(n, _, _)| n));
        if let Some(n) = needs_auto {
            return Err(syn::Error::new_spanned(
                n,
                format!("`{n}` tunes a learned TTL: it needs `ttl = \"auto\"`"),
            ));
        }
    }
    if let (Some(auto), Some(s)) = (&args.auto_ttl, &args.strategy) {
        if s == "adaptive" {
            return Err(syn::Error::new_spanned(
                auto,
                "`ttl = \"auto\"` learns the TTL; `strategy = adaptive` picks it from read counts: choose one",
            ));
        }
    }
    if let (Some((unless, _)), Some(_)) = (&args.unless, &args.stale_if_error) {
        return Err(syn::Error::new_spanned(
            unless,
            "`unless` cannot be combined with `stale_if_error`: a value left out of the cache could not be served stale",
        ));
    }
    if let (Some((n, _)), Some(l1)) = (&args.max_entries, &args.l1) {
        if !l1.value {
            return Err(syn::Error::new_spanned(
                n,
                "`max_entries` bounds the function's L1 entries, and `l1 = false` keeps it out of L1",
            ));
        }
    }
    if let Some((idle, d)) = &args.ttl_idle {
        if args.l1.as_ref().is_some_and(|l1| !l1.value) {
            return Err(syn::Error::new_spanned(
                idle,
                "`ttl_idle` slides the expiry of L1 entries, and `l1 = false` keeps the function out of L1 (Redis keeps its TTL)",
            ));
        }
        if args.stale_if_error.is_some() {
            return Err(syn::Error::new_spanned(
                idle,
                "`ttl_idle` cannot be combined with `stale_if_error`: an idle entry leaves L1, so there is no stale copy to serve",
            ));
        }
        if let Some(ttl) = &args.ttl {
            if d.0 >= ttl.0 {
                return Err(syn::Error::new_spanned(
                    idle,
                    "`ttl_idle` must be shorter than `ttl`: an entry lives at most its TTL, read or not",
                ));
            }
        }
    }
    if let (Some(i), None) = (&args.include_self, has_receiver(f)) {
        return Err(syn::Error::new_spanned(
            i,
            "`include_self` needs a method taking `self`",
        ));
    }

    let params = params(f);
    let named: Vec<_> = params.iter().filter_map(|p| p.as_ref().ok()).collect();
    for s in &args.skip {
        if !named.iter().any(|p| p.name == s) {
            return Err(syn::Error::new_spanned(
                s,
                format!("`{s}` in skip(..) is not an argument of this function"),
            ));
        }
    }
    if let Some(t) = &args.key {
        template_args(t, &named, "key template")?;
    } else if let Some(Err(pat)) = params.iter().find(|p| p.is_err()) {
        return Err(syn::Error::new_spanned(
            pat,
            "a destructured argument cannot be part of the default key; bind it to a name, or give a `key` template",
        ));
    }

    if args.key.is_none() {
        if let Some(g) = f
            .sig
            .generics
            .type_params()
            .next()
            .map(|t| &t.ident)
            .or_else(|| f.sig.generics.const_params().next().map(|c| &c.ident))
        {
            return Err(syn::Error::new_spanned(
                g,
                format!(
                    "#[{attr}] on a generic function needs an explicit `key = \"...\"`: the default key \
                     would have to name the type, and `type_name` changes between compiler versions, \
                     so entries written by one build would not be found by the next"
                ),
            ));
        }
    }
    if let Some(t) = &args.key {
        t.check_parts_separated()?;
    }
    for t in args.tags.iter().flat_map(|(_, t)| t) {
        template_args(t, &named, "tag")?;
    }
    warmups_below(f)
}

/// `#[cache_batch]`.
pub(crate) fn batch(args: &CacheArgs, f: &MaybeItemFn) -> syn::Result<()> {
    check_fn(f, "cache_batch", false)?;
    // The return type is checked by the type system (`__private::BatchReturn`), which sees
    // through aliases; only a missing one is caught here.
    returns(&f.sig, "cache_batch")?;
    let unsupported = [
        args.key.as_ref().map(|_| "key"),
        (!args.skip.is_empty()).then_some("skip"),
        args.l1.as_ref().map(|_| "l1"),
        args.skip_none.as_ref().map(|_| "skip_none"),
        args.include_self.as_ref().map(|_| "include_self"),
        args.strategy.as_ref().map(|_| "strategy"),
        args.stale_if_error.as_ref().map(|_| "stale_if_error"),
        args.soft_timeout.as_ref().map(|_| "soft_timeout"),
        args.tags.as_ref().map(|_| "tags"),
        args.condition.as_ref().map(|_| "condition"),
        args.unless.as_ref().map(|_| "unless"),
        args.max_entries.as_ref().map(|_| "max_entries"),
        args.ttl_idle.as_ref().map(|_| "ttl_idle"),
        args.companions.as_ref().map(|_| "companions"),
        args.auto_ttl
            .as_ref()
            .map(|_| "ttl = \"auto\" (a `ttl_auto` pattern in the configuration learns a batch's TTL)"),
        args.max_stale.as_ref().map(|_| "max_stale"),
        args.ttl_bounds.as_ref().map(|_| "ttl_bounds"),
    ];
    if let Some(name) = unsupported.into_iter().flatten().next() {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            format!("#[cache_batch] takes prefix, ttl, cache and crate; not `{name}`"),
        ));
    }
    if args.prefix.is_none() {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[cache_batch] needs `prefix = \"...\"`: each id is cached under `{prefix}:{id}`",
        ));
    }
    crate::expand::batch::id_param(f)?;
    warmups_below(f)
}

/// `#[invalidate_cache]`.
pub(crate) fn invalidate(args: &InvalidateArgs, f: &MaybeItemFn) -> syn::Result<()> {
    check_fn(f, "invalidate_cache", false)?;
    let params = params(f);
    let named: Vec<_> = params.iter().filter_map(|p| p.as_ref().ok()).collect();
    for t in &args.patterns {
        template_args(t, &named, "pattern")?;
    }
    for t in &args.tags {
        template_args(t, &named, "tag")?;
    }
    Ok(())
}

/// Every `{arg}` of a key template or pattern (`what`) names an argument of the function (or
/// `self`); the error is at the template.
fn template_args(
    t: &crate::template::Template,
    named: &[&crate::expand::Param<'_>],
    what: &str,
) -> syn::Result<()> {
    for a in t.args() {
        if a != "self" && !named.iter().any(|p| p.name == a) {
            let known: Vec<String> = named.iter().map(|p| p.name.to_string()).collect();
            return Err(syn::Error::new_spanned(
                &t.lit,
                format!(
                    "unknown argument `{a}` in {what}; arguments: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// `#[warmup_cache]` written above a caching attribute.
pub(crate) fn warmup_above(args: &WarmupArgs, f: &MaybeItemFn, attr_tokens: &TokenStream) -> syn::Result<()> {
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
    warmup(args, f, attr_tokens)
}

/// The `#[warmup_cache]`s below a caching attribute, which that attribute registers.
fn warmups_below(f: &MaybeItemFn) -> syn::Result<()> {
    for w in f.attrs.iter().filter(|a| is_warmup_attr(a)) {
        warmup(&w.parse_args()?, f, &crate::expand::warmup::attr_args(w))?;
    }
    Ok(())
}

/// One registration: a free, non-generic function, and a value for every argument.
fn warmup(args: &WarmupArgs, f: &MaybeItemFn, attr_tokens: &TokenStream) -> syn::Result<()> {
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
        if !args.values.iter().any(|(n, _)| n == p.name) {
            return Err(syn::Error::new_spanned(
                attr_tokens,
                format!("#[warmup_cache] is missing a value for argument `{}`", p.name),
            ));
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
    Ok(())
}

/// Caching attributes only make sense on `async fn`s that are not `const`.
/// A synchronous cached function reads L1 only and writes Redis in the background: the options
/// that need to wait on Redis are errors at their names.
fn sync_options(args: &CacheArgs, f: &MaybeItemFn) -> syn::Result<()> {
    let why = " needs to wait on Redis, which a synchronous function must not: make the function `async`";
    let name = |n: &syn::Ident| Err(syn::Error::new_spanned(n, format!("`{n}`{why}")));
    if let Some((n, _)) = &args.stale_if_error {
        return name(n);
    }
    if let Some((n, _)) = &args.tags {
        return name(n);
    }
    if let Some(l1) = &args.l1 {
        if !l1.value {
            return Err(syn::Error::new_spanned(
                l1,
                format!("a synchronous function reads only L1, so `l1 = false` would never hit{why}"),
            ));
        }
    }
    if let Some(a) = &args.auto_ttl {
        return Err(syn::Error::new_spanned(
            a,
            "`ttl = \"auto\"` learns from loads on the async path; a synchronous function takes `ttl = ..` or the pattern table",
        ));
    }
    let _ = f;
    Ok(())
}

fn check_fn(f: &MaybeItemFn, attr: &str, allow_sync: bool) -> syn::Result<()> {
    if let Some(c) = &f.sig.constness {
        return Err(syn::Error::new_spanned(
            c,
            format!("#[{attr}] cannot be used on a `const fn`"),
        ));
    }
    if f.sig.asyncness.is_none() && !allow_sync {
        return Err(syn::Error::new_spanned(
            f.sig.fn_token,
            format!("#[{attr}] applies to `async fn`s; make this function async"),
        ));
    }
    if let Some(v) = &f.sig.variadic {
        return Err(syn::Error::new_spanned(
            v,
            format!("#[{attr}] does not support variadic functions"),
        ));
    }
    Ok(())
}

/// The return type must be something a cache can hold. How it is cached (`Result` only on `Ok`,
/// `Option` unless `skip_none`) is left to the type system: `__private::Returns` sees through
/// aliases, which the written name does not.
fn returns(sig: &syn::Signature, attr: &str) -> syn::Result<()> {
    let ty = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new_spanned(
                &sig.ident,
                format!("#[{attr}] needs a return value to cache; this function returns ()"),
            ))
        }
        ReturnType::Type(_, ty) => ty,
    };
    match &**ty {
        Type::ImplTrait(t) => Err(syn::Error::new_spanned(
            t,
            format!("#[{attr}] cannot cache an `impl Trait` return; name a concrete type"),
        )),
        Type::Tuple(t) if t.elems.is_empty() => Err(syn::Error::new_spanned(
            t,
            format!("#[{attr}] needs a return value to cache; this function returns ()"),
        )),
        _ => Ok(()),
    }
}
