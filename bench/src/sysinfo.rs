//! What the report header says about the machine, and the device counters W2 reads.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::Result;

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Refuses a directory whose file system lives in memory: fsync there measures nothing.
/// `probe` is `dir` or its nearest existing ancestor.
pub fn refuse_memory_fs(probe: &Path, dir: &Path) -> Result<()> {
    let c = CString::new(probe.as_os_str().as_bytes())?;
    // SAFETY: `statfs` only writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!(
            "statfs {}: {}",
            probe.display(),
            std::io::Error::last_os_error()
        )
        .into());
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    if magic == TMPFS_MAGIC || magic == RAMFS_MAGIC {
        let kind = if magic == TMPFS_MAGIC {
            "tmpfs"
        } else {
            "ramfs"
        };
        return Err(format!(
            "{} is on {kind}: fsync there is free and the figures would mean nothing; \
             pass --dir on a disk-backed file system",
            dir.display()
        )
        .into());
    }
    Ok(())
}

/// The mount holding a path, from /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub fstype: String,
    pub source: String,
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn mount_of(dir: &Path) -> Option<Mount> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, Mount)> = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 5 || r.len() < 2 {
            continue;
        }
        let mount_point = PathBuf::from(unescape(f[4]));
        if !dir.starts_with(&mount_point) {
            continue;
        }
        let depth = mount_point.components().count();
        // Later lines mount over earlier ones at the same point.
        if best.as_ref().is_some_and(|(d, _)| *d > depth) {
            continue;
        }
        let Some((Ok(major), Ok(minor))) =
            f[2].split_once(':').map(|(a, b)| (a.parse(), b.parse()))
        else {
            continue;
        };
        best = Some((
            depth,
            Mount {
                major,
                minor,
                fstype: r[0].to_owned(),
                source: unescape(r[1]),
            },
        ));
    }
    best.map(|(_, m)| m)
}

/// The block device of a mount, by its name in /proc/diskstats.
pub fn block_device(mount: &Mount) -> Option<String> {
    let text = std::fs::read_to_string("/proc/diskstats").ok()?;
    let by_number = text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 3 && f[0] == mount.major.to_string() && f[1] == mount.minor.to_string())
            .then(|| f[2].to_owned())
    });
    by_number.or_else(|| {
        // A device-less number (btrfs, overlay): try the mount source's name.
        let name = Path::new(&mount.source).file_name()?.to_str()?.to_owned();
        text.lines()
            .any(|l| l.split_whitespace().nth(2) == Some(name.as_str()))
            .then_some(name)
    })
}

/// "Flush requests completed" of a block device: the 16th statistic after the name in
/// /proc/diskstats (kernel 5.5 and later; Documentation/admin-guide/iostats.rst).
pub fn device_flushes(device: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/diskstats").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 2 && f[2] == device {
            f.get(3 + 15).and_then(|v| v.parse().ok())
        } else {
            None
        }
    })
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn memory_gib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / (1024.0 * 1024.0))
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// User + system CPU time of this process (all threads), in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The peak resident memory of this process so far, in KiB: `VmHWM` in /proc/self/status.
/// Read by the process itself because the parent's `wait4` figure (`ru_maxrss`) is no good
/// here: a child spawned through `vfork` and `exec` inherits the spawning process's own
/// high-water mark in it.
pub fn peak_rss_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The versions of the benchmarked crates, from this workspace's lock file.
pub fn versions() -> Vec<(&'static str, String)> {
    const LOCK: &str = include_str!("../Cargo.lock");
    [
        "tidelog",
        "tidelog-archive",
        "okaywal",
        "wal-db",
        "raft-engine",
        "walrus-rust",
        "commitlog",
        "writeahead",
    ]
    .into_iter()
    .map(|name| {
        let needle = format!("name = \"{name}\"\nversion = \"");
        let v = LOCK
            .find(&needle)
            .map(|at| {
                let rest = &LOCK[at + needle.len()..];
                rest[..rest.find('"').unwrap_or(0)].to_owned()
            })
            .unwrap_or_else(|| "?".into());
        (name, v)
    })
    .collect()
}
