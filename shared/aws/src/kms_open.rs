//! Opening what [`crate::KmsSealer`] sealed, and nothing else: asks KMS to decrypt the data
//! key (with the encryption context it was sealed under), then opens the AES-256-GCM
//! ciphertext locally. What a function that only reads secrets holds (the intake, the
//! sweeper), so its code, like its key policy, can only decrypt.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::Client;
use std::collections::HashMap;

use crate::sdk::describe;
use sync_core::crypto;
use sync_core::domain::Sealed;
use sync_core::ports::{SealError, SecretOpener};

#[derive(Clone, Debug)]
pub struct KmsOpener {
    client: Client,
    key_id: String,
}

impl KmsOpener {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

pub(crate) fn context_map(context: &[(&str, &str)]) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The same context as bytes, in a fixed order, for the GCM associated data.
pub(crate) fn aad(context: &[(&str, &str)]) -> Vec<u8> {
    let mut pairs: Vec<_> = context.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join("\n").into_bytes()
}

#[async_trait]
impl SecretOpener for KmsOpener {
    async fn open(&self, sealed: &Sealed, context: &[(&str, &str)]) -> Result<Vec<u8>, SealError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed.encrypted_key.clone()))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se)
                    if se.is_invalid_ciphertext_exception() || se.is_incorrect_key_exception() =>
                {
                    SealError::Corrupt
                }
                _ => SealError::Unavailable(describe(&e)),
            })?;
        let key = out
            .plaintext()
            .ok_or_else(|| SealError::Unavailable("KMS returned no plaintext".into()))?;
        crypto::aes_gcm_open(
            key.as_ref(),
            &sealed.nonce,
            &sealed.ciphertext,
            &aad(context),
        )
        .map_err(|_| SealError::Corrupt)
    }
}
