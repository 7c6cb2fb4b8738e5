//! JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of the wire types, for
//! the OpenAPI document's `components/schemas`.

use schemars::generate::{Contract, SchemaSettings};
use schemars::SchemaGenerator;
use serde_json::Value;

use crate::{AddSignatureBody, ImageSignature, ImageSignatures};
use crate::{ChangeEvent, ChangeKind, ChangesPage};
use crate::{
    Channel, DockerErrorMessage, DockerImageCreated, DockerMessage, DockerProgress,
    DockerProgressDetail, DockerProgressMessage, DockerPushResult, DockerStreamError, DsapiDataset,
    DsapiFile, ErrorBody, Exported, FieldCode, FieldError, Health, HealthCheck, HealthChecks,
    Image, ImageFile, ImageLifecycle, ImageUser, Job, JobParams, JobStep, LogState,
    LxdErrorMessage, LxdMessage, LxdProgress, LxdProgressMessage, OwnerUsage, Ping, Quota,
    QuotaBytes, QuotaImages, QuotaOverrideBody, RecycleBinUsage, RecycledImage, Requirements,
    ServerState, StartedJob, TagUsage, UploadSessionBody, Usage, UsageQuota, UsageTotals,
};
use crate::{RetentionPlan, RetentionPlanImage, RetentionRule};
use crate::{Webhook, WebhookTestResult};

/// Where the schemas live in the OpenAPI document; `$ref`s point there.
const COMPONENTS: &str = "/components/schemas";

macro_rules! wire_types {
    ($($ty:ident),* $(,)?) => {
        /// Names of every schema [`schemas`] returns, in that order.
        pub const SCHEMA_NAMES: &[&str] = &[$(stringify!($ty)),*];

        fn generate(generator: &mut SchemaGenerator) {
            $( generator.subschema_for::<$ty>(); )*
        }
    };
}

wire_types![
    Image,
    ImageFile,
    ImageUser,
    Requirements,
    DsapiDataset,
    DsapiFile,
    Job,
    JobParams,
    JobStep,
    StartedJob,
    Ping,
    Health,
    HealthChecks,
    HealthCheck,
    Channel,
    ServerState,
    LogState,
    Usage,
    OwnerUsage,
    TagUsage,
    UsageTotals,
    UsageQuota,
    Quota,
    QuotaImages,
    QuotaBytes,
    QuotaOverrideBody,
    UploadSessionBody,
    ImageLifecycle,
    RetentionRule,
    RetentionPlan,
    RetentionPlanImage,
    RecycledImage,
    RecycleBinUsage,
    ImageSignatures,
    ImageSignature,
    AddSignatureBody,
    ChangesPage,
    ChangeEvent,
    ChangeKind,
    Webhook,
    WebhookTestResult,
    Exported,
    DockerMessage,
    DockerProgressMessage,
    DockerProgress,
    DockerProgressDetail,
    DockerPushResult,
    DockerImageCreated,
    DockerErrorMessage,
    DockerStreamError,
    LxdMessage,
    LxdProgressMessage,
    LxdProgress,
    LxdErrorMessage,
    ErrorBody,
    FieldError,
    FieldCode,
];

/// Responses are what these schemas check: a field is required when it is
/// always sent (the serialisation contract).
fn settings() -> SchemaSettings {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = COMPONENTS.into();
    settings.meta_schema = None;
    settings.contract = Contract::Serialize;
    settings
}

/// `(name, JSON Schema)` of every wire type, nested types included; a type
/// used inside another is a `$ref` to `#/components/schemas/NAME`.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let mut generator = settings().into_generator();
    generate(&mut generator);
    let mut definitions = generator.take_definitions(true);
    SCHEMA_NAMES
        .iter()
        .filter_map(|name| definitions.remove(*name).map(|schema| (*name, schema)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_definition_is_named() {
        let mut generator = settings().into_generator();
        generate(&mut generator);
        let generated: Vec<String> = generator.take_definitions(true).keys().cloned().collect();
        for name in &generated {
            assert!(
                SCHEMA_NAMES.contains(&name.as_str()),
                "{name} is not listed"
            );
        }
        assert_eq!(generated.len(), SCHEMA_NAMES.len());
        assert_eq!(schemas().len(), SCHEMA_NAMES.len());
    }

    #[test]
    fn refs_point_into_components() {
        let text = serde_json::to_string(&schemas()).unwrap_or_default();
        assert!(text.contains("\"$ref\":\"#/components/schemas/ImageFile\""));
        assert!(!text.contains("$defs"));
        assert!(!text.contains("\"additionalProperties\":false"));
    }
}
