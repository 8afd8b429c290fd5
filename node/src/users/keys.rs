//! API keys: a TOML file of sha256 hashes (never the keys themselves) and/or `ORRERY_API_KEYS`
//! (`KEY:USER[:TIER]`, comma-separated, hashed as soon as they are read). A presented key is
//! hashed and looked up; keys are never logged or kept in memory in the clear.

use super::{Tier, TierLimit, UserId};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Keys shorter than this are refused: they could be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// Every problem found in the keys, reported together. Messages never contain a key.
#[derive(Debug, thiserror::Error)]
#[error("invalid API keys:\n  - {}", .0.join("\n  - "))]
pub struct KeysError(pub Vec<String>);

/// What a key grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub user: UserId,
    pub tier: Tier,
    /// Per-user overrides of the tier's limits.
    pub max_concurrent: Option<u32>,
    pub requests_per_minute: Option<u32>,
}

impl KeyEntry {
    pub fn limit(&self, tier_default: TierLimit) -> TierLimit {
        TierLimit {
            max_concurrent: self.max_concurrent.unwrap_or(tier_default.max_concurrent),
            requests_per_minute: self
                .requests_per_minute
                .unwrap_or(tier_default.requests_per_minute),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    user: String,
    tier: Option<String>,
    sha256: String,
    max_concurrent: Option<u32>,
    requests_per_minute: Option<u32>,
}

/// The keys a node accepts, by hash.
#[derive(Clone, Debug, Default)]
pub struct KeyStore {
    by_hash: HashMap<[u8; 32], KeyEntry>,
}

/// The sha256 of a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl KeyStore {
    /// Builds the store from the keys file's text and the `ORRERY_API_KEYS` value.
    pub fn parse(file_text: Option<&str>, env_keys: Option<&str>) -> Result<KeyStore, KeysError> {
        let mut errors = Vec::new();
        let mut entries = Vec::new();
        if let Some(text) = file_text {
            file_entries(text, &mut entries, &mut errors);
        }
        if let Some(env) = env_keys {
            env_entries(env, &mut entries, &mut errors);
        }
        let mut store = KeyStore::default();
        for (hash, entry, what) in entries {
            if store.by_hash.insert(hash, entry).is_some() {
                errors.push(format!("{what}: the same key appears twice"));
            }
        }
        if errors.is_empty() {
            Ok(store)
        } else {
            Err(KeysError(errors))
        }
    }

    /// What a presented key grants, if it is one of ours.
    pub fn lookup(&self, presented: &str) -> Option<&KeyEntry> {
        self.by_hash.get(&hash_key(presented))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A fresh random key and the keys-file entry that grants it.
pub fn generate(user: &UserId, tier: Tier) -> (String, String) {
    let key = format!(
        "sk-orrery-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let entry = format!(
        "[[keys]]\nuser = \"{user}\"\ntier = \"{}\"\nsha256 = \"{}\"\n",
        tier.as_str(),
        to_hex(&hash_key(&key))
    );
    (key, entry)
}

/// A key's hash, what it grants, and how errors name it.
type Parsed = ([u8; 32], KeyEntry, String);

const BAD_USER: &str = "user names are 1-64 letters, digits, '-', '_', '.' or '@'";

/// The `[[keys]]` of a keys file (hashes only).
fn file_entries(text: &str, out: &mut Vec<Parsed>, errors: &mut Vec<String>) {
    let raw = match toml::from_str::<RawFile>(text) {
        Ok(raw) => raw,
        Err(e) => return errors.push(format!("keys file: {}", e.message())),
    };
    for (i, k) in raw.keys.into_iter().enumerate() {
        let what = format!("keys file, key {} (user `{}`)", i + 1, k.user);
        let user = UserId::parse(&k.user);
        if user.is_none() {
            errors.push(format!("{what}: {BAD_USER}"));
        }
        let tier = match k.tier.as_deref().map(str::parse::<Tier>) {
            None => Some(Tier::Free),
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                errors.push(format!("{what}: {e}"));
                None
            }
        };
        let hash = from_hex(&k.sha256);
        if hash.is_none() {
            errors.push(format!(
                "{what}: sha256 must be 64 hex digits (`orrery keygen` prints one)"
            ));
        }
        if k.max_concurrent == Some(0) || k.requests_per_minute == Some(0) {
            errors.push(format!("{what}: limits must be positive"));
        }
        if let (Some(user), Some(tier), Some(hash)) = (user, tier, hash) {
            let entry = KeyEntry {
                user,
                tier,
                max_concurrent: k.max_concurrent,
                requests_per_minute: k.requests_per_minute,
            };
            out.push((hash, entry, what));
        }
    }
}

/// `KEY:USER[:TIER]` entries of `ORRERY_API_KEYS`, comma- or newline-separated.
fn env_entries(env: &str, out: &mut Vec<Parsed>, errors: &mut Vec<String>) {
    let entries = env
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for (i, e) in entries.enumerate() {
        let what = format!("ORRERY_API_KEYS entry {}", i + 1);
        match env_entry(e) {
            Ok((key, entry)) => out.push((hash_key(key), entry, what)),
            Err(why) => errors.push(format!("{what}: {why}")),
        }
    }
}

fn env_entry(e: &str) -> Result<(&str, KeyEntry), String> {
    let mut parts = e.split(':');
    let (key, user, tier) = (parts.next(), parts.next(), parts.next());
    let (Some(key), Some(user), None) = (key, user, parts.next()) else {
        return Err("use KEY:USER[:TIER]".into());
    };
    if key.len() < MIN_KEY_LEN {
        return Err(format!("keys must have at least {MIN_KEY_LEN} characters"));
    }
    let user = UserId::parse(user).ok_or(BAD_USER)?;
    let tier = match tier.map(str::parse::<Tier>) {
        None => Tier::Free,
        Some(t) => t?,
    };
    let entry = KeyEntry {
        user,
        tier,
        max_concurrent: None,
        requests_per_minute: None,
    };
    Ok((key, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE_KEY: &str = "sk-alice-0123456789";

    #[test]
    fn keys_from_file_and_env_are_found_by_hash() {
        let file = format!(
            "[[keys]]\nuser = \"alice\"\ntier = \"premium\"\nsha256 = \"{}\"\nmax_concurrent = 3\n",
            to_hex(&hash_key(ALICE_KEY))
        );
        let store = KeyStore::parse(
            Some(&file),
            Some("sk-bob-0123456789abc:bob:enterprise, sk-carol-0123456789:carol"),
        )
        .unwrap();
        assert_eq!(store.len(), 3);
        // (presented key, wanted user and tier)
        let table = [
            (ALICE_KEY, Some(("alice", Tier::Premium))),
            ("sk-bob-0123456789abc", Some(("bob", Tier::Enterprise))),
            ("sk-carol-0123456789", Some(("carol", Tier::Free))),
            ("sk-alice-0123456789 ", None),
            ("", None),
        ];
        for (key, want) in table {
            let got = store.lookup(key).map(|e| (e.user.as_str(), e.tier));
            assert_eq!(got, want, "key {key:?}");
        }
        let alice = store.lookup(ALICE_KEY).unwrap();
        let limit = alice.limit(TierLimit {
            max_concurrent: 8,
            requests_per_minute: 100,
        });
        assert_eq!((limit.max_concurrent, limit.requests_per_minute), (3, 100));
    }

    #[test]
    fn every_bad_key_is_reported_and_no_key_is_shown() {
        let file = "[[keys]]\nuser = \"a b\"\nsha256 = \"xyz\"\ntier = \"gold\"\n";
        let env = "short:bob,sk-0123456789abcdef,sk-0123456789abcdef:bob:platinum,sk-0123456789abcdef:x:free:extra";
        let err = KeyStore::parse(Some(file), Some(env)).unwrap_err();
        assert_eq!(err.0.len(), 7, "{err}");
        let shown = err.to_string();
        assert!(!shown.contains("sk-0123456789abcdef"), "{shown}");
        assert!(!shown.contains("short"), "{shown}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err =
            KeyStore::parse(None, Some("sk-0123456789abcdef:a,sk-0123456789abcdef:b")).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn generated_keys_round_trip_through_the_file_format() {
        let (key, entry) = generate(&UserId::parse("dana").unwrap(), Tier::Enterprise);
        let store = KeyStore::parse(Some(&entry), None).unwrap();
        let e = store.lookup(&key).unwrap();
        assert_eq!((e.user.as_str(), e.tier), ("dana", Tier::Enterprise));
        assert!(!entry.contains(&key));
    }

    #[test]
    fn sha256_matches_the_reference() {
        assert_eq!(
            to_hex(&hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
