//! The runtime spec's hooks: each is a program run with the container's state on
//! stdin, its own args and env, and an optional timeout. Where and when each kind runs
//! is the caller's business (see ARCHITECTURE.md); this module only runs them.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde_json::json;

/// A hook that failed: which one, and how.
#[derive(Debug, Clone, thiserror::Error)]
#[error("hooks.{kind}[{index}] {path}: {why}")]
pub struct HookError {
    pub kind: &'static str,
    pub index: usize,
    pub path: String,
    pub why: String,
}

/// The state document hooks read on stdin.
pub fn state_json(
    version: &str,
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) -> String {
    let mut v = json!({
        "ociVersion": version,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
    });
    if !annotations.is_empty() {
        v["annotations"] = json!(annotations);
    }
    v.to_string()
}

/// Run `hooks` in order; the first failure stops the rest.
pub fn run(kind: &'static str, hooks: &[Hook], state: &str) -> Result<(), HookError> {
    for (index, h) in hooks.iter().enumerate() {
        run_one(h, state).map_err(|why| HookError {
            kind,
            index,
            path: h.path().display().to_string(),
            why,
        })?;
    }
    Ok(())
}

/// Run every hook, reporting failures without stopping (poststart, poststop).
pub fn run_all_logged(kind: &'static str, hooks: &[Hook], state: &str) {
    for (index, h) in hooks.iter().enumerate() {
        if let Err(why) = run_one(h, state) {
            let e = HookError {
                kind,
                index,
                path: h.path().display().to_string(),
                why,
            };
            eprintln!("nook: warning: {e}");
        }
    }
}

fn run_one(h: &Hook, state: &str) -> Result<(), String> {
    let mut cmd = Command::new(h.path());
    let args = h.args().as_deref().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    // A hook without `env` runs with nook's own environment (PATH with it), as runc's
    // do; one with `env`, even empty, gets exactly that.
    if let Some(env) = h.env() {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let timeout = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let deadline = timeout.map(|t| Instant::now() + t);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {} s",
                timeout.unwrap_or_default().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let err = err.trim();
    Err(if err.is_empty() {
        format!("{status}")
    } else {
        format!("{status}: {err}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn state_on_stdin_args_env_and_failure() {
        let dir = std::env::temp_dir().join(format!("nook-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!(
            "cat > {}; echo \"$0 $1 $FOO\" >> {}",
            out.display(),
            out.display()
        );
        let ok = hook(
            json!({"path": "/bin/sh", "args": ["sh", "-c", script, "first"], "env": ["FOO=bar"]}),
        );
        run("createRuntime", &[ok], "{\"id\":\"x\"}").unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        // The state arrives on stdin; with `sh -c SCRIPT first`, $0 is "first".
        assert_eq!(got, "{\"id\":\"x\"}first  bar\n");
        let bad = hook(json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}));
        let e = run("prestart", &[bad], "{}").unwrap_err().to_string();
        assert!(
            e.contains("hooks.prestart[0] /bin/sh") && e.contains("nope"),
            "{e}"
        );
        let slow = hook(json!({"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}));
        let t = Instant::now();
        let e = run("poststart", &[slow], "{}").unwrap_err().to_string();
        assert!(
            e.contains("timed out") && t.elapsed() < Duration::from_secs(3),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
