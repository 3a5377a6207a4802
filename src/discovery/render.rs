//! `nook watch --render TEMPLATE --output FILE`: a config file that follows a service's
//! instances (a load balancer's upstream list), made with nook's own template syntax
//! (see bundle::template). Each instance becomes one line, `--each` (default
//! `${ADDRESS}:${PORT}`) expanded with that instance's macros; the template gets them
//! all as `${INSTANCES}`. FILE is replaced whole (a rename) before `--exec` runs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bundle::template::{expand, ExpandError};

/// The line an instance becomes unless `--each` says otherwise.
pub const DEFAULT_EACH: &str = "${ADDRESS}:${PORT}";

pub struct Render {
    template: Vec<u8>,
    template_path: PathBuf,
    each: String,
    output: PathBuf,
    service: String,
}

impl Render {
    /// Read the template and check both it and `each` (with an empty set and a sample
    /// instance), so a typo fails now, naming the file and line, not at the first change.
    pub fn new(
        template: &Path,
        each: &str,
        output: &Path,
        service: &str,
    ) -> Result<Render, String> {
        let text =
            std::fs::read(template).map_err(|e| format!("--render {}: {e}", template.display()))?;
        let r = Render {
            template: text,
            template_path: template.to_path_buf(),
            each: each.to_string(),
            output: output.to_path_buf(),
            service: service.to_string(),
        };
        let sample = serde_json::json!({
            "host": "h", "addresses": ["192.0.2.1"], "ports": [80], "id": "c", "service": service,
        });
        r.text(&[sample])?;
        Ok(r)
    }

    /// The file for this set of instances.
    pub fn text(&self, instances: &[Value]) -> Result<Vec<u8>, String> {
        let mut lines = String::new();
        for v in instances {
            let line = expand(self.each.as_bytes(), &mut |name| instance_macro(v, name))
                .map_err(|e| at("--each", e))?;
            lines.push_str(&String::from_utf8_lossy(&line));
            lines.push('\n');
        }
        let count = instances.len().to_string();
        expand(&self.template, &mut |name| match name {
            "INSTANCES" => Ok(lines.clone()),
            "COUNT" => Ok(count.clone()),
            "SERVICE" => Ok(self.service.clone()),
            _ => Err(format!(
                "unknown macro ${{{name}}} (a --render template has INSTANCES, COUNT and SERVICE)"
            )),
        })
        .map_err(|e| at(&self.template_path.display().to_string(), e))
    }

    /// Write the file for this set (a temporary file renamed over it).
    pub fn write(&self, instances: &[Value]) -> Result<(), String> {
        let text = self.text(instances)?;
        let name = self
            .output
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let tmp = self.output.with_file_name(format!(".{name}.nook-tmp"));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.output))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("--output {}: {e}", self.output.display())
            })
    }
}

fn at(what: &str, e: ExpandError) -> String {
    format!("{what} line {}: {}", e.line, e.why)
}

/// One instance's macros: HOST, ID, SERVICE, ADDRESS (its first address, else its host
/// name), ADDRESSES (space-separated), PORT (its first port) and PORTS.
fn instance_macro(v: &Value, name: &str) -> Result<String, String> {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match name {
        "HOST" => s("host"),
        "ID" => s("id"),
        "SERVICE" => s("service"),
        "ADDRESS" => list("addresses").into_iter().next().unwrap_or_else(|| s("host")),
        "ADDRESSES" => list("addresses").join(" "),
        "PORT" => list("ports").into_iter().next().unwrap_or_default(),
        "PORTS" => list("ports").join(" "),
        _ => {
            return Err(format!(
                "unknown macro ${{{name}}} (an instance has HOST, ID, SERVICE, ADDRESS, ADDRESSES, PORT and PORTS)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_become_lines_in_the_template() {
        let dir = std::env::temp_dir().join(format!("nook-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("t");
        std::fs::write(&t, "upstream ${SERVICE} { # ${COUNT}\n${INSTANCES}}\n").unwrap();
        let r = Render::new(&t, "  server ${ADDRESS}:${PORT};", &dir.join("out"), "web").unwrap();
        let a = serde_json::json!({"host": "a", "addresses": ["10.0.0.1", "fd00::1"], "ports": [80, 81]});
        let b = serde_json::json!({"host": "b", "addresses": [], "ports": [8080]});
        r.write(&[a, b]).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("out")).unwrap(),
            "upstream web { # 2\n  server 10.0.0.1:80;\n  server b:8080;\n}\n"
        );
        // Typos fail at the start, naming the file (or --each) and the line.
        std::fs::write(&t, "ok\n${INSTANCE}\n").unwrap();
        let e = Render::new(&t, DEFAULT_EACH, &dir.join("out"), "web")
            .err()
            .unwrap();
        assert!(e.contains("line 2") && e.contains("INSTANCE"), "{e}");
        std::fs::write(&t, "${INSTANCES}").unwrap();
        let e = Render::new(&t, "${ADDR}", &dir.join("out"), "web")
            .err()
            .unwrap();
        assert!(e.starts_with("--each line 1") && e.contains("ADDR"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
