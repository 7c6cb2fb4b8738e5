//! A PostgreSQL server of a test's own: initdb and pg_ctl on a free port,
//! as `.ci/pg-start.sh` does, so that a test can stop, crash or freeze its
//! database without touching the shared one. Dropped: thawed and stopped.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::binary::free_port;

pub(crate) struct PrivatePg {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Running as root: the server runs as the `postgres` user.
    as_postgres: bool,
}

/// The newest installed PostgreSQL's `bin` directory.
fn installed_bin() -> Option<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    bins.sort_by_key(|bin| {
        let version = bin.parent().and_then(Path::file_name);
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    bins.pop()
}

fn run(mut command: Command) {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {out:?}");
}

impl PrivatePg {
    /// Start one with a database `imgapi`; `None` (after a SKIP line)
    /// when PostgreSQL is not installed.
    pub(crate) fn start() -> Option<PrivatePg> {
        let Some(bin) = installed_bin() else {
            eprintln!("SKIP: needs PostgreSQL's initdb and pg_ctl (/usr/lib/postgresql/*/bin)");
            return None;
        };
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres"]).arg(dir.path());
            run(chown);
        }
        let pg = PrivatePg {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        let mut initdb = pg.tool("initdb");
        initdb.arg("-D").arg(pg.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(initdb);
        pg.start_again();
        let mut psql = pg.tool("psql");
        psql.arg(format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            pg.port
        ))
        .args(["-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE imgapi"]);
        run(psql);
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// The URL of its database `imgapi`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/imgapi", self.port)
    }

    /// Start the server (again: after a crash it recovers from its WAL).
    pub(crate) fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(pg_ctl);
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once,
    /// without a checkpoint, as in a crash.
    pub(crate) fn stop_immediate(&self) {
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"]);
        let _ = pg_ctl.output();
    }

    /// Send `signal` (`STOP`, `CONT`) to the postmaster and every process
    /// it started: all of the server freezes, connections stay open.
    pub(crate) fn signal_all(&self, signal: &str) {
        let Ok(pidfile) = std::fs::read_to_string(self.data().join("postmaster.pid")) else {
            return;
        };
        let Some(postmaster) = pidfile.lines().next().map(str::trim).map(str::to_string) else {
            return;
        };
        let mut pids = children_of(&postmaster);
        pids.push(postmaster);
        let mut kill = Command::new("kill");
        kill.arg(format!("-{signal}")).args(&pids);
        let _ = kill.output();
    }
}

/// Pids of the processes whose parent is `parent` (from /proc).
fn children_of(parent: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.to_string();
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parens.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid = after_comm.split_whitespace().nth(1)?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.signal_all("CONT");
        self.stop_immediate();
    }
}
