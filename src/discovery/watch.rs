//! `nook watch ENDPOINTS NAME [--render T --output F] [--exec CMD]`: the live set of a
//! service's instances, one JSON line (an array of the instances' values, by key) at
//! start and after each change; with --render, a file made from a template for each set
//! (see render.rs); with --exec, CMD (through /bin/sh) gets each new set on its stdin. A broken
//! connection is retried with a backoff; the set is read afresh when it comes back.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use super::etcd::{Client, Event};
use super::render::Render;

pub fn watch(
    endpoints: &str,
    service: &str,
    render: Option<&Render>,
    exec: Option<&str>,
) -> Result<i32, String> {
    let eps = super::etcd::endpoints(endpoints).map_err(|e| e.to_string())?;
    super::check_service(service)?;
    let client = Client::new(eps, Duration::from_secs(5));
    let prefix = format!("{}{service}/", super::PREFIX);
    let mut shown: Option<String> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        let (kvs, rev) = match client.range(&prefix) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("nook: watch: {e}; retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let mut set: BTreeMap<String, String> =
            kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        show(&set, &mut shown, render, exec);
        let r = client.watch(&prefix, rev + 1, |events| {
            for e in events {
                match e {
                    Event::Put(kv) => {
                        set.insert(kv.key, kv.value);
                    }
                    Event::Delete(k) => {
                        set.remove(&k);
                    }
                }
            }
            show(&set, &mut shown, render, exec);
            true
        });
        if let Err(e) = r {
            eprintln!("nook: watch: {e}; retrying in {backoff:?}");
            std::thread::sleep(backoff);
        }
    }
}

/// Print the set (and run the hook) when it differs from what was shown last.
fn show(
    set: &BTreeMap<String, String>,
    shown: &mut Option<String>,
    render: Option<&Render>,
    exec: Option<&str>,
) {
    let items: Vec<serde_json::Value> = set
        .values()
        .map(|v| serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone())))
        .collect();
    let line = serde_json::to_string(&items).expect("json");
    if shown.as_deref() == Some(line.as_str()) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    drop(out);
    if let Some(Err(e)) = render.map(|r| r.write(&items)) {
        // The last good file stays; the hook is not told of a set it cannot see.
        eprintln!("nook: watch: {e}");
        *shown = Some(line);
        return;
    }
    if let Some(cmd) = exec {
        run_hook(cmd, &line);
    }
    *shown = Some(line);
}

fn run_hook(cmd: &str, line: &str) {
    use std::process::{Command, Stdio};
    let child = Command::new("/bin/sh")
        .args(["-c", cmd])
        .stdin(Stdio::piped())
        .spawn();
    match child {
        Ok(mut c) => {
            if let Some(mut i) = c.stdin.take() {
                let _ = writeln!(i, "{line}");
            }
            match c.wait() {
                Ok(s) if s.success() => {}
                Ok(s) => eprintln!("nook: watch: --exec {cmd:?} exited with {s}"),
                Err(e) => eprintln!("nook: watch: waiting for --exec {cmd:?}: {e}"),
            }
        }
        Err(e) => eprintln!("nook: watch: running --exec {cmd:?}: {e}"),
    }
}
