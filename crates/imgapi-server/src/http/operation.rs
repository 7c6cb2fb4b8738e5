//! What an operation is: the fields every entry of the operations table
//! (`operations.rs`) declares, and what is derived from them: path
//! matching, the `Allow` list, endpoint names for metrics and logs.

use http::Method;
use imgapi_types::RestCode;

use super::auth::AuthPolicy;
use super::params::Param;
use super::query::QueryParams;
use crate::app::AppState;

/// Whether an operation is one of the original IMGAPI's or an extension of
/// this server. `Allow` lists HEAD only for extensions, since the original
/// registers no HEAD route and its clients compare the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Original,
    Extension,
}

/// When a route exists: some depend on the configuration, or on the path's
/// own segments (the legacy `/datasets/:arg` wants a non-empty `arg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Always,
    WithChannels,
    DcMode,
    MetricsOnMain,
    Catalog,
    /// Every path segment non-empty.
    NonEmptyArgs,
    /// `dsapi = "serve"` and every path segment non-empty.
    DsapiServe,
    /// `[simplestreams] enabled` and every path segment non-empty.
    Simplestreams,
}

impl Served {
    pub fn by(self, app: &AppState, args: &[&str]) -> bool {
        match self {
            Served::Always => true,
            Served::WithChannels => app.channels_enabled(),
            Served::DcMode => app.config.mode == imgapi_domain::Mode::Dc,
            Served::MetricsOnMain => app.config.metrics_on_main,
            Served::Catalog => app.config.catalog,
            Served::NonEmptyArgs => args.iter().all(|a| !a.is_empty()),
            Served::DsapiServe => {
                app.config.dsapi == crate::config::DsapiMode::Serve
                    && args.iter().all(|a| !a.is_empty())
            }
            Served::Simplestreams => {
                app.config.simplestreams.enabled && args.iter().all(|a| !a.is_empty())
            }
        }
    }
}

/// A request body an operation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDoc {
    None,
    /// `application/json`, a schema of `components.schemas`.
    Json(&'static str),
    /// Raw bytes (image files, chunks).
    Bytes,
    /// An icon: PNG, GIF or JPEG.
    Icon,
}

/// What a successful answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// A JSON body of a `components.schemas` schema.
    Json(u16, &'static str),
    /// A status with no body.
    Empty(u16),
    /// `application/octet-stream` bytes (also 206 for ranges).
    File,
    /// An image of the icon's own type.
    Icon,
    /// A 301 to another path.
    Redirect,
    Html,
    /// Prometheus text exposition.
    Metrics,
    /// 200 and a stream of JSON objects, each followed by `\r\n`, each a
    /// `components.schemas` schema of this name (Docker import / push).
    JsonLines(&'static str),
    /// A JSON body of this schema, 200 when all is well and 503 when not
    /// (health checks).
    Probe(&'static str),
}

/// A named form of an operation chosen by its query: `action=`, or the
/// presence of another parameter (`source`). The first variant that
/// matches names the request.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// The `action` value; `None` = whatever `action` is.
    pub action: Option<&'static str>,
    /// A parameter that must be present.
    pub with_param: Option<&'static str>,
    pub name: &'static str,
    pub summary: &'static str,
    /// What this form answers, when it differs from the operation's.
    pub success: Option<Success>,
    /// The body this form reads, when it differs from the operation's.
    pub body: Option<BodyDoc>,
}

impl Variant {
    pub const fn action(action: &'static str, name: &'static str, summary: &'static str) -> Self {
        Variant {
            action: Some(action),
            with_param: None,
            name,
            summary,
            success: None,
            body: None,
        }
    }

    pub const fn answers(mut self, success: Success) -> Self {
        self.success = Some(success);
        self
    }

    pub const fn reads(mut self, body: BodyDoc) -> Self {
        self.body = Some(body);
        self
    }

    pub const fn with(mut self, param: &'static str) -> Self {
        self.with_param = Some(param);
        self
    }

    fn matches(&self, query: &QueryParams) -> bool {
        let action_ok = match self.action {
            None => true,
            Some(a) => query.get("action") == Some(a),
        };
        action_ok && self.with_param.is_none_or(|p| query.contains(p))
    }
}

/// One operation: everything the router, the authentication, the metrics,
/// the logs and the OpenAPI document know of it.
#[derive(Debug)]
pub struct OperationDef {
    /// The endpoint name (api.md §2): operationId, metric and log label.
    pub name: &'static str,
    pub method: Method,
    /// Path template; `{name}` segments match any one segment.
    pub path: &'static str,
    /// Other spellings of the same path (`/images/`).
    pub aliases: &'static [&'static str],
    pub auth: AuthPolicy,
    pub served: Served,
    pub origin: Origin,
    pub summary: &'static str,
    /// Query parameters, in the order the handler reads them.
    pub params: &'static [Param],
    pub variants: &'static [Variant],
    pub body: BodyDoc,
    pub success: Success,
    /// restCodes beyond the ones every operation can answer with.
    pub errors: &'static [RestCode],
}

impl OperationDef {
    /// What entries leave out.
    pub const BASE: OperationDef = OperationDef {
        name: "",
        method: Method::GET,
        path: "",
        aliases: &[],
        auth: AuthPolicy::Strict,
        served: Served::Always,
        origin: Origin::Original,
        summary: "",
        params: &[],
        variants: &[],
        body: BodyDoc::None,
        success: Success::Json(200, "Image"),
        errors: &[],
    };

    /// The request's endpoint name: the first matching variant's, else the
    /// operation's.
    pub fn endpoint_name(&self, query: &QueryParams) -> &'static str {
        self.variants
            .iter()
            .find(|v| v.matches(query))
            .map_or(self.name, |v| v.name)
    }

    /// The path's segments matched against this operation's template (or
    /// an alias): the `{name}` segments, in order.
    pub fn match_path<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        std::iter::once(self.path)
            .chain(self.aliases.iter().copied())
            .find_map(|template| match_template(template, path))
    }

    /// The `{name}` segments of the template.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
    }
}

fn match_template<'p>(template: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut want = template.split('/');
    let mut got = path.split('/');
    let mut args = Vec::new();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(args),
            (Some(w), Some(g)) if w.starts_with('{') => args.push(g),
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// What routing a request found.
pub enum Routed<Op> {
    /// The operation and its path segments.
    Found(Op, Vec<String>),
    /// The path exists, the method does not: the methods it has.
    MethodNotAllowed(String),
    NotFound,
}

/// The operation of `method` on `path` among `ops` (table order: the first
/// template that matches names the resource). HEAD runs the resource's GET.
pub fn route<Op: Copy>(
    ops: &[Op],
    def: impl Fn(Op) -> &'static OperationDef,
    app: &AppState,
    method: &Method,
    path: &str,
) -> Routed<Op> {
    let resource = ops.iter().find_map(|&op| {
        let d = def(op);
        let args = d.match_path(path)?;
        d.served.by(app, &args).then_some((d.path, args))
    });
    let Some((template, args)) = resource else {
        return Routed::NotFound;
    };
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let on_resource: Vec<Op> = ops
        .iter()
        .copied()
        .filter(|&op| def(op).path == template && def(op).served.by(app, &args))
        .collect();
    if let Some(&op) = on_resource.iter().find(|&&op| def(op).method == *wanted) {
        let args = args.iter().map(|a| a.to_string()).collect();
        return Routed::Found(op, args);
    }
    let mut allow = Vec::new();
    for &op in &on_resource {
        let d = def(op);
        allow.push(d.method.as_str());
        if d.method == Method::GET && d.origin == Origin::Extension {
            allow.push("HEAD");
        }
    }
    Routed::MethodNotAllowed(allow.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_segments() {
        assert_eq!(match_template("/ping", "/ping"), Some(vec![]));
        assert_eq!(match_template("/ping", "/ping/"), None);
        assert_eq!(
            match_template("/images/{uuid}/file", "/images/x/file"),
            Some(vec!["x"])
        );
        assert_eq!(
            match_template("/images/{uuid}/file", "/images//file"),
            Some(vec![""])
        );
        assert_eq!(match_template("/images/{uuid}", "/images/x/file"), None);
    }
}
