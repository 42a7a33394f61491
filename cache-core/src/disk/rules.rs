//! Invalidations the disk tier must outlive a restart with when there is no Redis to ask: each
//! pattern or tag invalidation is a line in `l3.rules`, synced before the call returns, and a
//! record written before a matching line is stale. (With Redis, a record from before a restart
//! is checked against Redis's copy instead: `super::Disk`.)
//!
//! A line is `<unix ms> p|t <hex of the pattern or tag>`. A file that does not parse is not
//! guessed at: the caller empties the tier.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::pattern::Pattern;

/// More rules than this and the tier is emptied instead (checks stay short).
pub(crate) const MAX_RULES: usize = 4096;

enum What {
    Pattern(Pattern),
    Tag(Box<str>),
}

struct Rule {
    at_ms: u64,
    what: What,
}

/// The rules, in memory and in their file.
pub(crate) struct Rules {
    path: PathBuf,
    /// Appends and resets of the file, one at a time (readers of the list never wait on them).
    file: Mutex<()>,
    list: Mutex<Vec<Rule>>,
}

/// Why the rules cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RulesError {
    #[error("rules file {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("rules file {path}: line {line} is corrupt")]
    Corrupt { path: String, line: usize },
}

fn hex(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::with_capacity(s.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(s: &str) -> Option<String> {
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn parse_line(line: &str) -> Option<Rule> {
    let mut parts = line.split(' ');
    let at_ms = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let text = unhex(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let what = match kind {
        "p" => What::Pattern(Pattern::new(&text).ok()?),
        "t" => What::Tag(text.into()),
        _ => return None,
    };
    Some(Rule { at_ms, what })
}

impl Rules {
    /// Reads `dir/l3.rules` (absent: none).
    pub(crate) fn load(dir: &Path) -> Result<Self, RulesError> {
        let path = dir.join("l3.rules");
        let io = |err| RulesError::Io {
            path: path.display().to_string(),
            err,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut list = Vec::new();
        for (i, line) in text.lines().enumerate() {
            list.push(parse_line(line).ok_or_else(|| RulesError::Corrupt {
                path: path.display().to_string(),
                line: i + 1,
            })?);
        }
        Ok(Rules {
            path,
            file: Mutex::new(()),
            list: Mutex::new(list),
        })
    }

    /// Records a pattern invalidation at `at_ms`; synced before it returns.
    pub(crate) fn add_pattern(&self, p: &Pattern, at_ms: u64) -> Result<usize, RulesError> {
        self.add(at_ms, 'p', p.as_str(), What::Pattern(p.clone()))
    }

    /// Records a tag invalidation at `at_ms`; synced before it returns.
    pub(crate) fn add_tag(&self, tag: &str, at_ms: u64) -> Result<usize, RulesError> {
        self.add(at_ms, 't', tag, What::Tag(tag.into()))
    }

    /// Appends one rule (synced), then adds it to the list; the count after it.
    fn add(&self, at_ms: u64, kind: char, text: &str, what: What) -> Result<usize, RulesError> {
        let _file = self.file.lock();
        let io = |err| RulesError::Io {
            path: self.path.display().to_string(),
            err,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(f, "{at_ms} {kind} {}", hex(text)).map_err(io)?;
        f.sync_data().map_err(io)?;
        let mut list = self.list.lock();
        list.push(Rule { at_ms, what });
        Ok(list.len())
    }

    /// Forgets every rule (after the tier was emptied).
    pub(crate) fn clear(&self) -> Result<(), RulesError> {
        let _file = self.file.lock();
        File::create(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(|err| RulesError::Io {
                path: self.path.display().to_string(),
                err,
            })?;
        self.list.lock().clear();
        Ok(())
    }

    /// Whether a record of `key` with `tags`, written at `written_ms`, was invalidated since (a
    /// rule of the same millisecond counts: the order within it is unknown).
    pub(crate) fn stale(&self, key: &str, tags: &[&str], written_ms: u64) -> bool {
        self.list.lock().iter().any(|r| {
            r.at_ms >= written_ms
                && match &r.what {
                    What::Pattern(p) => p.matches(key),
                    What::Tag(t) => tags.contains(&&**t),
                }
        })
    }

    /// How many rules there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_survive_a_reload_and_match_by_time() {
        let dir = std::env::temp_dir().join(format!("l3-rules-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Rules::load(&dir).unwrap();
        r.add_pattern(&Pattern::new("user:*").unwrap(), 100).unwrap();
        r.add_tag("team:7 \n odd", 200).unwrap();
        let r = Rules::load(&dir).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.stale("user:1", &[], 100));
        assert!(!r.stale("user:1", &[], 101));
        assert!(!r.stale("post:1", &[], 0));
        assert!(r.stale("post:1", &["team:7 \n odd"], 150));
        assert!(!r.stale("post:1", &["team:7 \n odd"], 201));
        r.clear().unwrap();
        assert_eq!(Rules::load(&dir).unwrap().len(), 0);
        std::fs::write(dir.join("l3.rules"), "12 p 7a\nnot a rule\n").unwrap();
        assert!(matches!(
            Rules::load(&dir),
            Err(RulesError::Corrupt { line: 2, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
