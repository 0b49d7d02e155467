//! The few cryptographic operations the service needs, on aws-lc-rs (already linked for the
//! AWS SDK's TLS): HMAC-SHA256 with constant-time verification, constant-time equality,
//! SHA-256 digests, and AES-256-GCM for envelope encryption.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{constant_time, digest, hmac, rand};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// base64(HMAC-SHA256(key, message)): the signature WooCommerce and QuickBooks send.
pub fn hmac_sha256_base64(key: &[u8], message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    STANDARD.encode(hmac::sign(&key, message).as_ref())
}

/// hex(HMAC-SHA256(key, message)): how the service signs what it sends (alert webhooks).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex(hmac::sign(&key, message).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `signature_b64` is base64(HMAC-SHA256(key, message)), compared in constant time.
/// Surrounding white space is ignored; anything that is not base64 is simply wrong.
pub fn verify_hmac_sha256_base64(key: &[u8], message: &[u8], signature_b64: &str) -> bool {
    let Ok(tag) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, message, &tag).is_ok()
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// Why sealing or opening failed. Deliberately without detail: a wrong key, a wrong
/// context and a tampered ciphertext must look the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encryption failure")]
pub struct CryptoFailure;

/// `count` random bytes from the system's CSPRNG.
pub fn random_bytes(count: usize) -> Result<Vec<u8>, CryptoFailure> {
    let mut out = vec![0u8; count];
    rand::fill(&mut out).map_err(|_| CryptoFailure)?;
    Ok(out)
}

/// AES-256-GCM with a fresh random nonce; returns `(nonce, ciphertext with tag)`. `aad` is
/// authenticated but not encrypted: opening with other `aad` fails.
pub fn aes_gcm_seal(
    key: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoFailure> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoFailure)?);
    let nonce_bytes = random_bytes(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| CryptoFailure)?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoFailure)?;
    Ok((nonce_bytes, in_out))
}

pub fn aes_gcm_open(
    key: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoFailure> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoFailure)?);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoFailure)?;
    let mut in_out = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoFailure)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_TAG_HEX: &str =
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn hmac_matches_rfc_4231() {
        let b64 = hmac_sha256_base64(b"Jefe", b"what do ya want for nothing?");
        let bytes = STANDARD.decode(b64).unwrap_or_default();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, RFC4231_TAG_HEX);
    }

    #[test]
    fn verification_refuses_other_keys_bodies_and_garbage() {
        let sig = hmac_sha256_base64(b"k", b"body");
        assert!(verify_hmac_sha256_base64(b"k", b"body", &sig));
        assert!(verify_hmac_sha256_base64(
            b"k",
            b"body",
            &format!(" {sig}\n")
        ));
        assert!(!verify_hmac_sha256_base64(b"k2", b"body", &sig));
        assert!(!verify_hmac_sha256_base64(b"k", b"body ", &sig));
        assert!(!verify_hmac_sha256_base64(b"k", b"body", "not base64!"));
        assert!(!verify_hmac_sha256_base64(b"k", b"body", ""));
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let key = [7u8; 32];
        let (nonce, ct) = aes_gcm_seal(&key, b"secret", b"ctx").unwrap_or_default();
        assert_eq!(
            aes_gcm_open(&key, &nonce, &ct, b"ctx"),
            Ok(b"secret".to_vec())
        );
        assert_eq!(
            aes_gcm_open(&key, &nonce, &ct, b"other"),
            Err(CryptoFailure)
        );
        assert_eq!(
            aes_gcm_open(&[8u8; 32], &nonce, &ct, b"ctx"),
            Err(CryptoFailure)
        );
        let mut tampered = ct.clone();
        tampered[0] ^= 1;
        assert_eq!(
            aes_gcm_open(&key, &nonce, &tampered, b"ctx"),
            Err(CryptoFailure)
        );
        assert!(!ct.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn sha256_of_abc_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
