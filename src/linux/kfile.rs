//! Files the kernel makes as they are read (/proc, cgroupfs): stat gives them no size, so
//! std's read_to_string makes a statx and a lseek and then reads starting small. Here a
//! page-sized buffer is read into until a read returns 0: a small file takes two reads.
//!
//! A short read is not the end of such a file. seq_file hands out at most its buffer (a
//! page) of whole records per read, so a file of many records (mountinfo, uid_map,
//! cgroup.procs) larger than that comes in several short reads; only 0 ends it.

use std::io::Read;
use std::path::Path;

/// The whole file.
pub fn read(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    /// A file larger than the first buffer is read whole (and a small one too).
    #[test]
    fn reads_whole_files() {
        let dir = std::env::temp_dir().join(format!("nook-kfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for size in [0usize, 10, 4095, 4096, 4097, 20000] {
            let p = dir.join(format!("f{size}"));
            let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            std::fs::write(&p, &text).unwrap();
            assert_eq!(super::read(&p).unwrap(), text, "size {size}");
        }
        let self_stat = super::read(Path::new("/proc/self/stat")).unwrap();
        assert!(
            self_stat.starts_with(&format!("{} (", std::process::id())),
            "{self_stat}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A seq_file of many records larger than a page (the kernel's symbol table: fixed
    /// while the system runs) comes in short reads, and is read whole: a reader that
    /// stopped at the first short read would get its first page only (as a large
    /// mountinfo would be cut, and its cgroup mounts past the cut missed).
    #[test]
    fn a_many_record_kernel_file_is_read_past_its_short_reads() {
        let p = Path::new("/proc/kallsyms");
        if !p.exists() {
            eprintln!("skipping: this kernel has no /proc/kallsyms");
            return;
        }
        let mut first = vec![0u8; 4096];
        let n = std::fs::File::open(p).unwrap().read(&mut first).unwrap();
        let whole = std::fs::read_to_string(p).unwrap();
        assert!(
            n < first.len() && whole.len() > first.len(),
            "expected a short first read of a file larger than a page: {n} of {}",
            whole.len()
        );
        let got = super::read(p).unwrap();
        assert!(got == whole, "read {} bytes of {}", got.len(), whole.len());
    }
}
