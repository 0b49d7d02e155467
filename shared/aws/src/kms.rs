//! Envelope encryption with AWS KMS: each seal asks KMS for a fresh AES-256 data key
//! (returned both in the clear and encrypted under the stack's KMS key), encrypts with
//! AES-256-GCM locally, and keeps only the encrypted data key. Opening asks KMS to decrypt
//! the data key. The encryption context (tenant, connection) is passed to KMS and used as
//! the GCM associated data, so a sealed blob copied to another record opens nowhere, and
//! every decrypt shows up in CloudTrail with the record it was for.

use async_trait::async_trait;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;

use crate::sdk::describe;
use sync_core::crypto;
use sync_core::domain::Sealed;
use sync_core::ports::{SealError, SecretOpener, SecretSealer};

use crate::kms_open::{aad, context_map, KmsOpener};

/// Sealing and opening (the API, connection setup, and the worker, which seals refreshed
/// QuickBooks tokens).
#[derive(Clone, Debug)]
pub struct KmsSealer {
    client: Client,
    key_id: String,
    opener: KmsOpener,
}

impl KmsSealer {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        let key_id = key_id.into();
        Self {
            opener: KmsOpener::new(client.clone(), key_id.clone()),
            client,
            key_id,
        }
    }
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
}

#[async_trait]
impl SecretOpener for KmsSealer {
    async fn open(&self, sealed: &Sealed, context: &[(&str, &str)]) -> Result<Vec<u8>, SealError> {
        self.opener.open(sealed, context).await
    }
}
