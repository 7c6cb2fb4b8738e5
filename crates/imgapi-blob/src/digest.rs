//! SHA-1 and MD5 of a stream, each computed on its own lane so the two
//! digests run in parallel with each other and with the storage writes.

use std::io;

use base64::Engine as _;
use bytes::Bytes;
use md5::Md5;
use sha1::{Digest, Sha1};

use crate::lane::{Lane, LaneStopped};

/// Lower-case hex SHA-1 of `data` (one-shot; for small inputs and tests).
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Base64 (standard alphabet, padded) MD5 of `data`: the `Content-MD5` form.
pub(crate) fn md5_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

/// Digests of a stream, fed buffer by buffer.
pub(crate) struct StreamDigests {
    sha1: Lane<Sha1>,
    md5: Lane<Md5>,
}

impl StreamDigests {
    pub(crate) fn spawn(depth: usize) -> Self {
        StreamDigests {
            sha1: Lane::spawn(Sha1::new(), depth, |h: &mut Sha1, b: &[u8]| {
                h.update(b);
                Ok(())
            }),
            md5: Lane::spawn(Md5::new(), depth, |h: &mut Md5, b: &[u8]| {
                h.update(b);
                Ok(())
            }),
        }
    }

    pub(crate) async fn update(&self, buf: Bytes) -> Result<(), LaneStopped> {
        self.sha1.send(buf.clone()).await?;
        self.md5.send(buf).await
    }

    /// `(sha1 lower hex, md5 base64)`.
    pub(crate) async fn finish(&mut self) -> io::Result<(String, String)> {
        let sha1 = self.sha1.finish().await?;
        let md5 = self.md5.finish().await?;
        Ok((
            hex::encode(sha1.finalize()),
            base64::engine::general_purpose::STANDARD.encode(md5.finalize()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(md5_base64(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
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
        let (sha1, md5) = d.finish().await.unwrap();
        assert_eq!(sha1, sha1_hex(&data));
        assert_eq!(md5, md5_base64(&data));
    }
}
