use std::time::Duration;

use super::*;

fn analytics(config: CacheConfig) -> Analytics {
    Analytics::new(&config).unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Reloads `key` every `every` seconds from `t0`, `n` times; `changed(i)` says whether the i-th
/// reload's value differs from the one before. Returns the clock after the last.
#[allow(clippy::too_many_arguments)]
fn reload(
    a: &Analytics,
    key: &str,
    t0: Instant,
    every: u64,
    n: u64,
    ttl: Duration,
    auto: Option<AutoTtl>,
    mut changed: impl FnMut(u64) -> bool,
) -> Instant {
    let fp = Fingerprint::of(key);
    let mut digest = 0;
    let mut now = t0;
    for i in 0..n {
        if changed(i) {
            digest += 1;
        }
        a.observe_load(key, fp, digest, ttl, auto, now);
        now += secs(every);
    }
    now
}

#[test]
fn values_that_never_change_earn_a_longer_ttl_only_with_evidence() {
    let a = analytics(CacheConfig::default());
    let auto = AutoTtl::new(0.01, secs(1), secs(3600));
    let key = "query:app::profile:1";
    // Fewer reloads than `min_observations`: the TTL stays where the pattern table starts it.
    let t = reload(&a, key, clock::now(), 10, 20, secs(10), Some(auto), |_| false);
    assert_eq!(a.ttl(key, secs(300), &auto), secs(300));
    // 200 unchanged reloads 10 s apart: ~2000 s without a change bounds the rate at 1.92/2000 s,
    // which allows ~0.0201 / rate ≈ 21 s, not an hour.
    reload(&a, key, t, 10, 200, secs(10), Some(auto), |_| false);
    let ttl = a.ttl(key, secs(300), &auto).as_secs_f64();
    assert!((15.0..30.0).contains(&ttl), "{ttl}");
    let advice = &a.advice()[0];
    assert_eq!(advice.family, "query:app::profile");
    assert!(advice.auto);
    assert_eq!(advice.change_rate_per_hour, Some(0.0));
    assert_eq!(advice.loads, 220);
}

#[test]
fn values_that_always_change_fall_to_the_lower_bound() {
    let a = analytics(CacheConfig::default());
    let auto = AutoTtl::new(0.01, secs(5), secs(3600));
    let key = "orders:7";
    reload(&a, key, clock::now(), 60, 100, secs(60), Some(auto), |_| true);
    assert_eq!(a.ttl(key, secs(300), &auto), secs(5));
}

#[test]
fn a_known_change_rate_gives_the_ttl_of_the_stale_target() {
    // Many keys of one family, each changing once every 10 minutes on average (Poisson),
    // reloaded every 30 s: the learned TTL approaches 2 · 1 % · 600 s ≈ 12 s.
    let a = analytics(CacheConfig::default());
    let auto = AutoTtl::new(0.01, secs(1), secs(3600));
    let mut rng = fastrand::Rng::with_seed(11);
    let p_change = 1.0 - (-30.0f64 / 600.0).exp();
    let t0 = clock::now();
    for k in 0..200 {
        let key = format!("query:app::profile:{k}");
        reload(&a, &key, t0, 30, 60, secs(30), Some(auto), |_| {
            rng.f64() < p_change
        });
    }
    let ttl = a.ttl("query:app::profile:1", secs(300), &auto).as_secs_f64();
    assert!((10.0..13.0).contains(&ttl), "{ttl}");
    let advice = &a.advice()[0];
    let rate = advice.change_rate_per_hour.unwrap();
    assert!((rate - 6.0).abs() < 0.6, "{rate} changes per hour, want 6");
    let rec = advice.recommended_ttl_secs.unwrap();
    assert!(
        (advice.expected_stale_recommended.unwrap()) <= 0.0101,
        "{advice:?}"
    );
    assert!((rec - ttl).abs() / ttl < 0.06, "{rec} vs {ttl}");
}

#[test]
fn a_reload_after_an_invalidation_is_no_observation() {
    let a = analytics(CacheConfig::default());
    let key = "user:1";
    let fp = Fingerprint::of(key);
    let now = clock::now();
    a.observe_load(key, fp, 1, secs(10), None, now);
    a.invalidated(key);
    a.observe_load(key, fp, 2, secs(10), None, now + secs(20));
    let advice = &a.advice()[0];
    assert_eq!(advice.invalidated_reloads, 1);
    assert_eq!(advice.invalidations, 1);
    assert_eq!(advice.observations, 0.0);
    assert_eq!(advice.change_rate_per_hour, None);
    // The next one is compared with the reload after the invalidation.
    a.observe_load(key, fp, 2, secs(10), None, now + secs(40));
    let advice = &a.advice()[0];
    assert!((advice.observations - 1.0).abs() < 0.001, "{advice:?}");
    assert_eq!(advice.changed, 0.0);
    // The wait between expiry (10 s) and reload (20 s later) is the read-rate evidence.
    assert!(
        (advice.read_rate_per_key.unwrap() - 0.1).abs() < 1e-9,
        "{advice:?}"
    );
}

#[test]
fn families_past_the_cap_share_one_that_never_lends_its_ttl() {
    let mut config = CacheConfig::default();
    config.analytics.max_families = 2;
    let a = analytics(config);
    let auto = AutoTtl::DEFAULT;
    for key in ["a:1", "b:1"] {
        a.observe_load(key, Fingerprint::of(key), 1, secs(1), None, clock::now());
    }
    // Past the cap: `c` and `d` are counted under `(other)`, which learns the lower bound...
    reload(&a, "c:1", clock::now(), 60, 100, secs(60), Some(auto), |_| true);
    reload(&a, "d:1", clock::now(), 60, 1, secs(60), Some(auto), |_| true);
    let names: Vec<String> = a.advice().into_iter().map(|x| x.family).collect();
    assert_eq!(names, [OTHER, "a", "b"], "{names:?}");
    // ...but a key of another family keeps its start: `(other)` mixes unrelated families.
    assert_eq!(a.ttl("d:1", secs(300), &auto), secs(300));
    assert_eq!(a.ttl("e:1", secs(300), &auto), secs(300));
}

#[test]
fn keys_without_a_colon_share_one_family() {
    let a = analytics(CacheConfig::default());
    for key in ["alpha", "beta", "gamma"] {
        a.observe_load(key, Fingerprint::of(key), 1, secs(1), None, clock::now());
    }
    let names: Vec<String> = a.advice().into_iter().map(|x| x.family).collect();
    assert_eq!(names, [FLAT], "{names:?}");
}

#[test]
fn a_pattern_tag_or_clear_invalidation_voids_the_pending_comparisons() {
    let a = analytics(CacheConfig::default());
    let key = "user:1";
    let fp = Fingerprint::of(key);
    let now = clock::now();
    a.observe_load(key, fp, 1, secs(10), None, now);
    a.broad_invalidation();
    a.observe_load(key, fp, 2, secs(10), None, now + secs(20));
    let advice = &a.advice()[0];
    assert_eq!((advice.invalidated_reloads, advice.observations), (1, 0.0));
    a.observe_load(key, fp, 3, secs(10), None, now + secs(40));
    // (one observation, decayed by the half-life's share of it)
    assert!((a.advice()[0].changed - 1.0).abs() < 1e-3);
}

#[test]
fn a_refresh_that_names_no_settings_keeps_the_family_s_own() {
    let a = analytics(CacheConfig::default());
    let auto = AutoTtl::new(0.02, secs(7), secs(70));
    assert_eq!(a.auto_for("app::f:1", None), None);
    a.observe_load(
        "app::f:1",
        Fingerprint::of("app::f:1"),
        1,
        secs(7),
        Some(auto),
        clock::now(),
    );
    assert_eq!(a.auto_for("app::f:2", None), Some(auto));
    // A load without them (an explicit TTL) does not take them away.
    a.observe_load(
        "app::f:2",
        Fingerprint::of("app::f:2"),
        1,
        secs(9),
        None,
        clock::now(),
    );
    assert_eq!(a.auto_for("app::f:3", None), Some(auto));
}

#[test]
fn a_reversed_bound_is_clamped_not_a_panic() {
    let a = analytics(CacheConfig::default());
    let reversed = AutoTtl::new(0.01, secs(60), secs(10));
    assert_eq!(a.ttl("k:1", secs(300), &reversed), secs(10));
}

#[test]
fn the_tracked_keys_are_capped() {
    let mut config = CacheConfig::default();
    config.analytics.tracked_keys = 10;
    let a = analytics(config);
    for i in 0..100 {
        let key = format!("k:{i}");
        a.observe_load(&key, Fingerprint::of(&key), 1, secs(1), None, clock::now());
    }
    let fam = a.family("k:1", false).unwrap();
    assert_eq!(fam.state.lock().tracked.len(), 10);
}

#[test]
fn turned_off_it_learns_nothing() {
    let mut config = CacheConfig::default();
    config.analytics.enabled = false;
    let a = analytics(config);
    reload(&a, "k:1", clock::now(), 10, 100, secs(10), None, |_| true);
    assert!(a.advice().is_empty());
}

#[test]
fn the_call_s_settings_win_over_a_pattern() {
    let config = CacheConfig::builder()
        .ttl_auto("query:*", AutoTtl::new(0.05, secs(2), secs(20)))
        .ttl_auto("query:users:*", AutoTtl::new(0.01, secs(3), secs(30)))
        .build()
        .unwrap();
    let a = analytics(config);
    assert_eq!(a.auto_for("query:users:1", None).unwrap().min, secs(3));
    assert_eq!(a.auto_for("query:x", None).unwrap().min, secs(2));
    assert!(a.auto_for("other:x", None).is_none());
    let call = AutoTtl::new(0.02, secs(9), secs(90));
    assert_eq!(a.auto_for("query:users:1", Some(call)), Some(call));
}

#[test]
fn digests_tell_values_apart() {
    assert_eq!(digest(&vec![1u32, 2]), digest(&vec![1u32, 2]));
    assert_ne!(digest(&vec![1u32, 2]), digest(&vec![2u32, 1]));
    assert_ne!(digest("a"), digest("b"));
}

#[test]
fn a_ttl_moves_only_when_the_evidence_leaves_its_range() {
    let a = analytics(CacheConfig::default());
    let auto = AutoTtl::DEFAULT;
    let key = "static:page:1";
    // 40 unchanged reloads 300 s apart: 12 000 s without a change could still mean one change
    // in ~100 min, too often for 300 s at 1 %: the TTL in use is inside the range, and stays.
    let t = reload(&a, key, clock::now(), 300, 40, secs(300), Some(auto), |_| false);
    assert_eq!(a.ttl(key, secs(300), &auto), secs(300));
    assert_eq!(a.advice()[0].recommended_ttl_secs, Some(300.0));
    // 200 of them: now even the highest rate the evidence allows permits ~10 min.
    reload(&a, key, t, 300, 160, secs(300), Some(auto), |_| false);
    let ttl = a.ttl(key, secs(300), &auto).as_secs_f64();
    assert!((500.0..700.0).contains(&ttl), "{ttl}");
}
