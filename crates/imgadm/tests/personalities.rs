//! The binary run as joyent-imgadm, sdc-imgadm and updates-imgadm (links
//! made by `imgadm install-links`) against a real server: what each verb
//! prints, its error lines and exit status, compared with what
//! joyent/sdc-imgapi-cli's lib/cli.js and its help texts print.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[allow(dead_code)] // not every helper of the shared module is used here
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

/// A directory with the node tools' names linked to our binary.
struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    fn install() -> Tools {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_imgadm"))
            .arg("install-links")
            .arg(dir.path().join("bin"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::tmux::show(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for name in [
            "joyent-imgadm",
            "sdc-imgadm",
            "updates-imgadm",
            "imgapi-cli",
        ] {
            assert!(text.contains(&format!("bin/{name} -> ")), "{text}");
        }
        // Twice is fine: the links are there already.
        let again = Command::new(env!("CARGO_BIN_EXE_imgadm"))
            .arg("install-links")
            .arg(dir.path().join("bin"))
            .output()
            .unwrap();
        assert!(again.status.success());
        assert!(String::from_utf8_lossy(&again.stdout).contains("already links to"));
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Tools { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `name` with a clean environment: HOME is an empty directory, no
    /// ssh-agent, none of the tools' variables but `env`.
    fn cmd(&self, name: &str, env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(self.dir.path().join("bin").join(name));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .current_dir(self.dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(c: Command, args: &[&str]) -> String {
    let o = run(c, args);
    assert!(o.status.success(), "{args:?}: {}", common::tmux::show(&o));
    stdout(&o)
}

/// Fails with status 1 and this exact first stderr line.
fn fails(c: Command, args: &[&str], line: &str) -> String {
    let o = run(c, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{args:?}: {}",
        common::tmux::show(&o)
    );
    let err = stderr(&o);
    assert_eq!(err.lines().next(), Some(line), "{args:?}: {err}");
    err
}

fn write_manifest(dir: &Path, name: &str, extra: Value) -> PathBuf {
    let mut m = json!({
        "name": name, "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
        "owner": OWNER, "public": true
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, m.to_string()).unwrap();
    path
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The uuid in "Imported image UUID (...)".
fn imported_uuid(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("Imported image "))
        .unwrap_or_else(|| panic!("no Imported line in {out}"));
    line["Imported image ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn sdc_imgadm_publishes_lists_and_downloads_as_the_node_tool() {
    let server = common::spawn();
    let tools = Tools::install();
    let env = [("SDC_IMGADM_URL", server.url.as_str())];
    let sdc = || tools.cmd("sdc-imgadm", &env);
    let dir = tools.dir.path();

    // ping prints the server's answer as indented JSON.
    let pong: Value = serde_json::from_str(&ok(sdc(), &["ping"])).unwrap();
    assert_eq!(pong["ping"], "pong");
    assert!(ok(sdc(), &["ping"]).starts_with("{\n  \"ping\": \"pong\",\n"));

    // create -m -f: the compression comes from the file's extension; the
    // three steps print the node tool's three lines.
    let file = dir.join("alpha.zfs.gz");
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let m = write_manifest(dir, "alpha", json!({}));
    let out = ok(sdc(), &["create", "-m", p(&m), "-f", p(&file)]);
    let alpha = imported_uuid(&out);
    assert_eq!(
        out,
        format!(
            "Imported image {alpha} (alpha, 1.0.0, state=unactivated)\n\
             Added file \"{}\" (compression \"gzip\") to image {alpha}\n\
             Activated image {alpha}\n",
            p(&file)
        )
    );

    // create with the manifest on stdin, then add-file and activate apart.
    let m2 = write_manifest(dir, "beta-longer", json!({"origin": alpha}));
    let mut c = sdc();
    c.arg("create").stdin(std::fs::File::open(&m2).unwrap());
    let out = ok(c, &[]);
    let beta = imported_uuid(&out);
    assert_eq!(
        out,
        format!("Imported image {beta} (beta-longer, 1.0.0, state=unactivated)\n")
    );
    let small = dir.join("beta.bin");
    std::fs::write(&small, b"incremental").unwrap();
    assert_eq!(
        ok(sdc(), &["add-file", &beta, "-f", p(&small), "-c", "none"]),
        format!(
            "Added file \"{}\" (compression \"none\") to image {beta}\n",
            p(&small)
        )
    );
    assert_eq!(
        ok(sdc(), &["activate", &beta]),
        format!("Activated image {beta}\n")
    );

    // list: tabula's table, sorted by published_at then name.
    assert_eq!(
        ok(sdc(), &["list", "-o", "name,version,flags,os,size"]),
        "NAME         VERSION  FLAGS  OS       SIZE\n\
         alpha        1.0.0    P      smartos  70000\n\
         beta-longer  1.0.0    IP     smartos  11\n"
    );
    assert_eq!(
        ok(sdc(), &["list", "-H", "-o", "name", "-s", "-name"]),
        "beta-longer\nalpha\n"
    );
    let default = ok(sdc(), &["list"]);
    let header = default.lines().next().unwrap();
    assert!(
        header.starts_with(
            "UUID                                  NAME         VERSION  FLAGS  OS       PUBLISHED"
        ),
        "{default}"
    );
    assert!(default.contains(&format!("{alpha}  alpha  ")), "{default}");
    // -a adds the state column.
    let all = ok(sdc(), &["list", "-a"]);
    assert!(
        all.lines().next().unwrap().contains("  STATE   PUBLISHED"),
        "{all}"
    );
    // --tree: the incremental image under its origin.
    assert_eq!(
        ok(sdc(), &["list", "--tree", "-o", "name,flags"]),
        "NAME             FLAGS\nalpha            P\n `- beta-longer  IP\n"
    );
    // -j: the server's images as JSON, in the same order.
    let listed: Vec<Value> = serde_json::from_str(&ok(sdc(), &["list", "-j"])).unwrap();
    let names: Vec<&str> = listed.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta-longer"]);
    assert!(
        listed[0].get("flags").is_none(),
        "derived fields stay out of -j"
    );
    // Filters are FIELD=VALUE arguments.
    assert_eq!(
        ok(sdc(), &["list", "-H", "-o", "name", "name=~beta"]),
        "beta-longer\n"
    );
    fails(
        sdc(),
        &["list", "bogus"],
        "sdc-imgadm: error (Usage): invalid filter: \"bogus\" (must be of the form \"field=value\")",
    );
    fails(
        sdc(),
        &["list", "-o", "nope"],
        "sdc-imgadm: error: invalid output field: \"nope\"",
    );

    // get and its aliases print the manifest as indented JSON.
    let got = ok(sdc(), &["get", &alpha]);
    assert_eq!(ok(sdc(), &["show", &alpha]), got);
    assert_eq!(ok(sdc(), &["info", &alpha]), got);
    let manifest: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(manifest["files"][0]["compression"], "gzip");

    // get-file: to stdout byte for byte; -O names it UUID-file.gz; -o.
    let mut c = sdc();
    c.args(["get-file", &alpha]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", common::tmux::show(&o));
    assert_eq!(o.stdout, bytes);
    let o = run(sdc(), &["get-file", "-O", &alpha]);
    assert!(o.status.success(), "{}", common::tmux::show(&o));
    assert_eq!(stderr(&o), format!("Saved \"{alpha}-file.gz\".\n"));
    assert_eq!(
        std::fs::read(dir.join(format!("{alpha}-file.gz"))).unwrap(),
        bytes
    );
    let target = dir.join("copy.gz");
    let o = run(sdc(), &["get-file", &alpha, "-o", p(&target)]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    // A reader that goes away early ends the download quietly.
    let mut child = sdc()
        .args(["get-file", &alpha])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", common::tmux::show(&o));
    assert_eq!(stderr(&o), "");

    // update: key=value pairs (JSON values, dotted keys merge), -f FILE.
    assert_eq!(
        ok(
            sdc(),
            &["update", &alpha, "description=hello", "tags.role=base"]
        ),
        format!("Update image {alpha} (alpha, 1.0.0, state=active)\n")
    );
    let upd = dir.join("upd.json");
    std::fs::write(&upd, r#"{"tags": {"tier": 2}}"#).unwrap();
    ok(sdc(), &["update", &alpha, "-f", p(&upd)]);
    let after: Value = serde_json::from_str(&ok(sdc(), &["get", &alpha])).unwrap();
    assert_eq!(after["description"], "hello");
    assert_eq!(after["tags"], json!({"role": "base", "tier": 2}));

    // disable / enable / acl lines.
    assert_eq!(
        ok(sdc(), &["disable", &beta]),
        format!("Disabled image {beta}\n")
    );
    assert_eq!(
        ok(sdc(), &["enable", &beta]),
        format!("Enabled image {beta} (state is now \"active\")\n")
    );
    let acct = "a4d3e8c0-2547-11e2-8a6b-4bb37edc84ba";
    assert_eq!(
        ok(sdc(), &["add-acl", &beta, acct]),
        format!("Updated ACL for image {beta}\n")
    );
    assert_eq!(
        ok(sdc(), &["remove-acl", &beta, acct]),
        format!("Updated ACL for image {beta}\n")
    );

    // Errors: the node tools' lines, always status 1.
    let missing = "2d0e4a5a-9b1c-4d8e-8f00-000000000001";
    let err = run(sdc(), &["get", missing]);
    assert_eq!(err.status.code(), Some(1));
    assert!(
        stderr(&err).starts_with("sdc-imgadm: error (ResourceNotFound): "),
        "{}",
        stderr(&err)
    );
    fails(
        sdc(),
        &["get", "nope"],
        "sdc-imgadm: error (InvalidUUID): invalid uuid: \"nope\"",
    );
    fails(
        sdc(),
        &["get"],
        "sdc-imgadm: error (Usage): incorrect number of args (0): ",
    );
    fails(
        sdc(),
        &["bogus"],
        "sdc-imgadm: error (UnknownCommand): unknown command: \"bogus\"",
    );
    fails(
        sdc(),
        &["list", "--bogus"],
        "sdc-imgadm: error (UnknownOption): unknown option: \"bogus\"",
    );
    // No -m and an empty stdin that is not a terminal: read, as the node
    // tool reads it.
    fails(
        sdc(),
        &["create"],
        "sdc-imgadm: error (InvalidManifestData): manifest data is not valid JSON",
    );
    fails(
        sdc(),
        &["add-file", &beta],
        "sdc-imgadm: error (Usage): no image file path or url given",
    );
    // A field-level error shows under the error line.
    let private = write_manifest(dir, "private", json!({"public": false}));
    let err = run(sdc(), &["create", "-m", p(&private)]);
    assert_eq!(err.status.code(), Some(1));
    let text = stderr(&err);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("sdc-imgadm: error (ValidationFailed): "),
        "{text}"
    );
    assert!(lines.next().unwrap().starts_with("    public: "), "{text}");
    // A file that cannot be read is refused before anything is created.
    let before = ok(sdc(), &["list", "-a", "-H", "-o", "uuid"]);
    let err = run(sdc(), &["create", "-m", p(&m), "-f", "/nonexistent.gz"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(
        stderr(&err).starts_with("sdc-imgadm: error (ENOENT): /nonexistent.gz"),
        "{}",
        stderr(&err)
    );
    assert_eq!(ok(sdc(), &["list", "-a", "-H", "-o", "uuid"]), before);

    // delete.
    assert_eq!(
        ok(sdc(), &["delete", &beta]),
        format!("Deleted image {beta}\n")
    );
    assert_eq!(ok(sdc(), &["list", "-H", "-o", "name"]), "alpha\n");
}

#[test]
fn help_texts_are_the_node_tools() {
    let tools = Tools::install();
    let help = ok(tools.cmd("joyent-imgadm", &[]), &["help"]);
    assert!(help.starts_with(
        "Manage images on the central Joyent Images API (https://images.joyent.com).\n"
    ));
    for line in [
        "Usage:\n    joyent-imgadm [OPTIONS] COMMAND [ARGS...]\n    joyent-imgadm help COMMAND\n",
        "    -u, --user <user>   Username\n    -i <identity-file>  Path to identity file (private RSA key).\n",
        "Environment:\n    JOYENT_IMGADM_IDENTITY   Fallback for --identity\n    JOYENT_IMGADM_USER       Fallback for --user\n    JOYENT_IMGADM_INSECURE   Fallback for --insecure\n",
        "Commands:\n    activate            Activate an image.\n    add-acl             Add account UUIDs to the image ACL.\n",
        "    get (show, info)    Get an image manifest.\n",
        "    help (?)            Give detailed help on a specific sub-command.\n",
        "    update              Update an image.\n",
    ] {
        assert!(help.contains(line), "missing {line:?} in\n{help}");
    }
    assert!(!help.contains("    export              "), "{help}");
    assert!(!help.contains("    state "), "hidden verb listed: {help}");
    // No verb: the same overview.
    assert_eq!(ok(tools.cmd("joyent-imgadm", &[]), &[]), help);

    let sdc = ok(tools.cmd("sdc-imgadm", &[]), &["help"]);
    assert!(
        sdc.contains("    export              Export an image.\n"),
        "{sdc}"
    );
    assert!(!sdc.contains("--user"), "sdc-imgadm has no auth: {sdc}");
    assert!(!sdc.contains("Environment:"), "{sdc}");

    let updates = ok(tools.cmd("updates-imgadm", &[]), &["help"]);
    for line in [
        "    -C, --channel <ch>  Image channel. Use \"updates-imgadm channels\" to list\n",
        "    UPDATES_IMGADM_CHANNEL   Fallback for --channel\n",
        "    channel-add         Add an image (or images) to the given channel.\n",
        "    channels            List the channels supported by the IMGAPI repository.\n",
    ] {
        assert!(updates.contains(line), "missing {line:?} in\n{updates}");
    }

    // help VERB and VERB -h: the verb's description, $NAME filled in.
    let get = ok(tools.cmd("joyent-imgadm", &[]), &["help", "get"]);
    assert_eq!(
        get,
        "Get an image manifest.\n\nUsage:\n    joyent-imgadm get [OPTIONS] UUID\n\nOptions\n    -h, --help         Show this help and exit.\n    -A                 Allow administrator fields to be returned. This\n                       may require auth.\n\nIf the IMGAPI server supports channels, then by default only the\ncurrent set channel (or the server's default channel if not set)\nis searched. To look in all channels, use:\n\n    joyent-imgadm -C \"*\" get UUID\n"
    );
    assert_eq!(ok(tools.cmd("joyent-imgadm", &[]), &["get", "-h"]), get);
    assert_eq!(ok(tools.cmd("joyent-imgadm", &[]), &["?", "show"]), get);
    let delete = ok(tools.cmd("updates-imgadm", &[]), &["help", "delete"]);
    assert!(delete.contains("--force-all-channels"), "{delete}");
    fails(
        tools.cmd("joyent-imgadm", &[]),
        &["help", "export"],
        "joyent-imgadm: error (UnknownCommand): unknown command: \"export\"",
    );
    let version = ok(tools.cmd("sdc-imgadm", &[]), &["--version"]);
    assert!(version.starts_with("sdc-imgadm "), "{version}");
    // sdc-imgadm without its URL says how to give it.
    let o = run(tools.cmd("sdc-imgadm", &[]), &["ping"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("SDC_IMGADM_URL"), "{}", stderr(&o));
}

/// An ed25519 key pair in `home/.ssh`; `None` without ssh-keygen.
fn keygen(home: &Path, name: &str) -> Option<(PathBuf, String)> {
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-f"])
        .arg(&key)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        return None;
    }
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    Some((key, public.trim().to_string()))
}

/// `ssh-keygen -l` of a public key file, field 2 (`SHA256:…` or `MD5:…`).
fn fingerprint(public: &Path, hash: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", hash, "-f"])
        .arg(public)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn joyent_imgadm_signs_as_user_with_identity_file_or_fingerprint() {
    let tools = Tools::install();
    let Some((key, public)) = keygen(&tools.home(), "publisher") else {
        println!("SKIP: ssh-keygen unavailable");
        return;
    };
    let server = common::spawn_with(&format!(
        "auth_type = \"signature\"\n\n[auth_keys]\nalice = [{public:?}]\n"
    ));
    let dir = tools.dir.path();
    let m = write_manifest(dir, "signed", json!({}));
    let url = ("JOYENT_IMGADM_URL", server.url.as_str());

    // Unsigned: the server refuses the write.
    let o = run(tools.cmd("joyent-imgadm", &[url]), &["create", "-m", p(&m)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("joyent-imgadm: error ("),
        "{}",
        stderr(&o)
    );

    // -u is the user (not the URL), -i the key file.
    let out = ok(
        tools.cmd("joyent-imgadm", &[url]),
        &["-u", "alice", "-i", p(&key), "create", "-m", p(&m)],
    );
    assert!(out.starts_with("Imported image "), "{out}");

    // The environment, with the fingerprint the tool's help suggests
    // (`ssh-keygen -l -f KEY.pub | awk '{print $2}'`), found in ~/.ssh.
    for hash in ["sha256", "md5"] {
        let fp = fingerprint(&key.with_extension("pub"), hash);
        let env = [
            url,
            ("JOYENT_IMGADM_USER", "alice"),
            ("JOYENT_IMGADM_IDENTITY", fp.as_str()),
        ];
        let out = ok(tools.cmd("joyent-imgadm", &env), &["create", "-m", p(&m)]);
        assert!(out.starts_with("Imported image "), "{hash}: {out}");
    }
    fails(
        tools.cmd("joyent-imgadm", &[url]),
        &["-u", "alice", "-i", "SHA256:doesnotexist", "create", "-m", p(&m)],
        "joyent-imgadm: error (SigningError): no key with fingerprint \"SHA256:doesnotexist\" in ssh-agent or ~/.ssh",
    );
}

#[test]
fn updates_imgadm_works_in_channels() {
    let server = common::spawn_with(
        "[[channels]]\nname = \"dev\"\ndescription = \"all development builds\"\ndefault = true\n\
         [[channels]]\nname = \"release\"\ndescription = \"release gold bits\"\n",
    );
    let tools = Tools::install();
    let dir = tools.dir.path();
    let env = [("UPDATES_IMGADM_URL", server.url.as_str())];
    let upd = || tools.cmd("updates-imgadm", &env);

    assert_eq!(
        ok(upd(), &["channels"]),
        "NAME     DEFAULT  DESCRIPTION\ndev      true     all development builds\nrelease  -        release gold bits\n"
    );
    let m = write_manifest(dir, "gold", json!({}));
    let file = dir.join("gold.bin");
    std::fs::write(&file, b"gold bits").unwrap();
    let out = ok(
        upd(),
        &["create", "-m", p(&m), "-f", p(&file), "-c", "none"],
    );
    let uuid = imported_uuid(&out);
    assert_eq!(
        ok(upd(), &["channel-add", "release", &uuid]),
        format!("Added image {uuid} (gold@1.0.0) to \"release\" channel\n")
    );
    let listed = ok(
        upd(),
        &["-C", "release", "list", "-H", "-o", "name,channels"],
    );
    assert_eq!(listed, "gold  dev,release\n");
    // The channel from the environment; delete says which channel.
    let in_release = [env[0], ("UPDATES_IMGADM_CHANNEL", "release")];
    assert_eq!(
        ok(tools.cmd("updates-imgadm", &in_release), &["delete", &uuid]),
        format!("Deleted image {uuid} from \"release\" channel\n")
    );
    assert_eq!(ok(upd(), &["list", "-H", "-o", "name"]), "gold\n");
    assert_eq!(
        ok(upd(), &["delete", &uuid]),
        format!("Deleted image {uuid} from default channel\n")
    );
    assert_eq!(ok(upd(), &["-C", "*", "list", "-H", "-o", "name"]), "\n");
    // channel-add of two images, one missing: one line each, a MultiError.
    let missing = "2d0e4a5a-9b1c-4d8e-8f00-000000000001";
    let o = run(upd(), &["channel-add", "release", missing, "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "Error adding image {missing} to \"release\" channel"
        )),
        "{err}"
    );
    assert!(err.contains("updates-imgadm: error (MultiError): multiple (2) errors\n    error (ResourceNotFound): "), "{err}");
    assert!(
        err.contains("    error (InvalidUUID): invalid uuid: \"nope\""),
        "{err}"
    );
}

#[test]
fn https_with_a_self_signed_certificate_needs_insecure() {
    let tools = Tools::install();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = tools.dir.path().join("cert.pem");
    let key_path = tools.dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = common::spawn_with(&format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        p(&cert_path),
        p(&key_path)
    ));
    let url = server.url.replace("http://", "https://");
    let env = [("JOYENT_IMGADM_URL", url.as_str())];
    // The certificate is checked: refused without --insecure.
    let o = run(tools.cmd("joyent-imgadm", &env), &["ping"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("joyent-imgadm: error (ClientError): "),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).to_lowercase().contains("certificate"),
        "{}",
        stderr(&o)
    );
    // --insecure, or its environment variable, accepts it.
    let pong: Value = serde_json::from_str(&ok(
        tools.cmd("joyent-imgadm", &env),
        &["--insecure", "ping"],
    ))
    .unwrap();
    assert_eq!(pong["ping"], "pong");
    let insecure = [env[0], ("JOYENT_IMGADM_INSECURE", "1")];
    let pong: Value =
        serde_json::from_str(&ok(tools.cmd("joyent-imgadm", &insecure), &["ping"])).unwrap();
    assert_eq!(pong["ping"], "pong");
}

#[test]
fn sdc_imgadm_imports_from_another_imgapi_and_from_a_manifest() {
    let source = common::spawn();
    let target =
        common::spawn_with("[remote]\nallow_http = true\nallow_private_addresses = true\n");
    let tools = Tools::install();
    let dir = tools.dir.path();
    let at = |url: &str| tools.cmd("sdc-imgadm", &[("SDC_IMGADM_URL", url)]);

    let file = dir.join("base.tgz");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let m = write_manifest(dir, "base", json!({}));
    let uuid = imported_uuid(&ok(
        at(&source.url),
        &["create", "-m", p(&m), "-f", p(&file), "-c", "gzip"],
    ));

    // import UUID -S SOURCE: the server fetches it; the tool waits for the
    // job and prints the imported image.
    assert_eq!(
        ok(at(&target.url), &["import", &uuid, "-S", &source.url]),
        format!("Imported image {uuid} (base, 1.0.0, state=active)\n")
    );
    let mut c = at(&target.url);
    c.args(["get-file", &uuid]);
    assert_eq!(c.output().unwrap().stdout, bytes);
    fails(
        at(&target.url),
        &["import", &uuid],
        "sdc-imgadm: error (Usage): no source URL given",
    );
    fails(
        at(&target.url),
        &[
            "import",
            &uuid,
            "-S",
            &format!("{}?channel=x", source.url),
            "-C",
            "y",
        ],
        "sdc-imgadm: error (Usage): channel specified twice",
    );

    // import -m MANIFEST -f FILE: AdminImportImage keeps the uuid.
    let manifest: Value = serde_json::from_str(&ok(at(&source.url), &["get", &uuid])).unwrap();
    let copy = manifest
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !["state", "disabled", "files"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<serde_json::Map<_, _>>();
    let mfile = dir.join("exported.json");
    std::fs::write(&mfile, Value::Object(copy).to_string()).unwrap();
    let third = common::spawn();
    assert_eq!(
        ok(
            at(&third.url),
            &["import", "-m", p(&mfile), "-f", p(&file), "-c", "gzip"]
        ),
        format!(
            "Imported image {uuid} (base, 1.0.0, state=unactivated)\n\
             Added file \"{}\" (compression \"gzip\") to image {uuid}\n\
             Activated image {uuid}\n",
            p(&file)
        )
    );
}

/// A valid 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x56, 0xc7, 0x2f, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[test]
fn icons_admin_verbs_urls_and_stdin_updates() {
    let server =
        common::spawn_with("[remote]\nallow_http = true\nallow_private_addresses = true\n");
    let files = common::spawn();
    let tools = Tools::install();
    let dir = tools.dir.path();
    let sdc = || tools.cmd("sdc-imgadm", &[("SDC_IMGADM_URL", server.url.as_str())]);

    // The file another IMGAPI serves is added by URL: the server fetches it.
    let bytes = b"served elsewhere".to_vec();
    let src = dir.join("src.bin");
    std::fs::write(&src, &bytes).unwrap();
    let m = write_manifest(dir, "remote-file", json!({}));
    let origin = imported_uuid(&ok(
        tools.cmd("sdc-imgadm", &[("SDC_IMGADM_URL", files.url.as_str())]),
        &["create", "-m", p(&m), "-f", p(&src), "-c", "none"],
    ));
    let uuid = imported_uuid(&ok(sdc(), &["create", "-m", p(&m)]));
    let file_url = format!("{}/images/{origin}/file", files.url);
    assert_eq!(
        ok(sdc(), &["add-file", &uuid, "-f", &file_url]),
        format!(
            "Added file from url \"{file_url}\" (compression \"auto detected\") to image {uuid}\n"
        )
    );
    ok(sdc(), &["activate", &uuid]);
    let mut c = sdc();
    c.args(["get-file", &uuid]);
    assert_eq!(c.output().unwrap().stdout, bytes);

    // Icons: add (type from the extension), get to stdout / -O / -o, delete.
    let icon = dir.join("logo.png");
    std::fs::write(&icon, PNG).unwrap();
    assert_eq!(
        ok(sdc(), &["add-icon", &uuid, "-f", p(&icon)]),
        format!("Added icon \"{}\" to image {uuid}\n", p(&icon))
    );
    let mut c = sdc();
    c.args(["get-icon", &uuid]);
    assert_eq!(c.output().unwrap().stdout, PNG);
    let o = run(sdc(), &["get-icon", "-O", &uuid]);
    assert!(o.status.success(), "{}", common::tmux::show(&o));
    assert_eq!(stderr(&o), format!("Saved \"{uuid}-icon.png\".\n"));
    assert_eq!(
        std::fs::read(dir.join(format!("{uuid}-icon.png"))).unwrap(),
        PNG
    );
    let bad = dir.join("logo.bmp");
    std::fs::write(&bad, PNG).unwrap();
    fails(
        sdc(),
        &["add-icon", &uuid, "-f", p(&bad)],
        "sdc-imgadm: error (Usage): could not determine a valid content type, must be one of jpeg, png, gif",
    );
    assert_eq!(
        ok(sdc(), &["add-icon", &uuid, "-f", p(&bad), "-c", "png"]),
        format!("Added icon \"{}\" to image {uuid}\n", p(&bad))
    );
    assert_eq!(
        ok(sdc(), &["delete-icon", &uuid]),
        format!("Deleted icon from image {uuid}\n")
    );

    // update with the JSON on stdin.
    let mut child = sdc()
        .args(["update", &uuid])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(br#"{"description": "from stdin"}"#)
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", common::tmux::show(&o));
    assert_eq!(
        stdout(&o),
        format!("Update image {uuid} (remote-file, 1.0.0, state=active)\n")
    );
    let got: Value = serde_json::from_str(&ok(sdc(), &["get", &uuid])).unwrap();
    assert_eq!(got["description"], "from stdin");

    // Operator verbs: state (hidden) prints JSON, reload-auth-keys nothing.
    let state: Value = serde_json::from_str(&ok(sdc(), &["state"])).unwrap();
    assert!(state.is_object(), "{state}");
    assert_eq!(ok(sdc(), &["reload-auth-keys"]), "");
    fails(
        sdc(),
        &["reload-auth-keys", "x"],
        "sdc-imgadm: error (Usage): unexpected args: x",
    );
    // -A asks for admin fields, which need auth on this public server.
    fails(
        sdc(),
        &["get", "-A", &uuid],
        "sdc-imgadm: error (UnauthorizedError): Unauthorized (auth required to use \"inclAdminFields\" parameter)",
    );
    // change-stor: to the storage it is on (nothing to move), then to one
    // that does not exist.
    assert_eq!(
        ok(sdc(), &["change-stor", "local", &uuid]),
        format!("Changed image {uuid} (remote-file@1.0.0) stor to \"local\"\n")
    );
    let o = run(sdc(), &["change-stor", "nowhere", &uuid]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "Error changing image {uuid} stor to \"nowhere\"\n\
             sdc-imgadm: error (ValidationFailed): unknown storage type \"nowhere\"\n    stor: Invalid\n"
        )
    );
}
