//! Tag invalidation ([`crate::tags`]): one small write per tag and one message, whatever the
//! number of entries carrying it.

use super::Engine;
use crate::bus::Message;
use crate::error::Result;
use crate::latency::Op;
use crate::tags;
use crate::tier::Item;

/// Tag prefixes counted apart in the stats; the others are counted under `"*"`.
const PREFIXES_KEPT: usize = 256;

impl Engine {
    /// Invalidates every entry carrying one of `names`, here at once (L1 included, even when
    /// Redis fails) and everywhere once Redis holds the new tokens. The Redis error is returned.
    pub(crate) async fn invalidate_tags(&self, names: &[&str]) -> Result<()> {
        // Any number at once: only the tags of one entry are bounded.
        names.iter().try_for_each(|n| tags::validate(n))?;
        // Which tracked keys carry the tags is not known here: no reload until then is compared.
        self.analytics.broad_invalidation();
        let mapped = self.security.tag_names(names);
        let mut names: Vec<&str> = mapped.iter().map(AsRef::as_ref).collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            return Ok(());
        }
        let local: Vec<_> = names.iter().map(|n| self.tags.invalidate_here(n)).collect();
        self.count_tag_invalidations(&names);
        let Some(remote) = &self.remote else {
            // Alone, the versions are the whole state; the disk tier records what must outlive
            // a restart.
            if let Some(disk) = &self.disk {
                disk.invalidate_tags(&names);
            }
            return Ok(());
        };
        let values: Vec<String> = names.iter().map(|_| tags::new_token_value()).collect();
        let keys: Vec<String> = names.iter().map(|n| tags::record_key(n)).collect();
        let items: Vec<Item<'_>> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_str(), v.as_bytes(), self.config.tag_ttl))
            .collect();
        let tokens: Vec<u64> = values
            .iter()
            .map(|v| tags::token_of(Some(v.as_bytes())))
            .collect();
        let notice = self.tag_notice(&Message::Tags(
            names
                .iter()
                .zip(&tokens)
                .map(|(n, t)| ((*n).to_owned(), *t))
                .collect(),
        ));
        match self
            .timed(Op::Invalidate, remote.set_plain(&items, notice.as_ref()))
            .await
        {
            Ok(()) => {
                for ((state, version), token) in local.iter().zip(tokens) {
                    self.tags.confirmed(state, *version, token);
                }
                Ok(())
            }
            Err(e) => {
                // Redis may have applied it or not: the token is unknown until read again.
                for (state, _) in &local {
                    self.tags.failed(state);
                }
                self.record_error("invalidate_tags", names[0], &e);
                Err(e)
            }
        }
    }

    fn count_tag_invalidations(&self, names: &[&str]) {
        let mut counts = self.tag_invalidations.lock();
        for n in names {
            let prefix = crate::perf::prefix_of(n);
            if let Some(c) = counts.get_mut(prefix) {
                *c += 1;
            } else if counts.len() < PREFIXES_KEPT {
                counts.insert(prefix.to_owned(), 1);
            } else {
                *counts.entry("*".to_owned()).or_default() += 1;
            }
        }
    }
}
