//! Tokens: etcd's simple tokens and JWTs.
//!
//! A simple token is `<16 random letters>.<log index>`: the member that
//! authenticates a user chooses the letters and proposes them; the entry
//! that issues the token names its index, and every member records the
//! token when it applies the entry ([`crate::AuthCommand::Authenticate`]),
//! so any member can tell a token it has not applied yet (its index is
//! ahead) from a wrong one.
//!
//! A JWT is signed by the member that authenticates the user, with the
//! configured key, and carries the user name, the auth revision and an
//! expiry (etcd's claims `username`, `revision`, `exp`); any member with
//! the key verifies it without asking anyone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::AuthInfo;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A new random simple-token prefix (16 letters, as etcd's).
pub fn simple_token_prefix() -> String {
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
        .collect()
}

/// The log index a simple token names, if it has etcd's form.
pub fn simple_token_index(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, index, None) = (parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    index.parse().ok()
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Why the JWT keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("auth: invalid auth signature method {0:?}")]
    InvalidMethod(String),
    #[error("auth: missing key data: {0}")]
    MissingKey(&'static str),
    #[error("auth: cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("auth: bad key in {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
}

/// etcd's JWT claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// The JWT keys of a member: it signs with the private key (if it has
/// one) and verifies with the public key (the secret for HMAC).
pub struct Jwt {
    algorithm: Algorithm,
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

fn read(path: &Path) -> Result<Vec<u8>, JwtError> {
    std::fs::read(path).map_err(|source| JwtError::Read {
        path: path.to_owned(),
        source,
    })
}

fn bad(path: &Path) -> impl Fn(jsonwebtoken::errors::Error) -> JwtError + '_ {
    move |e| JwtError::BadKey {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl Jwt {
    /// Loads the keys of etcd's `--auth-token jwt,...` options: the sign
    /// method (`RS256`, `PS384`, `ES256`, `HS512`, ...), the public key
    /// (PEM; needed to verify, except for HMAC), the private key (PEM, or
    /// the secret for HMAC; needed to sign) and the tokens' time to live.
    pub fn load(
        sign_method: &str,
        public_key: Option<&Path>,
        private_key: Option<&Path>,
        ttl: Duration,
    ) -> Result<Jwt, JwtError> {
        let algorithm: Algorithm = sign_method
            .parse()
            .map_err(|_| JwtError::InvalidMethod(sign_method.to_owned()))?;
        let (signing, verifying) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let path = private_key.ok_or(JwtError::MissingKey("priv-key holds the HMAC secret"))?;
                let secret = read(path)?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let path = public_key.ok_or(JwtError::MissingKey("pub-key is needed to verify tokens"))?;
                let verifying = DecodingKey::from_rsa_pem(&read(path)?).map_err(bad(path))?;
                let signing = match private_key {
                    Some(path) => Some(EncodingKey::from_rsa_pem(&read(path)?).map_err(bad(path))?),
                    None => None,
                };
                (signing, verifying)
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let path = public_key.ok_or(JwtError::MissingKey("pub-key is needed to verify tokens"))?;
                let verifying = DecodingKey::from_ec_pem(&read(path)?).map_err(bad(path))?;
                let signing = match private_key {
                    Some(path) => Some(EncodingKey::from_ec_pem(&read(path)?).map_err(bad(path))?),
                    None => None,
                };
                (signing, verifying)
            }
            _ => return Err(JwtError::InvalidMethod(sign_method.to_owned())),
        };
        Ok(Jwt {
            algorithm,
            signing,
            verifying,
            ttl,
        })
    }

    /// A token for `user` at auth revision `revision`, expiring `ttl` after
    /// `now`.
    pub fn sign(&self, user: &str, revision: u64, now: SystemTime) -> Result<String, AuthError> {
        let key = self.signing.as_ref().ok_or(AuthError::VerifyOnly)?;
        let claims = Claims {
            username: user.to_owned(),
            revision,
            exp: (now + self.ttl).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|_| AuthError::VerifyOnly)
    }

    /// Who a token names, if it is signed with this key, by this method,
    /// and has not expired.
    pub fn verify(&self, token: &str) -> Option<AuthInfo> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation).ok()?;
        Some(AuthInfo {
            user: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_have_etcds_form() {
        let prefix = simple_token_prefix();
        assert_eq!(prefix.len(), 16);
        assert!(prefix.bytes().all(|b| b.is_ascii_alphabetic()));
        assert_eq!(simple_token_index(&format!("{prefix}.42")), Some(42));
        assert_eq!(simple_token_index("abc"), None);
        assert_eq!(simple_token_index("a.b"), None);
        assert_eq!(simple_token_index("a.1.2"), None);
    }

    #[test]
    fn an_hmac_jwt_verifies_with_its_secret_and_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"0123456789abcdef0123456789abcdef").unwrap();
        let jwt = Jwt::load("HS256", None, Some(&secret), Duration::from_secs(60)).unwrap();
        let now = SystemTime::now();
        let token = jwt.sign("alice", 7, now).unwrap();
        assert_eq!(
            jwt.verify(&token),
            Some(AuthInfo {
                user: "alice".into(),
                revision: 7
            })
        );
        let expired = jwt.sign("alice", 7, now - Duration::from_secs(120)).unwrap();
        assert_eq!(jwt.verify(&expired), None);
        let mut forged = token.clone();
        forged.pop();
        assert_eq!(jwt.verify(&forged), None);
        std::fs::write(&secret, b"another secret, another cluster").unwrap();
        let other = Jwt::load("HS256", None, Some(&secret), Duration::from_secs(60)).unwrap();
        assert_eq!(other.verify(&token), None, "a token of another key");
        let other_method = Jwt::load("HS512", None, Some(&secret), Duration::from_secs(60)).unwrap();
        assert_eq!(other_method.verify(&other.sign("a", 1, now).unwrap()), None);
        assert!(matches!(
            Jwt::load("none", None, Some(&secret), Duration::from_secs(1)),
            Err(JwtError::InvalidMethod(_))
        ));
        assert!(matches!(
            Jwt::load("RS256", None, Some(&secret), Duration::from_secs(1)),
            Err(JwtError::MissingKey(_))
        ));
    }
}
