//! Starting `moto_server` (emulated AWS) on a local port (loopback, or the address
//! `platform_sims::server::set_listen_host` set).
//!
//! moto runs under a small shell guard that kills it as soon as our end of its stdin pipe
//! closes, so it goes away with us however we exit (even on SIGKILL): no orphaned servers
//! between test runs.
//!
//! By default moto is started through `infra/moto_serial.py`, which serves one request at a
//! time so that DynamoDB conditional writes are atomic as they are in AWS (see that file).
//! `MOTO_SERVER` names another moto-compatible server binary instead.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use platform_sims::server::listen_host;

/// A running moto server; stopped when dropped.
pub struct MotoServer {
    child: Child,
    port: u16,
}

impl MotoServer {
    /// Starts moto on `port`, or on a free port when `None`, and waits until it answers.
    pub fn start(port: Option<u16>) -> Result<Self> {
        let command = moto_command();
        let mut last_error = None;
        // A free port found by binding can be taken before moto binds it; try a few.
        for _ in 0..3 {
            let port = match port {
                Some(p) => p,
                None => free_port()?,
            };
            let child = Command::new("sh")
                .arg("-c")
                .arg(r#"host=$1; port=$2; shift 2; "$@" -H "$host" -p "$port" >/dev/null 2>&1 & pid=$!; read _; kill $pid; wait $pid"#)
                .arg("sh")
                .arg(listen_host().to_string())
                .arg(port.to_string())
                .args(&command)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", command[0].display()))?;
            let mut server = MotoServer { child, port };
            match server.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return Ok(server),
                Err(e) => {
                    server.stop();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto did not start")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL to hand the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", SocketAddr::from((listen_host(), self.port)))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from((listen_host(), self.port));
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "moto exited early ({status}); is moto[server] installed? run ./infra/setup.sh"
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "moto did not answer on port {} within {timeout:?}",
            self.port
        )
    }

    fn stop(&mut self) {
        // Closing stdin makes the guard kill moto; then reap the guard.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `MOTO_SERVER` if set; else the project's one-request-at-a-time launcher with the
/// virtualenv's Python (or `python3` on the PATH).
fn moto_command() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return vec![PathBuf::from(path)];
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv_python = root.join("../.venv/bin/python");
    let python = if venv_python.exists() {
        venv_python
    } else {
        PathBuf::from("python3")
    };
    vec![python, root.join("moto_serial.py")]
}

/// A port nobody is listening on right now (on the local servers' address).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((listen_host(), 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
