//! Permission bits: what the log creates is its owner's only by default (or has the modes
//! chosen), on both backends, after every operation that creates a file or a directory; and an
//! existing log keeps the modes it has.

use std::path::{Path, PathBuf};

use tidelog::io::OpenMode;
use tidelog::{Durability, Lsn, Result};

use crate::common::{Env, append_n};

/// Every file and directory under `dir` (the directory itself included), with its mode.
fn modes_under(env: &Env, dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(dir.to_path_buf(), mode(env, dir))];
    for name in env.list(dir) {
        let path = dir.join(&name);
        if env.storage.list(&path).is_ok() {
            out.extend(modes_under(env, &path));
        } else {
            out.push((path.clone(), mode(env, &path)));
        }
    }
    out
}

fn mode(env: &Env, path: &Path) -> u32 {
    env.storage
        .mode(path)
        .expect("the mode of a path that exists")
        .expect("both backends know modes")
        & 0o777
}

/// Asserts that every directory under the log has `dir_mode` and every file `file_mode` (the
/// lock file of the real file system: always the owner's only).
fn assert_modes(env: &Env, dir_mode: u32, file_mode: u32, after: &str) {
    for (path, got) in modes_under(env, &env.dir) {
        let is_dir = env.storage.list(&path).is_ok();
        let want = if is_dir {
            dir_mode
        } else if path.file_name().is_some_and(|n| n == "LOCK") {
            0o600
        } else {
            file_mode
        };
        assert_eq!(
            got,
            want,
            "{}: mode of {} after {after}: {got:#o}, expected {want:#o}",
            env.name(),
            path.display()
        );
    }
}

/// Leaves a torn write after the last record, for recovery to cut into `quarantine/`.
fn tear_tail(env: &Env) {
    let last = env.segment_paths().pop().expect("a segment");
    let file = env
        .storage
        .open(&last, OpenMode::ReadWrite)
        .expect("open the last segment");
    let len = file.len().expect("its length");
    file.write_all_at(&[0x5a; 13], len).expect("write");
    file.sync_data().expect("sync");
}

/// Runs every operation that creates a file or a directory, checking the modes after each.
fn run_and_check(env: &Env, dir_mode: u32, file_mode: u32) -> Result<()> {
    let open = || {
        env.builder()
            .modes(dir_mode, file_mode)
            .recycle_segments(true)
            .open()
    };
    let log = open()?;
    assert_modes(env, dir_mode, file_mode, "create");
    append_n(&log, 300)?;
    log.sync()?;
    assert!(log.segments().len() > 3);
    assert_modes(env, dir_mode, file_mode, "rolls");
    log.checkpoint(Lsn::new(200))?;
    assert_modes(env, dir_mode, file_mode, "checkpoint");
    append_n(&log, 200)?;
    log.sync()?;
    assert!(log.metrics().segments_recycled > 0, "{}", env.name());
    assert_modes(env, dir_mode, file_mode, "recycling");
    // A rollback in the middle of a batch rewrites the segment through a temporary file.
    let (first, _) = log.append_batch(&[b"a", b"b", b"c"], Durability::Synced)?;
    log.truncate_after(first)?;
    assert_modes(env, dir_mode, file_mode, "a rollback");
    log.set_retention_floor(Some(first))?;
    log.reset()?;
    assert_modes(env, dir_mode, file_mode, "a retention floor and a reset");
    log.close()?;
    tear_tail(env);
    let log = open()?;
    assert!(
        !log.recovery_report().quarantined.is_empty(),
        "{}: the cut went to quarantine",
        env.name()
    );
    assert_modes(env, dir_mode, file_mode, "a recovery cut");
    Ok(())
}

#[test]
fn everything_a_log_creates_is_its_owners_only_by_default() -> Result<()> {
    for mut env in Env::both() {
        // Missing parents are created with the log's directory mode too.
        env.dir = env.dir.join("nested/log");
        run_and_check(&env, 0o700, 0o600)?;
        let parent = env.dir.parent().expect("a parent");
        assert_eq!(mode(&env, parent), 0o700, "{}", env.name());
    }
    Ok(())
}

#[test]
fn a_group_can_be_given_read_access() -> Result<()> {
    for env in Env::both() {
        run_and_check(&env, 0o750, 0o640)?;
    }
    Ok(())
}

#[test]
fn opening_an_existing_log_changes_no_mode() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 100)?;
        log.close()?;
        // A log made with other modes (an older tidelog, or by hand).
        let before: Vec<(PathBuf, u32)> = modes_under(&env, &env.dir);
        let open = env.builder().modes(0o750, 0o640).open()?;
        drop(open);
        let after = modes_under(&env, &env.dir);
        assert_eq!(before, after, "{}", env.name());
    }
    Ok(())
}
