//! Decoding what comes from a disk or a socket: bounded by its own length.
//!
//! Everything Firebreak writes (log entries, snapshots, peer frames,
//! backups) is bincode in the encoding of `bincode::serialize`. Decoded
//! with plain `bincode::deserialize`, a damaged or hostile length field
//! inside (of a value, a key, a list) makes the decoder allocate what it
//! claims, up to exabytes, and the process abort. [`decode`] refuses any
//! length that reaches past the end of the input instead.
//!
//! # Correctness
//! The bound is the input's own length, so every well-formed encoding
//! decodes exactly as before; trailing bytes are refused.

use serde::Deserialize;

/// Decodes `bytes`, which must hold exactly one value.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, bincode::Error> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_what_bincode_encodes_and_refuses_lengths_past_the_end() {
        let value = (7u64, vec![1u8, 2, 3], "key".to_string());
        let bytes = bincode::serialize(&value).unwrap();
        assert_eq!(decode::<(u64, Vec<u8>, String)>(&bytes).unwrap(), value);
        // The vector's length field claims 2^62 bytes.
        let mut hostile = bytes.clone();
        hostile[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<(u64, Vec<u8>, String)>(&hostile).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(decode::<(u64, Vec<u8>, String)>(&trailing).is_err());
    }
}
