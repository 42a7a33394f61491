//! `#[cache]` and its presets `#[cache_result]`, `#[cache_query]`, `#[cache_resource]`,
//! `#[cache_analysis]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Attribute;

use super::{
    cache_ref, duration_option, krate, params, return_type, run_body, tag_values, warmup, write_part, Param,
};
use crate::args::CacheArgs;
use crate::item::MaybeItemFn;
use crate::template::Piece;

/// Which attribute is being expanded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Preset {
    Cache,
    CacheResult,
    Query,
    Resource,
    Analysis,
}

impl Preset {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Preset::Cache => "cache",
            Preset::CacheResult => "cache_result",
            Preset::Query => "cache_query",
            Preset::Resource => "cache_resource",
            Preset::Analysis => "cache_analysis",
        }
    }

    pub(crate) fn fixed_prefix(self) -> Option<&'static str> {
        match self {
            Preset::Query => Some("query"),
            Preset::Resource => Some("resource"),
            Preset::Analysis => Some("analysis"),
            Preset::Cache | Preset::CacheResult => None,
        }
    }
}

/// Expands a function that `crate::valid::cache` accepted.
pub(crate) fn expand(preset: Preset, args: CacheArgs, f: &MaybeItemFn) -> syn::Result<TokenStream> {
    let ret = return_type(&f.sig);
    let krate = krate(args.krate.as_ref());

    // Which parameters go into the key.
    let params = params(f);
    let named: Vec<_> = params.iter().filter_map(|p| p.as_ref().ok()).collect();

    // `cache = some_arg` names the cache through an argument: it is never part of the key.
    let cache_arg = match &args.cache {
        Some(syn::Expr::Path(p)) if p.qself.is_none() => p
            .path
            .get_ident()
            .filter(|i| named.iter().any(|n| n.name == *i))
            .cloned(),
        _ => None,
    };
    let skipped = |name: &syn::Ident| args.skip.iter().any(|s| s == name) || cache_arg.as_ref() == Some(name);

    let buf = format_ident!("__cache_key");
    let tail = tail_key(preset, &args, f, &named, &skipped);
    let mut build = Vec::new();
    // The function's key space as a glob, for `f_invalidate_all`.
    let mut space = Vec::new();
    let push = |s: &str| quote!(#buf.push_str(#s););
    let space_text = |s: TokenStream| quote!(__cache_space.text(#s););
    let space_arg = quote!(__cache_space.arg(););
    // The arguments the key is written from (for the key companions' signatures).
    let mut key_names: Vec<String> = Vec::new();
    match &args.key {
        Some(t) => {
            if let Some(fixed) = preset.fixed_prefix() {
                build.push(push(&format!("{fixed}:")));
                space.push(space_text(quote!(::core::concat!(#fixed, ":"))));
            }
            for piece in &t.pieces {
                build.push(match piece {
                    Piece::Text(s) => {
                        space.push(space_text(quote!(#s)));
                        push(s)
                    }
                    Piece::Arg(a) if a == "self" => {
                        space.push(space_arg.clone());
                        write_part(&krate, &buf, quote!(self))
                    }
                    Piece::Arg(a) => {
                        space.push(space_arg.clone());
                        key_names.push(a.clone());
                        let id = format_ident!("{}", a);
                        write_part(&krate, &buf, quote!(#id))
                    }
                });
            }
        }
        None => {
            let head = default_head(preset, &args, f, false);
            build.push(quote!(#buf.push_str(#head);));
            space.push(space_text(head.clone()));
            if args.include_self.is_some() {
                build.push(push(":"));
                build.push(write_part(&krate, &buf, quote!(self)));
                space.push(space_text(quote!(":")));
                space.push(space_arg.clone());
            }
            for p in named.iter().filter(|p| !skipped(p.name)) {
                let id = p.name;
                key_names.push(id.to_string());
                build.push(push(":"));
                build.push(write_part(&krate, &buf, quote!(#id)));
                space.push(space_text(quote!(":")));
                space.push(space_arg.clone());
            }
        }
    }

    let (cache_src, cache) = cache_ref(&krate, args.cache.as_ref());
    let ttl = duration_option(&krate, args.ttl.map(|t| t.0));
    let use_l1 = args.l1.as_ref().is_none_or(|b| b.value);
    let adaptive = match &args.strategy {
        Some(s) if s == "adaptive" => quote!(::core::option::Option::Some(true)),
        Some(_) => quote!(::core::option::Option::Some(false)),
        None => quote!(::core::option::Option::None),
    };
    let stale_for = duration_option(&krate, args.stale_if_error.as_ref().map(|(_, t)| t.0));
    let soft_timeout = duration_option(&krate, args.soft_timeout.as_ref().map(|(_, t)| t.0));
    let auto_ttl = match &args.auto_ttl {
        Some(_) => {
            // What the attribute leaves out comes from `AutoTtl::DEFAULT`.
            let stale = match &args.max_stale {
                Some((_, s)) => quote!(#s),
                None => quote!(#krate::__private::AutoTtl::DEFAULT.max_stale),
            };
            let (min, max) = match &args.ttl_bounds {
                Some((_, a, b)) => {
                    let (a, b) = (a.0.as_millis() as u64, b.0.as_millis() as u64);
                    (
                        quote!(#krate::__private::Duration::from_millis(#a)),
                        quote!(#krate::__private::Duration::from_millis(#b)),
                    )
                }
                None => (
                    quote!(#krate::__private::AutoTtl::DEFAULT.min),
                    quote!(#krate::__private::AutoTtl::DEFAULT.max),
                ),
            };
            quote!(::core::option::Option::Some(#krate::__private::AutoTtl::new(#stale, #min, #max)))
        }
        None => quote!(::core::option::Option::None),
    };
    let stats = format_ident!("__CACHE_FN");
    let fn_name = f.sig.ident.to_string();
    let ttl_idle = duration_option(&krate, args.ttl_idle.as_ref().map(|(_, t)| t.0));
    let (limit_static, limit) = match &args.max_entries {
        Some((_, n)) => (
            // Named after the function, so that `f_refresh`'s stores count against the same bound.
            quote!(static __CACHE_LIMIT: #krate::__private::EntryLimit = #krate::__private::EntryLimit::new(
                #n, ::core::concat!(::core::module_path!(), "::", #fn_name), &#stats);),
            quote!(::core::option::Option::Some(&__CACHE_LIMIT)),
        ),
        None => (quote!(), quote!(::core::option::Option::None)),
    };
    let opts = quote!(#krate::__private::LoadOptions {
        ttl: #ttl,
        use_l1: #use_l1,
        adaptive: #adaptive,
        stale_for: #stale_for,
        soft_timeout: #soft_timeout,
        auto_ttl: #auto_ttl,
        max_entries: #limit,
        ttl_idle: #ttl_idle,
    });
    let companions_on = args.companions.as_ref().is_none_or(|b| b.value);
    // The body: in `f_uncached` when there are companions, else here. A fail-safe load may
    // finish in the background, so its future must own what it uses: a call of `f_uncached`
    // would take every argument (a `&Cache` among them), the body alone takes what it names.
    // There the body is written twice, here and in `f_uncached`.
    // So is a cache passed as an argument: the call would move it while the load borrows it.
    let (sig, body_fn) = if companions_on && args.stale_if_error.is_none() && cache_arg.is_none() {
        let (sig, call) = super::companions::forwarding_sig(&f.sig);
        let call = super::companions::sibling_call(f, &format_ident!("{}_uncached", f.sig.ident), &call);
        (sig, quote!(move || #call))
    } else {
        let body = run_body(f, quote!());
        if f.sig.asyncness.is_some() {
            (f.sig.clone(), quote!(move || async move #body))
        } else {
            (f.sig.clone(), quote!(move || #body))
        }
    };
    let fp = format_ident!("__cache_fp");
    let cache_ref = format_ident!("__cache");
    let opts_id = format_ident!("__cache_opts");
    let fail_safe = args.stale_if_error.is_some();
    let key_ref = if tail.is_some() {
        quote!(#buf.buf())
    } else {
        quote!(&#buf)
    };
    let skip_none = args.skip_none.is_some();
    // Tags are written only on a miss: a hit needs none of their text.
    let (make_tags, tags) = match &args.tags {
        Some((_, templates)) => {
            let values = tag_values(&krate, templates);
            (
                quote! {
                    let __cache_tag_bufs = #values;
                    let __cache_tags = #krate::__private::tag_refs(&__cache_tag_bufs);
                },
                quote!(&__cache_tags),
            )
        }
        None => (quote!(), quote!(&[])),
    };
    // Written where the rule's `load` takes it, so a closure's argument type is inferred.
    let unless = match &args.unless {
        Some((_, e)) => quote_spanned!(e.span()=> #e),
        None => quote!(|_| false),
    };
    // The rule is picked by the return type itself (see `__private::Returns`), so an alias of
    // `Result` caches only `Ok` like `Result` does.
    let is_async = f.sig.asyncness.is_some();
    let call = if !is_async {
        // A synchronous function: L1 only on the read side, nothing awaited (see
        // `cache_core::__private::ValueRule::run_sync`).
        quote!(__cache_rule.run_sync(#cache_ref, #key_ref, #fp, &#opts_id, &#stats, #skip_none, #unless, __cache_body))
    } else if fail_safe {
        quote!(#krate::__private::outlined(__cache_rule.load_fail_safe(#cache_ref, #key_ref, #fp, #opts_id, &#stats, #tags, __cache_body)))
    } else {
        quote!(#krate::__private::outlined(__cache_rule.load(#cache_ref, #key_ref, #fp, #opts_id, &#stats, #skip_none, #tags, #unless, __cache_body)))
    };
    let check_skip_none = skip_none.then(|| quote!(#krate::__private::skip_none_needs_option::<#ret>();));
    let make_key = match &tail {
        // The head is hashed at compile time and the integer mixed in: a hit writes no key text.
        Some((head, arg, Tail::Int)) => quote! {
            static __CACHE_HEAD: #krate::__private::KeyHead = #krate::__private::KeyHead::new(#head);
            let #buf = __CACHE_HEAD.key(#arg);
        },
        // The same with the text's hash: a hit writes no key text unless the text needs escaping.
        Some((head, arg, Tail::Text)) => quote! {
            static __CACHE_HEAD: #krate::__private::KeyHead = #krate::__private::KeyHead::new(#head);
            let #buf = __CACHE_HEAD.text_key(#arg);
        },
        None => quote! {
            let mut #buf = #krate::__private::KeyBuf::new();
            #(#build)*
        },
    };
    let rule = quote! {
        let __cache_rule = {
            #[allow(unused_imports)]
            use #krate::__private::{ViaOption as _, ViaPlain as _, ViaResult as _};
            (&&&#krate::__private::Returns::<#ret>::new()).__cache_rule()
        };
    };
    // `condition = ..`: evaluated first, over the arguments as passed.
    let (condition, hit_guard, bypass) = match &args.condition {
        Some((_, e)) => (
            quote_spanned!(e.span()=> let __cache_on: bool = #e;),
            Some(quote!(__cache_on)),
            if is_async {
                quote!(if !__cache_on {
                    return __cache_body().await;
                })
            } else {
                quote!(if !__cache_on {
                    return __cache_body();
                })
            },
        ),
        None => (quote!(), None, quote!()),
    };
    let dot_await = is_async.then(|| quote!(.await));
    let mut hit = quote! {
        if let ::core::option::Option::Some(__v) = __cache_rule.hit(#cache_ref, &#buf, #fp, &#opts_id, &#stats) {
            return __v;
        }
    };
    if let Some(guard) = hit_guard {
        hit = quote!(if #guard { #hit });
    }
    let new_body = quote! {
        static #stats: #krate::__private::FnStats =
            #krate::__private::FnStats::new(::core::concat!(::core::module_path!(), "::", #fn_name));
        #limit_static
        #condition
        #make_key
        #cache_src
        let #cache_ref = #cache;
        let #opts_id = #opts;
        let #fp = #buf.fingerprint();
        #check_skip_none
        #rule
        #hit
        #make_tags
        let __cache_body = #krate::__private::once(#body_fn);
        #bypass
        #call #dot_await
    };

    let companions = if companions_on {
        let refresh_name = format!("{fn_name}_refresh");
        let setup = quote! {
            static #stats: #krate::__private::FnStats =
                #krate::__private::FnStats::new(::core::concat!(::core::module_path!(), "::", #refresh_name));
            #limit_static
            let #opts_id = #opts;
            #rule
        };
        let build_all = quote! {
            let mut #buf = #krate::__private::KeyBuf::new();
            #(#build)*
        };
        let space = quote!(#(#space)*);
        let key_args: Vec<&syn::FnArg> = f
            .sig
            .inputs
            .iter()
            .filter(|a| match a {
                syn::FnArg::Typed(t) => match &*t.pat {
                    syn::Pat::Ident(p) => key_names.iter().any(|k| p.ident == k),
                    _ => false,
                },
                syn::FnArg::Receiver(_) => false,
            })
            .collect();
        let cache_expr = args.cache.as_ref().map(|c| quote!(#c)).unwrap_or_default();
        let cache_args: Vec<&syn::FnArg> = f
            .sig
            .inputs
            .iter()
            .filter(|a| match a {
                syn::FnArg::Typed(t) => match &*t.pat {
                    syn::Pat::Ident(p) => {
                        super::companions::mentions(cache_expr.clone(), &p.ident.to_string())
                    }
                    _ => false,
                },
                syn::FnArg::Receiver(_) => false,
            })
            .collect();
        let peek_opts =
            quote!(#krate::__private::LoadOptions { use_l1: #use_l1, ..::core::default::Default::default() });
        let key_self = args.include_self.is_some()
            || args
                .key
                .as_ref()
                .is_some_and(|t| t.pieces.iter().any(|p| matches!(p, Piece::Arg(a) if a == "self")));
        let light_self = super::companions::mentions(cache_expr.clone(), "self");
        let unless_tokens = unless.clone();
        let refresh_cache_src = match (&cache_arg, &args.cache) {
            (Some(_), Some(e)) => quote!(let __cache_src = &::core::clone::Clone::clone(&(#e));),
            _ => cache_src.clone(),
        };
        super::companions::companions(&super::companions::Parts {
            f,
            krate: &krate,
            build: &build_all,
            space: &space,
            cache_src: &cache_src,
            cache: &cache,
            refresh_cache_src: &refresh_cache_src,
            setup: &setup,
            rule: &rule,
            make_tags: &make_tags,
            tags: &tags,
            skip_none,
            unless: &unless_tokens,
            ret: &ret,
            key_args,
            cache_args,
            condition: &condition,
            peek_opts: &peek_opts,
            light_self,
            key_self,
            is_async,
        })
    } else {
        quote!()
    };

    // `#[warmup_cache]` written below this attribute is registered here (the ones above see this
    // attribute and register themselves).
    let (warmups, rest): (Vec<Attribute>, Vec<Attribute>) =
        f.attrs.iter().cloned().partition(crate::expand::is_warmup_attr);
    let f = &MaybeItemFn {
        attrs: rest,
        ..f.clone()
    };
    let mut registrations = Vec::new();
    for w in &warmups {
        registrations.push(warmup::registration(&krate, f, &w.parse_args()?, w));
    }
    let f = MaybeItemFn { sig, ..f.clone() }.with_body(new_body);
    Ok(quote!(#f #companions #(#registrations)*))
}

/// The default key's constant start, `{prefix}:{module path}::{fn name}`, as a `concat!`; with
/// `colon`, the `:` before the first argument too (the text of the `KeyHead` from [`tail_key`]).
fn default_head(preset: Preset, args: &CacheArgs, f: &MaybeItemFn, colon: bool) -> TokenStream {
    let prefix = preset
        .fixed_prefix()
        .map(str::to_owned)
        .or_else(|| args.prefix.as_ref().map(|p| p.value()));
    let name = f.sig.ident.to_string();
    let prefix = prefix.map(|p| quote!(#p, ":",));
    let colon = colon.then(|| quote!(, ":"));
    quote!(::core::concat!(#prefix ::core::module_path!(), "::", #name #colon))
}

/// What the one argument at the end of a [`tail_key`] is.
enum Tail {
    /// An integer of 64 bits or fewer ([`is_int_type`]).
    Int,
    /// A `&str` ([`is_str_ref`]).
    Text,
}

/// A key that is constant text ending in `:` followed by one integer or `&str` argument:
/// `(head, arg, kind)`. Such a key's fingerprint is the compile-time hash of the head mixed
/// with the integer or the text's own hash (`cache_core::key::KeyHead`), the same value the
/// text rule gives.
fn tail_key(
    preset: Preset,
    args: &CacheArgs,
    f: &MaybeItemFn,
    named: &[&Param<'_>],
    skipped: &dyn Fn(&syn::Ident) -> bool,
) -> Option<(TokenStream, syn::Ident, Tail)> {
    let tail_param = |name: &str| {
        let p = named.iter().find(|p| p.name == name)?;
        if is_int_type(p.ty) {
            Some((p.name.clone(), Tail::Int))
        } else if is_str_ref(p.ty) {
            Some((p.name.clone(), Tail::Text))
        } else {
            None
        }
    };
    match &args.key {
        Some(t) => {
            let (Piece::Arg(last), init) = t.pieces.split_last()? else {
                return None;
            };
            let mut head = preset.fixed_prefix().map(|p| format!("{p}:")).unwrap_or_default();
            for piece in init {
                match piece {
                    Piece::Text(s) => head.push_str(s),
                    Piece::Arg(_) => return None,
                }
            }
            let (arg, kind) = tail_param(last)?;
            head.ends_with(':').then(|| (quote!(#head), arg, kind))
        }
        None => {
            if args.include_self.is_some() {
                return None;
            }
            let mut keyed = named.iter().filter(|p| !skipped(p.name));
            let (Some(only), None) = (keyed.next(), keyed.next()) else {
                return None;
            };
            let (arg, kind) = tail_param(&only.name.to_string())?;
            Some((default_head(preset, args, f, true), arg, kind))
        }
    }
}

/// `&str` (any lifetime, not `&mut`): the key borrows it, and the body gets the same reference.
fn is_str_ref(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => {
            r.mutability.is_none()
                && matches!(&*r.elem, syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("str"))
        }
        syn::Type::Paren(p) => is_str_ref(&p.elem),
        _ => false,
    }
}

/// `u64`, `&i32` and the like: integers of 64 bits or fewer, whose key text is their decimal.
/// (`&mut u64` is not: the key must copy the argument, and the body still owns it.)
fn is_int_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => r.mutability.is_none() && is_int_type(&r.elem),
        syn::Type::Paren(p) => is_int_type(&p.elem),
        syn::Type::Path(p) if p.qself.is_none() => p.path.get_ident().is_some_and(|i| {
            [
                "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
            ]
            .iter()
            .any(|t| i == t)
        }),
        _ => false,
    }
}
