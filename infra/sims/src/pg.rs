//! A throwaway PostgreSQL: Debian's server binaries, a fresh data directory under the system
//! temporary directory, a free loopback port, no password (local trust), fsync off. When we
//! run as root it runs as the `postgres` user (PostgreSQL refuses to run as root).
//!
//! Like moto, it runs under a small shell guard that stops it as soon as our end of its
//! stdin pipe closes, so it goes away with us however we exit; its directory is removed
//! when it is dropped.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL; stopped and removed when dropped.
pub struct Postgres {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// A try that failed leaves the directory (its data and log) to the next try.
    keep_dir: bool,
}

/// The directory with `initdb` and `postgres`: `PG_BIN` if set, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else whatever `pg_config --bindir` says.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("PostgreSQL is not installed (run ./infra/setup.sh)")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The command prefix that runs a program as the `postgres` user (when we are root).
fn as_postgres(root: bool) -> Vec<String> {
    if root {
        [
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else {
        Vec::new()
    }
}

impl Postgres {
    /// Starts a fresh server on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self> {
        let bin = bin_dir()?;
        let root = running_as_root();
        let dir = std::env::temp_dir().join(format!("sync-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            if !status.success() {
                bail!("could not hand {} to the postgres user", dir.display());
            }
        }
        let data = dir.join("data");
        let prefix = as_postgres(root);
        let mut words = prefix.clone();
        words.push(bin.join("initdb").to_string_lossy().into_owned());
        words.push("-D".into());
        words.push(data.to_string_lossy().into_owned());
        words.extend(
            ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]
                .iter()
                .map(|s| s.to_string()),
        );
        let initdb = Command::new(&words[0])
            .args(&words[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("running initdb")?;
        if !initdb.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            );
        }
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut words: Vec<String> = prefix.clone();
            words.push(bin.join("postgres").to_string_lossy().into_owned());
            words.extend(
                [
                    "-D",
                    &data.to_string_lossy(),
                    "-p",
                    &port.to_string(),
                    "-k",
                    &dir.to_string_lossy(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            let child = Command::new("sh")
                .arg("-c")
                // The guard ends with the server: a server that dies at once is seen as
                // an exit (with its log), not waited on as if it were slow to start.
                .arg(concat!(
                    r#"exec 3<&0; "$@" >"$LOG" 2>&1 </dev/null 3<&- & pid=$!; "#,
                    r#"( read _ <&3; kill -INT $pid 2>/dev/null ) & guard=$!; "#,
                    r#"wait $pid; status=$?; kill $guard 2>/dev/null; exit $status"#
                ))
                .arg("sh")
                .args(&words)
                .env("LOG", dir.join("server.log"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting postgres")?;
            let mut server = Postgres {
                child,
                dir: dir.clone(),
                port,
                keep_dir: false,
            };
            match server.wait_ready(Duration::from_secs(45)) {
                Ok(()) => return Ok(server),
                Err(e) => {
                    server.stop();
                    server.keep_dir = true;
                    last = Some(e);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last.unwrap_or_else(|| anyhow::anyhow!("postgres did not start")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database}",
            self.port
        )
    }

    /// A `psql` command line for `database`.
    pub fn psql(&self, database: &str) -> String {
        format!("psql -h 127.0.0.1 -p {} -U postgres {database}", self.port)
    }

    /// The server's log, for when something went wrong.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Creates `database` and runs `sql` in it (several statements).
    pub async fn create_database(&self, database: &str, sql: &str) -> Result<()> {
        let admin = connect(&self.url("postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{database}\""))
            .await
            .with_context(|| format!("creating database {database}"))?;
        let db = connect(&self.url(database)).await?;
        db.batch_execute(sql)
            .await
            .with_context(|| format!("setting up database {database}"))?;
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("postgres exited early ({status}): {}", self.log());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && self.log().contains("ready to accept connections")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self.log();
        if log.is_empty() {
            bail!("postgres did not answer within {timeout:?} and wrote nothing to its log")
        }
        bail!("postgres did not answer within {timeout:?}: {log}")
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_dir {
            remove(&self.dir);
        }
    }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Connects, driving the connection on a task of its own.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
