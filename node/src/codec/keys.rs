//! Payload encryption keys: `ID:BASE64_32_BYTES` entries, comma- or newline-separated (a keys file
//! may hold `#` comments). The first key encrypts; every key decrypts, so a key is rotated by
//! putting a new one first and keeping the old ones until no history needs them. Key bytes never
//! appear in an error, a log line or a `Debug` print.

use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::path::Path;

/// AES-256 keys are 32 bytes.
pub const KEY_LEN: usize = 32;

/// One key and the id payloads name it by.
#[derive(Clone, PartialEq, Eq)]
pub struct PayloadKey {
    id: String,
    bytes: [u8; KEY_LEN],
}

impl PayloadKey {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.bytes))
    }

    /// The entry as written in `ORRERY_PAYLOAD_KEYS` or a keys file (it holds the key).
    pub fn entry(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.bytes))
    }
}

impl fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadKey({}, <redacted>)", self.id)
    }
}

/// The keys of a node, never empty: the first encrypts.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<PayloadKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "Keyring(ids: {ids:?}, keys: <redacted>)")
    }
}

/// What is wrong with a keys text. Messages name entries by position or id, never key bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("no payload keys: expected ID:BASE64_32_BYTES entries, comma-separated")]
    Empty,
    #[error("payload key entry {0} is not ID:BASE64_32_BYTES (no `:`)")]
    NoSeparator(usize),
    #[error("payload key entry {0}: the id must be 1-64 letters, digits, '-', '_' or '.'")]
    BadId(usize),
    #[error("payload key `{0}` is not valid base64")]
    NotBase64(String),
    #[error("payload key `{id}` is {len} bytes; AES-256 needs {KEY_LEN}")]
    WrongLength { id: String, len: usize },
    #[error("payload key id `{0}` appears more than once")]
    Duplicate(String),
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Keyring {
    /// Parses `ID:BASE64_32_BYTES` entries separated by commas or new lines; `#` starts a comment
    /// that runs to the end of its line.
    pub fn parse(text: &str) -> Result<Keyring, KeysError> {
        let entries = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let mut keys: Vec<PayloadKey> = Vec::new();
        for (i, entry) in entries.enumerate() {
            let n = i + 1;
            let (id, b64) = entry.split_once(':').ok_or(KeysError::NoSeparator(n))?;
            let id = id.trim();
            if !valid_id(id) {
                return Err(KeysError::BadId(n));
            }
            let raw = STANDARD
                .decode(b64.trim())
                .map_err(|_| KeysError::NotBase64(id.to_string()))?;
            let bytes: [u8; KEY_LEN] =
                raw.as_slice()
                    .try_into()
                    .map_err(|_| KeysError::WrongLength {
                        id: id.to_string(),
                        len: raw.len(),
                    })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeysError::Duplicate(id.to_string()));
            }
            keys.push(PayloadKey {
                id: id.to_string(),
                bytes,
            });
        }
        if keys.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(Keyring { keys })
    }

    /// A keyring of one new random key named `id`.
    pub fn generate(id: &str) -> Keyring {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&key);
        Keyring {
            keys: vec![PayloadKey {
                id: id.to_string(),
                bytes,
            }],
        }
    }

    /// The key new payloads are encrypted with.
    pub fn active(&self) -> &PayloadKey {
        // A keyring is built only by `parse` and `generate`, which never leave it empty.
        &self.keys[0]
    }

    pub fn get(&self, id: &str) -> Option<&PayloadKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The keys as a keys file holds them (one entry a line; it holds the keys).
    pub fn to_file_text(&self) -> String {
        let mut s =
            String::from("# Orrery payload keys: ID:BASE64_32_BYTES; the first encrypts.\n");
        for k in &self.keys {
            s.push_str(&k.entry());
            s.push('\n');
        }
        s
    }
}

/// Reads the keys file at `path`, or creates it (mode 0600) with one new key when it does not
/// exist: `orrery up` keeps its key in its data directory this way.
pub fn load_or_create(path: &Path) -> Result<Keyring, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => Keyring::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let id = format!("k{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            let ring = Keyring::generate(&id);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.write_all(ring.to_file_text().as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(ring)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(n: usize, fill: u8) -> String {
        STANDARD.encode(vec![fill; n])
    }

    #[test]
    fn entries_parse_and_the_first_encrypts() {
        let text = format!("k2:{}, k1:{}", b64(32, 2), b64(32, 1));
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.ids(), ["k2", "k1"]);
        assert_eq!(ring.active().id(), "k2");
        let file = format!(
            "# rotated in May\nk3:{}\n\nk2:{}  # old\n",
            b64(32, 3),
            b64(32, 2)
        );
        assert_eq!(Keyring::parse(&file).unwrap().ids(), ["k3", "k2"]);
    }

    #[test]
    fn bad_keys_are_clear_errors_that_hold_no_key_bytes() {
        let secret = b64(16, 7);
        for (text, want) in [
            (String::new(), KeysError::Empty),
            (" , # nothing\n".into(), KeysError::Empty),
            (secret.clone(), KeysError::NoSeparator(1)),
            (format!("bad id:{}", b64(32, 1)), KeysError::BadId(1)),
            ("k1:not base64!".into(), KeysError::NotBase64("k1".into())),
            (
                format!("k1:{secret}"),
                KeysError::WrongLength {
                    id: "k1".into(),
                    len: 16,
                },
            ),
            (
                format!("k1:{},k1:{}", b64(32, 1), b64(32, 2)),
                KeysError::Duplicate("k1".into()),
            ),
        ] {
            let got = Keyring::parse(&text).unwrap_err();
            assert_eq!(got, want, "{text:?}");
            assert!(!got.to_string().contains(&secret), "{got}");
        }
    }

    #[test]
    fn debug_prints_ids_only() {
        let ring = Keyring::generate("k1");
        let entry = ring.active().entry();
        let (_, key) = entry.split_once(':').unwrap();
        let shown = format!("{ring:?} {:?}", ring.active());
        assert!(shown.contains("k1") && !shown.contains(key), "{shown}");
    }

    #[test]
    fn the_data_dir_key_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/payload.keys");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
        std::fs::write(&path, "k1:short").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(
            err.contains("payload.keys") && err.contains("not valid base64"),
            "{err}"
        );
    }
}
