//! Password hashing with bcrypt, as etcd (`golang.org/x/crypto/bcrypt`).
//!
//! Hashing and checking are slow on purpose (about 50 ms at etcd's cost
//! of 10): callers run them off the async runtime's threads, and never
//! while holding the replica.

use crate::error::AuthError;

/// etcd's default bcrypt cost.
pub const DEFAULT_COST: u32 = 10;
/// The costs bcrypt accepts.
pub const COST_RANGE: std::ops::RangeInclusive<u32> = 4..=31;

/// The bcrypt hash of `password` at `cost`. Like Go's bcrypt, a password
/// of more than 72 bytes is refused rather than cut short.
pub fn hash(password: &str, cost: u32) -> Result<Vec<u8>, AuthError> {
    if password.len() > 72 {
        return Err(AuthError::PasswordTooLong);
    }
    // The only failure left is a cost out of range, which the
    // configuration refuses at start-up.
    Ok(bcrypt::hash(password, cost).expect("a cost in range").into_bytes())
}

/// Whether `password` matches `hash` (an empty or malformed hash matches
/// nothing).
pub fn verify(password: &str, hash: &[u8]) -> bool {
    let Ok(hash) = std::str::from_utf8(hash) else {
        return false;
    };
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("secret", 4).unwrap();
        assert!(verify("secret", &h));
        assert!(!verify("Secret", &h));
        assert!(!verify("", b""));
        assert!(!verify("secret", b"not a hash"));
        assert_eq!(hash(&"x".repeat(73), 4), Err(AuthError::PasswordTooLong));
    }
}
