//! Auth settings: how tokens are made, how long simple tokens live, and
//! the cost of password hashing (etcd's `--auth-token`,
//! `--auth-token-ttl`, `--bcrypt-cost`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError};

/// The `[auth]` table as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `simple` (default) or `jwt,sign-method=…,pub-key=…,priv-key=…,ttl=…`,
    /// as etcd's `--auth-token`.
    pub token: Option<String>,
    /// Seconds a simple token lives without being used. Default 300.
    pub token_ttl: Option<u64>,
    /// bcrypt cost of password hashes, 4 to 31. Default 10.
    pub bcrypt_cost: Option<u32>,
}

/// How tokens are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenConfig {
    /// Random tokens, recorded through the log so that every member knows
    /// them; they expire `token_ttl` after their last use on any member.
    Simple,
    /// Signed JWTs that every member with the key verifies on its own.
    Jwt {
        /// `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`,
        /// `ES384`, `HS256`, `HS384` or `HS512`.
        sign_method: String,
        public_key: Option<PathBuf>,
        private_key: Option<PathBuf>,
        /// Lifetime of a JWT (etcd's `ttl` option, default 5 minutes).
        ttl: Duration,
    },
}

/// Validated auth settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub token: TokenConfig,
    pub token_ttl: Duration,
    pub bcrypt_cost: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token: TokenConfig::Simple,
            token_ttl: Duration::from_secs(300),
            bcrypt_cost: 10,
        }
    }
}

const SIGN_METHODS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384", "HS512",
];

/// A Go duration (`300ms`, `5m`, `1h30m`, `1.5s`), as etcd's JWT `ttl`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit..];
    }
    Some(Duration::from_secs_f64(total))
}

/// etcd's parse of `--auth-token`: a type, then `key=value` options.
fn parse_token(text: &str) -> Result<TokenConfig, ConfigError> {
    let bad = |reason: &str| invalid("auth.token", text, reason);
    let mut parts = text.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut options = BTreeMap::new();
    for option in parts {
        let Some((key, value)) = option.split_once('=').filter(|(_, v)| !v.contains('=')) else {
            return Err(bad("options are key=value"));
        };
        if options.insert(key, value).is_some() {
            return Err(bad(&format!("option {key} appears twice")));
        }
    }
    match kind {
        "simple" => Ok(TokenConfig::Simple),
        "jwt" => {
            if let Some(unknown) = options
                .keys()
                .find(|k| !["sign-method", "pub-key", "priv-key", "ttl"].contains(k))
            {
                return Err(bad(&format!("unknown JWT option {unknown}")));
            }
            let sign_method = options.get("sign-method").copied().unwrap_or_default();
            if !SIGN_METHODS.contains(&sign_method) {
                return Err(bad(&format!("sign-method must be one of {}", SIGN_METHODS.join(", "))));
            }
            let path = |k| options.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
            let (public_key, private_key) = (path("pub-key"), path("priv-key"));
            if public_key.is_none() && private_key.is_none() {
                return Err(bad("a JWT needs pub-key, priv-key or both"));
            }
            let ttl = match options.get("ttl").filter(|v| !v.is_empty()) {
                None => Duration::from_secs(300),
                Some(t) => go_duration(t).ok_or_else(|| bad("ttl is a duration such as 5m or 300s"))?,
            };
            Ok(TokenConfig::Jwt {
                sign_method: sign_method.to_owned(),
                public_key,
                private_key,
                ttl,
            })
        }
        _ => Err(bad("the token type is simple or jwt")),
    }
}

impl RawAuth {
    pub fn validate(self) -> Result<AuthConfig, ConfigError> {
        let default = AuthConfig::default();
        let token = match self.token {
            None => default.token,
            Some(text) => parse_token(&text)?,
        };
        let token_ttl = match self.token_ttl {
            None => default.token_ttl,
            Some(0) => return Err(invalid("auth.token_ttl", "0", "must be positive")),
            Some(s) => Duration::from_secs(s),
        };
        let bcrypt_cost = match self.bcrypt_cost {
            None => default.bcrypt_cost,
            Some(c) if (4..=31).contains(&c) => c,
            Some(c) => return Err(invalid("auth.bcrypt_cost", c.to_string(), "must be between 4 and 31")),
        };
        Ok(AuthConfig {
            token,
            token_ttl,
            bcrypt_cost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Result<TokenConfig, String> {
        parse_token(text).map_err(|e| e.to_string())
    }

    #[test]
    fn etcds_token_options_parse() {
        assert_eq!(token("simple"), Ok(TokenConfig::Simple));
        assert_eq!(
            token("jwt,pub-key=a.pub,priv-key=a.key,sign-method=RS256,ttl=10m"),
            Ok(TokenConfig::Jwt {
                sign_method: "RS256".into(),
                public_key: Some("a.pub".into()),
                private_key: Some("a.key".into()),
                ttl: Duration::from_secs(600),
            })
        );
        assert!(token("jwt,priv-key=s,sign-method=HS256").is_ok());
        for bad in [
            "",
            "paseto",
            "jwt,sign-method=RS256",
            "jwt,priv-key=k,sign-method=none",
            "jwt,priv-key=k,priv-key=j,sign-method=HS256",
            "jwt,priv-key,sign-method=HS256",
            "jwt,priv-key=k,sign-method=HS256,ttl=forever",
            "jwt,priv-key=k,sign-method=HS256,colour=blue",
        ] {
            assert!(token(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn defaults_are_etcds_and_bad_values_are_refused() {
        assert_eq!(RawAuth::default().validate().unwrap(), AuthConfig::default());
        let zero = RawAuth {
            token_ttl: Some(0),
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let cost = RawAuth {
            bcrypt_cost: Some(3),
            ..Default::default()
        };
        assert!(cost.validate().is_err());
    }
}
