//! Envelope encryption with AWS KMS: each seal asks KMS for a fresh AES-256 data key
//! (returned both in the clear and encrypted under the stack's KMS key), encrypts with
//! AES-256-GCM locally, and keeps only the encrypted data key. Opening asks KMS to decrypt
//! the data key. The encryption context (tenant, connection) is passed to KMS and used as
//! the GCM associated data, so a sealed blob copied to another record opens nowhere, and
//! every decrypt shows up in CloudTrail with the record it was for.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;
use std::collections::HashMap;

use crate::sdk::describe;
use sync_core::crypto;
use sync_core::domain::Sealed;
use sync_core::ports::{SealError, SecretSealer};

#[derive(Clone, Debug)]
pub struct KmsSealer {
    client: Client,
    key_id: String,
}

impl KmsSealer {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

fn context_map(context: &[(&str, &str)]) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The same context as bytes, in a fixed order, for the GCM associated data.
fn aad(context: &[(&str, &str)]) -> Vec<u8> {
    let mut pairs: Vec<_> = context.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join("\n").into_bytes()
}

#[async_trait]
impl SecretSealer for KmsSealer {
    async fn seal(&self, plaintext: &[u8], context: &[(&str, &str)]) -> Result<Sealed, SealError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| SealError::Unavailable(describe(&e)))?;
        let (Some(key), Some(encrypted_key)) = (out.plaintext(), out.ciphertext_blob()) else {
            return Err(SealError::Unavailable("KMS returned no data key".into()));
        };
        let (nonce, ciphertext) = crypto::aes_gcm_seal(key.as_ref(), plaintext, &aad(context))
            .map_err(|_| SealError::Corrupt)?;
        Ok(Sealed {
            encrypted_key: encrypted_key.as_ref().to_vec(),
            nonce,
            ciphertext,
        })
    }

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
