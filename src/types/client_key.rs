//! [`ClientKey`]: a text a client chose to name something by (a client order id, an
//! idempotency key), held in place when it is short.
//!
//! Clients mostly make short ids, and the engine copies an order's id into every view of
//! the order it emits and keeps every id for the retention window: held in place, copying
//! one allocates nothing, dropping one frees nothing (on whichever thread drops it last)
//! and comparing it reads no other cache line. It encodes as a `str` does, so the journal,
//! the snapshots and the history read and write the same bytes as before.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of a key held in place.
pub const INLINE_KEY_BYTES: usize = 22;

/// A client's text: one of up to [`INLINE_KEY_BYTES`] bytes in place, a longer one on the
/// heap. 24 bytes either way. Made only from a `str`, so its bytes are always UTF-8.
#[derive(Clone)]
pub struct ClientKey(Held);

/// Where a [`ClientKey`]'s text is; private, so that nothing else can put bytes in place
/// that are not a `str`'s.
#[derive(Clone)]
enum Held {
    /// The text's bytes, copied whole from a `str`.
    Inline {
        length: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    /// A text longer than [`INLINE_KEY_BYTES`].
    Heap(Box<str>),
}

impl ClientKey {
    /// `text` as a key.
    pub fn new(text: &str) -> ClientKey {
        match u8::try_from(text.len()) {
            Ok(length) if text.len() <= INLINE_KEY_BYTES => {
                let mut bytes = [0; INLINE_KEY_BYTES];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                ClientKey(Held::Inline { length, bytes })
            }
            _ => ClientKey(Held::Heap(Box::from(text))),
        }
    }

    /// Whether this is `text`: a comparison of bytes.
    pub fn is(&self, text: &str) -> bool {
        self.as_bytes() == text.as_bytes()
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Held::Inline { length, bytes } => &bytes[..usize::from(*length)],
            Held::Heap(text) => text.as_bytes(),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Copied whole from a `str` of at most INLINE_KEY_BYTES bytes, so the bytes
            // are that `str`'s: they are UTF-8.
            Held::Inline { .. } => std::str::from_utf8(self.as_bytes())
                .expect("an inline key holds the bytes of a str"),
            Held::Heap(text) => text,
        }
    }
}

impl std::ops::Deref for ClientKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ClientKey {
    fn from(text: &str) -> ClientKey {
        ClientKey::new(text)
    }
}

impl From<String> for ClientKey {
    fn from(text: String) -> ClientKey {
        if text.len() <= INLINE_KEY_BYTES {
            ClientKey::new(&text)
        } else {
            ClientKey(Held::Heap(text.into_boxed_str()))
        }
    }
}

impl PartialEq for ClientKey {
    fn eq(&self, other: &ClientKey) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ClientKey {}

impl fmt::Debug for ClientKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), formatter)
    }
}

impl Serialize for ClientKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClientKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClientKey, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Reads a key from a borrowed or owned `str` without keeping the owner.
struct TextVisitor;

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = ClientKey;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ClientKey, E> {
        Ok(ClientKey::new(text))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<ClientKey, E> {
        Ok(ClientKey::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_as_it_was_kept_whether_inline_or_on_the_heap() {
        let ascii = "k".repeat(INLINE_KEY_BYTES);
        // A two-byte character ending exactly at the inline bound, and one byte past it.
        let at_bound = format!("{}é", "k".repeat(INLINE_KEY_BYTES - 2));
        let past_bound = format!("{}é", "k".repeat(INLINE_KEY_BYTES - 1));
        let longer = "order-7f3c2a10-5b1e-4c8d-9a2f-0e6b7d4c1a99";
        for key in ["", "w0-1", &ascii, &at_bound, &past_bound, longer] {
            let kept = ClientKey::new(key);
            let inline = matches!(kept.0, Held::Inline { .. });
            assert_eq!(inline, key.len() <= INLINE_KEY_BYTES, "{key:?}");
            assert_eq!(kept.as_str(), key);
            assert!(kept.is(key), "{key:?}");
            // A key that differs in its last byte, or is a prefix, is another key.
            assert!(!kept.is(&format!("{key}x")), "{key:?}");
            if let Some(shorter) = key.get(..key.len().saturating_sub(1)) {
                assert_eq!(kept.is(shorter), key.is_empty(), "{key:?}");
            }
        }
        assert_eq!(std::mem::size_of::<ClientKey>(), 24);
        assert_eq!(std::mem::size_of::<Option<ClientKey>>(), 24);
    }

    #[test]
    fn a_key_encodes_as_the_str_it_holds_and_decodes_back() {
        let longer = "order-7f3c2a10-5b1e-4c8d-9a2f-0e6b7d4c1a99";
        for text in ["", "w0-1", longer] {
            let key = Some(ClientKey::new(text));
            let as_str = postcard::to_allocvec(&Some(text)).expect("encodes");
            assert_eq!(postcard::to_allocvec(&key).expect("encodes"), as_str);
            let decoded: Option<ClientKey> = postcard::from_bytes(&as_str).expect("decodes");
            assert_eq!(decoded, key);
            let json = serde_json::to_string(&key).expect("encodes");
            assert_eq!(json, serde_json::to_string(&Some(text)).expect("encodes"));
            let from_json: Option<ClientKey> = serde_json::from_str(&json).expect("decodes");
            assert_eq!(from_json, key);
        }
    }
}
