//! Typed attribute arguments, parsed with `syn::parse`.

use std::collections::HashSet;
use std::time::Duration;

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitBool, LitStr, Path, Token};

use crate::template::Template;

/// A TTL written as seconds (`ttl = 300`) or as a duration string (`ttl = "5m"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttl(pub Duration);

fn parse_ttl(input: ParseStream<'_>) -> syn::Result<Ttl> {
    if input.peek(Token![-]) {
        let minus: Token![-] = input.parse()?;
        let lit: Lit = input.parse()?;
        return Err(syn::Error::new_spanned(
            quote::quote!(#minus #lit),
            "ttl must be greater than zero",
        ));
    }
    let lit: Lit = input.parse()?;
    let ttl = match &lit {
        Lit::Int(i) => {
            let secs: u64 = i
                .base10_parse()
                .map_err(|_| syn::Error::new_spanned(i, "ttl must be a positive number of seconds"))?;
            Duration::from_secs(secs)
        }
        Lit::Str(s) => humantime::parse_duration(&s.value()).map_err(|e| {
            syn::Error::new_spanned(
                s,
                format!("invalid ttl {:?}: {e} (e.g. \"30s\", \"5m\", \"1h\")", s.value()),
            )
        })?,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "ttl takes seconds (`ttl = 300`) or a duration string (`ttl = \"5m\"`)",
            ))
        }
    };
    if ttl.is_zero() {
        return Err(syn::Error::new_spanned(lit, "ttl must be greater than zero"));
    }
    Ok(Ttl(ttl))
}

/// `max_stale = "1%"`: a fraction in (0, 1).
fn parse_max_stale(input: ParseStream<'_>) -> syn::Result<f64> {
    let lit: LitStr = input.parse()?;
    let v = lit.value();
    let (num, scale) = match v.trim().strip_suffix('%') {
        Some(n) => (n.trim().to_owned(), 100.0),
        None => (v.trim().to_owned(), 1.0),
    };
    match num.parse::<f64>().map(|x| x / scale) {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err(syn::Error::new_spanned(
            &lit,
            format!("max_stale takes a percentage between 0 and 100 % (exclusive), e.g. \"1%\"; not {v:?}"),
        )),
    }
}

/// `ttl_bounds = ("30s", "1h")`.
fn parse_bounds(input: ParseStream<'_>, name: &Ident) -> syn::Result<(Ttl, Ttl)> {
    let content;
    let parens = syn::parenthesized!(content in input);
    let min = parse_ttl(&content)?;
    content.parse::<Token![,]>()?;
    let max = parse_ttl(&content)?;
    let _ = content.parse::<Option<Token![,]>>()?;
    if !content.is_empty() {
        return Err(content.error("ttl_bounds takes two durations: (min, max)"));
    }
    // The expansion writes whole milliseconds.
    if min.0 < Duration::from_millis(1) || max.0 > Duration::from_secs(10 * 365 * 24 * 3600) {
        return Err(syn::Error::new(
            parens.span.join(),
            format!("`{name}`: each bound between 1 ms and 10 years"),
        ));
    }
    if min.0 > max.0 {
        return Err(syn::Error::new(
            parens.span.join(),
            format!("`{name}`: the shortest TTL is longer than the longest"),
        ));
    }
    Ok((min, max))
}

/// Options of `#[cache]` and its presets.
#[derive(Default)]
pub(crate) struct CacheArgs {
    pub ttl: Option<Ttl>,
    /// `ttl = "auto"`: the literal, for errors.
    pub auto_ttl: Option<LitStr>,
    /// `max_stale = "1%"` (needs `ttl = "auto"`).
    pub max_stale: Option<(Ident, f64)>,
    /// `ttl_bounds = (min, max)` (needs `ttl = "auto"`).
    pub ttl_bounds: Option<(Ident, Ttl, Ttl)>,
    pub prefix: Option<LitStr>,
    pub key: Option<Template>,
    pub skip: Vec<Ident>,
    pub l1: Option<LitBool>,
    pub cache: Option<Expr>,
    pub krate: Option<Path>,
    pub skip_none: Option<Ident>,
    pub include_self: Option<Ident>,
    /// `adaptive` or `ttl`.
    pub strategy: Option<Ident>,
    /// Fail-safe grace period.
    pub stale_if_error: Option<(Ident, Ttl)>,
    /// Fail-safe soft timeout.
    pub soft_timeout: Option<(Ident, Ttl)>,
    /// `tags = ["user:{id}", ..]`: the option's name and its templates.
    pub tags: Option<(Ident, Vec<Template>)>,
    /// `condition = expr`: a `bool` over the arguments; `false` runs the body without the cache.
    pub condition: Option<(Ident, Expr)>,
    /// `unless = |v| ..`: a `bool` over the value; `true` leaves it out of the cache.
    pub unless: Option<(Ident, Expr)>,
    /// `max_entries = 1000`: the function's bound on its L1 entries.
    pub max_entries: Option<(Ident, syn::LitInt)>,
    /// `ttl_idle = "5m"`: sliding expiration in L1.
    pub ttl_idle: Option<(Ident, Ttl)>,
    /// `companions = false`: no `{fn}_key`, `{fn}_refresh`, .. (for trait impls, which may not
    /// hold other items).
    pub companions: Option<LitBool>,
}

pub(crate) const CACHE_OPTIONS: &str =
    "ttl, max_stale, ttl_bounds, prefix, key, skip(..), l1, cache, crate, skip_none, include_self, strategy, stale_if_error, soft_timeout, tags, condition, unless, max_entries, ttl_idle, companions";

/// `= ["user:{id}", "orders"]`: tag templates, each with its own span for errors.
fn parse_tags(input: ParseStream<'_>, name: &Ident) -> syn::Result<Vec<Template>> {
    input.parse::<Token![=]>()?;
    let content;
    syn::bracketed!(content in input);
    let lits = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
    if lits.is_empty() {
        return Err(syn::Error::new_spanned(
            name,
            "`tags` needs at least one tag, e.g. tags = [\"user:{id}\"]",
        ));
    }
    let mut seen = HashSet::new();
    let mut tags = Vec::new();
    for lit in &lits {
        if !seen.insert(lit.value()) {
            return Err(syn::Error::new_spanned(lit, "this tag is listed twice"));
        }
        let t = Template::parse(lit)?;
        t.check_parts_separated()?;
        tags.push(t);
    }
    Ok(tags)
}

/// Rejects an option given twice, pointing at the second one.
fn once<T>(slot: &mut Option<T>, name: &Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            name,
            format!("duplicate option `{name}`"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn option_name(input: ParseStream<'_>) -> syn::Result<Ident> {
    if input.peek(Token![crate]) {
        let kw: Token![crate] = input.parse()?;
        return Ok(Ident::new("crate", kw.span));
    }
    input.call(syn::ext::IdentExt::parse_any)
}

impl Parse for CacheArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = CacheArgs::default();
        let mut skip_seen = false;
        while !input.is_empty() {
            let name = option_name(input)?;
            match name.to_string().as_str() {
                "skip_none" => once(&mut args.skip_none, &name, name.clone())?,
                "include_self" => once(&mut args.include_self, &name, name.clone())?,
                "skip" => {
                    if skip_seen {
                        return Err(syn::Error::new_spanned(&name, "duplicate option `skip`"));
                    }
                    skip_seen = true;
                    let content;
                    syn::parenthesized!(content in input);
                    let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    let mut seen = HashSet::new();
                    for n in names {
                        if !seen.insert(n.to_string()) {
                            return Err(syn::Error::new_spanned(
                                &n,
                                format!("`{n}` is listed twice in skip"),
                            ));
                        }
                        args.skip.push(n);
                    }
                }
                "ttl" => {
                    input.parse::<Token![=]>()?;
                    if args.ttl.is_some() || args.auto_ttl.is_some() {
                        return Err(syn::Error::new_spanned(&name, "duplicate option `ttl`"));
                    }
                    if input.peek(LitStr) && input.fork().parse::<LitStr>()?.value() == "auto" {
                        args.auto_ttl = Some(input.parse()?);
                    } else {
                        args.ttl = Some(parse_ttl(input)?);
                    }
                }
                "max_stale" => {
                    input.parse::<Token![=]>()?;
                    once(
                        &mut args.max_stale,
                        &name,
                        (name.clone(), parse_max_stale(input)?),
                    )?;
                }
                "ttl_bounds" => {
                    input.parse::<Token![=]>()?;
                    let (min, max) = parse_bounds(input, &name)?;
                    once(&mut args.ttl_bounds, &name, (name.clone(), min, max))?;
                }
                "prefix" => {
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse()?;
                    validate_prefix(&lit)?;
                    once(&mut args.prefix, &name, lit)?;
                }
                "key" => {
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse()?;
                    once(&mut args.key, &name, Template::parse(&lit)?)?;
                }
                "l1" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.l1, &name, input.parse()?)?;
                }
                "cache" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.cache, &name, input.parse()?)?;
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.krate, &name, input.parse()?)?;
                }
                "stale_if_error" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.stale_if_error, &name, (name.clone(), parse_ttl(input)?))?;
                }
                "soft_timeout" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.soft_timeout, &name, (name.clone(), parse_ttl(input)?))?;
                }
                "tags" => {
                    let tags = parse_tags(input, &name)?;
                    once(&mut args.tags, &name, (name.clone(), tags))?;
                }
                "condition" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.condition, &name, (name.clone(), input.parse()?))?;
                }
                "unless" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.unless, &name, (name.clone(), input.parse()?))?;
                }
                "max_entries" => {
                    input.parse::<Token![=]>()?;
                    let n: syn::LitInt = input.parse()?;
                    match n.base10_parse::<u64>() {
                        Ok(v) if v > 0 => {}
                        _ => {
                            return Err(syn::Error::new_spanned(
                                &n,
                                "max_entries must be a positive integer",
                            ))
                        }
                    }
                    once(&mut args.max_entries, &name, (name.clone(), n))?;
                }
                "ttl_idle" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.ttl_idle, &name, (name.clone(), parse_ttl(input)?))?;
                }
                "companions" => {
                    input.parse::<Token![=]>()?;
                    once(&mut args.companions, &name, input.parse()?)?;
                }
                "strategy" => {
                    input.parse::<Token![=]>()?;
                    let s: Ident = input.parse()?;
                    if s != "adaptive" && s != "ttl" {
                        return Err(syn::Error::new_spanned(
                            &s,
                            format!("unknown strategy `{s}`; per function: `adaptive` or `ttl` (eviction is set per cache)"),
                        ));
                    }
                    once(&mut args.strategy, &name, s)?;
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &name,
                        format!("unknown option `{name}`; valid options: {CACHE_OPTIONS}"),
                    ))
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn validate_prefix(lit: &LitStr) -> syn::Result<()> {
    let v = lit.value();
    if v.is_empty() {
        return Err(syn::Error::new_spanned(lit, "prefix must not be empty"));
    }
    if v.ends_with(':') {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "write the prefix without the trailing ':' (`prefix = {:?}`)",
                v.trim_end_matches(':')
            ),
        ));
    }
    if v.contains(['*', '?', '[', ']', '{', '}']) {
        return Err(syn::Error::new_spanned(
            lit,
            "prefix must not contain glob characters * ? [ ] { }",
        ));
    }
    Ok(())
}

/// `#[invalidate_cache("pattern", ..., tags = [..], cache = expr, crate = path)]`.
pub(crate) struct InvalidateArgs {
    pub patterns: Vec<Template>,
    /// `get_user(id)`: calls of cached functions, whose `_key` companion names the key.
    pub calls: Vec<syn::ExprCall>,
    pub tags: Vec<Template>,
    pub cache: Option<Expr>,
    pub krate: Option<Path>,
}

impl Parse for InvalidateArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut patterns = Vec::new();
        let mut calls = Vec::new();
        let mut tags = None;
        let mut cache = None;
        let mut krate = None;
        while !input.is_empty() {
            if input.peek(LitStr) {
                let lit: LitStr = input.parse()?;
                let t = Template::parse(&lit)?;
                t.validate_glob()?;
                patterns.push(t);
            } else if !(input.peek(Token![crate]) || input.peek(Ident) && input.peek2(Token![=])) {
                match input.parse::<Expr>()? {
                    Expr::Call(c) if matches!(&*c.func, Expr::Path(p) if p.qself.is_none()) => calls.push(c),
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "expected a key pattern (\"resource:users:{id}\"), a call of a cached function (`get_user(id)`), or `tags = [..]`, `cache = ..`, `crate = ..`",
                        ))
                    }
                }
            } else {
                let name = option_name(input)?;
                if name == "tags" {
                    let parsed = parse_tags(input, &name)?;
                    once(&mut tags, &name, parsed)?;
                } else {
                    input.parse::<Token![=]>()?;
                    match name.to_string().as_str() {
                        "cache" => once(&mut cache, &name, input.parse()?)?,
                        "crate" => once(&mut krate, &name, input.parse()?)?,
                        _ => {
                            return Err(syn::Error::new_spanned(
                                &name,
                                format!(
                                "unknown option `{name}`; expected pattern strings, `tags = [..]`, `cache = ..`, `crate = ..`"
                            ),
                            ))
                        }
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        if patterns.is_empty() && calls.is_empty() && tags.is_none() {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[invalidate_cache] needs at least one pattern, call or tag, e.g. #[invalidate_cache(get_user(id))], #[invalidate_cache(\"resource:users:*\")] or #[invalidate_cache(tags = [\"user:{id}\"])]",
            ));
        }
        Ok(InvalidateArgs {
            patterns,
            calls,
            tags: tags.unwrap_or_default(),
            cache,
            krate,
        })
    }
}

/// `#[warmup_cache(arg = expr, ...)]`.
pub(crate) struct WarmupArgs {
    pub values: Vec<(Ident, Expr)>,
}

impl Parse for WarmupArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut values: Vec<(Ident, Expr)> = Vec::new();
        while !input.is_empty() {
            let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            if values.iter().any(|(n, _)| *n == name) {
                return Err(syn::Error::new_spanned(
                    &name,
                    format!("argument `{name}` is given twice"),
                ));
            }
            values.push((name, value));
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(WarmupArgs { values })
    }
}
