//! The restCode table: every error code the API answers with, its HTTP status
//! and its meaning. `docs/errors.md` is generated from [`RestCode::ALL`]
//! (`cargo xtask gen-docs`) and a test fails when the file is stale.

macro_rules! rest_codes {
    ($( $(#[$doc:meta])* $variant:ident = $status:literal, $origin:literal, $desc:literal; )*) => {
        /// Every restCode of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RestCode { $( $(#[$doc])* $variant, )* }

        impl RestCode {
            /// All codes, in documentation order.
            pub const ALL: &'static [RestCode] = &[ $( RestCode::$variant, )* ];

            /// The `code` string of the error body.
            pub fn as_str(self) -> &'static str {
                match self { $( RestCode::$variant => stringify!($variant), )* }
            }

            /// The HTTP status this code is always sent with.
            pub fn http_status(self) -> u16 {
                match self { $( RestCode::$variant => $status, )* }
            }

            /// Where the code comes from: `imgapi` (IMGAPI's own classes),
            /// `restify` (framework errors of the original) or `extension`.
            pub fn origin(self) -> &'static str {
                match self { $( RestCode::$variant => $origin, )* }
            }

            /// When the code is raised.
            pub fn description(self) -> &'static str {
                match self { $( RestCode::$variant => $desc, )* }
            }
        }
    };
}

rest_codes! {
    ValidationFailed = 422, "imgapi", "Manifest validation failed, a required query parameter is missing, a channel is unknown or an update touches a field that cannot be updated. Has `errors`.";
    InvalidParameter = 422, "imgapi", "A query parameter or body element is malformed (account, owner, compression, storage, acl, state, limit, marker, sort, action, extra fields, booleans). Has `errors`.";
    ImageFilesImmutable = 422, "imgapi", "A file was added to an activated image.";
    ImageAlreadyActivated = 422, "imgapi", "ActivateImage on an activated image, or an upload finished after activation.";
    NoActivationNoFile = 422, "imgapi", "ActivateImage on an image without a file.";
    OperatorOnly = 403, "imgapi", "An operator-only endpoint was called with `account`.";
    ImageUuidAlreadyExists = 409, "imgapi", "An import used a UUID that already exists.";
    Upload = 400, "imgapi", "Image file too large (Content-Length or while streaming); any icon upload problem (content type, size, sha1, length, empty).";
    Download = 400, "imgapi", "File integrity problems: empty file, Content-Length mismatch, sha1 mismatch, remote download failures.";
    ImageFileTooBig = 400, "imgapi", "A docker/LXD import exceeded 20 GiB.";
    StorageIsDown = 503, "imgapi", "The storage backend is unavailable.";
    StorageUnsupported = 503, "imgapi", "The requested storage type is not configured.";
    RemoteSourceError = 503, "imgapi", "A remote IMGAPI could not be reached or read.";
    OwnerDoesNotExist = 422, "imgapi", "dc mode: the owner is unknown to the account directory.";
    AccountDoesNotExist = 422, "imgapi", "The account is unknown to the account directory.";
    NotImageOwner = 422, "imgapi", "A modifying request with `account` that does not own the (visible) image.";
    ImageNotShared = 422, "imgapi", "CloneImage by an account that is not on the image's ACL.";
    NotMantaPathOwner = 422, "imgapi", "ExportImage to a Manta path of another account.";
    OriginDoesNotExist = 422, "imgapi", "CreateImage / AdminImportImage with an unknown origin.";
    OriginIsNotActive = 422, "imgapi", "A remote import whose origin is not active.";
    InsufficientServerVersion = 422, "imgapi", "CreateImageFromVm on a compute node that is too old.";
    ImageHasDependentImages = 422, "imgapi", "DeleteImage of an image that is the origin of other images.";
    NotAvailable = 501, "imgapi", "The feature is not available on this server.";
    NotImplemented = 400, "imgapi", "Unsupported multi-file or icon cases.";
    ResourceNotFound = 404, "restify", "Unknown route, malformed `:uuid`, unknown or invisible image, missing file or icon.";
    InternalError = 500, "restify", "An unexpected server-side failure (the cause is in the audit log).";
    InvalidHeader = 400, "restify", "Listed for compatibility; not raised.";
    InvalidContent = 400, "restify", "The JSON request body does not parse.";
    InvalidVersion = 400, "restify", "`Accept-Version` is not satisfied by 1.0.0 or 2.0.0.";
    PreconditionFailed = 412, "restify", "A conditional request header (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since) failed.";
    InvalidArgument = 409, "restify", "POST /state with an unknown action.";
    MissingParameter = 409, "restify", "POST /state without an action.";
    MethodNotAllowedError = 405, "restify", "The path exists but not for this method (an `Allow` header lists the methods).";
    UnauthorizedError = 401, "restify", "Authentication failed or is required (e.g. `inclAdminFields` without auth).";
    ServiceUnavailableError = 503, "restify", "The metadata database is unavailable.";
    BadRequestError = 400, "restify", "A malformed conditional date header.";
    RequestedRangeNotSatisfiable = 416, "extension", "A `Range` request outside the file (the response carries `Content-Range: bytes */<size>`); an upload-session chunk that starts after the session's offset (the response carries `Upload-Offset` and `offset`).";
    RequestEntityTooLarge = 413, "extension", "A JSON request body exceeds the endpoint's limit.";
    ImageFileMissing = 500, "extension", "The stored bytes of an image's file or icon are gone although its manifest references them (lost data, not a missing image: retrying does not help). The message names the image, never the storage key; the audit log has the key and `imgapi check` lists every such file.";
    ImageProtected = 409, "extension", "DeleteImage (or retention, or `imgapi mirror --delete`) of a protected image (docs/lifecycle.md): clear the flag first with `PUT /images/:uuid/lifecycle` `{\"protected\": false}`.";
    QuotaExceeded = 403, "extension", "CreateImage, an import, AddImageFile (plain, from a URL or source, upload sessions) or AddImageIcon would pass the owner's image-count or byte quota (docs/lifecycle.md \"Quotas\"); the message names the limit, its value, the use and the request's size. Nothing of the request is kept.";
    ImageVersionExists = 409, "extension", "With `[quotas] write_once_versions`, a create, import or update would give a second image of the owner the same name and version; the message names the existing image.";
    ChangesExpired = 410, "extension", "ListChanges with a `since` older than the change log keeps (`[changes] retention_hours`), or ahead of it (a cursor of another database): events were lost to this cursor. Resynchronize (a full ListImages) and follow again from the `next` of `GET /changes?limit=0` (docs/events.md).";
    InvalidSignature = 422, "extension", "AddImageSignature (or an import or mirror carrying signatures) with a signature that does not verify against the image's statement (docs/signing.md): not an SSHSIG, another namespace than `imgapi`, an unsupported key type, or made over another image, field or file. The message says which; nothing is stored. Also an image that cannot be signed yet (no file).";
    SignatureRequired = 422, "extension", "ActivateImage with `[signing] require_for_activation` on an image without a valid signature by a key of its owner or of an operator (docs/signing.md): sign it first (`imgadm sign UUID`).";
    UploadSessionBusy = 409, "extension", "Another request is writing a chunk to, or finishing, this upload session (docs/uploads.md); `Retry-After` gives the seconds until its lease expires at the latest: retry then, or sooner (GET the session for its offset).";
}

impl RestCode {
    /// ValidationFailed and InvalidParameter bodies always carry `errors`.
    pub fn has_errors_array(self) -> bool {
        matches!(
            self,
            RestCode::ValidationFailed | RestCode::InvalidParameter
        )
    }

    /// Look a code up by its wire string.
    pub fn from_code(code: &str) -> Option<RestCode> {
        RestCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for code in RestCode::ALL {
            assert_eq!(RestCode::from_code(code.as_str()), Some(*code));
        }
    }

    #[test]
    fn statuses_match_errors_md() {
        assert_eq!(RestCode::NotImplemented.http_status(), 400);
        assert_eq!(RestCode::OperatorOnly.http_status(), 403);
        assert_eq!(RestCode::ImageUuidAlreadyExists.http_status(), 409);
        assert_eq!(RestCode::PreconditionFailed.http_status(), 412);
        assert_eq!(RestCode::NotAvailable.http_status(), 501);
    }
}
