#![allow(clippy::unwrap_used)]
use super::*;

fn err(text: &str) -> String {
    AdminConfig::from_tokens_toml(text).unwrap_err().to_string()
}

const TWO: &str = r#"
    [[tokens]]
    name = "ops"
    token = "ops-secret"
    actions = ["read", "clear", "warmup", "switch"]
    patterns = ["tenant-a:*"]
    tags = ["tenant-a:*"]

    [[tokens]]
    name = "dash"
    token = "dash-secret"
    actions = ["read"]
"#;

#[test]
fn a_tokens_file_parses_with_defaults() {
    let c = AdminConfig::from_tokens_toml(TWO).unwrap();
    let [ops, dash] = c.tokens() else { panic!() };
    assert_eq!((ops.name(), dash.name()), ("ops", "dash"));
    assert!(Action::ALL.iter().all(|a| ops.allows(*a)));
    assert!(dash.allows(Action::Read) && !dash.allows(Action::Clear) && !dash.allows(Action::Warmup));
    assert!(!ops.key_scope().is_all() && ops.key_scope().allows_key("tenant-a:1"));
    assert!(dash.key_scope().is_all(), "patterns default to *");
    assert!(dash.tag_scope().is_none(), "tags default to none");
    assert!(ops.tag_scope().unwrap().allows_key("tenant-a:x"));
    assert!(AdminConfig::from_tokens_toml("").unwrap().tokens().is_empty());
}

#[test]
fn tokens_file_mistakes_are_clear_errors() {
    let one = |fields: &str| format!("[[tokens]]\n{fields}\n");
    let e = err("[[tokens]\nname = ");
    assert!(e.starts_with("malformed admin tokens file"), "{e}");
    let e = err(&one(r#"name = "a"
        token = "hunter2"
        actions = ["read", "delete"]"#));
    assert!(
        e.contains("\"a\"") && e.contains("unknown action \"delete\""),
        "{e}"
    );
    let e = err(&one(r#"name = "a"
        token = "hunter2"
        actions = ["read"]
        patterns = ["bad:["]"#));
    assert!(e.contains("bad patterns pattern"), "{e}");
    let e = err(&one(r#"name = "a"
        token = "hunter2"
        actions = ["read"]
        tags = []"#));
    assert!(e.contains("bad tags pattern"), "{e}");
    let e = err(&one(r#"name = "a"
        token = ""
        actions = ["read"]"#));
    assert!(e.contains("empty secret"), "{e}");
    let e = err(&one(r#"name = "a"
        token = "hunter2"
        actions = []"#));
    assert!(e.contains("no actions"), "{e}");
    let e = err(&one(r#"name = ""
        token = "hunter2"
        actions = ["read"]"#));
    assert!(e.contains("empty name"), "{e}");
    let e = err(&one(r#"name = "a"
        token = "hunter2"
        action = ["read"]"#));
    assert!(e.contains("unknown field"), "{e}");
    let e = err(&one(r#"name = "a"
        token = "hunter2""#));
    assert!(e.contains("missing field `actions`"), "{e}");
    let entry = |name: &str, secret: &str| {
        one(&format!(
            "name = {name:?}\ntoken = {secret:?}\nactions = [\"read\"]"
        ))
    };
    let e = err(&(entry("a", "hunter2") + &entry("a", "other")));
    assert!(e.contains("two admin tokens are named \"a\""), "{e}");
    let e = err(&(entry("a", "hunter2") + &entry("b", "hunter2")));
    assert!(e.contains("\"a\" and \"b\" have the same secret"), "{e}");
    // No message quotes a secret.
    for text in [
        entry("a", "hunter2") + &entry("b", "hunter2"),
        one(r#"name = "a"
        token = "hunter2"
        actions = "read""#),
        one(r#"name = "a"
        token = "hunter2"
        actions = ["read"]
        extra = 1"#),
    ] {
        assert!(!err(&text).contains("hunter2"), "{}", err(&text));
    }
    let e = AdminConfig::from_tokens_file("/nonexistent/tokens.toml").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tokens.toml"), "{e}");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let c = AdminConfig::from_tokens_toml(TWO).unwrap();
    let shown = format!("{c:?} {:?}", AdminConfig::with_token("plain-secret").unwrap());
    assert!(
        !shown.contains("ops-secret") && !shown.contains("dash-secret"),
        "{shown}"
    );
    assert!(!shown.contains("plain-secret"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("tenant-a:*"),
        "{shown}"
    );
}

#[test]
fn the_bearer_secret_picks_its_token() {
    let c = AdminConfig::from_tokens_toml(TWO).unwrap();
    let name = |auth: Option<&str>| match identify(&c, auth, None) {
        Caller::Token(t) => Some(t.name().to_owned()),
        Caller::Unauthenticated => None,
        _ => panic!("tokens are configured"),
    };
    assert_eq!(name(Some("Bearer ops-secret")).as_deref(), Some("ops"));
    assert_eq!(name(Some("bearer dash-secret")).as_deref(), Some("dash"));
    assert_eq!(name(Some("Bearer ops-secre")), None);
    assert_eq!(name(Some("Bearer ops-secretx")), None);
    assert_eq!(name(Some("Basic ops-secret")), None);
    assert_eq!(name(Some("ops-secret")), None);
    assert_eq!(name(None), None);
}

#[test]
fn without_tokens_only_loopback_peers_pass() {
    let c = AdminConfig::new();
    let outcome = |peer: Option<&str>| {
        let caller = identify(&c, Some("Bearer anything"), peer.map(|p| p.parse().unwrap()));
        caller.rights(Action::Read).map(|r| r.name.to_owned())
    };
    assert_eq!(outcome(Some("127.0.0.1:5000")).as_deref(), Ok("loopback"));
    assert_eq!(outcome(Some("[::1]:5000")).as_deref(), Ok("loopback"));
    assert_eq!(outcome(Some("10.1.2.3:5000")).err(), Some(Refusal::Remote));
    assert_eq!(outcome(Some("[2001:db8::1]:5000")).err(), Some(Refusal::Remote));
    assert_eq!(outcome(None).err(), Some(Refusal::Remote), "unknown peer");
    // With tokens, loopback alone is not enough.
    let c = AdminConfig::with_token("t").unwrap();
    let caller = identify(&c, None, Some("127.0.0.1:1".parse().unwrap()));
    assert_eq!(caller.rights(Action::Read).err(), Some(Refusal::Unauthenticated));
}

#[test]
fn rights_follow_actions_patterns_and_tags() {
    let c = AdminConfig::from_tokens_toml(TWO).unwrap();
    let ops = identify(&c, Some("Bearer ops-secret"), None);
    let dash = identify(&c, Some("Bearer dash-secret"), None);
    assert_eq!(
        dash.rights(Action::Clear).err(),
        Some(Refusal::NotAllowed {
            name: "dash".into(),
            action: Action::Clear
        })
    );
    let r = ops.rights(Action::Clear).unwrap();
    let p = |s: &str| Pattern::new(s).unwrap();
    assert!(r.clears(&p("tenant-a:*")) && r.clears(&p("tenant-a:users:*")));
    assert!(!r.clears(&p("tenant-b:*")) && !r.clears(&p("*")) && !r.clears(&p("tenant-*")));
    assert!(r.invalidates_tag("tenant-a:42") && !r.invalidates_tag("tenant-b:42"));
    assert!(r.shows_key("tenant-a:1") && !r.shows_key("tenant-b:1"));
    assert!(r.shows_prefix("tenant-a") && !r.shows_prefix("tenant-b") && !r.shows_prefix("tenant"));
    let d = dash.rights(Action::Read).unwrap();
    assert!(d.shows_key("tenant-b:1") && d.shows_prefix("tenant-b"));
    assert!(!d.invalidates_tag("anything"), "no tags by default");
    let full = AdminConfig::with_token("t").unwrap();
    let r = identify(&full, Some("Bearer t"), None)
        .rights(Action::Clear)
        .unwrap();
    assert!(r.invalidates_tag("x") && r.clears(&p("*")) && r.name == "default");
}
