//! Recovery modes on the command line, and recovery reports as text and JSON.

use std::path::Path;

use clap::builder::TypedValueParser;
use serde_json::{Value, json};
use tidelog::{DamageAction, RecoveryMode, RecoveryReport};

/// The recovery modes, for clap: their names, and the library's parser.
pub(crate) fn mode_parser() -> impl clap::builder::TypedValueParser<Value = RecoveryMode> {
    clap::builder::PossibleValuesParser::new(RecoveryMode::ALL.map(RecoveryMode::name))
        .try_map(|name| name.parse::<RecoveryMode>())
}

fn path_json(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

fn paths_json(paths: &[std::path::PathBuf]) -> Value {
    Value::Array(paths.iter().map(|p| path_json(p)).collect())
}

fn action_json(action: &DamageAction) -> Value {
    match action {
        DamageAction::Cut { at, bytes } => json!({"type": "cut", "at": at, "bytes": bytes}),
        DamageAction::Skipped { to } => json!({"type": "skipped", "to": to}),
        DamageAction::Quarantined => json!({"type": "quarantined"}),
        DamageAction::Accepted => json!({"type": "accepted"}),
        other => json!({"type": "other", "description": format!("{other:?}")}),
    }
}

/// A recovery report as one JSON object.
pub(crate) fn report_json(r: &RecoveryReport) -> Value {
    let damage: Vec<Value> = r
        .damage
        .iter()
        .map(|d| {
            json!({
                "path": path_json(&d.path),
                "offset": d.offset,
                "kind": d.kind.name(),
                "message": d.kind.to_string(),
                "action": action_json(&d.action),
            })
        })
        .collect();
    let lost: Vec<Value> = r
        .lost
        .iter()
        .map(|range| json!({"first": range.start().get(), "last": range.end().get()}))
        .collect();
    json!({
        "mode": r.mode.name(),
        "dry_run": r.dry_run,
        "clean": r.is_clean(),
        "created": r.created,
        "segments_scanned": r.segments_scanned,
        "records_recovered": r.records_recovered,
        "checkpoint_lsn": r.checkpoint_lsn.get(),
        "last_lsn": r.last_lsn.get(),
        "torn_bytes_cut": r.torn_bytes_cut,
        "intact_frames_cut": r.intact_frames_cut,
        "damage": damage,
        "lost": lost,
        "quarantined": paths_json(&r.quarantined),
        "removed_temp_files": paths_json(&r.removed_temp_files),
        "removed_below_checkpoint": paths_json(&r.removed_below_checkpoint),
        "unknown_files": paths_json(&r.unknown_files),
        "duration_ms": r.duration.as_secs_f64() * 1e3,
    })
}

/// What the recovery changed in the directory (or, for a dry run, would change), one sentence
/// each, in the future tense for a dry run. Damage left in place is not a change.
pub(crate) fn changes(r: &RecoveryReport) -> Vec<String> {
    let (cut, mv, remove, write) = if r.dry_run {
        ("would cut", "would move", "would remove", "would write")
    } else {
        ("cut", "moved", "removed", "wrote")
    };
    let mut out = Vec::new();
    for d in &r.damage {
        match &d.action {
            DamageAction::Cut { at, bytes } => out.push(format!(
                "{cut} {bytes} bytes from the end of {} (at offset {at}: {})",
                d.path.display(),
                d.kind
            )),
            DamageAction::Quarantined => out.push(format!(
                "{mv} {} to the quarantine folder ({})",
                d.path.display(),
                d.kind
            )),
            _ => {}
        }
    }
    for p in &r.quarantined {
        out.push(format!(
            "{write} {} (a copy of what was cut or moved)",
            p.display()
        ));
    }
    for p in &r.removed_temp_files {
        out.push(format!("{remove} the temporary file {}", p.display()));
    }
    for p in &r.removed_below_checkpoint {
        out.push(format!(
            "{remove} {} (wholly below the checkpoint)",
            p.display()
        ));
    }
    out
}

/// Damage recovery left in place: records readers skip.
pub(crate) fn left_in_place(r: &RecoveryReport) -> Vec<String> {
    let mut out = Vec::new();
    for d in &r.damage {
        match &d.action {
            DamageAction::Skipped { to } => out.push(format!(
                "{} offsets {}..{}: {} (left in place, skipped by readers)",
                d.path.display(),
                d.offset,
                to,
                d.kind
            )),
            DamageAction::Accepted => out.push(format!(
                "{} at offset {}: {} (accepted)",
                d.path.display(),
                d.offset,
                d.kind
            )),
            _ => {}
        }
    }
    for range in &r.lost {
        let n = range.end().get() - range.start().get() + 1;
        out.push(format!(
            "LSN {}..={} lost ({n} record{})",
            range.start(),
            range.end(),
            if n == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Whether recovery changed anything in the directory (or, for a dry run, would).
pub(crate) fn changes_anything(r: &RecoveryReport) -> bool {
    !changes(r).is_empty() || r.torn_bytes_cut > 0
}
