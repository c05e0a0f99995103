//! SHA-256 checks of model and data files before they are used.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Computes the lowercase hexadecimal SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` against `expected` (hexadecimal, any case) and names `file` on a mismatch.
pub fn verify_sha256(file: &str, bytes: &[u8], expected: &str) -> Result<String> {
    let trimmed = expected.trim();
    if trimmed.len() != 64 || !trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::InvalidOption {
            option: "sha256",
            value: format!("{trimmed:?}"),
            expected: "64 hexadecimal characters, as printed by `sha256sum`".into(),
        });
    }
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(expected.trim()) {
        return Err(Error::ChecksumMismatch {
            file: file.to_string(),
            expected: expected.trim().to_lowercase(),
            actual,
        });
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_string() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn mismatch_names_file_and_both_hashes() {
        let error = verify_sha256("model.gguf", b"abc", &"0".repeat(64)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("model.gguf"), "{message}");
        assert!(message.contains(&"0".repeat(64)), "{message}");
        assert!(message.contains("ba7816bf"), "{message}");
    }

    #[test]
    fn malformed_expected_hash_rejected() {
        let message = verify_sha256("model.gguf", b"abc", "abc")
            .unwrap_err()
            .to_string();
        assert!(message.contains("64 hexadecimal characters"), "{message}");
        assert!(!message.contains("mismatch"), "{message}");
    }

    #[test]
    fn match_ignores_case() {
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert!(verify_sha256("x", b"abc", upper).is_ok());
    }
}
