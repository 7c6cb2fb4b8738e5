//! Every HTTP operation, declared once (api.md §2): its name, method, path,
//! authentication, when it is served, parameters, body, answer, restCodes
//! and handler. The router, `Allow`, the authentication policy, dispatch,
//! the metric and log endpoint names and the OpenAPI document all derive
//! from this table. To add an operation: one entry here, its handler under
//! `routes/`, its service function (docs/ARCHITECTURE.md).
//!
//! Table order matters twice: the first entry whose path matches names the
//! resource (so `/images/` is ListImages before `/images/{uuid}`), and the
//! entries of one path give the order of its `Allow` header.

use axum::response::{IntoResponse, Response};
use http::Method;
use imgapi_types::RestCode as R;

use super::auth::AuthPolicy;
use super::error::ApiError;
use super::operation::{BodyDoc, OperationDef, Origin, Routed, Served, Success, Variant};
use super::params::{self as p, Param, ParamType};
use super::request::Req;
use super::routes::{
    catalog, changes, datasets, docker, files, images, lifecycle, misc, quotas, recycle_bin,
    retention, signatures, simplestreams, uploads, usage, webhooks,
};
use crate::app::AppState;

macro_rules! operations {
    ($(
        $(#[doc = $doc:literal])*
        $op:ident => $handler:path { $($field:ident : $value:expr),* $(,)? }
    )*) => {
        /// One HTTP operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[doc = $doc])* $op,)*
        }

        impl Operation {
            /// Every operation, in table order.
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)*];

            pub fn def(self) -> &'static OperationDef {
                match self {
                    $(Operation::$op => {
                        static DEF: OperationDef = OperationDef {
                            name: stringify!($op),
                            $($field: $value,)*
                            ..OperationDef::BASE
                        };
                        &DEF
                    })*
                }
            }

            /// Run the operation's handler.
            pub async fn call(self, app: &AppState, req: Req) -> Result<Response, ApiError> {
                match self {
                    $(Operation::$op => $handler(app, req).await.map(IntoResponse::into_response),)*
                }
            }
        }
    };
}

const PUT: Method = Method::PUT;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;
const PASSIVE: AuthPolicy = AuthPolicy::Passive;
const NO_AUTH: AuthPolicy = AuthPolicy::None;

const ACTION: Param = Param::new("action", ParamType::Text, "Which form of the operation.");

const DRY_RUN: Param = Param::new(
    "dry_run",
    ParamType::Bool,
    "RunRetention: `true` answers the plan (`RetentionPlan`) and deletes nothing.",
);

const DOCKER_REPO: Param = Param::new(
    "repo",
    ParamType::Text,
    "import-docker-image: `[REGISTRY/]REPO`.",
);
const DOCKER_TAG: Param = Param::new(
    "tag",
    ParamType::Text,
    "import-docker-image: the tag (or `digest`).",
);
const DOCKER_DIGEST: Param = Param::new(
    "digest",
    ParamType::Text,
    "import-docker-image: the manifest digest (or `tag`).",
);
const DOCKER_PUBLIC: Param = Param::new(
    "public",
    ParamType::Bool,
    "import-docker-image: whether the layer images are public (default true).",
);
const LXD_ALIAS: Param = Param::new(
    "alias",
    ParamType::Text,
    "import-lxd-image: `REMOTE:ALIAS`, a remote of `[lxd.remotes]` and one of its image aliases.",
);
const REGISTRY_AUTH: Param = Param::header(
    "x-registry-auth",
    ParamType::Text,
    "Registry credentials: base64 of JSON `{\"username\", \"password\"}`.",
);
const REGISTRY_CONFIG: Param = Param::header(
    "x-registry-config",
    ParamType::Text,
    "Registry credentials by registry host: base64 of a JSON map host → `{\"username\", \"password\"}`.",
);

/// The restCodes of writes to an existing image.
const MODIFY: &[R] = &[
    R::InvalidParameter,
    R::ValidationFailed,
    R::NotImageOwner,
    R::PreconditionFailed,
    R::InvalidContent,
    R::RequestEntityTooLarge,
];

const LIST_FILTERS: &[Param] = &[
    p::ACCOUNT,
    p::CHANNEL,
    p::ADMIN_FIELDS,
    p::LIMIT,
    p::STATE,
    p::PUBLIC,
    p::SORT,
    p::NAME,
    p::VERSION,
    p::OS,
    p::TYPE,
    p::TAG,
    p::BILLING_TAG,
    p::MARKER,
    p::OWNER,
    p::INCLUDE_DEPRECATED,
];

const FILE_PARAMS: &[Param] = &[
    p::ACCOUNT,
    p::CHANNEL,
    p::COMPRESSION,
    p::SHA1,
    p::DATASET_GUID,
    p::STORAGE,
];

operations! {
    Ping => misc::ping {
        path: "/ping", auth: PASSIVE,
        summary: "Health check. `?error=<restCode>` answers with a sample of that error (testing).",
        params: &[Param::new("error", ParamType::Text, "A restCode (without `Error`) to answer with.")],
        success: Success::Json(200, "Ping"),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::ImageFilesImmutable, R::ImageAlreadyActivated,
                  R::NoActivationNoFile, R::OperatorOnly, R::ImageUuidAlreadyExists, R::StorageIsDown,
                  R::StorageUnsupported, R::RemoteSourceError],
    }
    Health => misc::health {
        path: "/health", auth: NO_AUTH, origin: Origin::Extension,
        summary: "Readiness: whether the database and the file store answer (200, or 503 naming the failing check). Checked at most once a second.",
        success: Success::Probe("Health"),
    }
    AdminGetState => misc::get_state {
        path: "/state", summary: "Operators: the server's state (mode, storage, image counts).",
        success: Success::Json(200, "ServerState"), errors: &[R::OperatorOnly],
    }
    AdminUpdateState => misc::update_state {
        method: POST, path: "/state", summary: "Operators: `?action=dropcaches`.",
        params: &[Param::new("action", ParamType::OneOf(&["dropcaches"]), "The state change.").required()],
        success: Success::Empty(202),
        errors: &[R::OperatorOnly, R::InvalidArgument, R::MissingParameter],
    }
    AdminReloadAuthKeys => misc::reload_auth_keys {
        method: POST, path: "/authkeys/reload", summary: "Operators: reload the HTTP Signature keys.",
        success: Success::Json(200, "Empty"), errors: &[R::OperatorOnly],
    }
    ListChannels => misc::list_channels {
        path: "/channels", auth: PASSIVE, served: Served::WithChannels,
        summary: "The configured channels.",
        success: Success::Json(200, "ChannelList"),
    }
    ListImages => images::list {
        path: "/images", aliases: &["/images/"], auth: PASSIVE,
        summary: "The images the caller may see, filtered, sorted and paged.",
        params: LIST_FILTERS,
        success: Success::Json(200, "ImageList"),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::UnauthorizedError, R::ResourceNotFound],
    }
    CreateImage => images::create {
        method: POST, path: "/images", aliases: &["/images/"],
        summary: "CreateImage: a new unactivated image from a manifest (no `action`).",
        params: &[p::ACCOUNT, p::CHANNEL, ACTION, DOCKER_REPO, DOCKER_TAG, DOCKER_DIGEST, DOCKER_PUBLIC,
                  REGISTRY_AUTH, REGISTRY_CONFIG, LXD_ALIAS],
        variants: &[
            Variant::action("create-from-vm", "CreateImageFromVm", "Not available on this server."),
            Variant::action("import-docker-image", "AdminImportDockerImage",
                            "Operators: import a Docker/OCI image from a registry, one `docker` image per layer (docs/docker.md).")
                .answers(Success::JsonLines("DockerMessage")).reads(BodyDoc::None),
            Variant::action("import-lxd-image", "AdminImportLxdImage",
                            "Operators: import the newest version of an LXD image from a simplestreams server of `[lxd.remotes]` (docs/lxd.md).")
                .answers(Success::JsonLines("LxdMessage")).reads(BodyDoc::None),
        ],
        body: BodyDoc::Json("CreateImage"),
        errors: &[R::ValidationFailed, R::InvalidParameter, R::InvalidContent, R::RequestEntityTooLarge,
                  R::OwnerDoesNotExist, R::AccountDoesNotExist, R::OriginDoesNotExist,
                  R::OriginIsNotActive, R::OperatorOnly, R::NotAvailable, R::NotImplemented,
                  R::QuotaExceeded, R::ImageVersionExists],
    }
    GetImage => images::get {
        path: "/images/{uuid}", auth: PASSIVE, summary: "One image (ETag, If-None-Match).",
        params: &[p::ACCOUNT, p::CHANNEL, p::ADMIN_FIELDS, p::IF_MATCH, p::IF_NONE_MATCH],
        errors: &[R::InvalidParameter, R::ValidationFailed, R::PreconditionFailed, R::UnauthorizedError],
    }
    ImageAction => images::action {
        method: POST, path: "/images/{uuid}",
        summary: "An action on an image, chosen by `action`.",
        params: &[p::ACCOUNT, p::CHANNEL, ACTION, p::SOURCE, p::SKIP_OWNER_CHECK,
                  Param::new("datacenter", ParamType::Text, "import-from-datacenter: the source datacenter."),
                  Param::new("stor", ParamType::Text, "change-stor: the target storage."),
                  Param::new("manta_path", ParamType::Text, "export: the target path."),
                  p::IF_MATCH, p::IF_NONE_MATCH],
        variants: &[
            Variant::action("activate", "ActivateImage", "Activate (publish) an image that has its file."),
            Variant::action("disable", "DisableImage", "Hide the image from non-owners and provisioning."),
            Variant::action("enable", "EnableImage", "Undo DisableImage."),
            Variant::action("update", "UpdateImage", "Change mutable manifest fields.")
                .reads(BodyDoc::Json("UpdateImage")),
            Variant::action("channel-add", "ChannelAddImage", "Add the image to another channel.")
                .reads(BodyDoc::Json("ChannelAdd")),
            Variant::action("import", "AdminImportImageFromSource", "Operators: import the image from a remote IMGAPI (`source`).")
                .with("source"),
            Variant::action("import", "AdminImportImage", "Operators: create an image with a given uuid from a full manifest.")
                .reads(BodyDoc::Json("ImportImage")),
            Variant::action("import-remote", "AdminImportRemoteImage", "Operators: import an image and its origins from a remote IMGAPI, as a job.")
                .answers(Success::Json(200, "StartedJob")),
            Variant::action("import-from-datacenter", "ImportFromDatacenter", "Copy an image from another datacenter, as a job.")
                .answers(Success::Json(200, "StartedJob")),
            Variant::action("change-stor", "AdminChangeImageStor", "Operators: move the file to another storage."),
            Variant::action("export", "ExportImage", "Write the manifest and file to the export location.")
                .answers(Success::Json(200, "Exported")),
        ],
        body: BodyDoc::None,
        errors: &[R::InvalidParameter, R::ValidationFailed, R::NotImageOwner, R::PreconditionFailed,
                  R::InvalidContent, R::RequestEntityTooLarge, R::ImageAlreadyActivated,
                  R::NoActivationNoFile, R::ImageUuidAlreadyExists, R::OriginDoesNotExist,
                  R::OriginIsNotActive, R::OperatorOnly, R::RemoteSourceError, R::StorageUnsupported,
                  R::NotMantaPathOwner, R::NotAvailable, R::OwnerDoesNotExist, R::ImageFileMissing,
                  R::QuotaExceeded, R::ImageVersionExists, R::SignatureRequired],
    }
    DeleteImage => images::delete {
        method: DELETE, path: "/images/{uuid}", summary: "Delete an image and its files.",
        params: &[p::ACCOUNT, p::CHANNEL, p::FORCE_ALL_CHANNELS],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageHasDependentImages, R::PreconditionFailed,
                  R::ImageProtected],
    }
    GetImageFile => files::get_file {
        path: "/images/{uuid}/file", auth: NO_AUTH,
        summary: "The image's file (`Range`, `If-Range`, ETag, Content-MD5, Repr-Digest).",
        params: &[p::ACCOUNT, p::CHANNEL, p::INDEX, p::RANGE, p::IF_RANGE, p::IF_MATCH, p::IF_NONE_MATCH],
        success: Success::File,
        errors: &[R::InvalidParameter, R::RequestedRangeNotSatisfiable, R::PreconditionFailed, R::StorageIsDown,
                  R::ImageFileMissing],
    }
    AddImageFile => files::add_file {
        method: PUT, path: "/images/{uuid}/file",
        summary: "Upload the image's file (the body), or copy it from a remote IMGAPI (`source`).",
        params: &[p::ACCOUNT, p::CHANNEL, p::SOURCE, p::COMPRESSION, p::SHA1, p::SIZE, p::DATASET_GUID, p::STORAGE],
        variants: &[Variant { action: None, with_param: Some("source"), name: "AddImageFileFromSource",
                              summary: "Operators: copy the file from a remote IMGAPI.", success: None,
                              body: Some(BodyDoc::None) }],
        body: BodyDoc::Bytes,
        errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageFilesImmutable, R::Upload, R::Download,
                  R::StorageIsDown, R::StorageUnsupported, R::NotImplemented, R::RemoteSourceError,
                  R::OperatorOnly, R::QuotaExceeded],
    }
    AddImageFileFromUrl => files::add_file_from_url {
        method: POST, path: "/images/{uuid}/file/from-url", origin: Origin::Extension,
        summary: "The server downloads the image's file from a URL.",
        params: FILE_PARAMS,
        body: BodyDoc::Json("FileFromUrl"),
        errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageFilesImmutable, R::Download,
                  R::InvalidContent, R::ValidationFailed, R::QuotaExceeded],
    }
    CreateUploadSession => uploads::create {
        method: POST, path: "/images/{uuid}/file/uploads", origin: Origin::Extension,
        summary: "Start a resumable upload session (docs/uploads.md).",
        params: &[p::ACCOUNT, p::CHANNEL, p::COMPRESSION, p::SHA1, p::SIZE, p::DATASET_GUID, p::STORAGE],
        success: Success::Json(201, "UploadSessionBody"),
        errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageFilesImmutable, R::Upload, R::QuotaExceeded],
    }
    GetUploadSession => uploads::get {
        path: "/images/{uuid}/file/uploads/{upload}", origin: Origin::Extension,
        summary: "An upload session: how many bytes the server has (`Upload-Offset`).",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Json(200, "UploadSessionBody"),
        errors: &[R::InvalidParameter, R::NotImageOwner],
    }
    WriteUploadChunk => uploads::put_chunk {
        method: PUT, path: "/images/{uuid}/file/uploads/{upload}", origin: Origin::Extension,
        summary: "Store a chunk (`Content-Range: bytes START-END/TOTAL`).",
        params: &[p::ACCOUNT, p::CHANNEL, p::CONTENT_RANGE],
        body: BodyDoc::Bytes,
        success: Success::Json(200, "UploadSessionBody"),
        errors: &[R::InvalidParameter, R::NotImageOwner, R::Upload, R::RequestedRangeNotSatisfiable,
                  R::UploadSessionBusy, R::QuotaExceeded],
    }
    FinishUploadSession => uploads::action {
        method: POST, path: "/images/{uuid}/file/uploads/{upload}", origin: Origin::Extension,
        summary: "`?action=finish`: verify the bytes and make them the image's file.",
        params: &[p::ACCOUNT, p::CHANNEL,
                  Param::new("action", ParamType::OneOf(&["finish"]), "Must be `finish`.").required(),
                  p::SHA1, p::SHA256, p::SIZE],
        errors: &[R::InvalidParameter, R::NotImageOwner, R::Upload, R::Download, R::UploadSessionBusy,
                  R::ImageFilesImmutable],
    }
    AbortUploadSession => uploads::abort {
        method: DELETE, path: "/images/{uuid}/file/uploads/{upload}", origin: Origin::Extension,
        summary: "Abort an upload session and drop its bytes.",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter, R::NotImageOwner, R::UploadSessionBusy],
    }
    GetImageIcon => files::get_icon {
        path: "/images/{uuid}/icon", auth: NO_AUTH, summary: "The image's icon.",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Icon,
        errors: &[R::InvalidParameter, R::PreconditionFailed, R::StorageIsDown, R::ImageFileMissing],
    }
    AddImageIcon => files::add_icon {
        method: PUT, path: "/images/{uuid}/icon", summary: "Upload the icon (the body: PNG, GIF or JPEG).",
        params: &[p::ACCOUNT, p::CHANNEL, p::SHA1, p::STORAGE],
        body: BodyDoc::Icon,
        errors: &[R::InvalidParameter, R::NotImageOwner, R::Upload, R::NotImplemented, R::StorageUnsupported,
                  R::QuotaExceeded],
    }
    DeleteImageIcon => files::delete_icon {
        method: DELETE, path: "/images/{uuid}/icon", summary: "Remove the icon.",
        params: &[p::ACCOUNT, p::CHANNEL],
        errors: &[R::InvalidParameter, R::NotImageOwner],
    }
    GetImageLifecycle => lifecycle::get {
        path: "/images/{uuid}/lifecycle", auth: PASSIVE, origin: Origin::Extension,
        summary: "The image's lifecycle flags: deprecation time and protection (docs/lifecycle.md). Anyone who may see the image may read them.",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Json(200, "ImageLifecycle"),
        errors: &[R::InvalidParameter, R::ValidationFailed],
    }
    UpdateImageLifecycle => lifecycle::update {
        method: PUT, path: "/images/{uuid}/lifecycle", origin: Origin::Extension,
        summary: "Owners and operators: set or clear the deprecation time and protection (merged: fields left out keep their value).",
        params: &[p::ACCOUNT, p::CHANNEL],
        body: BodyDoc::Json("ImageLifecycleUpdate"),
        success: Success::Json(200, "ImageLifecycle"),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::NotImageOwner, R::InvalidContent,
                  R::RequestEntityTooLarge],
    }
    ListImageSignatures => signatures::list {
        path: "/images/{uuid}/signatures", auth: PASSIVE, origin: Origin::Extension,
        summary: "The image's signatures (docs/signing.md), each re-verified against the image's statement (`valid`) and with the `role` this server knows its key in, and the statement itself (the exact bytes to sign with `ssh-keygen -Y sign -n imgapi`). Anyone who may see the image may read them.",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Json(200, "ImageSignatures"),
        errors: &[R::InvalidParameter, R::ValidationFailed],
    }
    AddImageSignature => signatures::add {
        method: POST, path: "/images/{uuid}/signatures", origin: Origin::Extension,
        summary: "Owners and operators: add an SSHSIG signature of the image's statement (replacing the signature by the same key). It is verified first: 422 InvalidSignature says why it does not verify, and nothing is stored.",
        params: &[p::ACCOUNT, p::CHANNEL],
        body: BodyDoc::Json("AddSignatureBody"),
        success: Success::Json(200, "ImageSignature"),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::NotImageOwner, R::InvalidSignature,
                  R::InvalidContent, R::RequestEntityTooLarge],
    }
    RemoveImageSignature => signatures::remove {
        method: DELETE, path: "/images/{uuid}/signatures/{id}", origin: Origin::Extension,
        summary: "Owners and operators: remove the image's signature by the key whose SHA-256 fingerprint (hex) is `id`.",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::NotImageOwner],
    }
    AddImageAcl => images::acl {
        method: POST, path: "/images/{uuid}/acl",
        summary: "Add accounts to the image's ACL (`?action=remove`: remove them).",
        params: &[p::ACCOUNT, p::CHANNEL, Param::new("action", ParamType::OneOf(&["add", "remove"]), "Add (default) or remove.")],
        variants: &[Variant::action("remove", "RemoveImageAcl", "Remove accounts from the image's ACL.")],
        body: BodyDoc::Json("Acl"),
        errors: MODIFY,
    }
    CloneImage => images::clone {
        method: POST, path: "/images/{uuid}/clone", served: Served::DcMode,
        summary: "A copy of a shared image owned by `account` (dc mode).",
        params: &[p::ACCOUNT, p::CHANNEL],
        errors: &[R::InvalidParameter, R::ImageNotShared, R::NotAvailable, R::NotImageOwner, R::ImageFileMissing,
                  R::QuotaExceeded],
    }
    AdminPushDockerImage => docker::push {
        method: POST, path: "/images/{uuid}/push",
        summary: "Push a docker image's layer chain, config and manifest to a registry (docs/docker.md).",
        params: &[p::ACCOUNT, Param::new("repoAndTag", ParamType::Text, "Where to push: `[REGISTRY/]REPO:TAG`."),
                  REGISTRY_AUTH],
        body: BodyDoc::Json("PushDockerImage"),
        success: Success::JsonLines("DockerMessage"),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::NotImageOwner, R::NotImplemented,
                  R::InvalidContent, R::ImageFileMissing],
    }
    ListImageJobs => images::jobs {
        path: "/images/{uuid}/jobs", auth: NO_AUTH, summary: "The image's jobs (import-remote and others).",
        params: &[p::ACCOUNT, p::CHANNEL,
                  Param::new("task", ParamType::Text, "Only jobs of this task."),
                  Param::new("execution", ParamType::OneOf(&["queued", "running", "succeeded", "failed", "canceled"]), "Only jobs in this state.")],
        success: Success::Json(200, "JobList"),
        errors: &[R::InvalidParameter, R::ValidationFailed],
    }
    GetJob => images::job {
        path: "/jobs/{uuid}", auth: NO_AUTH, origin: Origin::Extension,
        summary: "One job, as the workflow API shows it (import-remote's `workflow-api` header points here).",
        success: Success::Json(200, "Job"),
    }
    ListChanges => changes::list {
        path: "/changes", auth: PASSIVE, origin: Origin::Extension,
        summary: "The change feed (docs/events.md): the events after `since`, oldest first, each shown only to a caller GetImage would show its image to; pass the answer's `next` as the next `since`. `wait` long-polls for a first event.",
        params: &[p::ACCOUNT, p::CHANNEL,
                  Param::new("since", ParamType::Integer { min: 0, max: i64::MAX }, "Events after this sequence number (default 0: from the oldest event kept). A cursor older than the log, or ahead of it: 410 ChangesExpired."),
                  Param::new("limit", ParamType::Integer { min: 0, max: 1000 }, "At most this many events (default 100). `0`: no events, `next` is the latest sequence number (follow from now)."),
                  Param::new("wait", ParamType::Integer { min: 0, max: 60 }, "Seconds to wait for an event when there is none yet (default 0).")],
        success: Success::Json(200, "ChangesPage"),
        errors: &[R::InvalidParameter, R::ValidationFailed, R::ChangesExpired, R::UnauthorizedError],
    }
    AdminGetUsage => usage::get_usage {
        path: "/usage", origin: Origin::Extension,
        summary: "Operators: storage per owner and billing tag.",
        params: &[p::ACCOUNT, p::OWNER],
        success: Success::Json(200, "Usage"),
        errors: &[R::InvalidParameter, R::OperatorOnly],
    }
    ListRetentionRules => retention::list_rules {
        path: "/retention/rules", origin: Origin::Extension,
        summary: "Operators: the retention rules, of `[retention]` (`source: config`) and of this API (docs/lifecycle.md).",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "RetentionRuleList"),
        errors: &[R::OperatorOnly],
    }
    AddRetentionRule => retention::add_rule {
        method: POST, path: "/retention/rules", origin: Origin::Extension,
        summary: "Operators: add a retention rule (`name` pattern, optional `owner`, `keep_versions` and/or `keep_days`).",
        params: &[p::ACCOUNT],
        body: BodyDoc::Json("RetentionRuleBody"),
        success: Success::Json(201, "RetentionRule"),
        errors: &[R::InvalidParameter, R::InvalidContent, R::OperatorOnly],
    }
    DeleteRetentionRule => retention::delete_rule {
        method: DELETE, path: "/retention/rules/{id}", origin: Origin::Extension,
        summary: "Operators: delete a retention rule added through the API (rules of the configuration file stay).",
        params: &[p::ACCOUNT],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter, R::OperatorOnly, R::ResourceNotFound],
    }
    ListRetentionRuns => retention::list_runs {
        path: "/retention/runs", origin: Origin::Extension,
        summary: "Operators: the retention runs (jobs), newest first; `GET /jobs/{uuid}` shows one.",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "JobList"),
        errors: &[R::OperatorOnly],
    }
    RunRetention => retention::run {
        method: POST, path: "/retention/runs", origin: Origin::Extension,
        summary: "Operators: `dry_run=true` answers the plan (200); otherwise queues a `retention` job (202; `GET /jobs/{uuid}` shows it).",
        params: &[p::ACCOUNT, DRY_RUN],
        variants: &[
            Variant {
                action: None,
                with_param: Some("dry_run"),
                name: "RunRetentionDryRun",
                summary: "`dry_run=true`: what a run would delete and what it keeps although a rule selected it (`false` runs as without it).",
                success: Some(Success::Json(200, "RetentionPlan")),
                body: None,
            },
        ],
        success: Success::Json(202, "Job"),
        errors: &[R::InvalidParameter, R::OperatorOnly],
    }
    ListWebhooks => webhooks::list {
        path: "/webhooks", origin: Origin::Extension,
        summary: "Operators: the webhook endpoints (docs/webhooks.md), of `[[webhooks.endpoints]]` (`source: config`) and of this API, with their delivery state (cursor, lag, failures, dead-letter); never their secrets.",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "WebhookList"),
        errors: &[R::OperatorOnly],
    }
    AddWebhook => webhooks::add {
        method: POST, path: "/webhooks", origin: Origin::Extension,
        summary: "Operators: add a webhook endpoint: `url` (checked against the `[remote]` policy), `secret`, optional `name`, `events` and `since` (default: events from now on).",
        params: &[p::ACCOUNT],
        body: BodyDoc::Json("WebhookBody"),
        success: Success::Json(201, "Webhook"),
        errors: &[R::InvalidParameter, R::InvalidContent, R::RequestEntityTooLarge, R::OperatorOnly],
    }
    GetWebhook => webhooks::get {
        path: "/webhooks/{id}", origin: Origin::Extension,
        summary: "Operators: one webhook endpoint and its delivery state.",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "Webhook"),
        errors: &[R::OperatorOnly, R::ResourceNotFound],
    }
    TestWebhook => webhooks::action {
        method: POST, path: "/webhooks/{id}", origin: Origin::Extension,
        summary: "Operators: `?action=test` POSTs a signed `webhook.test` event to the endpoint now and answers what the receiver said (the endpoint's state does not change).",
        params: &[p::ACCOUNT,
                  Param::new("action", ParamType::OneOf(&["test", "resume"]), "`test` or `resume`.").required()],
        variants: &[
            Variant::action("resume", "ResumeWebhook", "Clear the dead state and the failures: delivery goes on at once from the cursor (or from the body's `since`); answers the endpoint.")
                .reads(BodyDoc::Json("WebhookResumeBody"))
                .answers(Success::Json(200, "Webhook")),
        ],
        success: Success::Json(200, "WebhookTestResult"),
        errors: &[R::InvalidParameter, R::InvalidContent, R::RequestEntityTooLarge, R::OperatorOnly,
                  R::ResourceNotFound],
    }
    DeleteWebhook => webhooks::delete {
        method: DELETE, path: "/webhooks/{id}", origin: Origin::Extension,
        summary: "Operators: delete a webhook endpoint added through the API (those of the configuration file stay: 422 InvalidParameter).",
        params: &[p::ACCOUNT],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter, R::OperatorOnly, R::ResourceNotFound],
    }
    ListRecycleBin => recycle_bin::list {
        path: "/recycle-bin", origin: Origin::Extension,
        summary: "Deleted images waiting in the recycle bin (`[lifecycle] recycle_days`, docs/lifecycle.md), oldest deletion first: an account's own (`account`), or for operators all or `owner`'s.",
        params: &[p::ACCOUNT, p::OWNER,
                  Param::new("limit", ParamType::Integer { min: 1, max: 1000 }, "At most this many entries (default 100)."),
                  Param::new("offset", ParamType::Integer { min: 0, max: i64::MAX }, "Skip this many entries.")],
        success: Success::Json(200, "RecycledImageList"),
        errors: &[R::InvalidParameter],
    }
    GetRecycledImage => recycle_bin::get {
        path: "/recycle-bin/{uuid}", origin: Origin::Extension,
        summary: "One recycle-bin entry (the owner's or, for operators, any).",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "RecycledImage"),
        errors: &[R::InvalidParameter],
    }
    RestoreRecycledImage => recycle_bin::restore {
        method: POST, path: "/recycle-bin/{uuid}", origin: Origin::Extension,
        summary: "`?action=restore`: put a deleted image back as it was; answers the image. Its origin must exist (restore it first).",
        params: &[p::ACCOUNT,
                  Param::new("action", ParamType::OneOf(&["restore"]), "Must be `restore`.").required()],
        errors: &[R::InvalidParameter, R::OriginDoesNotExist, R::ImageUuidAlreadyExists, R::QuotaExceeded, R::ImageVersionExists],
    }
    PurgeRecycledImage => recycle_bin::purge {
        method: DELETE, path: "/recycle-bin/{uuid}", origin: Origin::Extension,
        summary: "Delete a recycle-bin entry and its files for good.",
        params: &[p::ACCOUNT],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter],
    }
    ListQuotas => quotas::list {
        path: "/quotas", origin: Origin::Extension,
        summary: "Operators: the owners with a quota (configured or stored), with limits and use.",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "QuotaList"),
        errors: &[R::OperatorOnly],
    }
    GetQuota => quotas::get {
        path: "/quotas/{owner}", origin: Origin::Extension,
        summary: "An owner's effective quota and use (operators, or the owner itself with `account`).",
        params: &[p::ACCOUNT],
        success: Success::Json(200, "Quota"),
        errors: &[R::InvalidParameter, R::OperatorOnly],
    }
    PutQuota => quotas::put {
        method: PUT, path: "/quotas/{owner}", origin: Origin::Extension,
        summary: "Operators: store an owner's limits, replacing the configured ones.",
        params: &[p::ACCOUNT],
        body: BodyDoc::Json("QuotaOverrideBody"),
        success: Success::Json(200, "Quota"),
        errors: &[R::InvalidParameter, R::InvalidContent, R::OperatorOnly],
    }
    DeleteQuota => quotas::delete {
        method: DELETE, path: "/quotas/{owner}", origin: Origin::Extension,
        summary: "Operators: drop an owner's stored limits (the configured ones apply again).",
        params: &[p::ACCOUNT],
        success: Success::Empty(204),
        errors: &[R::InvalidParameter, R::OperatorOnly, R::ResourceNotFound],
    }
    GetMetrics => metrics {
        path: "/metrics", auth: NO_AUTH, served: Served::MetricsOnMain, origin: Origin::Extension,
        summary: "Prometheus metrics (with `metrics_on_main`).",
        success: Success::Metrics,
    }
    ListDatasets => datasets::list {
        path: "/datasets", auth: NO_AUTH,
        summary: "Legacy DSAPI: a 301 to /images, or (`dsapi = \"serve\"`) the datasets as v1 manifests.",
        params: &[p::CHANNEL, p::NAME, p::VERSION, p::OS, p::TYPE, p::TAG, p::BILLING_TAG],
        success: Success::Json(200, "DatasetList"),
    }
    GetDataset => datasets::get {
        path: "/datasets/{arg}", auth: NO_AUTH, served: Served::NonEmptyArgs,
        summary: "Legacy DSAPI: one dataset (uuid, `name:version`, URN or name), or a 301.",
        params: &[p::CHANNEL],
        success: Success::Json(200, "DsapiDataset"),
    }
    GetDatasetFile => datasets::get_file {
        path: "/datasets/{arg}/{file}", auth: NO_AUTH, served: Served::DsapiServe,
        summary: "Legacy DSAPI: a dataset's file (`dsapi = \"serve\"`).",
        params: &[p::CHANNEL],
        success: Success::File,
        errors: &[R::RequestedRangeNotSatisfiable, R::PreconditionFailed, R::StorageIsDown, R::ImageFileMissing],
    }
    GetSimplestreamsIndex => simplestreams::index {
        path: "/streams/v1/index.json", auth: NO_AUTH, served: Served::Simplestreams, origin: Origin::Extension,
        summary: "Simplestreams index (`[simplestreams] enabled`, docs/lxd.md): names the products file of the active, public `lxd` images.",
        success: Success::Json(200, "SimplestreamsIndex"),
    }
    GetSimplestreamsProducts => simplestreams::products {
        path: "/streams/v1/images.json", auth: NO_AUTH, served: Served::Simplestreams, origin: Origin::Extension,
        summary: "Simplestreams products file: the active, public `lxd` images as LXD products, versions and items.",
        success: Success::Json(200, "SimplestreamsProducts"),
    }
    GetSimplestreamsFile => simplestreams::file {
        path: "/streams/v1/files/{uuid}/{item}", auth: NO_AUTH, served: Served::Simplestreams, origin: Origin::Extension,
        summary: "A simplestreams item's bytes (an image file), with GetImageFile's headers and `Range`.",
        params: &[p::RANGE, p::IF_RANGE, p::IF_MATCH, p::IF_NONE_MATCH],
        success: Success::File,
        errors: &[R::RequestedRangeNotSatisfiable, R::PreconditionFailed, R::StorageIsDown, R::ImageFileMissing],
    }
    GetCatalog => catalog::index {
        path: "/catalog", aliases: &["/catalog/"], auth: PASSIVE, served: Served::Catalog, origin: Origin::Extension,
        summary: "HTML catalog of the images the caller may see.",
        params: &[p::ACCOUNT, p::CHANNEL, p::NAME,
                  Param::new("match", ParamType::OneOf(&["substring", "prefix"]), "How `name` matches."),
                  p::OS, p::TYPE, p::OWNER,
                  Param::new("limit", ParamType::Integer { min: 1, max: 1000 }, "Rows per page (default 50)."),
                  p::MARKER],
        success: Success::Html,
        errors: &[R::InvalidParameter, R::ResourceNotFound],
    }
    GetCatalogImage => catalog::image {
        path: "/catalog/{uuid}", auth: PASSIVE, served: Served::Catalog, origin: Origin::Extension,
        summary: "HTML page of one image.",
        params: &[p::ACCOUNT, p::CHANNEL],
        success: Success::Html,
        errors: &[R::InvalidParameter],
    }
    GetOpenApi => openapi_document {
        path: "/openapi.json", auth: NO_AUTH, origin: Origin::Extension,
        summary: "This document, for this server's configuration.",
        success: Success::Json(200, "OpenApi"),
    }
}

async fn metrics(app: &AppState, _req: Req) -> Result<Response, ApiError> {
    Ok(crate::telemetry::exporter::metrics_response(app).await)
}

async fn openapi_document(app: &AppState, _req: Req) -> Result<Response, ApiError> {
    Ok(super::ok_json(&super::openapi::served_document(app)))
}

impl Operation {
    /// The operation of `method` on `path` for this server's configuration.
    pub fn route(app: &AppState, method: &Method, path: &str) -> Routed<Operation> {
        super::operation::route(Operation::ALL, Operation::def, app, method, path)
    }

    pub fn auth_policy(self) -> AuthPolicy {
        self.def().auth
    }
}

/// 405 with the `Allow` header (api.md §1.10).
pub fn method_not_allowed(allow: String, method: &Method) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(R::MethodNotAllowedError, format!("{method} is not allowed"))
    }
}
