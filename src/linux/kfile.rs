//! Files the kernel makes as they are read (/proc, cgroupfs): stat gives them no size,
//! and a read(2) gets all the kernel has up to the buffer's end (seq_file fills what it
//! is given), so a short read is the end of the file. One read for a small file, where
//! std's read_to_string makes a statx and reads starting small until a read returns 0.

use std::io::Read;
use std::path::Path;

/// The whole file: one read(2) for up to 4 KiB, more only while each read fills the
/// buffer.
pub fn read(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..])?;
        len += n;
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize(len * 2, 0);
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
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
        let self_stat = super::read(std::path::Path::new("/proc/self/stat")).unwrap();
        assert!(
            self_stat.starts_with(&format!("{} (", std::process::id())),
            "{self_stat}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
