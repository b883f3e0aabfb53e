//! `serde::Serialize` for the recovery report (feature `serde`): the shape tools print as JSON.
//!
//! LSNs are numbers, paths strings, the mode and corruption kinds their stable names
//! ([`RecoveryMode::name`], [`CorruptionKind::name`]) with the human message beside the kind,
//! lost ranges `{"first", "last"}`, actions `{"type", ...}`, the duration `duration_ms`, and
//! the report also says whether it is `clean`.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::report::{Damage, DamageAction, RecoveryReport};
use crate::error::CorruptionKind;
use crate::options::RecoveryMode;
use crate::types::Lsn;

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

impl Serialize for RecoveryMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Serialize for CorruptionKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Serialize for DamageAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            DamageAction::Cut { at, bytes } => {
                m.serialize_entry("type", "cut")?;
                m.serialize_entry("at", at)?;
                m.serialize_entry("bytes", bytes)?;
            }
            DamageAction::Skipped { to } => {
                m.serialize_entry("type", "skipped")?;
                m.serialize_entry("to", to)?;
            }
            DamageAction::Quarantined => m.serialize_entry("type", "quarantined")?,
            DamageAction::Accepted => m.serialize_entry("type", "accepted")?,
        }
        m.end()
    }
}

impl Serialize for Damage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("path", &self.path.display().to_string())?;
        m.serialize_entry("offset", &self.offset)?;
        m.serialize_entry("kind", &self.kind)?;
        m.serialize_entry("message", &self.kind.to_string())?;
        m.serialize_entry("action", &self.action)?;
        m.end()
    }
}

/// Paths as strings.
struct Paths<'a>(&'a [std::path::PathBuf]);

impl Serialize for Paths<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&p.display().to_string())?;
        }
        seq.end()
    }
}

/// Lost LSN ranges as `{"first", "last"}` objects.
struct Lost<'a>(&'a [std::ops::RangeInclusive<Lsn>]);

impl Serialize for Lost<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for range in self.0 {
            seq.serialize_element(&Range(*range.start(), *range.end()))?;
        }
        seq.end()
    }
}

struct Range(Lsn, Lsn);

impl Serialize for Range {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("first", &self.0)?;
        m.serialize_entry("last", &self.1)?;
        m.end()
    }
}

impl Serialize for RecoveryReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("mode", &self.mode)?;
        m.serialize_entry("dry_run", &self.dry_run)?;
        m.serialize_entry("clean", &self.is_clean())?;
        m.serialize_entry("created", &self.created)?;
        m.serialize_entry("segments_scanned", &self.segments_scanned)?;
        m.serialize_entry("segments_trusted", &self.segments_trusted)?;
        m.serialize_entry("records_recovered", &self.records_recovered)?;
        m.serialize_entry("checkpoint_lsn", &self.checkpoint_lsn)?;
        m.serialize_entry("last_lsn", &self.last_lsn)?;
        m.serialize_entry("torn_bytes_cut", &self.torn_bytes_cut)?;
        m.serialize_entry("intact_frames_cut", &self.intact_frames_cut)?;
        m.serialize_entry("damage", &self.damage)?;
        m.serialize_entry("lost", &Lost(&self.lost))?;
        m.serialize_entry("quarantined", &Paths(&self.quarantined))?;
        m.serialize_entry("removed_temp_files", &Paths(&self.removed_temp_files))?;
        m.serialize_entry(
            "removed_below_checkpoint",
            &Paths(&self.removed_below_checkpoint),
        )?;
        m.serialize_entry("unknown_files", &Paths(&self.unknown_files))?;
        m.serialize_entry("duration_ms", &(self.duration.as_secs_f64() * 1e3))?;
        m.end()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_report_serializes_with_names_numbers_and_strings() {
        let report = RecoveryReport {
            last_lsn: Lsn::new(7),
            damage: vec![Damage {
                path: "/log/x.seg".into(),
                offset: 64,
                kind: CorruptionKind::BadMagic,
                action: DamageAction::Cut { at: 64, bytes: 9 },
            }],
            lost: vec![Lsn::new(3)..=Lsn::new(4)],
            ..RecoveryReport::default()
        };
        let v = serde_json::to_value(&report).expect("serializes");
        assert_eq!(v["mode"], "tolerate-torn-tail");
        assert_eq!(v["clean"], false);
        assert_eq!(v["last_lsn"], 7);
        assert_eq!(v["damage"][0]["kind"], "BadMagic");
        assert_eq!(v["damage"][0]["action"]["type"], "cut");
        assert_eq!(v["damage"][0]["path"], "/log/x.seg");
        assert_eq!(v["lost"][0]["first"], 3);
    }
}
