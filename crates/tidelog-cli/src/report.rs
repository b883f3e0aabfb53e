//! Recovery modes on the command line, and recovery reports as text and JSON.

use clap::builder::TypedValueParser;
use serde_json::{Value, json};
use tidelog::{DamageAction, RecoveryMode, RecoveryReport};

/// The recovery modes, for clap: their names, and the library's parser.
pub(crate) fn mode_parser() -> impl clap::builder::TypedValueParser<Value = RecoveryMode> {
    clap::builder::PossibleValuesParser::new(RecoveryMode::ALL.map(RecoveryMode::name))
        .try_map(|name| name.parse::<RecoveryMode>())
}

/// A recovery report as one JSON object (the library's `serde` form).
pub(crate) fn report_json(r: &RecoveryReport) -> Value {
    serde_json::to_value(r).unwrap_or_else(|e| json!({"error": e.to_string()}))
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
