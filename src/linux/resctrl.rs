//! `linux.intelRdt`: the container in a resctrl group (Intel RDT / AMD QoS cache and
//! memory-bandwidth allocation), as the runtime spec describes it: the group
//! `<resctrl>/<closID>` (closID defaulting to the container id) is made when missing and
//! given the schemata (l3CacheSchema, memBwSchema, schemata lines); a group that already
//! exists must already have the schemata asked for. The init joins it through `tasks`;
//! with enableMonitoring it also gets a monitoring group `mon_groups/<id>`. A group nook
//! made is removed with the container.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxIntelRdt;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("linux.intelRdt: {0}")]
pub struct RdtError(pub String);

/// Where the container's resctrl groups are, kept in its state for delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// The allocation group the init joined.
    pub group: PathBuf,
    /// nook made it (so delete removes it).
    pub made: bool,
    /// The monitoring group nook made under it, if any.
    pub monitor: Option<PathBuf>,
}

/// The resctrl filesystem's mount point, from /proc/self/mountinfo.
pub fn mount_point() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next() == Some("resctrl"))
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// The schemata lines the config asks for.
fn lines(rdt: &LinuxIntelRdt) -> Vec<String> {
    let mut out = vec![];
    if let Some(l3) = rdt.l3_cache_schema() {
        out.extend(l3.lines().map(str::to_string));
    }
    if let Some(mb) = rdt.mem_bw_schema() {
        out.extend(mb.lines().map(str::to_string));
    }
    for s in rdt.schemata().iter().flatten() {
        out.push(s.clone());
    }
    out.retain(|l| !l.trim().is_empty());
    out
}

#[allow(deprecated)]
fn monitoring(rdt: &LinuxIntelRdt) -> bool {
    *rdt.enable_monitoring() == Some(true)
        || *rdt.enable_cmt() == Some(true)
        || *rdt.enable_mbm() == Some(true)
}

/// Check `rdt` against the resctrl filesystem at `root` before anything is made.
pub fn check(root: Option<&Path>, rdt: &LinuxIntelRdt) -> Result<(), RdtError> {
    let Some(root) = root else {
        return Err(RdtError(
            "this host has no resctrl filesystem mounted (mount -t resctrl resctrl \
             /sys/fs/resctrl, where the CPU has RDT or AMD QoS)"
                .into(),
        ));
    };
    if let Some(id) = rdt.clos_id() {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." || id == "info" {
            return Err(RdtError(format!(
                "closID {id:?} cannot name a resctrl group"
            )));
        }
    }
    if monitoring(rdt) && !root.join("info/L3_MON").is_dir() {
        return Err(RdtError(
            "enableMonitoring: this host's resctrl has no monitoring (info/L3_MON)".into(),
        ));
    }
    Ok(())
}

/// Put process `pid` of container `id` into its resctrl group (made if missing).
pub fn join(root: &Path, rdt: &LinuxIntelRdt, id: &str, pid: i32) -> Result<Groups, RdtError> {
    check(Some(root), rdt)?;
    let name = rdt.clos_id().as_deref().unwrap_or(id);
    let group = root.join(name);
    let want = lines(rdt);
    let io =
        |what: &str, p: &Path, e: std::io::Error| RdtError(format!("{what} {}: {e}", p.display()));
    let made = match std::fs::create_dir(&group) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io("creating", &group, e)),
    };
    let undo = |g: Groups| {
        remove(&g);
    };
    let mut g = Groups {
        group: group.clone(),
        made,
        monitor: None,
    };
    let schemata = group.join("schemata");
    if made {
        // One line a write: the kernel parses a write as one resource's line.
        for l in &want {
            if let Err(e) = std::fs::write(&schemata, format!("{l}\n")) {
                undo(g);
                return Err(io(&format!("writing {l:?} to"), &schemata, e));
            }
        }
    } else if !want.is_empty() {
        // An existing group is shared: it must already say what the config asks for.
        let have = std::fs::read_to_string(&schemata).map_err(|e| io("reading", &schemata, e))?;
        let norm = |s: &str| {
            s.split_whitespace()
                .collect::<String>()
                .to_ascii_uppercase()
        };
        let have: Vec<String> = have.lines().map(norm).collect();
        if let Some(l) = want.iter().find(|l| !have.contains(&norm(l))) {
            return Err(RdtError(format!(
                "closID {name:?} exists with other schemata than {l:?} (its schemata: {})",
                schemata.display()
            )));
        }
    }
    let tasks = group.join("tasks");
    if let Err(e) = std::fs::write(&tasks, pid.to_string()) {
        undo(g);
        return Err(io("joining", &tasks, e));
    }
    if monitoring(rdt) {
        let mon = group.join("mon_groups").join(id);
        let r = std::fs::create_dir(&mon)
            .and_then(|()| std::fs::write(mon.join("tasks"), pid.to_string()));
        g.monitor = Some(mon.clone());
        if let Err(e) = r {
            undo(g);
            return Err(io("making the monitoring group", &mon, e));
        }
    }
    Ok(g)
}

/// Remove what nook made (a group's tasks go back to the default group by themselves).
pub fn remove(g: &Groups) {
    if let Some(m) = &g.monitor {
        let _ = std::fs::remove_dir(m);
    }
    if g.made {
        let _ = std::fs::remove_dir(&g.group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdt(j: serde_json::Value) -> LinuxIntelRdt {
        serde_json::from_value(j).unwrap()
    }

    /// A resctrl tree as plain files (no hardware here): what join writes where.
    #[test]
    fn join_makes_the_group_writes_schemata_and_tasks() {
        let root = std::env::temp_dir().join(format!("nook-resctrl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("info/L3_MON")).unwrap();
        let r = rdt(
            serde_json::json!({"l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=50",
            "enableMonitoring": true}),
        );
        // An existing group (the kernel gives it schemata and mon_groups; plain files
        // here) with the schemata asked for: joined, not made.
        std::fs::create_dir_all(root.join("c1/mon_groups")).unwrap();
        std::fs::write(root.join("c1/schemata"), "L3:0=ff\nMB:0=50\n").unwrap();
        let g = join(&root, &r, "c1", 42).unwrap();
        assert!(!g.made, "the group existed");
        assert_eq!(
            std::fs::read_to_string(root.join("c1/tasks")).unwrap(),
            "42"
        );
        remove(&g);
        // (The kernel's group dirs go with rmdir, files and all; plain ones do not.)
        std::fs::remove_dir_all(root.join("c1/mon_groups/c1")).unwrap();
        // An existing group with other schemata is refused.
        std::fs::write(root.join("c1/schemata"), "L3:0=f\nMB:0=100\n").unwrap();
        let e = join(&root, &r, "c1", 42).unwrap_err().to_string();
        assert!(e.contains("other schemata"), "{e}");
        std::fs::write(root.join("c1/schemata"), "L3:0=ff\nMB:0=50\n").unwrap();
        let g = join(&root, &r, "c1", 43).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("c1/tasks")).unwrap(),
            "43"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("c1/mon_groups/c1/tasks")).unwrap(),
            "43"
        );
        std::fs::remove_file(root.join("c1/mon_groups/c1/tasks")).unwrap();
        remove(&g);
        assert!(
            root.join("c1").exists(),
            "a group nook did not make was removed"
        );
        assert!(
            !root.join("c1/mon_groups/c1").exists(),
            "its monitoring group stayed"
        );
        // A new group: made, given the lines, removed again.
        let r = rdt(serde_json::json!({"closID": "new", "schemata": ["L3:0=3"]}));
        let g = join(&root, &r, "c2", 44).unwrap();
        assert!(g.made);
        assert_eq!(
            std::fs::read_to_string(root.join("new/schemata")).unwrap(),
            "L3:0=3\n"
        );
        std::fs::remove_file(root.join("new/schemata")).unwrap();
        std::fs::remove_file(root.join("new/tasks")).unwrap();
        remove(&g);
        assert!(!root.join("new").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn without_resctrl_or_with_a_bad_clos_id_it_is_refused() {
        let r = rdt(serde_json::json!({"closID": "x"}));
        assert!(check(None, &r)
            .unwrap_err()
            .to_string()
            .contains("no resctrl"));
        let r = rdt(serde_json::json!({"closID": "a/b"}));
        assert!(check(Some(Path::new("/")), &r).is_err());
    }
}
