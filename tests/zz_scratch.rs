mod common;
use common::*;
#[test]
fn scratch() {
    let b = Bundle::new("scratch");
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    let pid = b.state(&id)["pid"].as_i64().unwrap() as i32;
    eprintln!(
        "pid {pid} procs {:?} cg {:?}",
        b.processes(),
        cgroup_dirs(&id)
    );
    ok(b.nook(&["start", &id]));
    std::thread::sleep(std::time::Duration::from_millis(100));
    eprintln!("after start procs {:?}", b.processes());
    eprintln!(
        "{}",
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
    );
}
