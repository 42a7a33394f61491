//! Prints the Redis `ACL SETUSER` rule for a cache user limited to its namespace and key
//! patterns (`cache_core::acl`). The namespace, key secret and other settings come from the
//! environment, as the service's do, so the patterns are written as Redis will see them.
//!
//! ```text
//! CACHE_NAMESPACE=app cargo run -p cache-examples --bin acl-rule -- \
//!     --user cache --password-env CACHE_REDIS_USER_PASSWORD --pattern 'query:*' --pattern 'resource:*'
//! ```

use std::io::Write;
use std::process::ExitCode;

use cache_core::CacheConfig;
use clap::Parser;

/// Prints the ACL SETUSER rule of a Redis user that may run this cache (only).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The Redis user name.
    #[arg(long)]
    user: String,
    /// The environment variable holding the user's password (never a flag, so it stays out of
    /// shell history and `ps`); the rule carries its SHA-256 only.
    #[arg(long, default_value = "CACHE_REDIS_USER_PASSWORD")]
    password_env: String,
    /// A key pattern the user may touch (repeatable); none means the whole namespace.
    #[arg(long = "pattern")]
    patterns: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> Result<String, Box<dyn std::error::Error>> {
        let password = std::env::var(&args.password_env).map_err(|_| {
            format!(
                "set the password in ${} (or pass --password-env NAME)",
                args.password_env
            )
        })?;
        let config = CacheConfig::from_env()?;
        let patterns: Vec<&str> = args.patterns.iter().map(String::as_str).collect();
        Ok(config.acl_rule(&args.user, &password, &patterns)?.to_string())
    };
    match run() {
        Ok(rule) => {
            let _ = writeln!(std::io::stdout(), "{rule}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "acl-rule: {e}");
            ExitCode::from(2)
        }
    }
}
