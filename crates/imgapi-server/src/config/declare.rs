//! The macro that turns the one table of configuration keys
//! ([`super::keys`]) into the typed [`super::Config`] with its defaults,
//! the all-optional file form, the `IMGAPI_*` environment overlay and the
//! documented key list, so that a key is declared in exactly one place.

/// Each entry:
///
/// ```text
/// /// field docs
/// name: ConfigType = default_expr, shown "default as documented",
///     file FileType, env "IMGAPI_NAME" kind,
///     "doc line";
/// ```
///
/// `kind` says how the environment variable is read into the file form:
/// `text` (taken as is), `number`, `boolean` or `json("what it must be")`.
/// Before the keys, `file_only { … }` lists fields accepted in the file
/// that are not keys of their own (aliases).
macro_rules! config_keys {
    (
        file_only {
            $( $(#[$file_attr:meta])* $file_field:ident: $file_field_ty:ty, )*
        }
        $(
            $(#[$attr:meta])*
            $field:ident: $value_ty:ty = $default:expr, shown $shown:literal,
                file $file_ty:ty, env $env:literal $kind:ident $(($what:literal))?,
                $doc:literal;
        )*
    ) => {
        /// The whole configuration.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[$attr])* pub $field: $value_ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $field: $default, )* }
            }
        }

        /// Every configuration key, its environment variable and default.
        pub const KEYS: &[KeyDoc] = &[
            $( KeyDoc { key: stringify!($field), env: $env, default: $shown, doc: $doc }, )*
        ];

        /// The file form: every key optional.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct FileConfig {
            $( pub(super) $field: Option<$file_ty>, )*
            $( $(#[$file_attr])* pub(super) $file_field: $file_field_ty, )*
        }

        impl FileConfig {
            /// Overlay the `IMGAPI_*` variables `get` returns, in table order.
            pub(super) fn overlay_env(
                &mut self,
                get: impl Fn(&str) -> Option<String>,
            ) -> Result<(), ConfigError> {
                $( config_keys!(@env self get $field $env $kind $(($what))?); )*
                Ok(())
            }
        }
    };

    (@env $layer:ident $get:ident $field:ident $env:literal text) => {
        if let Some(value) = $get($env) {
            $layer.$field = Some(value.into());
        }
    };
    (@env $layer:ident $get:ident $field:ident $env:literal number) => {
        super::env::parsed(&$get, $env, stringify!($field), "a number", &mut $layer.$field)?
    };
    (@env $layer:ident $get:ident $field:ident $env:literal boolean) => {
        super::env::parsed(&$get, $env, stringify!($field), "true or false", &mut $layer.$field)?
    };
    (@env $layer:ident $get:ident $field:ident $env:literal json($what:literal)) => {
        super::env::json(&$get, $env, stringify!($field), $what, &mut $layer.$field)?
    };
}
