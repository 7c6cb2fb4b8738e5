//! SHA-1, MD5 and SHA-256 of a stream, each computed on its own lane so the
//! digests run in parallel with each other and with the storage writes.
//!
//! [`Digests`] is the running state of all three. It can be saved
//! ([`Digests::to_state`]) and restored ([`Digests::from_state`]) between
//! the chunks of a resumable upload, so any instance can continue hashing
//! where another stopped, without re-reading the bytes already stored. The
//! saved form is the RustCrypto "serializable state" of each hasher
//! (`digest::crypto_common::hazmat::SerializableState`: the compression
//! function's state, the block counter and the partial block).
//!
//! SHA-512 is not computed: measured here it runs at about a quarter of
//! SHA-256's speed (no SHA-512 instructions; SHA-256 uses SHA-NI) and
//! below MD5, so it would be the slowest lane of every upload.

use std::io;

use base64::Engine as _;
use bytes::Bytes;
use md5::Md5;
use sha1::digest::common::hazmat::{SerializableState, SerializedState};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::lane::{Lane, LaneStopped};
use crate::BlobError;

/// Lower-case hex SHA-1 of `data` (one-shot; for small inputs and tests).
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Base64 (standard alphabet, padded) MD5 of `data`: the `Content-MD5` form.
pub(crate) fn md5_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

/// Lower-case hex SHA-256 of `data` (one-shot).
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The finished digests of some bytes, in the encodings stored in records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestValues {
    /// Lower-case hex SHA-1.
    pub sha1: String,
    /// Base64 MD5 (the `Content-MD5` form).
    pub md5_base64: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Version tag of the saved form of [`Digests`].
const STATE_VERSION: u8 = 1;

/// The running SHA-1, MD5 and SHA-256 of a byte sequence.
#[derive(Clone, Default)]
pub struct Digests {
    sha1: Sha1,
    md5: Md5,
    sha256: Sha256,
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digests { .. }")
    }
}

fn push_state<T: SerializableState>(out: &mut Vec<u8>, hasher: &T) {
    let state = hasher.serialize();
    let bytes: &[u8] = state.as_slice();
    // Every state here is well under 64 KiB (SHA-256: 105 bytes).
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take_state<T: SerializableState>(input: &mut &[u8], what: &str) -> Result<T, BlobError> {
    let bad = |detail: &str| {
        BlobError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("saved {what} state: {detail}"),
        ))
    };
    let (len, rest) = input
        .split_first_chunk::<2>()
        .ok_or_else(|| bad("truncated"))?;
    let len = usize::from(u16::from_le_bytes(*len));
    if rest.len() < len {
        return Err(bad("truncated"));
    }
    let (bytes, rest) = rest.split_at(len);
    let array = SerializedState::<T>::try_from(bytes).map_err(|_| bad("wrong length"))?;
    let hasher = T::deserialize(&array).map_err(|_| bad("invalid"))?;
    *input = rest;
    Ok(hasher)
}

impl Digests {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hash `data` on the calling thread (small inputs).
    pub fn update(&mut self, data: &[u8]) {
        self.sha1.update(data);
        self.md5.update(data);
        self.sha256.update(data);
    }

    /// The digests of everything hashed so far (the state is kept, so
    /// hashing may go on).
    pub fn values(&self) -> DigestValues {
        DigestValues {
            sha1: hex::encode(self.sha1.clone().finalize()),
            md5_base64: base64::engine::general_purpose::STANDARD
                .encode(self.md5.clone().finalize()),
            sha256: hex::encode(self.sha256.clone().finalize()),
        }
    }

    /// The state as text (base64 of a versioned binary form; about 300
    /// characters), for storing between the chunks of an upload.
    pub fn to_state(&self) -> String {
        let mut out = vec![STATE_VERSION];
        push_state(&mut out, &self.sha1);
        push_state(&mut out, &self.md5);
        push_state(&mut out, &self.sha256);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Restore a state saved by [`Digests::to_state`]. A damaged or foreign
    /// state is an `Io` error (`InvalidData`), never a panic.
    pub fn from_state(text: &str) -> Result<Digests, BlobError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| {
                BlobError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("saved digest state is not base64: {e}"),
                ))
            })?;
        let Some((&version, mut rest)) = raw.split_first() else {
            return Err(BlobError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "saved digest state is empty",
            )));
        };
        if version != STATE_VERSION {
            return Err(BlobError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("saved digest state has unknown version {version}"),
            )));
        }
        let sha1 = take_state::<Sha1>(&mut rest, "SHA-1")?;
        let md5 = take_state::<Md5>(&mut rest, "MD5")?;
        let sha256 = take_state::<Sha256>(&mut rest, "SHA-256")?;
        if !rest.is_empty() {
            return Err(BlobError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "saved digest state has trailing bytes",
            )));
        }
        Ok(Digests { sha1, md5, sha256 })
    }
}

/// Digests of a stream, fed buffer by buffer, one lane per algorithm.
pub(crate) struct StreamDigests {
    sha1: Lane<Sha1>,
    md5: Lane<Md5>,
    sha256: Lane<Sha256>,
}

impl StreamDigests {
    pub(crate) fn spawn(depth: usize) -> Self {
        Self::resume(depth, Digests::new())
    }

    /// Lanes that continue from `from` (the digests of the bytes before).
    pub(crate) fn resume(depth: usize, from: Digests) -> Self {
        StreamDigests {
            sha1: Lane::spawn(from.sha1, depth, |h: &mut Sha1, b: &[u8]| {
                h.update(b);
                Ok(())
            }),
            md5: Lane::spawn(from.md5, depth, |h: &mut Md5, b: &[u8]| {
                h.update(b);
                Ok(())
            }),
            sha256: Lane::spawn(from.sha256, depth, |h: &mut Sha256, b: &[u8]| {
                h.update(b);
                Ok(())
            }),
        }
    }

    pub(crate) async fn update(&self, buf: Bytes) -> Result<(), LaneStopped> {
        self.sha1.send(buf.clone()).await?;
        self.md5.send(buf.clone()).await?;
        self.sha256.send(buf).await
    }

    /// Wait for every lane; the running state (not finalised).
    pub(crate) async fn finish_state(&mut self) -> io::Result<Digests> {
        let sha1 = self.sha1.finish().await?;
        let md5 = self.md5.finish().await?;
        let sha256 = self.sha256.finish().await?;
        Ok(Digests { sha1, md5, sha256 })
    }

    /// Wait for every lane; the finished digests.
    pub(crate) async fn finish(&mut self) -> io::Result<DigestValues> {
        Ok(self.finish_state().await?.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(md5_base64(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[tokio::test]
    async fn streamed_matches_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut d = StreamDigests::spawn(2);
        for part in data.chunks(9_999) {
            assert!(d.update(Bytes::copy_from_slice(part)).await.is_ok());
        }
        let values = d.finish().await.unwrap();
        assert_eq!(values.sha1, sha1_hex(&data));
        assert_eq!(values.md5_base64, md5_base64(&data));
        assert_eq!(values.sha256, sha256_hex(&data));
    }

    #[tokio::test]
    async fn saved_state_resumes_anywhere() {
        let data: Vec<u8> = (0..70_001u32).map(|i| (i * 31 + i / 7) as u8).collect();
        // Split at block boundaries and in the middle of blocks.
        for cut in [0, 1, 63, 64, 65, 4096, 33_333, 70_001] {
            let mut first = Digests::new();
            first.update(&data[..cut]);
            let saved = first.to_state();
            let restored = Digests::from_state(&saved).unwrap();
            let mut lanes = StreamDigests::resume(2, restored);
            assert!(lanes
                .update(Bytes::copy_from_slice(&data[cut..]))
                .await
                .is_ok());
            let values = lanes.finish().await.unwrap();
            assert_eq!(values.sha1, sha1_hex(&data), "cut {cut}");
            assert_eq!(values.md5_base64, md5_base64(&data), "cut {cut}");
            assert_eq!(values.sha256, sha256_hex(&data), "cut {cut}");
        }
    }

    #[test]
    fn damaged_states_are_errors() {
        let good = Digests::new().to_state();
        for bad in [
            String::new(),
            "!!".to_string(),
            "AA==".to_string(),
            good[..good.len() / 2].to_string(),
            format!("{good}AAAA"),
        ] {
            assert!(Digests::from_state(&bad).is_err(), "{bad:?}");
        }
        assert!(Digests::from_state(&good).is_ok());
    }
}
