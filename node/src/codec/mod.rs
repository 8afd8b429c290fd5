//! Payload encryption: a Temporal payload codec (AES-256-GCM) that the client and the workers
//! apply to every payload they send to or read from Temporal, so that prompts and answers are
//! never stored in the clear in workflow history.
//!
//! An encrypted payload has `encoding: binary/encrypted` and `encryption-key-id: <id>` in its
//! metadata; its data is a 12-byte nonce followed by the AES-GCM ciphertext of the original
//! payload (metadata and data, protobuf-encoded), the layout of Temporal's encryption samples.
//! Payloads without that encoding decode unchanged (history written before encryption was on).

pub mod keys;

pub use keys::{Keyring, KeysError};

use aes_gcm::aead::{Aead, AeadCore, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use futures::future::BoxFuture;
use prost::Message;
use std::sync::Arc;
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConversionError, PayloadConverter,
    SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// `encoding` of an encrypted payload.
pub const ENCRYPTED_ENCODING: &str = "binary/encrypted";
pub const METADATA_ENCODING: &str = "encoding";
pub const METADATA_KEY_ID: &str = "encryption-key-id";
const NONCE_LEN: usize = 12;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("the payload is encrypted but this node has no payload keys (ORRERY_PAYLOAD_KEYS)")]
    NoKeys,
    #[error("the encrypted payload names no key id")]
    NoKeyId,
    #[error("the payload was encrypted with key `{0}`, which this node does not have")]
    UnknownKey(String),
    #[error("the payload does not decrypt with key `{0}`: wrong key or corrupted data")]
    Undecryptable(String),
    #[error("the decrypted payload is not a Temporal payload")]
    NotAPayload,
    #[error("encryption failed")]
    Encrypt,
}

pub fn is_encrypted(p: &Payload) -> bool {
    p.metadata.get(METADATA_ENCODING).map(Vec::as_slice) == Some(ENCRYPTED_ENCODING.as_bytes())
}

/// Encrypts `p` with the keyring's first key.
pub fn encrypt(keys: &Keyring, p: &Payload) -> Result<Payload, CodecError> {
    let key = keys.active();
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = key
        .cipher()
        .encrypt(&nonce, p.encode_to_vec().as_slice())
        .map_err(|_| CodecError::Encrypt)?;
    let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
    data.extend_from_slice(&nonce);
    data.extend_from_slice(&sealed);
    Ok(Payload {
        metadata: [
            (METADATA_ENCODING.to_string(), ENCRYPTED_ENCODING.into()),
            (METADATA_KEY_ID.to_string(), key.id().into()),
        ]
        .into(),
        data,
        ..Default::default()
    })
}

/// Decrypts `p` if it is encrypted (with any key of the keyring); returns it unchanged if not.
pub fn decrypt(keys: Option<&Keyring>, p: Payload) -> Result<Payload, CodecError> {
    if !is_encrypted(&p) {
        return Ok(p);
    }
    let keys = keys.ok_or(CodecError::NoKeys)?;
    let id = p
        .metadata
        .get(METADATA_KEY_ID)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .ok_or(CodecError::NoKeyId)?;
    let key = keys
        .get(&id)
        .ok_or_else(|| CodecError::UnknownKey(id.clone()))?;
    if p.data.len() < NONCE_LEN {
        return Err(CodecError::Undecryptable(id));
    }
    let (nonce, sealed) = p.data.split_at(NONCE_LEN);
    let plain = key
        .cipher()
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| CodecError::Undecryptable(id))?;
    Payload::decode(plain.as_slice()).map_err(|_| CodecError::NotAPayload)
}

/// The codec the Temporal client and workers run: encrypts when the node has keys, and always
/// decrypts what it can (without keys an encrypted payload is a clear error, not garbage JSON).
#[derive(Clone, Debug)]
pub struct EncryptionCodec {
    keys: Option<Arc<Keyring>>,
}

impl EncryptionCodec {
    pub fn new(keys: Option<Arc<Keyring>>) -> Self {
        Self { keys }
    }

    pub fn encode_all(&self, payloads: Vec<Payload>) -> Result<Vec<Payload>, CodecError> {
        match &self.keys {
            Some(k) => payloads.iter().map(|p| encrypt(k, p)).collect(),
            None => Ok(payloads),
        }
    }

    pub fn decode_all(&self, payloads: Vec<Payload>) -> Result<Vec<Payload>, CodecError> {
        payloads
            .into_iter()
            .map(|p| decrypt(self.keys.as_deref(), p))
            .collect()
    }
}

fn conversion_error(e: CodecError) -> PayloadConversionError {
    PayloadConversionError::EncodingError(Box::new(e))
}

impl PayloadCodec for EncryptionCodec {
    fn encode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let r = self.encode_all(payloads).map_err(conversion_error);
        Box::pin(async move { r })
    }

    fn decode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let r = self.decode_all(payloads).map_err(conversion_error);
        Box::pin(async move { r })
    }
}

/// The data converter of the node's Temporal client (and so of its workers): JSON payloads,
/// encrypted when `keys` is set.
pub fn data_converter(keys: Option<Arc<Keyring>>) -> DataConverter {
    DataConverter::new(
        PayloadConverter::default(),
        DefaultFailureConverter::default(),
        EncryptionCodec::new(keys),
    )
}

#[cfg(test)]
mod tests;
