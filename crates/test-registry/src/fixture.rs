//! Fixture images written as OCI image layouts (tar + gzip + sha256), with
//! every digest returned so tests can compute what a server should derive
//! from them. Content and timestamps are deterministic: the same spec
//! always gives the same digests.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::Error;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What one layer's tar holds.
#[derive(Clone, Debug)]
enum Content {
    Files(Vec<(String, Vec<u8>)>),
    /// One file of `size` pseudo-random bytes (incompressible), from `seed`.
    Random {
        path: String,
        size: u64,
        seed: u64,
    },
}

/// A layer and its history entry.
#[derive(Clone, Debug)]
pub struct Layer {
    content: Content,
    created_by: Option<String>,
    created: Option<String>,
}

impl Layer {
    /// A layer of regular files (`path` relative, e.g. `etc/motd`).
    pub fn files(files: &[(&str, &[u8])]) -> Layer {
        Layer::of(Content::Files(
            files
                .iter()
                .map(|(path, bytes)| (path.to_string(), bytes.to_vec()))
                .collect(),
        ))
    }

    /// A layer of one file of `size` pseudo-random bytes: a large layer.
    pub fn random(path: &str, size: u64, seed: u64) -> Layer {
        Layer::of(Content::Random {
            path: path.to_string(),
            size,
            seed,
        })
    }

    fn of(content: Content) -> Layer {
        Layer {
            content,
            created_by: None,
            created: None,
        }
    }

    /// The history entry's `created_by` (default: `ADD layer N`).
    pub fn created_by(mut self, created_by: &str) -> Layer {
        self.created_by = Some(created_by.to_string());
        self
    }

    /// The history entry's `created` (default: a fixed time, one second per
    /// history entry: `2024-01-01T00:00:0N.123456789Z`).
    pub fn created(mut self, created: &str) -> Layer {
        self.created = Some(created.to_string());
        self
    }
}

#[derive(Clone, Debug)]
enum Step {
    Layer(Layer),
    /// A history entry with `empty_layer: true` (ENV, CMD…): no blob.
    Empty {
        created_by: String,
    },
}

/// One platform's image: history (layers and empty steps, base first) and
/// the runtime config.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    architecture: String,
    os: String,
    steps: Vec<Step>,
    runtime: Map<String, Value>,
}

impl ImageSpec {
    /// A `linux` image for `architecture` (`amd64`, `arm64`…).
    pub fn new(architecture: &str) -> ImageSpec {
        ImageSpec {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            steps: Vec::new(),
            runtime: Map::new(),
        }
    }

    pub fn layer(mut self, layer: Layer) -> ImageSpec {
        self.steps.push(Step::Layer(layer));
        self
    }

    /// A history entry with `empty_layer: true`.
    pub fn empty_layer(mut self, created_by: &str) -> ImageSpec {
        self.steps.push(Step::Empty {
            created_by: created_by.to_string(),
        });
        self
    }

    pub fn cmd(self, cmd: &[&str]) -> ImageSpec {
        self.runtime_field("Cmd", json!(cmd))
    }

    pub fn entrypoint(self, entrypoint: &[&str]) -> ImageSpec {
        self.runtime_field("Entrypoint", json!(entrypoint))
    }

    pub fn env(self, env: &[&str]) -> ImageSpec {
        self.runtime_field("Env", json!(env))
    }

    pub fn working_dir(self, dir: &str) -> ImageSpec {
        self.runtime_field("WorkingDir", json!(dir))
    }

    fn runtime_field(mut self, name: &str, value: Value) -> ImageSpec {
        self.runtime.insert(name.to_string(), value);
        self
    }
}

/// The digests of one layer blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:` of the gzip blob (what manifests name).
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// Bytes of the gzip blob.
    pub size: u64,
}

/// One image written to a layout.
#[derive(Clone, Debug)]
pub struct FixtureImage {
    pub architecture: String,
    pub os: String,
    /// Non-empty layers, base first.
    pub layers: Vec<LayerDigests>,
    pub config_digest: String,
    /// The config as written.
    pub config: Value,
    pub manifest_digest: String,
    pub manifest_size: u64,
}

impl FixtureImage {
    /// The layer blob digests, base first.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.digest.clone()).collect()
    }
}

/// A multi-platform image written to a layout.
#[derive(Clone, Debug)]
pub struct FixtureIndex {
    pub index_digest: String,
    /// In the order of the specs given.
    pub images: Vec<FixtureImage>,
}

impl FixtureIndex {
    pub fn platform(&self, architecture: &str) -> Option<&FixtureImage> {
        self.images.iter().find(|i| i.architecture == architecture)
    }
}

/// An OCI image layout in a temp dir; `oci:PATH:TAG` for skopeo.
pub struct OciLayout {
    dir: TempDir,
    refs: Vec<Value>,
}

impl OciLayout {
    pub fn new() -> Result<OciLayout, Error> {
        let dir = tempfile::tempdir().map_err(Error::io("create a layout dir"))?;
        std::fs::create_dir_all(dir.path().join("blobs/sha256"))
            .map_err(Error::io("create blobs/sha256"))?;
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .map_err(Error::io("write oci-layout"))?;
        let mut layout = OciLayout {
            dir,
            refs: Vec::new(),
        };
        layout.write_index_json()?;
        Ok(layout)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// skopeo's name of a tag of this layout: `oci:PATH:TAG`.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.path().display())
    }

    /// Writes one image and tags it.
    pub fn add_image(&mut self, tag: &str, spec: &ImageSpec) -> Result<FixtureImage, Error> {
        let image = self.write_image(spec)?;
        self.tag(
            tag,
            OCI_MANIFEST,
            &image.manifest_digest,
            image.manifest_size,
        )?;
        Ok(image)
    }

    /// Writes each image and an OCI index of them (with their platforms),
    /// and tags the index.
    pub fn add_index(&mut self, tag: &str, specs: &[ImageSpec]) -> Result<FixtureIndex, Error> {
        let images = specs
            .iter()
            .map(|spec| self.write_image(spec))
            .collect::<Result<Vec<_>, Error>>()?;
        let manifests: Vec<Value> = images
            .iter()
            .map(|i| {
                json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": i.manifest_digest,
                    "size": i.manifest_size,
                    "platform": {"architecture": i.architecture, "os": i.os},
                })
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let (index_digest, size) = self.write_json_blob(&index)?;
        self.tag(tag, OCI_INDEX, &index_digest, size)?;
        Ok(FixtureIndex {
            index_digest,
            images,
        })
    }

    fn write_image(&self, spec: &ImageSpec) -> Result<FixtureImage, Error> {
        let mut layers = Vec::new();
        let mut history = Vec::new();
        for (n, step) in spec.steps.iter().enumerate() {
            let default_created = format!("2024-01-01T00:00:{:02}.123456789Z", n % 60);
            match step {
                Step::Layer(layer) => {
                    layers.push(self.write_layer(&layer.content)?);
                    history.push(json!({
                        "created": layer.created.clone().unwrap_or(default_created),
                        "created_by": layer.created_by.clone().unwrap_or_else(|| format!("ADD layer {n}")),
                    }));
                }
                Step::Empty { created_by } => history.push(json!({
                    "created": default_created,
                    "created_by": created_by,
                    "empty_layer": true,
                })),
            }
        }
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let config = json!({
            "created": history.last().map_or(Value::Null, |h| h["created"].clone()),
            "architecture": spec.architecture,
            "os": spec.os,
            "config": spec.runtime,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let (config_digest, config_size) = self.write_json_blob(&config)?;
        let layer_refs: Vec<Value> = layers
            .iter()
            .map(|l| json!({"mediaType": OCI_LAYER_GZIP, "digest": l.digest, "size": l.size}))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layer_refs,
        });
        let (manifest_digest, manifest_size) = self.write_json_blob(&manifest)?;
        Ok(FixtureImage {
            architecture: spec.architecture.clone(),
            os: spec.os.clone(),
            layers,
            config_digest,
            config,
            manifest_digest,
            manifest_size,
        })
    }

    /// Streams the tar through gzip into a blob file, hashing both sides.
    fn write_layer(&self, content: &Content) -> Result<LayerDigests, Error> {
        let blobs = self.path().join("blobs/sha256");
        let file =
            tempfile::NamedTempFile::new_in(&blobs).map_err(Error::io("create a blob file"))?;
        let compressed = Hashing::new(BufWriter::new(file));
        let gzip = GzBuilder::new()
            .mtime(0)
            .write(compressed, Compression::fast());
        let mut tar = tar::Builder::new(Hashing::new(gzip));
        match content {
            Content::Files(files) => {
                for (path, bytes) in files {
                    append(&mut tar, path, bytes.len() as u64, bytes.as_slice())?;
                }
            }
            Content::Random { path, size, seed } => {
                append(&mut tar, path, *size, PseudoRandom::new(*seed).take(*size))?;
            }
        }
        let uncompressed = tar.into_inner().map_err(Error::io("finish a layer tar"))?;
        let (gzip, diff_id, _) = uncompressed.finish();
        let compressed = gzip.finish().map_err(Error::io("finish a layer gzip"))?;
        let (file, digest, size) = compressed.finish();
        let file = file
            .into_inner()
            .map_err(|e| Error::io("flush a layer")(e.into_error()))?;
        file.persist(blobs.join(&digest["sha256:".len()..]))
            .map_err(|e| Error::io("store a layer blob")(e.error))?;
        Ok(LayerDigests {
            digest,
            diff_id,
            size,
        })
    }

    fn write_json_blob(&self, value: &Value) -> Result<(String, u64), Error> {
        let bytes = serde_json::to_vec(value).map_err(Error::other)?;
        let digest = sha256_digest(&bytes);
        let path = self
            .path()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]);
        std::fs::write(path, &bytes).map_err(Error::io("write a blob"))?;
        Ok((digest, bytes.len() as u64))
    }

    fn tag(&mut self, tag: &str, media_type: &str, digest: &str, size: u64) -> Result<(), Error> {
        self.refs.retain(|r| r["annotations"][REF_NAME] != tag);
        self.refs.push(json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": {REF_NAME: tag},
        }));
        self.write_index_json()
    }

    fn write_index_json(&mut self) -> Result<(), Error> {
        let index = json!({"schemaVersion": 2, "manifests": self.refs});
        std::fs::write(self.path().join("index.json"), index.to_string())
            .map_err(Error::io("write index.json"))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> Result<(), Error> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, path, data)
        .map_err(Error::io(format!("add {path} to a layer")))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, `sha256:<hex>` and the byte count.
    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An endless deterministic byte stream: sha256(seed ‖ counter) blocks.
struct PseudoRandom {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl PseudoRandom {
    fn new(seed: u64) -> PseudoRandom {
        PseudoRandom {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl Read for PseudoRandom {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            if self.used == self.block.len() {
                let mut hasher = Sha256::new();
                hasher.update(self.seed.to_le_bytes());
                hasher.update(self.counter.to_le_bytes());
                self.block = hasher.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            let n = (self.block.len() - self.used).min(buf.len() - written);
            buf[written..written + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            written += n;
        }
        Ok(written)
    }
}
