//! The help texts of the node tools: the overview `NAME help` prints and
//! each verb's description (`NAME help VERB`, `NAME VERB -h`), with `$NAME`
//! standing for the tool's name.

use super::verbs::{Verb, VERBS};
use super::Personality;

/// The overview: description, usage, options, environment, commands.
pub fn overview(p: &Personality) -> String {
    let mut lines: Vec<String> = Vec::new();
    lines.push(p.description.to_string());
    lines.extend(
        [
            "Usage:",
            "    %s [OPTIONS] COMMAND [ARGS...]",
            "    %s help COMMAND",
            "",
            "Options:",
            "    -h, --help          Show this help message and exit.",
            "    --version           Show version and exit.",
            "    -d, --debug         Verbose logging.",
            "    --insecure          Do not validate a TLS certificate.",
        ]
        .map(str::to_string),
    );
    if p.signs() {
        lines.push("    -u, --user <user>   Username".into());
        lines.push("    -i <identity-file>  Path to identity file (private RSA key).".into());
    }
    if p.channels {
        lines.push("    -C, --channel <ch>  Image channel. Use \"%s channels\" to list".into());
        lines.push("                        server channels.".into());
    }
    if !p.envopts.is_empty() {
        lines.push(String::new());
        lines.push("Environment:".into());
        for (env, opt) in p.envopts {
            lines.push(format!("    {env:<23}  Fallback for --{opt}"));
        }
    }
    lines.push(String::new());
    lines.push("Commands:".into());
    for verb in VERBS.iter().filter(|v| v.available(p) && !v.hidden) {
        let mut names = verb.name.to_string();
        if !verb.aliases.is_empty() {
            names.push_str(&format!(" ({})", verb.aliases.join(", ")));
        }
        let first = description(p, verb)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        lines.push(format!("    {names:<18}  {first}"));
    }
    lines.join("\n").replace("%s", p.name)
}

/// A verb's description with the tool's name filled in (trailing blank
/// space removed, as printed by `help VERB`).
pub fn description(p: &Personality, verb: &Verb) -> String {
    let text = if verb.name == "delete" && p.channels {
        DELETE_WITH_CHANNELS
    } else {
        verb.description
    };
    text.replace("$NAME", p.name).trim_end().to_string()
}

pub const DELETE_WITH_CHANNELS: &str = "Delete the given image.

The image is remove from the current channel. When an image is removed
from its last channel, it is deleted from the repository.

Usage:
    $NAME delete UUID

Options:
    --force-all-channels  Force delete the given image even if it
                          exists in multiple channels.
";

pub const ACTIVATE: &str = "Activate an image.

The final step in making an image available for use is to activate it.
This is typically done after creation ($NAME create) and adding the
image file ($NAME add-file). Once active, an image cannot be 
de-activated, only disabled, made private or deleted.

Usage:
    $NAME activate UUID
";

pub const ADD_ACL: &str = "Add account UUIDs to the image ACL.

Usage:
    $NAME add-acl UUID acc-uuid1 [ acc-uuid2 [ acc-uuid3 ... ] ]
";

pub const ADD_FILE: &str = "Add an image file.

Typically this is used to add the image file to a newly created image,
$NAME create. Then use `$NAME activate UUID` to activate the image.

Usage:
    $NAME add-file UUID -f FILE-OR-URL [OPTIONS]

Options:
    -f FILE-OR-URL     Image file to add, either a path or a HTTPS url
                       to the file to add
    -c COMPRESSION     Specify the compression used for the image
                       file. One of \"gzip\", \"bzip2\" or \"none\". If not
                       given, it may be inferred from common file
                       extensions.
    -s SHA1            SHA-1 hash of the image file. If given, the
                       server will use it compare it with the uploaded
                       file SHA-1
    --storage STORAGE  The type of storage preferred for this image
                       file. Can be \"local\" or \"manta\". Will try to
                       default to \"manta\" when available, otherwise
                       \"local\"
    -q, --quiet        Disable progress bar.
";

pub const ADD_ICON: &str = "Add an image icon.

An optional feature to add an icon file to an image. Icon files must 
not be bigger than 128KB and they must be one of the following file 
types: .jpg, .png or .gif.

Usage:
    $NAME add-icon UUID -f FILE [OPTIONS]

Options:
    -f FILE            Image file to add
    -c CONTENT_TYPE    Content type of the icon file. One of
                       \"image/jpeg\" (or jpg), \"image/png\" or
                       \"image/gif\". If not given, it may be inferred
                       from common file extensions.
    -s SHA1            SHA-1 hash of the image icon file. If given,
                       the server will use it compare it with the
                       uploaded file SHA-1
    --storage STORAGE  The type of storage preferred for this image
                       file. Can be \"local\" or \"manta\". Will try to
                       default to \"manta\" when available, otherwise
                       \"local\"
    -q, --quiet        Disable progress bar.
";

pub const CHANGE_STOR: &str = "Change the backing storage for the given images' files.
This is intended for operators-only.

Usage:
    $NAME change-stor <stor> [<image> ...]
";

pub const CHANNEL_ADD: &str = "Add an image (or images) to the given channel.

Usage:
    $NAME channel-add <channel> [<image> ...]

Use \"$NAME delete ...\" to remove an image from a channel.
";

pub const CHANNELS: &str = "List the channels supported by the IMGAPI repository.

Usage:
    $NAME channels

Options:
    -j, --json         JSON output
    -H                 Do not print table header row
    -o field1,...      Specify fields (columns) to output.
";

pub const CREATE: &str = "Create an image.

This creates a new *unactivated* image with the given manifest data.
The typical next steps are to add the image file ($NAME add-file) then
activate the image ($NAME activate). All three steps can be done in
one by specifying the \"-f FILE\" option.

Usage:
    $NAME create [-m MANIFEST-FILE]
    (manifest data on stdout) | $NAME create

Options:
    -m MANIFEST-FILE   The manifest file with which to create
    -f FILE            Also upload the given file and activate the image
    -c COMPRESSION     Specify the compression used for the image
                       file. One of \"gzip\", \"bzip2\" or \"none\". If not
                       given, it is inferred from the file extension.
    -s SHA1            SHA-1 hash of the image file. If given, the
                       server will use it compare it with the uploaded
                       file SHA-1
    --storage STORAGE  The type of storage preferred for this image
                       file. Can be \"local\" or \"manta\". Will try to
                       default to \"manta\" when available, otherwise
                       \"local\". This flag will only be relevant if the
                       -f option is passed.
    -q, --quiet        Disable upload progress bar.
";

pub const DELETE: &str = "Delete the given image.

Usage:
    $NAME delete UUID
";

pub const DELETE_ICON: &str = "Delete the image icon.

Usage:
    $NAME delete-icon UUID
";

pub const DISABLE: &str = "Disable an image.

This sets the \"disabled\" field true and updates the state accordingly
Note that if the image is not yet activated, the state will remain
\"unactivated\". In SDC a disabled image is not available for
provisioning.

Usage:
    $NAME disable UUID
";

pub const ENABLE: &str = "Enable an image.

This sets the \"disabled\" field false and updates the state accordingly
Note that if the image is not yet activated, the state will remain
\"unactivated\". In SDC a disabled image is not available for
provisioning.

Usage:
    $NAME enable UUID
";

pub const EXPORT: &str = "Export an image.

The image manifest and its file are exported to the specified Manta
path. Only images that are stored in manta can be exported.

Usage:
    $NAME export UUID -o MANTA_PATH

Options:
    -h, --help     Print this help and exit.
    -o MANTA_PATH, --output-template MANTA_PATH
                   Manta path prefix to which to export the image manifest
                   and image file. By default \"NAME-VER.imgmanifest
                   and \"NAME-VER.zfs[.EXT]\" are the filename templates
                   for both files. \"MANTA_PATH\" must resolve to a directory
                   that is owned by the IMGAPI Manta user in order for the
                   operation to be successful.
";

pub const GET: &str = "Get an image manifest.

Usage:
    $NAME get [OPTIONS] UUID

Options
    -h, --help         Show this help and exit.
    -A                 Allow administrator fields to be returned. This
                       may require auth.

If the IMGAPI server supports channels, then by default only the
current set channel (or the server's default channel if not set)
is searched. To look in all channels, use:

    $NAME -C \"*\" get UUID";

pub const GET_FILE: &str = "Get an image file.

Usage:
    $NAME get-file [OPTIONS] UUID

Options:
    -o, --output <file>  Write output to <file>
    -O                   Write output to <UUID-file.EXT> where \"EXT\" is 
                         appropriate for the image file's compression
    -q, --quiet          Disable download progress bar.
";

pub const GET_ICON: &str = "Get an image icon file.

Usage:
    $NAME get-icon [OPTIONS]

Options:
    -o, --output <file>  Write output to <file>
    -O                   Write output to <UUID-icon.EXT> where \"EXT\" is
                         appropriate for the icon file's content type
    -q, --quiet          Disable upload progress bar.
";

pub const HELP: &str = "Give detailed help on a specific sub-command.";

pub const IMPORT: &str = "Import an image. (Operator-only)

The import action differs from \"$NAME create\" in that the \"uuid\" and
\"published_at\" fields are preserved. This is an operator-only action
used for transferring images between IMGAPI servers.

An image may be imported directly from another IMGAPI by using the
\"-S\" option. In this case the target IMGAPI will handle retrieving the
manifest and image file
A manifest file or a source URL to the origin IMGAPI repository can be
provided. Both cases are explained below.

Alternatively, a local manifest file may be imported with the \"-m\"
option or on stdin. The resulting image is *unactivated*. The typical
next steps are to add the image file ($NAME add-file) then activate
the image ($NAME activate). All three steps can be done in one by
specifying the \"-f FILE\" option.

Usage:
    $NAME import UUID -S SOURCE-URL [OPTIONS]

    $NAME import -m MANIFEST-FILE [OPTIONS]
    (manifest data on stdout) | $NAME import [OPTIONS]

Options:
    -S SOURCE-URL      URL of the remote IMGAPI repository source.
                       This is the full URL to the origin IMGAPI
                       without any suffix endpoint or action, e.g.:
                       https://images.joyent.com
                       https://updates.joyent.com
    -C channel         Import the image UUID from the given channel.
                       If not specified, all channels are examined.

    -m MANIFEST-FILE   The manifest file with which to import
    -f FILE            Also upload the given file and activate the image
    -c COMPRESSION     Specify the compression used for the image
                       file. One of \"gzip\", \"bzip2\" or \"none\". If not
                       given, it is inferred from the file extension.
                       This option is not allowed for *source* URL
                       imports.
    -s SHA1            SHA-1 hash of the image file. If given, the
                       server will use it compare it with the uploaded
                       file SHA-1. This option is not allowed for
                       *source* URL imports.
    --storage STORAGE  The type of storage preferred for this image
                       file. Can be \"local\" or \"manta\". Will try to
                       default to \"manta\" when available, otherwise
                       \"local\". This flag will only be relevant if the
                       -f option is passed.
    -q, --quiet        Disable upload progress bar.

    --skip-owner-check Skip the check that the \"owner\" UUID exists in
                       the user database. This check is only done for
                       IMGAPI instances inside an SDC. I.e. this
                       option does not apply to images.joyent.com.
";

pub const LIST: &str = "List images.

For full details on filter fields, see
<https://mo.joyent.com/docs/imgapi/master/#ListImages>.

Usage:
    $NAME list [OPTIONS] [FILTERS]

Filters:
    FIELD=VALUE        Field equality filter. Supported fields: 
                       account, owner, state, name, os, and type.
    FIELD=true|false   Field boolean filter. Supported fields: public.
    FIELD=~SUBSTRING   Field substring filter. Supported fields: name

Fields (most are self explanatory, some special ones are discussed):
    flags              This is a set of single letter flags
                       summarizing some fields. \"P\" indicates the
                       image is public. \"I\" indicates an incremental
                       image (i.e. has an origin). \"X\" indicates an
                       image with a state *other* than \"active\".
    published_date     Short form of \"published_at\" with just the date
    published          Short form of \"published_at\" elliding milliseconds.
    size               The number of bytes of the image file (files.0.size)
    stor               The backend storage for this image's files. This
                       requires \"-A\".

Filtering Options:
    -a, --all          List all images, not just \"active\" ones. This
                       is a shortcut for the \"state=all\" filter.
    -m, --marker ARG   Only list images that with \"published_at\" greater
                       than or equal to that of the given image *UUID*
                       or given *date string*.
    -l, --limit NUM    Maximum number of images to return. Images are
                       sorted by creation date (ASC) by default.
    -A                 Allow administrator fields to be returned. This
                       may require auth.

Output Options:
    -j, --json         JSON output
    -H                 Do not print table header row
    -o field1,...      Specify fields (columns) to output.
    -s field1,...      Sort on the given fields. Default is
                       \"published_at,name\".
    --latest           Only show the latest image, by published_at,
                       for a given (owner, name) set
    --tree             Show tree view organized by image \"origin\". Note:
                       This may add placeholder entries for origin images
                       that are not already an included image.
                       Limitation: `-s` sorting is not supported.";

pub const PING: &str = "Ping the IMGAPI to see if it is up.";

pub const RELOAD_AUTH_KEYS: &str = "Request that the server reload auth keys.

This is for use by administrators of the IMGAPI server, and is only
relevant for servers that use HTTP Signature auth.

Usage:
    $NAME reload-auth-keys
";

pub const REMOVE_ACL: &str = "Remove account UUIDs from the image ACL.

Usage:
    $NAME remove-acl UUID acc-uuid1 [ acc-uuid2 [ acc-uuid3 ... ] ]
";

pub const STATE: &str = "Dump some IMGAPI internal state (for debugging).

Usage:
    $NAME state
";

pub const UPDATE: &str = "Update an image.

Not every field can be updated. Only the following image attributes
can be modified: description, homepage, public, acl, requirements,
type, os, users, tags, billing_tags, traits, generate_passwords,
nic_driver, disk_driver, cpu_type, image_size and
inherited_directories.

Usage:
    $NAME update UUID [-f JSON-FILE]
    $NAME update UUID property=value [property=value ...]
    (json data on stdout) | $NAME update UUID

Options:
    -f JSON-FILE       JSON file containing the properties/values of
                       the image that needs to be updated
";
