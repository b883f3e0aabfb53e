//! Process kills: a writer that archives as it appends is SIGKILLed, at random moments (in the
//! middle of an upload, of a multipart upload, between an object and its manifest), and at two
//! crash points it is held at before the kill: a sealed segment's object uploaded and its
//! manifest write not done, and a multipart upload of a sealed segment with its first part in
//! the store and its second not. After every kill the archive restores, to a prefix of what the
//! writer acknowledged that never shrinks, and the next writer resumes archiving; at the end
//! the archive holds every durable record.
//!
//! The child is this test binary started again to run [`child`], which works only when
//! `TIDELOG_ARCHIVE_KILL_DIR` is set. Held at a crash point, it prints `held PATH` (with
//! ` after PATH`, the object whose landing armed the hold) and waits there until killed.
//!
//! A restore is killed too: [`restore_child`] (which works only when
//! `TIDELOG_ARCHIVE_KILL_RESTORE` is set) restores an archive of several segments, and after
//! its first object prints `held` and waits on its stdin, which the parent keeps open and never
//! writes to, until it is killed there. What it leaves never shows under the target's name,
//! and the next restore to that target removes it; while it runs, that restore leaves it alone.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tidelog::{Durability, Log, Lsn};
use tidelog_archive::manifest::{ObjectKind, parse_name};
use tidelog_archive::{Archiver, Error, FollowOptions, Follower, Store, Target, describe, restore};

use crate::common::{self, WAIT, assert_holds, payload};
use crate::faulty::{FaultyStore, Held, Hold};
use crate::multipart::pending_uploads;

const CHILD_DIR: &str = "TIDELOG_ARCHIVE_KILL_DIR";
const CHILD_URL: &str = "TIDELOG_ARCHIVE_KILL_URL";
const CHILD_AT: &str = "TIDELOG_ARCHIVE_KILL_AT";
const CHILD_RESTORE: &str = "TIDELOG_ARCHIVE_KILL_RESTORE";

/// Where a child is held until it is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPoint {
    /// A sealed segment's object is in the store; the manifest write naming it waits.
    Object,
    /// A sealed segment's multipart upload has its first part in the store; the second waits.
    Part,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            CrashPoint::Object => "object",
            CrashPoint::Part => "part",
        }
    }

    fn parse(name: &str) -> CrashPoint {
        match name {
            "object" => CrashPoint::Object,
            "part" => CrashPoint::Part,
            other => panic!("no crash point {other}"),
        }
    }

    fn hold(self) -> Hold {
        match self {
            CrashPoint::Object => Hold {
                op: "put",
                path_contains: "manifests/",
                once_landed: Some(".seg"),
            },
            CrashPoint::Part => Hold {
                op: "part",
                path_contains: ".seg#part2#",
                once_landed: None,
            },
        }
    }
}

/// Segments that roll every few hundred records, and parts small enough that a local store
/// takes every sealed segment in several (S3 wants parts of 5 MiB: none there).
fn log_at(dir: &Path) -> Log {
    log_with(dir, 64 << 10)
}

fn log_with(dir: &Path, segment_bytes: u64) -> Log {
    Log::builder(dir)
        .segment_bytes(segment_bytes)
        .open()
        .expect("open log")
}

/// The segment size for a child held at `at`: one that S3 takes in three parts (5 MiB each,
/// but the last) for a kill inside a multipart upload there.
fn segment_bytes(url: &str, at: Option<CrashPoint>) -> u64 {
    if url.starts_with("s3://") && at == Some(CrashPoint::Part) {
        12 << 20
    } else {
        64 << 10
    }
}

fn store_for(url: &str) -> Store {
    if url.starts_with("s3://") {
        common::s3_store(url)
    } else {
        Store::from_url(url).expect("store")
    }
}

fn part_bytes(url: &str) -> usize {
    if url.starts_with("s3://") {
        5 << 20
    } else {
        16 << 10
    }
}

/// The child: appends synced batches to the log in `TIDELOG_ARCHIVE_KILL_DIR` while an archiver
/// uploads them, printing `acked N` after each, until it is killed. Held at a crash point
/// (`TIDELOG_ARCHIVE_KILL_AT`), its archiver uploads sealed segments only, and it prints
/// `held …` once the hold is reached.
#[test]
#[ignore = "run by the kill tests as their child process"]
fn child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let url = std::env::var(CHILD_URL).expect("store URL");
    let at = std::env::var(CHILD_AT).ok().map(|a| CrashPoint::parse(&a));
    let store = store_for(&url);
    let faults = FaultyStore::new(Arc::clone(store.object_store()));
    let mut options = common::quick().part_bytes(part_bytes(&url));
    if let Some(at) = at {
        faults.hold(at.hold());
        options = options.interval(Duration::from_secs(3600));
        let faults = Arc::clone(&faults);
        std::thread::spawn(move || {
            let Held { at, after } = faults
                .wait_held(Duration::from_secs(600))
                .expect("the crash point");
            let after = after.map(|a| format!(" after {a}")).unwrap_or_default();
            let mut out = std::io::stdout();
            let _ = writeln!(out, "held {at}{after}");
            let _ = out.flush();
        });
    }
    let store = Store::new(faults, store.prefix().as_ref());
    let log = Arc::new(log_with(Path::new(&dir), segment_bytes(&url, at)));
    let _archiver = Archiver::start(Arc::clone(&log), store, options).expect("start");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "archiving");
    let mut last = log.last_lsn();
    loop {
        let k = 1 + last.get() % 4;
        let batch: Vec<Vec<u8>> = (1..=k).map(|i| payload(last.get() + i)).collect();
        last = log
            .append_batch(&batch, Durability::Synced)
            .expect("append")
            .1;
        let _ = writeln!(out, "acked {}", last.get());
        let _ = out.flush();
    }
}

/// A child started, its stdout's lines on a channel.
struct Child {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Child {
    /// Starts the child on the log in `dir`, archiving to `url`, held at `at` if set.
    fn start(dir: &Path, url: &str, at: Option<CrashPoint>) -> Child {
        let mut env = vec![(CHILD_DIR, dir.into()), (CHILD_URL, url.into())];
        if let Some(at) = at {
            env.push((CHILD_AT, at.name().into()));
        }
        Child::spawn("kills::child", &env)
    }

    /// Starts this binary's ignored test `test` as a child with `env`; its stdin is a pipe that
    /// stays open, unwritten, until it is killed.
    fn spawn(test: &str, env: &[(&str, OsString)]) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "-q",
                "--test-threads=1",
            ])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut process = command.spawn().expect("start the child");
        let stdout = process.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Child {
            process,
            lines,
            reader,
        }
    }

    /// Kills the child; returns the last LSN it acknowledged among the lines not read yet (or
    /// `acked` if none).
    fn kill(mut self, mut acked: u64) -> u64 {
        self.process.kill().expect("kill");
        let _ = self.process.wait();
        let _ = self.reader.join();
        for line in self.lines.try_iter() {
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().expect("an LSN");
            }
        }
        acked
    }
}

/// Runs the child until it prints `archiving` and `ms` more milliseconds, kills it, and returns
/// the last LSN it acknowledged.
fn run_child(dir: &Path, url: &str, ms: u64) -> u64 {
    let child = Child::start(dir, url, None);
    let mut acked = 0;
    for line in child.lines.iter() {
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().expect("an LSN");
        }
        if line == "archiving" {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(ms));
    child.kill(acked)
}

/// Runs the child until it is held at `at`, kills it, and returns the last LSN it
/// acknowledged and where it was held.
fn crash_at(dir: &Path, url: &str, at: CrashPoint) -> (u64, Held) {
    let child = Child::start(dir, url, Some(at));
    let mut acked = 0;
    let mut held = None;
    for line in child.lines.iter() {
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().expect("an LSN");
        }
        if let Some(h) = line.strip_prefix("held ") {
            held = Some(match h.split_once(" after ") {
                Some((at, after)) => Held {
                    at: at.to_owned(),
                    after: Some(after.to_owned()),
                },
                None => Held {
                    at: h.to_owned(),
                    after: None,
                },
            });
            break;
        }
    }
    let held = held.expect("the child reached its crash point before it ended");
    (child.kill(acked), held)
}

/// The `q`th quantile of `sorted`.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

#[test]
fn a_follower_in_another_process_sees_every_record_once_in_order() {
    const RECORDS: u64 = 3000;
    let tmp = tempfile::tempdir().expect("tmp");
    let mut urls = vec![format!("file://{}", tmp.path().join("archive").display())];
    match common::s3_url("follow-process") {
        Some(url) => urls.push(url),
        None => eprintln!("SKIPPED the follower on S3: TIDELOG_TEST_S3_ENDPOINT is not set"),
    }
    for (u, url) in urls.iter().enumerate() {
        let dir = tmp.path().join(format!("log-{u}"));
        let child = Child::start(&dir, url, None);
        let mut follower = Follower::new(
            store_for(url),
            FollowOptions::default().poll(Duration::from_millis(10)),
        )
        .expect("follower");
        let (mut behind_ms, mut behind_records) = (Vec::new(), Vec::new());
        for lsn in 1..=RECORDS {
            let record = follower.next().expect("never ends").expect("record");
            assert_eq!(record.lsn(), Lsn::new(lsn), "{url}: in order, each once");
            assert_eq!(record.data(), payload(lsn), "{url}");
            let stamped = record.timestamp_ms().expect("a time");
            behind_ms.push(now_ms().saturating_sub(stamped));
            behind_records.push(follower.lag().records);
        }
        let acked = child.kill(0);
        behind_ms.sort_unstable();
        behind_records.sort_unstable();
        println!(
            "{url}: follower lag over {RECORDS} records: p50 {} ms / {} records, p99 {} ms / {} records (writer acknowledged {acked})",
            quantile(&behind_ms, 0.5),
            quantile(&behind_records, 0.5),
            quantile(&behind_ms, 0.99),
            quantile(&behind_records, 0.99),
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[test]
fn an_archiver_killed_anywhere_leaves_an_archive_that_restores_and_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut urls = vec![format!("file://{}", tmp.path().join("archive").display())];
    match common::s3_url("kills") {
        Some(url) => urls.push(url),
        None => eprintln!("SKIPPED kills on S3: TIDELOG_TEST_S3_ENDPOINT is not set"),
    }
    for (u, url) in urls.iter().enumerate() {
        let dir = tmp.path().join(format!("log-{u}"));
        let store = store_for(url);
        let mut restored_last = 0;
        let mut acked_max = 0;
        // Kills at moments spread over uploads (the crash points a child is held at have
        // tests of their own, below).
        for (round, ms) in (0..12u64).map(|i| 5 + (i * 37) % 150).enumerate() {
            let acked = run_child(&dir, url, ms);
            acked_max = acked_max.max(acked);
            // What the writer acknowledged survived; the archive may hold durable records it
            // had not acknowledged yet, never records the log does not have.
            let local = log_at(&dir).last_lsn().get();
            assert!(
                local >= acked_max,
                "{url} round {round}: acknowledged records lost"
            );
            let out = tmp.path().join(format!("restored-{u}-{round}"));
            match restore(&store, &out, Target::Latest) {
                Ok(report) => {
                    let last = report.last_lsn.get();
                    assert!(
                        last >= restored_last,
                        "{url} round {round}: the archive went back"
                    );
                    assert!(
                        last <= local,
                        "{url} round {round}: restored {last}, the log ends at {local}"
                    );
                    assert_holds(&out, 1, last);
                    restored_last = last;
                    std::fs::remove_dir_all(&out).expect("clean");
                }
                // Nothing yet, or only the writer's claim.
                Err(Error::NoArchive { .. } | Error::TargetNotArchived { .. })
                    if restored_last == 0 => {}
                Err(e) => panic!("{url} round {round}: restore failed: {e}"),
            }
        }
        // A last writer archives everything durable.
        let log = Arc::new(log_at(&dir));
        let last = log.last_lsn();
        assert!(
            last.get() >= acked_max,
            "{url}: acknowledged records survived"
        );
        let options = common::quick().part_bytes(part_bytes(url));
        let archiver = Archiver::start(Arc::clone(&log), store.clone(), options).expect("start");
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        let out = tmp.path().join(format!("final-{u}"));
        let report = restore(&store, &out, Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, last);
        assert!(report.last_lsn >= Lsn::new(restored_last));
        assert_holds(&out, 1, last.get());
    }
}

/// Records archived before a child is held at a crash point: the manifest at the kill names
/// exactly these, since the child's archiver uploads sealed segments only.
const ARCHIVED_FIRST: u64 = 20;

/// Archives [`ARCHIVED_FIRST`] records of a new log in `dir`, then fills its segment to within
/// a few KiB of its end (not archived), so that the child seals it with its first appends.
fn prepare(dir: &Path, store: &Store, segment: u64) {
    let log = Arc::new(log_with(dir, segment));
    let mut last = common::archive_records(&log, store, ARCHIVED_FIRST).get();
    assert_eq!(last, ARCHIVED_FIRST);
    loop {
        let used = log.segments().last().expect("a segment").bytes;
        let room = segment.saturating_sub(used);
        if room < 4 << 10 {
            break;
        }
        let k = (room / 128).clamp(1, 512);
        let batch: Vec<Vec<u8>> = (last + 1..=last + k).map(payload).collect();
        last = log
            .append_batch(&batch, Durability::Buffered)
            .expect("append")
            .1
            .get();
    }
    log.sync().expect("sync");
    assert_eq!(
        log.segments().len(),
        1,
        "the first segment still takes appends"
    );
}

/// Kills a child held at `at` (after [`prepare`]), and checks what it left: the orphaned
/// object (at [`CrashPoint::Object`]) or the pending upload and no object (at
/// [`CrashPoint::Part`]); a restore that gives exactly the manifest's records; and a next
/// archiver that adopts the orphan without uploading it again, or uploads the segment anew
/// once, after which a restore gives every record.
fn killed_at(at: CrashPoint, test: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut urls = vec![format!("file://{}", tmp.path().join("archive").display())];
    match common::s3_url(test) {
        Some(url) => urls.push(url),
        None => eprintln!("SKIPPED {test} on S3: TIDELOG_TEST_S3_ENDPOINT is not set"),
    }
    for (u, url) in urls.iter().enumerate() {
        let kind = if url.starts_with("s3://") {
            "s3"
        } else {
            "local"
        };
        let dir = tmp.path().join(format!("log-{u}"));
        let store = store_for(url);
        let segment = segment_bytes(url, Some(at));
        prepare(&dir, &store, segment);
        let (acked, held) = crash_at(&dir, url, at);
        let key = match at {
            CrashPoint::Object => held.after.clone().expect("the object that landed"),
            CrashPoint::Part => held.at.strip_suffix("#part2#").expect("a part").to_owned(),
        };
        assert!(key.ends_with(".seg"), "{url}: held at {held:?}");
        let prefix = store.prefix().to_string();
        let name = key
            .strip_prefix(&prefix)
            .unwrap_or(&key)
            .trim_start_matches('/')
            .to_owned();
        let found = describe(&store).expect("describe");
        let manifest = found.manifest.expect("a manifest");
        assert_eq!(
            manifest.last_lsn(),
            Lsn::new(ARCHIVED_FIRST),
            "{url}: the manifest names what was archived before"
        );
        assert!(
            manifest.objects.iter().all(|o| o.name != name),
            "{url}: {name} is named although its manifest was never written"
        );
        let orphaned = found.unreferenced.iter().any(|(n, _)| *n == name);
        match at {
            CrashPoint::Object => assert!(orphaned, "{url}: the orphaned {name} is there"),
            CrashPoint::Part => {
                assert!(!orphaned, "{url}: an upload cut short left an object");
                let pending = pending_uploads(kind, &store).expect("pending uploads");
                assert!(
                    pending.contains(&key),
                    "{url}: the upload cut short is pending: {pending:?}"
                );
            }
        }
        let out = tmp.path().join(format!("killed-{u}"));
        let report = restore(&store, &out, Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, Lsn::new(ARCHIVED_FIRST), "{url}");
        assert_holds(&out, 1, ARCHIVED_FIRST);
        // The next archiver, watched.
        let log = Arc::new(log_with(&dir, segment));
        let last = log.last_lsn();
        assert!(last.get() >= acked, "{url}: acknowledged records survived");
        let faults = FaultyStore::new(Arc::clone(store.object_store()));
        let watched = Store::new(faults.clone(), store.prefix().as_ref());
        let options = common::quick().part_bytes(part_bytes(url));
        let archiver = Archiver::start(Arc::clone(&log), watched, options).expect("start");
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        let manifest = describe(&store)
            .expect("describe")
            .manifest
            .expect("a manifest");
        // The same segment: the same records and bytes (the name also carries a generation).
        let cut = parse_name(&name).expect("an object's name");
        let named = manifest
            .objects
            .iter()
            .find(|o| {
                o.kind == ObjectKind::Seg
                    && (o.first_lsn, o.last_lsn, o.crc32c)
                        == (cut.first_lsn, cut.last_lsn, cut.crc32c)
            })
            .expect("the manifest names the segment");
        match at {
            CrashPoint::Object => {
                assert_eq!(named.name, name, "{url}: the orphan adopted");
                assert_eq!(faults.puts_of(&name), 0, "{url}: adopted, not put again");
            }
            CrashPoint::Part => {
                assert!(named.generation > cut.generation, "{url}: {}", named.name);
                assert_eq!(faults.puts_of(&named.name), 1, "{url}: uploaded anew, once");
                assert_eq!(faults.completed(&named.name), 1, "{url}");
            }
        }
        let out = tmp.path().join(format!("final-{u}"));
        let report = restore(&store, &out, Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, last, "{url}");
        assert_holds(&out, 1, last.get());
    }
}

#[test]
fn a_writer_killed_between_an_object_and_its_manifest_leaves_an_orphan_the_next_adopts() {
    killed_at(CrashPoint::Object, "kill-object");
}

#[test]
fn a_writer_killed_inside_a_multipart_upload_leaves_no_object_and_the_next_uploads_it_once() {
    killed_at(CrashPoint::Part, "kill-part");
}

/// The restoring child: restores the archive at `TIDELOG_ARCHIVE_KILL_URL` to the directory
/// `TIDELOG_ARCHIVE_KILL_RESTORE`, and after the first object prints `held N of M` and reads its
/// stdin, where nothing comes: it waits there until it is killed (or, should its parent die
/// first, exits at the end of the input without finishing).
#[test]
#[ignore = "run by the restore kill tests as their child process"]
fn restore_child() {
    let Some(dir) = std::env::var_os(CHILD_RESTORE) else {
        return;
    };
    let url = std::env::var(CHILD_URL).expect("store URL");
    let store = store_for(&url);
    let restored = tidelog_archive::restore_with(
        &store,
        Path::new(&dir),
        Target::Latest,
        &tidelog::Options::default(),
        |progress| {
            if progress.objects == 1 {
                let mut out = std::io::stdout();
                let _ = writeln!(
                    out,
                    "held {} of {}",
                    progress.objects, progress.objects_total
                );
                let _ = out.flush();
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                std::process::exit(3);
            }
        },
    );
    let _ = writeln!(std::io::stdout(), "ended {restored:?}");
}

/// Local and, if a server is named, S3 URLs for `test` (a child cannot share a memory store).
fn urls(tmp: &Path, test: &str) -> Vec<String> {
    let mut urls = vec![format!("file://{}", tmp.join("archive").display())];
    match common::s3_url(test) {
        Some(url) => urls.push(url),
        None => eprintln!("SKIPPED {test} on S3: TIDELOG_TEST_S3_ENDPOINT is not set"),
    }
    urls
}

/// Archives 300 records of a log in `dir`, with small segments, to `store`, and checks the
/// archive holds them in several objects; returns the last LSN.
fn archive_of_segments(dir: &Path, store: &Store) -> Lsn {
    let log = Arc::new(common::open_log(dir));
    let last = common::archive_records(&log, store, 300);
    let objects = describe(store)
        .expect("describe")
        .manifest
        .expect("a manifest")
        .objects
        .len();
    assert!(objects >= 3, "{}: {objects} objects", store.location());
    last
}

/// Starts a child restoring the archive at `url` to `target`, and returns it once it is held
/// after its first object.
fn restore_held(url: &str, target: &Path) -> Child {
    let child = Child::spawn(
        "kills::restore_child",
        &[(CHILD_RESTORE, target.into()), (CHILD_URL, url.into())],
    );
    let held = child.lines.iter().find(|line| line.starts_with("held "));
    assert!(
        held.is_some(),
        "{url}: the restoring child ended before it was held after its first object"
    );
    child
}

/// The names beside `target` in its directory, sorted.
fn beside(target: &Path) -> Vec<String> {
    let parent = target.parent().expect("a parent");
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| Some(n.as_str()) != target.file_name().and_then(|t| t.to_str()))
        .collect();
    names.sort();
    names
}

/// What a restore held or killed midway has beside `target`: its temporary directory, which
/// holds a segment already, and its lock file. Returns the directory and what it holds.
fn restoring_beside(target: &Path, url: &str) -> (PathBuf, Vec<String>) {
    let left = beside(target);
    let [dir, lock] = left.as_slice() else {
        panic!("{url}: a directory and its lock file beside the target, found {left:?}");
    };
    assert_eq!(*lock, format!("{dir}.lock"), "{url}");
    let dir = target.parent().expect("a parent").join(dir);
    let mut inside: Vec<String> = std::fs::read_dir(&dir)
        .expect("list the temporary directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert!(
        inside.iter().any(|n| n != "LOCK"),
        "{url}: the first object is written: {inside:?}"
    );
    (dir, inside)
}

#[test]
fn a_restore_killed_midway_leaves_nothing_under_its_target_and_the_next_restore_clears_it_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (u, url) in urls(tmp.path(), "kill-restore").iter().enumerate() {
        let store = store_for(url);
        let last = archive_of_segments(&tmp.path().join(format!("log-{u}")), &store);
        let target = tmp.path().join(format!("restores-{u}")).join("restored");
        let child = restore_held(url, &target);
        child.kill(0);
        assert!(
            std::fs::symlink_metadata(&target).is_err(),
            "{url}: nothing under the target's name"
        );
        restoring_beside(&target, url);
        // Again, to the same target: whole, and the killed restore's leftover is gone.
        let report = restore(&store, &target, Target::Latest).expect("restore again");
        assert_eq!(report.last_lsn, last, "{url}");
        assert_holds(&target, 1, last.get());
        assert_eq!(beside(&target), Vec::<String>::new(), "{url}: cleared up");
        let log = common::open_log(&target);
        assert_eq!(
            log.append(&payload(last.get() + 1), Durability::Synced)
                .expect("append"),
            last.next(),
            "{url}: the restored log goes on at the next LSN"
        );
        log.close().expect("close");
        assert_holds(&target, 1, last.get() + 1);
    }
}

#[test]
fn a_restore_leaves_alone_the_temporary_directory_of_a_restore_running_in_another_process() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (u, url) in urls(tmp.path(), "live-restore").iter().enumerate() {
        let store = store_for(url);
        let last = archive_of_segments(&tmp.path().join(format!("log-{u}")), &store);
        let target = tmp.path().join(format!("restores-{u}")).join("restored");
        let child = restore_held(url, &target);
        let (running, inside) = restoring_beside(&target, url);
        let left = beside(&target);
        let report = restore(&store, &target, Target::Latest).expect("restore meanwhile");
        assert_eq!(report.last_lsn, last, "{url}");
        assert_holds(&target, 1, last.get());
        assert_eq!(
            beside(&target),
            left,
            "{url}: the running restore's are there"
        );
        let (still, still_inside) = restoring_beside(&target, url);
        assert_eq!((still, still_inside), (running, inside), "{url}: untouched");
        child.kill(0);
    }
}
