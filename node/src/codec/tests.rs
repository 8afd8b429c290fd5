//! The codec: round trips, rotation, wrong keys and tampering are errors, never panics.

use super::*;
use proptest::prelude::*;

fn json(text: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: serde_json::to_vec(text).unwrap(),
        ..Default::default()
    }
}

fn ring(text: &str) -> Keyring {
    Keyring::parse(text).unwrap()
}

fn entry(id: &str, fill: u8) -> String {
    use base64::Engine as _;
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode([fill; 32])
    )
}

#[test]
fn a_payload_round_trips_and_its_text_is_not_in_the_ciphertext() {
    let keys = ring(&entry("k1", 1));
    let plain = json("the secret prompt");
    let sealed = encrypt(&keys, &plain).unwrap();
    assert!(is_encrypted(&sealed));
    assert_eq!(sealed.metadata[METADATA_KEY_ID], b"k1");
    let hay = format!("{sealed:?}");
    assert!(
        !hay.contains("secret") && !hay.contains("json/plain"),
        "{hay}"
    );
    assert_eq!(decrypt(Some(&keys), sealed).unwrap(), plain);
    // Two encryptions of one payload differ (a fresh nonce each).
    assert_ne!(
        encrypt(&keys, &plain).unwrap().data,
        encrypt(&keys, &plain).unwrap().data
    );
}

#[test]
fn old_keys_still_decrypt_after_rotation() {
    let old = ring(&entry("k1", 1));
    let sealed_old = encrypt(&old, &json("before")).unwrap();
    let rotated = ring(&format!("{},{}", entry("k2", 2), entry("k1", 1)));
    let sealed_new = encrypt(&rotated, &json("after")).unwrap();
    assert_eq!(sealed_new.metadata[METADATA_KEY_ID], b"k2");
    assert_eq!(decrypt(Some(&rotated), sealed_old).unwrap(), json("before"));
    assert_eq!(
        decrypt(Some(&rotated), sealed_new.clone()).unwrap(),
        json("after")
    );
    // A node that has only the old key cannot read the new payloads.
    assert_eq!(
        decrypt(Some(&old), sealed_new),
        Err(CodecError::UnknownKey("k2".into()))
    );
}

#[test]
fn a_wrong_key_missing_keys_or_tampering_is_an_error() {
    let sealed = encrypt(&ring(&entry("k1", 1)), &json("x")).unwrap();
    let same_id_other_key = ring(&entry("k1", 9));
    assert_eq!(
        decrypt(Some(&same_id_other_key), sealed.clone()),
        Err(CodecError::Undecryptable("k1".into()))
    );
    assert_eq!(decrypt(None, sealed.clone()), Err(CodecError::NoKeys));
    let mut flipped = sealed.clone();
    let last = flipped.data.len() - 1;
    flipped.data[last] ^= 1;
    let keys = ring(&entry("k1", 1));
    assert_eq!(
        decrypt(Some(&keys), flipped),
        Err(CodecError::Undecryptable("k1".into()))
    );
    let mut short = sealed.clone();
    short.data.truncate(5);
    assert!(decrypt(Some(&keys), short).is_err());
    let mut no_id = sealed;
    no_id.metadata.remove(METADATA_KEY_ID);
    assert_eq!(decrypt(Some(&keys), no_id), Err(CodecError::NoKeyId));
}

#[test]
fn plain_payloads_decode_unchanged_and_no_keys_means_no_encryption() {
    let keys = ring(&entry("k1", 1));
    assert_eq!(decrypt(Some(&keys), json("old")).unwrap(), json("old"));
    let off = EncryptionCodec::new(None);
    assert_eq!(off.encode_all(vec![json("a")]).unwrap(), vec![json("a")]);
}

#[tokio::test]
async fn the_data_converter_encrypts_values_and_reads_them_back() {
    let keys = Arc::new(ring(&entry("k1", 1)));
    let dc = data_converter(Some(keys.clone()));
    let ctx = SerializationContextData::Workflow(
        temporalio_common::data_converters::WorkflowSerializationContext::new(),
    );
    let p = dc
        .to_payload(&ctx, &"hello there".to_string())
        .await
        .unwrap();
    assert!(is_encrypted(&p));
    let back: String = dc.from_payload(&ctx, p.clone()).await.unwrap();
    assert_eq!(back, "hello there");
    // A node without the key fails to read it with an error that says why.
    let err = data_converter(Some(Arc::new(ring(&entry("k9", 9)))))
        .from_payload::<String>(&ctx, p)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key `k1`"), "{err}");
}

proptest! {
    #[test]
    fn decrypting_arbitrary_bytes_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        id in "[a-z0-9]{0,4}",
    ) {
        let keys = ring(&entry("k1", 1));
        let p = Payload {
            metadata: [
                (METADATA_ENCODING.to_string(), ENCRYPTED_ENCODING.as_bytes().to_vec()),
                (METADATA_KEY_ID.to_string(), id.into_bytes()),
            ]
            .into(),
            data,
            ..Default::default()
        };
        prop_assert!(decrypt(Some(&keys), p).is_err());
    }

    #[test]
    fn any_payload_round_trips(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        meta in proptest::collection::hash_map("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..20), 0..4),
    ) {
        let keys = ring(&entry("k1", 1));
        let p = Payload { metadata: meta, data, ..Default::default() };
        prop_assert_eq!(decrypt(Some(&keys), encrypt(&keys, &p).unwrap()).unwrap(), p);
    }
}
