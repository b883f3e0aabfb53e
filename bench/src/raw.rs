//! The raw limits of the disk, measured with `std::fs` in the benchmark's own directory: what a
//! log could reach at best.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::stats::{Metrics, percentile};
use crate::{Result, sysinfo};

const MIB: usize = 1 << 20;

fn create(path: &Path) -> Result<File> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// (a) `count` × (pwrite 4 KiB at offset 0 + fdatasync): latency percentiles, and how many
/// device flush requests one fdatasync costs.
pub fn fsync_latency(dir: &Path, count: usize, device: Option<&str>) -> Result<Metrics> {
    let path = dir.join("raw-fsync");
    let file = create(&path)?;
    let block = pattern(4096);
    // The first write allocates the block; time overwrites only.
    file.write_all_at(&block, 0)?;
    crate::runner::sync_data(&file)?;
    let flushes_before = device.and_then(sysinfo::device_flushes);
    let mut lat = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        file.write_all_at(&block, 0)?;
        crate::runner::sync_data(&file)?;
        lat.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    let flushes_after = device.and_then(sysinfo::device_flushes);
    drop(file);
    std::fs::remove_file(&path)?;
    lat.sort_by(f64::total_cmp);
    let mut m = Metrics::new();
    m.insert("p50_us".into(), percentile(&lat, 0.50));
    m.insert("p99_us".into(), percentile(&lat, 0.99));
    if let (Some(a), Some(b)) = (flushes_before, flushes_after) {
        m.insert("flushes_per_sync".into(), (b - a) as f64 / count as f64);
    }
    Ok(m)
}

/// (b) pwrite(100 B) appended + fdatasync per record, one thread, for `secs`: the T = 1 bound
/// of W2.
pub fn commit_loop(dir: &Path, secs: f64) -> Result<Metrics> {
    let path = dir.join("raw-commit");
    let file = create(&path)?;
    let rec = pattern(100);
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < deadline {
        file.write_all_at(&rec, n * 100)?;
        crate::runner::sync_data(&file)?;
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    let mut m = Metrics::new();
    m.insert("commits_per_s".into(), n as f64 / elapsed);
    Ok(m)
}

/// Writes `bytes` sequentially in 1 MiB writes, then one fdatasync: MB/s (10^6 bytes).
/// With `read_back`, then reads the file back in 1 MiB reads (from the page cache, as the
/// logs' read-back does): read MB/s.
pub fn sequential(dir: &Path, name: &str, bytes: u64, read_back: bool) -> Result<Metrics> {
    let path = dir.join(name);
    let file = create(&path)?;
    let mut buf = pattern(MIB);
    let start = Instant::now();
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(MIB as u64) as usize;
        file.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    crate::runner::sync_data(&file)?;
    let secs = start.elapsed().as_secs_f64();
    let mut m = Metrics::new();
    m.insert("write_mb_s".into(), bytes as f64 / secs / 1e6);
    if read_back {
        let start = Instant::now();
        let mut off = 0u64;
        let mut sum = 0u64;
        while off < bytes {
            let n = file.read_at(&mut buf, off)?;
            if n == 0 {
                return Err("raw read-back: file ends early".into());
            }
            sum = sum.wrapping_add(u64::from(buf[n - 1]));
            off += n as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        m.insert("read_mb_s".into(), bytes as f64 / secs / 1e6);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(m)
}

/// A copy of every file under `src` into the new directory `dst`, on the same disk, in 1 MiB
/// reads and writes; with `sync`, each file is fsynced once written, and the new directories
/// too. The archive workload's reference: seconds and bytes copied (the files' lengths).
pub fn copy_dir(src: &Path, dst: &Path, sync: bool) -> Result<Metrics> {
    let mut buf = vec![0u8; MIB];
    let start = Instant::now();
    let bytes = copy_tree(src, dst, sync, &mut buf)?;
    if sync && let Some(parent) = dst.parent() {
        crate::runner::sync_all(&File::open(parent)?)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut m = Metrics::new();
    m.insert("secs".into(), secs);
    m.insert("bytes".into(), bytes as f64);
    Ok(m)
}

fn copy_tree(src: &Path, dst: &Path, sync: bool, buf: &mut [u8]) -> Result<u64> {
    use std::io::{Read, Write};
    std::fs::create_dir(dst)?;
    let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut bytes = 0;
    for entry in entries {
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            bytes += copy_tree(&entry.path(), &to, sync, buf)?;
        } else if kind.is_file() {
            let mut from = File::open(entry.path())?;
            let mut file = create(&to)?;
            loop {
                let n = from.read(buf)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])?;
                bytes += n as u64;
            }
            if sync {
                crate::runner::sync_all(&file)?;
            }
        }
    }
    if sync {
        crate::runner::sync_all(&File::open(dst)?)?;
    }
    Ok(bytes)
}
