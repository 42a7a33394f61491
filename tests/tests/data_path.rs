//! A data path users can trust (issue 16): distinct argument lists never share an entry, and
//! `Result`/`Option` are cached by their type, however the type is spelled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use cache_core::{cache, cache_batch, invalidate_cache, Cache, CacheConfig};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// L1-only: a key that two argument lists share can only come from the key text itself.
fn l1_only() -> Cache {
    Cache::new(CacheConfig::builder().build().unwrap()).unwrap()
}

#[cache(cache = cache)]
async fn pair(cache: &Cache, a: String, b: String) -> (String, String) {
    (a, b)
}

#[cache(cache = cache, key = "users:{a}:{b}")]
async fn templated(cache: &Cache, a: String, b: String) -> (String, String) {
    (a, b)
}

#[cache(cache = cache)]
async fn mixed(cache: &Cache, a: &str, n: i64, c: char, flag: bool) -> String {
    format!("{a}|{n}|{c}|{flag}")
}

/// One `&str` argument: its hit hashes the text alone (`KeyHead::text_key`), not the key.
#[cache(cache = cache)]
async fn by_name(cache: &Cache, name: &str) -> String {
    format!("loaded {name}")
}

/// The same, synchronous (L1 only).
#[cache(cache = cache)]
fn by_name_sync(cache: &Cache, name: &str) -> String {
    format!("loaded {name}")
}

/// The same through a key template that ends in the argument.
#[cache(cache = cache, key = "names:{name}")]
async fn by_name_templated(cache: &Cache, name: &str) -> String {
    format!("loaded {name}")
}

/// A `Display`-only argument (no `KeyPart`): its text is escaped like a string's.
#[derive(Debug, Clone)]
struct Shown(String);
impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cache(cache = cache)]
async fn shown(cache: &Cache, a: Shown, b: Shown) -> String {
    format!("{a}|{b}")
}

/// The case measured on the old key format: `f("a:b", "c")` then `f("a", "b:c")` returned the
/// first call's value to the second caller.
#[tokio::test]
async fn argument_lists_that_joined_to_one_text_get_their_own_values() {
    let c = l1_only();
    let s = |x: &str| x.to_owned();
    assert_eq!(pair(&c, s("a:b"), s("c")).await, (s("a:b"), s("c")));
    assert_eq!(pair(&c, s("a"), s("b:c")).await, (s("a"), s("b:c")));
    assert_eq!(templated(&c, s("a:b"), s("c")).await, (s("a:b"), s("c")));
    assert_eq!(templated(&c, s("a"), s("b:c")).await, (s("a"), s("b:c")));
    assert_eq!(shown(&c, Shown(s("x:y")), Shown(s("z"))).await, "x:y|z");
    assert_eq!(shown(&c, Shown(s("x")), Shown(s("y:z"))).await, "x|y:z");
    // Escapes themselves are escaped: "%3A" as text is not ":".
    assert_eq!(pair(&c, s("a%3Ab"), s("c")).await, (s("a%3Ab"), s("c")));
    assert_eq!(pair(&c, s("a"), s("b%3Ac")).await, (s("a"), s("b%3Ac")));
    // Keys stay readable where nothing needs escaping.
    assert_eq!(
        c.get::<(String, String)>("data_path::pair:alice:bob")
            .await
            .unwrap(),
        None
    );
    pair(&c, s("alice"), s("bob")).await;
    assert_eq!(
        c.get::<(String, String)>("data_path::pair:alice:bob")
            .await
            .unwrap(),
        Some((s("alice"), s("bob")))
    );
    assert_eq!(
        c.get::<(String, String)>("data_path::pair:a%3Ab:c")
            .await
            .unwrap(),
        Some((s("a:b"), s("c")))
    );
}

/// Text that stresses the encoding: separators, escapes, glob characters, newlines, unicode.
fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(":".to_owned()),
            Just("%".to_owned()),
            Just("%3A".to_owned()),
            Just("\\".to_owned()),
            Just("*".to_owned()),
            Just("[".to_owned()),
            Just("\n".to_owned()),
            Just("é".to_owned()),
            Just("日".to_owned()),
            Just("".to_owned()),
            "[a-c0-9]{1,3}",
            any::<char>().prop_map(String::from),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random pairs of distinct argument tuples: the second call gets its own value, for the
    /// default key, a template and a mix of part types.
    #[test]
    fn distinct_argument_tuples_never_share_an_entry(
        x in (hostile(), hostile()),
        y in (hostile(), hostile()),
        n in any::<i64>(),
        ch in any::<char>(),
    ) {
        prop_assume!(x != y);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let c = l1_only();
            for (a, b) in [&x, &y] {
                prop_assert_eq!(pair(&c, a.clone(), b.clone()).await, (a.clone(), b.clone()));
                prop_assert_eq!(templated(&c, a.clone(), b.clone()).await, (a.clone(), b.clone()));
                prop_assert_eq!(
                    shown(&c, Shown(a.clone()), Shown(b.clone())).await,
                    format!("{a}|{b}")
                );
            }
            // Both are still there, each with its own value.
            for (a, b) in [&x, &y] {
                prop_assert_eq!(pair(&c, a.clone(), b.clone()).await, (a.clone(), b.clone()));
            }
            prop_assert_eq!(by_name(&c, &x.0).await, format!("loaded {}", x.0));
            prop_assert_eq!(by_name(&c, &y.0).await, format!("loaded {}", y.0));
            prop_assert_eq!(by_name(&c, &x.0).await, format!("loaded {}", x.0));
            let first = format!("{}|{n}|{ch}|true", x.0);
            let second = format!("{}|{n}|{ch}|false", x.0);
            prop_assert_eq!(mixed(&c, &x.0, n, ch, true).await, first);
            prop_assert_eq!(mixed(&c, &x.0, n, ch, false).await, second);
            Ok(())
        })?;
    }
}

/// What a call's hit reads is the entry its key text names: a value set through the text API
/// under `by_name_key(name)` is what `by_name(name)` returns (L1-only: a hit that hashed the
/// argument differently from the text would miss and run the body).
async fn assert_text_api_and_hit_agree(name: &str) {
    let c = l1_only();
    for (key, call) in [
        (by_name_key(name), 0),
        (by_name_sync_key(name), 1),
        (by_name_templated_key(name), 2),
    ] {
        let read = || async {
            match call {
                0 => by_name(&c, name).await,
                1 => by_name_sync(&c, name),
                _ => by_name_templated(&c, name).await,
            }
        };
        c.set(&key, &format!("set {name}"), None).await.unwrap();
        assert_eq!(read().await, format!("set {name}"), "{name:?} via {key:?}");
        assert!(c.delete(&key).await.unwrap(), "{key:?}");
        assert_eq!(read().await, format!("loaded {name}"), "{name:?}");
        let via_api: Option<String> = c.get(&key).await.unwrap();
        assert_eq!(via_api, Some(format!("loaded {name}")), "{key:?}");
    }
}

#[tokio::test]
async fn a_text_argument_hits_the_entry_its_key_text_names() {
    // One argument of each way the hit takes (every tail shape is in cache-core's key tests).
    let long = "n".repeat(200);
    let long_escaped = ":%".repeat(100);
    let ways: [(&str, &[&str]); 4] = [
        ("the argument's own hash", &["ann", "2024-05", "Zoë"]),
        (
            "the key written: empty or escaped",
            &["", "a:b", "%3A", "line\nbreak"],
        ),
        ("the key written: digits", &["42", "-42", "042"]),
        ("long keys, on the heap", &[&long, &long_escaped]),
    ];
    for (_way, names) in ways {
        for name in names {
            assert_text_api_and_hit_agree(name).await;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_text_argument_hits_the_entry_its_key_text_names(name in hostile()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(assert_text_api_and_hit_agree(&name));
    }
}

// ---- Result and Option, decided by the type ----

/// An error that is neither `Serialize` nor `Clone`: it is never stored, so it needs neither.
#[derive(Debug)]
struct AppError(#[allow(dead_code)] String);

type AppResult<T> = Result<T, AppError>;

/// A `Serialize` error behind an alias: the shape that cached its `Err` on the old expansion.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SerError;
type SerResult<T> = Result<T, SerError>;

type MaybeUser = Option<String>;

mod reexport {
    pub use std::result::Result as Outcome;
}

static CALLS: AtomicUsize = AtomicUsize::new(0);
static FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

fn fail_or(v: u32) -> Result<u32, String> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    if FAIL.load(Ordering::SeqCst) {
        Err("down".into())
    } else {
        Ok(v)
    }
}

#[cache(cache = cache)]
async fn via_alias(cache: &Cache, id: u32) -> AppResult<u32> {
    fail_or(id).map_err(AppError)
}

#[cache(cache = cache)]
async fn via_serialize_alias(cache: &Cache, id: u32) -> SerResult<u32> {
    fail_or(id).map_err(|_| SerError)
}

#[cache(cache = cache)]
async fn via_std_path(cache: &Cache, id: u32) -> std::result::Result<u32, AppError> {
    fail_or(id).map_err(AppError)
}

#[cache(cache = cache)]
async fn via_io(cache: &Cache, id: u32) -> std::io::Result<u32> {
    fail_or(id).map_err(std::io::Error::other)
}

#[cache(cache = cache)]
async fn via_anyhow(cache: &Cache, id: u32) -> anyhow::Result<u32> {
    fail_or(id).map_err(anyhow::Error::msg)
}

#[cache(cache = cache)]
async fn via_reexport(cache: &Cache, id: u32) -> reexport::Outcome<u32, AppError> {
    fail_or(id).map_err(AppError)
}

static NONE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = cache, skip_none)]
async fn find_user(cache: &Cache, id: u32) -> MaybeUser {
    NONE_CALLS.fetch_add(1, Ordering::SeqCst);
    (id > 100).then(|| format!("user {id}"))
}

static CACHE: LazyLock<Cache> = LazyLock::new(l1_only);

/// Every spelling of `Result`: an `Err` reaches the caller and is not cached (the next call runs
/// the function again); an `Ok` is cached. The alias cases cached the `Err` before.
#[tokio::test]
async fn result_is_decided_by_its_type_not_its_name() {
    let c = &*CACHE;
    macro_rules! check {
        ($f:ident, $id:expr) => {{
            FAIL.store(true, Ordering::SeqCst);
            let before = CALLS.load(Ordering::SeqCst);
            assert!($f(c, $id).await.is_err(), stringify!($f));
            assert!($f(c, $id).await.is_err(), stringify!($f));
            assert_eq!(
                CALLS.load(Ordering::SeqCst) - before,
                2,
                "{}: an Err was served from the cache",
                stringify!($f)
            );
            FAIL.store(false, Ordering::SeqCst);
            assert_eq!($f(c, $id).await.unwrap(), $id);
            assert_eq!($f(c, $id).await.unwrap(), $id);
            assert_eq!(
                CALLS.load(Ordering::SeqCst) - before,
                3,
                "{}: Ok is cached",
                stringify!($f)
            );
        }};
    }
    check!(via_alias, 1);
    check!(via_serialize_alias, 2);
    check!(via_std_path, 3);
    check!(via_io, 4);
    check!(via_anyhow, 5);
    check!(via_reexport, 6);
}

#[tokio::test]
async fn option_alias_honours_skip_none() {
    let c = l1_only();
    assert_eq!(find_user(&c, 1).await, None);
    assert_eq!(find_user(&c, 1).await, None);
    assert_eq!(
        NONE_CALLS.load(Ordering::SeqCst),
        2,
        "None is not cached under skip_none"
    );
    assert_eq!(find_user(&c, 101).await.as_deref(), Some("user 101"));
    assert_eq!(find_user(&c, 101).await.as_deref(), Some("user 101"));
    assert_eq!(NONE_CALLS.load(Ordering::SeqCst), 3);
}

// ---- #[invalidate_cache] and #[cache_batch] behind aliases ----

static PROFILE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = cache, key = "profile:{id}")]
async fn profile(cache: &Cache, id: u32) -> u32 {
    PROFILE_CALLS.fetch_add(1, Ordering::SeqCst);
    id
}

#[invalidate_cache("profile:{id}", cache = cache)]
async fn update_profile(cache: &Cache, id: u32, ok: bool) -> AppResult<()> {
    if ok {
        Ok(())
    } else {
        Err(AppError("rejected".into()))
    }
}

#[tokio::test]
async fn invalidation_waits_for_ok_behind_an_alias() {
    let c = l1_only();
    profile(&c, 7).await;
    assert!(update_profile(&c, 7, false).await.is_err());
    profile(&c, 7).await;
    assert_eq!(
        PROFILE_CALLS.load(Ordering::SeqCst),
        1,
        "an Err does not invalidate"
    );
    assert!(update_profile(&c, 7, true).await.is_ok());
    profile(&c, 7).await;
    assert_eq!(PROFILE_CALLS.load(Ordering::SeqCst), 2, "an Ok invalidates");
}

type UserMap = HashMap<u32, String>;
type FallibleUsers = Result<BTreeMap<u32, String>, AppError>;

static BATCH_CALLS: AtomicUsize = AtomicUsize::new(0);

static BATCH_CACHE: LazyLock<Cache> = LazyLock::new(l1_only);

#[cache_batch(prefix = "resource:bu", cache = BATCH_CACHE)]
async fn users_by_alias(ids: &[u32]) -> UserMap {
    BATCH_CALLS.fetch_add(1, Ordering::SeqCst);
    ids.iter().map(|&i| (i, format!("u{i}"))).collect()
}

#[cache_batch(prefix = "resource:bf", cache = BATCH_CACHE)]
async fn users_fallible(ids: Vec<u32>) -> FallibleUsers {
    BATCH_CALLS.fetch_add(1, Ordering::SeqCst);
    if FAIL_BATCH.load(Ordering::SeqCst) {
        return Err(AppError("db down".into()));
    }
    Ok(ids.iter().map(|&i| (i, format!("f{i}"))).collect())
}

static FAIL_BATCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[tokio::test]
async fn batches_behind_aliases_and_results() {
    assert_eq!(users_by_alias(&[1, 2]).await.len(), 2);
    assert_eq!(users_by_alias(&[1, 2]).await[&2], "u2");
    assert_eq!(BATCH_CALLS.load(Ordering::SeqCst), 1);

    assert!(users_fallible(vec![3, 4]).await.is_err());
    assert!(users_fallible(vec![3, 4]).await.is_err());
    assert_eq!(BATCH_CALLS.load(Ordering::SeqCst), 3, "an Err stores nothing");
    FAIL_BATCH.store(false, Ordering::SeqCst);
    assert_eq!(users_fallible(vec![3, 4]).await.unwrap()[&4], "f4");
    assert_eq!(users_fallible(vec![3, 4]).await.unwrap()[&3], "f3");
    assert_eq!(BATCH_CALLS.load(Ordering::SeqCst), 4, "an Ok is stored");
}

// ---- #[invalidate_cache] of one key reaches it whatever the argument ----

static NOTE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = cache, key = "notes:{title}")]
async fn note(cache: &Cache, title: String) -> usize {
    NOTE_CALLS.fetch_add(1, Ordering::SeqCst);
    title.len()
}

#[invalidate_cache("notes:{title}", cache = cache)]
async fn edit_note(cache: &Cache, title: String) -> u8 {
    0
}

/// A template without wildcards names one key and deletes it by name: an argument longer than a
/// pattern may be (1 KiB), or full of glob characters, still reaches its entry.
#[tokio::test]
async fn invalidating_one_key_works_for_any_argument() {
    let c = l1_only();
    for title in ["x".repeat(5000), "*?[]\\:%\n".to_owned(), "plain".to_owned()] {
        let before = NOTE_CALLS.load(Ordering::SeqCst);
        note(&c, title.clone()).await;
        note(&c, title.clone()).await;
        assert_eq!(NOTE_CALLS.load(Ordering::SeqCst) - before, 1);
        edit_note(&c, title.clone()).await;
        note(&c, title.clone()).await;
        assert_eq!(NOTE_CALLS.load(Ordering::SeqCst) - before, 2, "{:.20}", title);
    }
}
