//! Unit tests of the tag registry, its seqlock and its single flight.

use super::*;

const TTL: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_invalidation_makes_stamps_stale_and_only_its_own() {
    let tags = Tags::new(true, TTL);
    let a = tags.stamps(None, &["user:42", "orders"]).await;
    let b = tags.stamps(None, &["user:43"]).await;
    let (sa, sb) = (stamps_of(&a).unwrap().stamps, stamps_of(&b).unwrap().stamps);
    assert!(fresh(&sa) && fresh(&sb) && !moved(&a));
    tags.invalidate_here("orders");
    assert!(!fresh(&sa) && moved(&a), "one of its tags moved");
    assert!(fresh(&sb), "another tag");
    let again = tags.stamps(None, &["user:42", "orders"]).await;
    assert!(
        fresh(&stamps_of(&again).unwrap().stamps),
        "stamped after the invalidation"
    );
    tags.invalidate_here("orders");
    tags.invalidate_here("orders");
    assert!(!fresh(&stamps_of(&again).unwrap().stamps), "twice");
    tags.forget();
    assert!(!fresh(&sb), "forget makes everything stale");
    assert_eq!(
        stamps_of(&[]).map(|s| s.stamps.len()),
        None,
        "untagged: nothing to check"
    );
}

#[test]
fn a_message_reaches_only_states_that_exist_and_a_stale_read_is_not_learned() {
    let tags = Tags::new(true, TTL);
    tags.heard("nobody");
    assert!(
        tags.existing("nobody").is_none(),
        "no state is made for a tag nobody holds"
    );
    let (s, v) = tags.invalidate_here("t");
    assert_eq!(tags.current(&s), None, "unknown until Redis confirms");
    tags.confirmed(&s, v, 7);
    assert_eq!(tags.current(&s), Some((v + 1, 7)), "confirming bumps again");
    tags.heard("t");
    assert_eq!(
        tags.current(&s),
        None,
        "a message's token is read again from Redis"
    );
    assert_eq!(s.version(), v + 2, "and the entries stamped before are stale");
    tags.confirmed(&s, v, 7);
    assert_eq!(tags.current(&s), None, "a confirmation overtaken is not trusted");
    let (s, v) = tags.invalidate_here("u");
    tags.confirmed(&s, v, 8);
    assert!(tags.current(&s).is_some());
    tags.set_listening(false);
    assert_eq!(
        tags.current(&s),
        None,
        "without a subscribed bus nothing known is trusted"
    );
    tags.set_listening(true);
    assert!(tags.current(&s).is_some());
    tags.failed(&s);
    assert_eq!(tags.current(&s), None, "a failed invalidation: unknown");
}

/// Readers take no lock: under a writer that keeps changing the token, a reader never sees a
/// version with another version's token.
#[test]
fn a_lock_free_read_never_pairs_a_version_with_another_versions_token() {
    let tags = Arc::new(Tags::new(true, TTL));
    let s = tags.state("t");
    let token_for = |v: u64| v.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let (first, v) = tags.invalidate_here("t");
    tags.confirmed(&first, v, token_for(v + 1));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (tags, stop) = (tags.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // `confirmed` bumps, then sets the token: the token of the version it makes.
                let (s, v) = tags.invalidate_here("t");
                tags.confirmed(&s, v, token_for(v + 1));
            }
        })
    };
    let mut seen = 0;
    for _ in 0..200_000 {
        if let Some((version, token)) = tags.current(&s) {
            assert_eq!(token, token_for(version), "version {version}");
            seen += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(seen > 0, "some reads saw a stable state");
}

/// Readers of a tag whose token is not known share one Redis read (single flight); a second
/// round finds the token known and reads nothing.
#[tokio::test]
async fn concurrent_readers_of_an_unknown_tag_share_one_read() {
    let fake = crate::tier::fake::FakeTier::default();
    let tags = Arc::new(Tags::new(true, TTL));
    fake.hold_reads();
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let (tags, fake) = (tags.clone(), fake.clone());
            tokio::spawn(async move {
                let tier: &dyn RemoteTier = &fake;
                let fresh = tags.check(Some(tier), &[("t".into(), 0)], true).await.unwrap();
                fresh.is_some()
            })
        })
        .collect();
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    fake.release_reads();
    for r in readers {
        assert!(
            !r.await.unwrap(),
            "an envelope's 0 never matches: the tag got a record"
        );
    }
    assert_eq!(fake.gets(), 1, "one read for 20 readers");
    let tier: &dyn RemoteTier = &fake;
    assert_eq!(
        tags.check(Some(tier), &[("t".into(), 5)], false)
            .await
            .unwrap()
            .map(|_| ()),
        None
    );
    assert_eq!(fake.gets(), 1, "known: no read, and a different token is stale");
}

#[test]
fn unreferenced_states_are_pruned_and_referenced_ones_kept() {
    let tags = Tags::new(true, TTL);
    let held: Vec<_> = (0..100).map(|i| tags.state(&format!("held:{i}"))).collect();
    for i in 0..(SHARDS * KEPT_PER_SHARD * 3) {
        drop(tags.state(&format!("t:{i}")));
    }
    let total: usize = tags.shards.iter().map(|s| s.read().map.len()).sum();
    assert!(total <= SHARDS * KEPT_PER_SHARD + SHARDS, "{total}");
    for h in &held {
        assert!(
            Arc::ptr_eq(h, &tags.state(h.name())),
            "a referenced state is never replaced"
        );
    }
}

#[test]
fn tags_are_validated_and_tokens_hash_any_bytes() {
    assert!(validate("user:42").is_ok());
    assert!(validate("é \n*{}[]").is_ok());
    assert!(
        validate("").is_ok(),
        "an empty argument makes an empty tag: still a tag"
    );
    assert!(matches!(
        validate(&"x".repeat(MAX_TAG_LEN + 1)),
        Err(CacheError::InvalidTag { .. })
    ));
    assert!(validate_all(&vec!["a"; MAX_TAGS_PER_ENTRY + 1]).is_err());
    assert_eq!(token_of(None), 0);
    assert_ne!(token_of(Some(b"")), 0, "present, even empty, is not absent");
    assert_ne!(token_of(Some(b"a")), token_of(Some(b"b")));
}
