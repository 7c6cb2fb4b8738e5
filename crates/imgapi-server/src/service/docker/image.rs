//! Docker and OCI image documents and how their layers become IMGAPI
//! images: manifests, lists and indexes, the platform choice, the layer
//! plan (which layer gets which history entry and the image config), RFD
//! 57 uuids, the IMGAPI manifest of a layer (the original's
//! `imgManifestFromDockerInfo`), and the schema 2 manifest and config a
//! push builds from stored layers.

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::reference::RepoRef;
use super::registry::{media, FetchedManifest};
use crate::service::ServiceError;
use imgapi_types::FieldError;

/// Longest description kept (the original clips to 10 KiB).
const MAX_DESCRIPTION: usize = 10 * 1024;

/// A content descriptor of a manifest, list or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// `os-architecture[-variant]` of a list or index entry.
    pub platform: Option<(String, String)>,
}

/// What a manifest document is.
#[derive(Debug)]
pub enum Document {
    /// A single-platform image: its config and layers.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// A Docker manifest list or an OCI index.
    List(Vec<Descriptor>),
}

fn invalid_manifest(why: impl std::fmt::Display) -> ServiceError {
    ServiceError::validation(
        format!("invalid docker manifest: {why}"),
        vec![FieldError::invalid("manifest")],
    )
}

fn descriptor(v: &Value) -> Result<Descriptor, ServiceError> {
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .filter(|d| is_sha256_digest(d))
        .ok_or_else(|| invalid_manifest("a descriptor has no valid sha256 digest"))?;
    let platform = v.get("platform").map(|p| {
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        (s("os"), s("architecture"))
    });
    Ok(Descriptor {
        media_type: v
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        digest: digest.to_string(),
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        platform,
    })
}

/// `sha256:` and 64 lower-case hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parse a fetched manifest document.
pub fn parse_document(fetched: &FetchedManifest) -> Result<Document, ServiceError> {
    let v: Value = serde_json::from_slice(&fetched.bytes).map_err(invalid_manifest)?;
    let schema = v.get("schemaVersion").and_then(Value::as_u64);
    if schema == Some(1)
        || fetched.media_type == media::DOCKER_SCHEMA1
        || fetched.media_type == media::DOCKER_SCHEMA1_SIGNED
    {
        return Err(ServiceError::NotImplemented(
            "Docker schema 1 (v2.1) manifests are not supported; push the image again with a current client".into(),
        ));
    }
    if schema != Some(2) {
        return Err(ServiceError::NotImplemented(format!(
            "unexpected manifest schemaVersion: {}",
            v.get("schemaVersion").unwrap_or(&Value::Null)
        )));
    }
    if let Some(list) = v.get("manifests").and_then(Value::as_array) {
        return Ok(Document::List(
            list.iter().map(descriptor).collect::<Result<_, _>>()?,
        ));
    }
    let config = descriptor(
        v.get("config")
            .ok_or_else(|| invalid_manifest("no \"config\""))?,
    )?;
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_manifest("no \"layers\""))?
        .iter()
        .map(descriptor)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Document::Image { config, layers })
}

/// The linux/amd64 entry of a list or index, as the original chooses.
pub fn choose_platform(entries: &[Descriptor]) -> Result<&Descriptor, ServiceError> {
    entries
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|(os, arch)| os == "linux" && arch == "amd64")
        })
        .ok_or_else(|| {
            let plats: Vec<String> = entries
                .iter()
                .map(|d| match &d.platform {
                    Some((os, arch)) => format!("{os}-{arch}"),
                    None => "<unknown>".to_string(),
                })
                .collect();
            ServiceError::validation(
                format!(
                    "no linux-amd64 platform found in manifest list: {}",
                    plats.join(",")
                ),
                vec![FieldError::invalid("platform")],
            )
        })
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Unsupported(&'static str),
}

impl Compression {
    pub fn from_media_type(media_type: &str) -> Compression {
        match media_type {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff"
            | "application/vnd.oci.image.layer.v1.tar" => Compression::None,
            t if t.ends_with("+zstd") => Compression::Unsupported("zstd"),
            t if t.ends_with(".bzip2") => Compression::Unsupported("bzip2"),
            t if t.ends_with(".xz") => Compression::Unsupported("xz"),
            // Unknown types (an empty one from old registries) are
            // sniffed from the first bytes.
            _ => Compression::Unsupported("unknown"),
        }
    }

    /// The IMGAPI `files[0].compression` value.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Unsupported(name) => name,
        }
    }
}

/// Sniff the compression of a blob from its first bytes.
pub fn sniff_compression(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Unsupported("zstd"),
        [b'B', b'Z', b'h', ..] => Compression::Unsupported("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Unsupported("xz"),
        _ => Compression::None,
    }
}

/// One non-empty layer and what its IMGAPI image is made of.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    /// The blob digest.
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// The config's diff_id for this layer.
    pub diff_id: String,
    /// Layer blob digests from the base up to this one.
    pub chain: Vec<String>,
    /// The Docker v1 image JSON the original derives the manifest from:
    /// the whole config for the last history entry, else a synthetic
    /// `{created, container_config: {Cmd: [created_by]}}`.
    pub image_json: Value,
}

impl LayerPlan {
    pub fn uuid(&self) -> Uuid {
        uuid_from_digests(&self.chain)
    }

    pub fn short_id(&self) -> &str {
        short_id(&self.digest)
    }
}

/// The first 12 hex digits of a digest.
pub fn short_id(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

/// RFD 57: the uuid of the image of the last layer of `chain`.
pub fn uuid_from_digests(chain: &[String]) -> Uuid {
    let hash = Sha256::digest(chain.join(" ").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    Uuid::from_bytes(bytes)
}

/// Map history entries to layers as the original does: every history
/// entry that is not `empty_layer` takes the next layer; the last history
/// entry's layer gets the whole config. A config without history (or with
/// one that does not match the layers) gets one entry per layer.
pub fn plan_layers(config: &Value, layers: &[Descriptor]) -> Result<Vec<LayerPlan>, ServiceError> {
    let diff_ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(ServiceError::validation(
            format!(
                "the image config has {} diff_ids for {} layers",
                diff_ids.len(),
                layers.len()
            ),
            vec![FieldError::invalid("rootfs")],
        ));
    }
    let history: Vec<Value> = config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let non_empty = history.iter().filter(|h| !is_empty_layer(h)).count();
    let history = if non_empty == layers.len() {
        history
    } else {
        let created = config.get("created").cloned().unwrap_or(Value::Null);
        layers
            .iter()
            .map(|_| json!({"created": created.clone(), "created_by": ""}))
            .collect()
    };
    let mut plans = Vec::with_capacity(layers.len());
    let mut chain = Vec::with_capacity(layers.len());
    let mut next = 0usize;
    for (pos, entry) in history.iter().enumerate() {
        if is_empty_layer(entry) {
            continue;
        }
        let (Some(layer), Some(diff_id)) = (layers.get(next), diff_ids.get(next)) else {
            break;
        };
        next += 1;
        chain.push(layer.digest.clone());
        let image_json = if pos + 1 == history.len() {
            config.clone()
        } else {
            let cmd = entry.get("created_by").cloned().unwrap_or(Value::Null);
            json!({
                "created": entry.get("created").cloned().unwrap_or(Value::Null),
                "container_config": {"Cmd": [cmd]},
            })
        };
        plans.push(LayerPlan {
            digest: layer.digest.clone(),
            size: layer.size,
            media_type: layer.media_type.clone(),
            diff_id: diff_id.clone(),
            chain: chain.clone(),
            image_json,
        });
    }
    Ok(plans)
}

fn is_empty_layer(entry: &Value) -> bool {
    entry.get("empty_layer").and_then(Value::as_bool) == Some(true)
}

/// `created` as the original writes `published_at` (ms precision, UTC);
/// an absent or unreadable time falls back to `fallback`.
fn published_at(created: Option<&Value>, fallback: &str) -> String {
    created
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        })
        .unwrap_or_else(|| fallback.to_string())
}

/// The IMGAPI manifest of a layer's image (`imgManifestFromDockerInfo`).
/// The owner and channels are left to the import rules.
pub fn layer_manifest(
    plan: &LayerPlan,
    repo: &RepoRef,
    public: bool,
    published_fallback: &str,
) -> Map<String, Value> {
    let img = &plan.image_json;
    let mut m = Map::new();
    m.insert("v".into(), json!(2));
    m.insert("uuid".into(), json!(plan.uuid().to_string()));
    m.insert("owner".into(), json!(imgapi_types::UNSET_OWNER_UUID));
    m.insert("name".into(), json!("docker-layer"));
    m.insert("version".into(), json!(plan.short_id()));
    m.insert("disabled".into(), json!(false));
    m.insert("public".into(), json!(public));
    m.insert(
        "published_at".into(),
        json!(published_at(img.get("created"), published_fallback)),
    );
    m.insert("type".into(), json!("docker"));
    let os = match img.get("os").and_then(Value::as_str) {
        Some("linux") => "linux",
        _ => "other",
    };
    m.insert("os".into(), json!(os));
    let description = img
        .get("comment")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .or_else(|| {
            img.pointer("/container_config/Cmd")
                .and_then(Value::as_array)
                .map(|cmd| {
                    cmd.iter()
                        .map(|c| c.as_str().unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        })
        .map(|d| d.chars().take(MAX_DESCRIPTION).collect::<String>())
        .filter(|d| !d.is_empty());
    if let Some(d) = description {
        m.insert("description".into(), json!(d));
    }
    let mut tags = Map::new();
    tags.insert("docker:repo".into(), json!(repo.local_name));
    tags.insert("docker:id".into(), json!(plan.digest));
    if let Some(arch) = img.get("architecture").filter(|a| !a.is_null()) {
        tags.insert("docker:architecture".into(), arch.clone());
    }
    if plan.chain.len() > 1 {
        m.insert(
            "origin".into(),
            json!(uuid_from_digests(&plan.chain[..plan.chain.len() - 1]).to_string()),
        );
    }
    if let Some(config) = img.get("config").and_then(Value::as_object) {
        let mut subset = Map::new();
        for key in ["Cmd", "Entrypoint", "Env", "WorkingDir"] {
            if let Some(v) = config.get(key) {
                subset.insert(key.into(), v.clone());
            }
        }
        tags.insert("docker:config".into(), Value::Object(subset));
    }
    m.insert("tags".into(), Value::Object(tags));
    m
}

/// One stored layer, as a push reads it.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    pub digest: String,
    pub uncompressed_digest: String,
    pub size: u64,
    pub compression: String,
    pub published_at: Option<String>,
    pub description: Option<String>,
}

/// The config and schema 2 manifest a push builds from stored layers
/// (base first), with `top_tags` the tags of the top layer's image.
pub fn build_push_documents(
    layers: &[StoredLayer],
    top_tags: Option<&Value>,
) -> (Vec<u8>, Vec<u8>) {
    let tag = |k: &str| top_tags.and_then(|t| t.get(k)).cloned();
    let created = layers
        .last()
        .and_then(|l| l.published_at.clone())
        .unwrap_or_default();
    let mut config = Map::new();
    config.insert(
        "architecture".into(),
        tag("docker:architecture").unwrap_or_else(|| json!("amd64")),
    );
    if let Some(Value::Object(subset)) = tag("docker:config") {
        let cleaned: Map<String, Value> =
            subset.into_iter().filter(|(_, v)| !v.is_null()).collect();
        config.insert("config".into(), Value::Object(cleaned));
    }
    config.insert("created".into(), json!(created));
    config.insert(
        "history".into(),
        Value::Array(
            layers
                .iter()
                .map(|l| {
                    let mut h = Map::new();
                    h.insert(
                        "created".into(),
                        json!(l.published_at.clone().unwrap_or_default()),
                    );
                    if let Some(d) = &l.description {
                        h.insert("created_by".into(), json!(d));
                    }
                    Value::Object(h)
                })
                .collect(),
        ),
    );
    config.insert("os".into(), json!("linux"));
    config.insert(
        "rootfs".into(),
        json!({
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.uncompressed_digest.clone()).collect::<Vec<_>>(),
        }),
    );
    let config_bytes = serde_json::to_vec(&Value::Object(config)).unwrap_or_default();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": {
            "mediaType": media::DOCKER_CONFIG,
            "size": config_bytes.len(),
            "digest": super::registry::sha256_digest(&config_bytes),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": if l.compression == "gzip" {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            } else {
                "application/vnd.docker.image.rootfs.diff.tar"
            },
            "size": l.size,
            "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    (config_bytes, manifest_bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::service::docker::reference::parse_repo_and_ref;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn layer(n: u8) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: d(n),
            size: 10 + u64::from(n),
            platform: None,
        }
    }

    #[test]
    fn rfd57_uuids() {
        // sha256("sha256:0101…01") formatted as a uuid.
        let chain = vec![d(1)];
        let hash = hex::encode(Sha256::digest(d(1).as_bytes()));
        let want = format!(
            "{}-{}-{}-{}-{}",
            &hash[0..8],
            &hash[8..12],
            &hash[12..16],
            &hash[16..20],
            &hash[20..32]
        );
        assert_eq!(uuid_from_digests(&chain).to_string(), want);
        let two = vec![d(1), d(2)];
        let joined = hex::encode(Sha256::digest(format!("{} {}", d(1), d(2)).as_bytes()));
        assert!(uuid_from_digests(&two).simple().to_string() == joined[..32]);
    }

    #[test]
    fn history_decides_which_layer_gets_the_config() {
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["A=1"], "Labels": {"x": "y"}},
            "rootfs": {"type": "layers", "diff_ids": [d(11), d(12)]},
            "history": [
                {"created": "2020-01-02T03:04:05.123456789Z", "created_by": "ADD base"},
                {"created": "2020-01-02T03:04:06Z", "created_by": "ENV A=1", "empty_layer": true},
                {"created": "2020-01-02T03:04:07Z", "created_by": "RUN touch x"}
            ]
        });
        let plans = plan_layers(&config, &[layer(1), layer(2)]).unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].chain, vec![d(1)]);
        assert_eq!(plans[1].chain, vec![d(1), d(2)]);
        assert_eq!(plans[1].diff_id, d(12));
        let repo = parse_repo_and_ref("127.0.0.1:5000/fix/a:t").unwrap();
        let base = layer_manifest(&plans[0], &repo, true, "x");
        assert_eq!(base["os"], "other");
        assert_eq!(base["description"], "ADD base");
        assert_eq!(base["published_at"], "2020-01-02T03:04:05.123Z");
        assert_eq!(base["version"], hex::encode([1u8; 6]));
        assert!(base.get("origin").is_none());
        assert_eq!(
            base["tags"],
            json!({"docker:repo": "127.0.0.1:5000/fix/a", "docker:id": d(1)})
        );
        let top = layer_manifest(&plans[1], &repo, false, "x");
        assert_eq!(top["os"], "linux");
        assert_eq!(top["public"], false);
        assert_eq!(top["origin"], plans[0].uuid().to_string());
        assert_eq!(top["tags"]["docker:architecture"], "amd64");
        assert_eq!(
            top["tags"]["docker:config"],
            json!({"Cmd": ["/bin/sh"], "Env": ["A=1"]})
        );
        assert!(top.get("description").is_none());
    }

    #[test]
    fn last_history_entry_empty_leaves_every_layer_synthetic() {
        let config = json!({
            "os": "linux", "architecture": "amd64",
            "rootfs": {"diff_ids": [d(11)]},
            "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "ADD x"},
                        {"created": "2020-01-01T00:00:01Z", "created_by": "CMD [\"sh\"]", "empty_layer": true}]
        });
        let plans = plan_layers(&config, &[layer(1)]).unwrap();
        let repo = parse_repo_and_ref("a.b/c").unwrap();
        let m = layer_manifest(&plans[0], &repo, true, "x");
        assert_eq!(m["os"], "other");
        assert!(m["tags"].get("docker:config").is_none());
    }

    #[test]
    fn platforms_and_compression() {
        let mut amd = layer(1);
        amd.platform = Some(("linux".into(), "amd64".into()));
        let mut arm = layer(2);
        arm.platform = Some(("linux".into(), "arm64".into()));
        assert_eq!(
            choose_platform(&[arm.clone(), amd.clone()]).unwrap().digest,
            d(1)
        );
        let err = choose_platform(&[arm]).unwrap_err().to_string();
        assert_eq!(
            err,
            "no linux-amd64 platform found in manifest list: linux-arm64"
        );
        assert_eq!(sniff_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Compression::Unsupported("zstd")
        );
    }
}
