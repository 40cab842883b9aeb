//! Child processes the test environment started, and nothing else.
//!
//! Each process is tracked by its PID. Teardown kills exactly those PIDs. If the test process
//! itself dies without unwinding (SIGKILL, abort), a reaper shell started with a pipe from us sees
//! end-of-file on that pipe and kills the PIDs it was told about, so no cluster outlives its test.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::error::{Error, Result, io};

pub struct ManagedProcess {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl ManagedProcess {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
        reaper: &mut Reaper,
    ) -> Result<Self> {
        Self::spawn_with_env(name, program, args, &[], log, reaper)
    }

    /// Like [`ManagedProcess::spawn`], with extra environment variables.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
        reaper: &mut Reaper,
    ) -> Result<Self> {
        let out = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("cloning a log handle"))?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting {}", program.display())))?;
        reaper.watch(child.id());
        Ok(ManagedProcess {
            name: name.to_string(),
            log,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the tail of the log if the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited {
                component: self.name.clone(),
                status: status.to_string(),
                tail: self.log_tail(30),
            }),
            Ok(None) => Ok(()),
            Err(e) => Err(io(format!("waiting for {}", self.name))(e)),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILL to this PID, then reap it.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `sh` that holds the PIDs we started and kills them when our end of its stdin closes without
/// a `forget` line first (that is, when this process died before tearing the cluster down).
pub struct Reaper {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

const REAPER_SCRIPT: &str = r#"pids=""
while IFS= read -r line; do
  case "$line" in
    forget) pids="" ;;
    *) pids="$pids $line" ;;
  esac
done
[ -n "$pids" ] && kill -9 $pids 2>/dev/null
exit 0"#;

impl Reaper {
    pub fn start() -> Result<Self> {
        let mut child = Command::new("sh")
            .args(["-c", REAPER_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting the reaper shell"))?;
        let stdin = child.stdin.take();
        Ok(Reaper {
            child: Some(child),
            stdin,
        })
    }

    fn watch(&mut self, pid: u32) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{pid}");
            let _ = stdin.flush();
        }
    }

    /// Normal teardown: the processes are already gone, so the reaper must not kill anything.
    pub fn disarm(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "forget");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the component to take), below the
/// kernel's ephemeral range: a port the kernel handed out (port 0) goes back to that range when
/// released, and an outgoing connection (kube-apiserver's own to etcd, say) may take it before
/// the component listens on it ("bind: address already in use", seen in a full run).
pub fn free_port() -> Result<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_001));
    for _ in 0..200 {
        let port = fastrand::u16(from..to);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener.local_addr().map_err(io("reading a bound port"))?.port())
}
