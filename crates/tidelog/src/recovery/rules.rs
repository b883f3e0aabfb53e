//! The rules recovery applies to each damaged place it finds: what the place is (a torn tail, the
//! end of a recycled file's data, or damage to durable records) and what the recovery mode does
//! about it. A pure function of facts the scan gathers; no I/O.

use crate::options::RecoveryMode;

/// Where a damaged place is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Among the frames of a segment (see the other [`DamageFacts`] fields).
    Frames,
    /// A segment whose header is unusable (bad magic or checksum, too short, another first LSN
    /// than its name, another log's), or that starts below where the previous one ended.
    Header,
    /// A segment whose header passes its checksum but names a format version this build does
    /// not read: not damage, and never moved aside.
    OtherVersion,
    /// LSNs missing between two segments (a missing segment, or a jump).
    Gap,
}

/// What follows a damaged place in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Later {
    /// No intact frame: the end of the file, zeros, or bytes that are no frame.
    Nothing,
    /// Intact frames, none of which says the log was durable past the damage.
    Intact,
    /// Intact frames, one of which was written when the log was already durable past the last
    /// complete batch before the damage: records after that batch were synced.
    Durable,
}

/// The facts about one damaged place that decide what it is. Only `place` matters unless it is
/// [`Place::Frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DamageFacts {
    pub(crate) place: Place,
    /// The damage is in the last segment. Every other segment was synced whole before the next
    /// one was created.
    pub(crate) last_segment: bool,
    /// The damage is an intact frame in the wrong place (an unexpected LSN, or batch flags that
    /// do not fit). A torn write never moves a frame.
    pub(crate) misplaced: bool,
    /// What follows the damage.
    pub(crate) later: Later,
    /// The damage is inside a batch (the cut goes back to the batch's first frame).
    pub(crate) in_batch: bool,
    /// The cut point lies in what a recycled file held before it was reused (below its
    /// `prev_extent`).
    pub(crate) old_extent: bool,
}

impl DamageFacts {
    /// Damage that is a whole segment's, or between segments (`place` is not `Frames`).
    pub(crate) fn segment(place: Place) -> Self {
        Self {
            place,
            last_segment: false,
            misplaced: false,
            later: Later::Nothing,
            in_batch: false,
            old_extent: false,
        }
    }
}

/// What recovery does about a damaged place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not damage: the data of a recycled file ends here. Nothing is reported or cut, and
    /// appends continue here.
    EndOfData,
    /// Recovery fails with an error naming the damage, and changes nothing.
    Refuse,
    /// Cut the segment at the damage (or at the start of the batch it is in); the cut bytes go
    /// to the quarantine folder.
    Cut,
    /// The log ends here: frames are cut as for [`Verdict::Cut`], a damaged segment or the one
    /// after a gap goes to the quarantine folder, and so does every later segment.
    EndLog,
    /// Go on past the damage: readers jump over damaged frames to the next intact one (or to
    /// the end of the segment), a damaged segment goes to the quarantine folder alone, a gap is
    /// accepted. The records lost are reported.
    Skip,
}

/// Decides what a damaged place is and what `mode` does about it.
///
/// The rules, in order:
///
/// 1. A segment of another format version is refused in every mode: it is not damage.
/// 2. A damaged segment header or a gap between segments is refused by `Strict` and
///    `TolerateTornTail`, ends the log there in `PointInTime`, and is skipped by `SkipCorrupt`.
/// 3. Damage among frames is *proven* damage to durable records if the damage is an intact
///    frame in the wrong place, or lies in a segment that is not the last, or is followed by a
///    frame whose durable hint reaches past it. Otherwise nothing proves those records were ever
///    synced: it is the unsynced tail.
/// 4. An unsynced tail with no intact frame after it, outside a batch, cut inside what a
///    recycled file held before, is the end of the current data in every mode.
/// 5. `Strict` refuses any other damage.
/// 6. `TolerateTornTail` cuts the unsynced tail and refuses proven damage.
/// 7. `PointInTime` ends the log at any damage.
/// 8. `SkipCorrupt` skips proven damage, and cuts the last segment where no intact frame follows
///    the damage or nothing proves it: a tail is cut there as in every tolerant mode.
pub(crate) fn judge(facts: DamageFacts, mode: RecoveryMode) -> Verdict {
    use RecoveryMode::{PointInTime, SkipCorrupt, Strict, TolerateTornTail};
    match facts.place {
        Place::OtherVersion => return Verdict::Refuse,
        Place::Header | Place::Gap => {
            return match mode {
                Strict | TolerateTornTail => Verdict::Refuse,
                PointInTime => Verdict::EndLog,
                SkipCorrupt => Verdict::Skip,
            };
        }
        Place::Frames => {}
    }
    let proven = facts.misplaced || !facts.last_segment || facts.later == Later::Durable;
    if !proven && facts.later == Later::Nothing && !facts.in_batch && facts.old_extent {
        return Verdict::EndOfData;
    }
    match mode {
        Strict => Verdict::Refuse,
        TolerateTornTail if proven => Verdict::Refuse,
        TolerateTornTail => Verdict::Cut,
        PointInTime => Verdict::EndLog,
        SkipCorrupt if facts.last_segment && (!proven || facts.later == Later::Nothing) => {
            Verdict::Cut
        }
        SkipCorrupt => Verdict::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use RecoveryMode::{PointInTime, SkipCorrupt, Strict, TolerateTornTail};

    const MODES: [RecoveryMode; 4] = [Strict, TolerateTornTail, PointInTime, SkipCorrupt];

    /// Every combination of the facts about damage among frames, and the verdict of each mode.
    /// Columns: last segment, misplaced frame, what follows (`-` nothing, `intact`, `durable`),
    /// in a batch, in a recycled file's old extent; then Strict, TolerateTornTail, PointInTime,
    /// SkipCorrupt.
    const FRAMES: &str = "
        last misplaced later   batch old | strict  tolerate  point  skip
        no   no        -       no    no  | refuse  refuse    end    skip
        no   no        -       no    yes | refuse  refuse    end    skip
        no   no        -       yes   no  | refuse  refuse    end    skip
        no   no        -       yes   yes | refuse  refuse    end    skip
        no   no        intact  no    no  | refuse  refuse    end    skip
        no   no        intact  no    yes | refuse  refuse    end    skip
        no   no        intact  yes   no  | refuse  refuse    end    skip
        no   no        intact  yes   yes | refuse  refuse    end    skip
        no   no        durable no    no  | refuse  refuse    end    skip
        no   no        durable no    yes | refuse  refuse    end    skip
        no   no        durable yes   no  | refuse  refuse    end    skip
        no   no        durable yes   yes | refuse  refuse    end    skip
        no   yes       -       no    no  | refuse  refuse    end    skip
        no   yes       -       no    yes | refuse  refuse    end    skip
        no   yes       -       yes   no  | refuse  refuse    end    skip
        no   yes       -       yes   yes | refuse  refuse    end    skip
        no   yes       intact  no    no  | refuse  refuse    end    skip
        no   yes       intact  no    yes | refuse  refuse    end    skip
        no   yes       intact  yes   no  | refuse  refuse    end    skip
        no   yes       intact  yes   yes | refuse  refuse    end    skip
        no   yes       durable no    no  | refuse  refuse    end    skip
        no   yes       durable no    yes | refuse  refuse    end    skip
        no   yes       durable yes   no  | refuse  refuse    end    skip
        no   yes       durable yes   yes | refuse  refuse    end    skip
        yes  no        -       no    no  | refuse  cut       end    cut
        yes  no        -       no    yes | eod     eod       eod    eod
        yes  no        -       yes   no  | refuse  cut       end    cut
        yes  no        -       yes   yes | refuse  cut       end    cut
        yes  no        intact  no    no  | refuse  cut       end    cut
        yes  no        intact  no    yes | refuse  cut       end    cut
        yes  no        intact  yes   no  | refuse  cut       end    cut
        yes  no        intact  yes   yes | refuse  cut       end    cut
        yes  no        durable no    no  | refuse  refuse    end    skip
        yes  no        durable no    yes | refuse  refuse    end    skip
        yes  no        durable yes   no  | refuse  refuse    end    skip
        yes  no        durable yes   yes | refuse  refuse    end    skip
        yes  yes       -       no    no  | refuse  refuse    end    cut
        yes  yes       -       no    yes | refuse  refuse    end    cut
        yes  yes       -       yes   no  | refuse  refuse    end    cut
        yes  yes       -       yes   yes | refuse  refuse    end    cut
        yes  yes       intact  no    no  | refuse  refuse    end    skip
        yes  yes       intact  no    yes | refuse  refuse    end    skip
        yes  yes       intact  yes   no  | refuse  refuse    end    skip
        yes  yes       intact  yes   yes | refuse  refuse    end    skip
        yes  yes       durable no    no  | refuse  refuse    end    skip
        yes  yes       durable no    yes | refuse  refuse    end    skip
        yes  yes       durable yes   no  | refuse  refuse    end    skip
        yes  yes       durable yes   yes | refuse  refuse    end    skip
    ";

    /// The verdicts for whole segments and gaps, in the same columns.
    const SEGMENTS: &str = "
        place         | strict  tolerate  point  skip
        header        | refuse  refuse    end    skip
        other-version | refuse  refuse    refuse refuse
        gap           | refuse  refuse    end    skip
    ";

    fn yes_no(word: &str) -> bool {
        match word {
            "yes" => true,
            "no" => false,
            other => panic!("not yes or no: {other}"),
        }
    }

    fn verdict(word: &str) -> Verdict {
        match word {
            "eod" => Verdict::EndOfData,
            "refuse" => Verdict::Refuse,
            "cut" => Verdict::Cut,
            "end" => Verdict::EndLog,
            "skip" => Verdict::Skip,
            other => panic!("not a verdict: {other}"),
        }
    }

    /// The rows of a table (its header line left out), split at `|` into words.
    fn rows(table: &str) -> Vec<(Vec<&str>, Vec<Verdict>)> {
        table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .skip(1)
            .map(|line| {
                let (facts, verdicts) = line.split_once('|').expect("a | in every row");
                let verdicts: Vec<Verdict> = verdicts.split_whitespace().map(verdict).collect();
                assert_eq!(verdicts.len(), MODES.len(), "{line}");
                (facts.split_whitespace().collect(), verdicts)
            })
            .collect()
    }

    #[test]
    fn judge_follows_the_truth_table_for_damage_among_frames() {
        let mut seen = Vec::new();
        for (words, verdicts) in rows(FRAMES) {
            let [last, misplaced, later, batch, old] = words[..] else {
                panic!("five facts expected: {words:?}");
            };
            let facts = DamageFacts {
                place: Place::Frames,
                last_segment: yes_no(last),
                misplaced: yes_no(misplaced),
                later: match later {
                    "-" => Later::Nothing,
                    "intact" => Later::Intact,
                    "durable" => Later::Durable,
                    other => panic!("not what follows: {other}"),
                },
                in_batch: yes_no(batch),
                old_extent: yes_no(old),
            };
            assert!(!seen.contains(&facts), "row listed twice: {words:?}");
            seen.push(facts);
            for (mode, expected) in MODES.into_iter().zip(verdicts) {
                assert_eq!(judge(facts, mode), expected, "{words:?} in {mode:?}");
            }
        }
        // Every combination is in the table.
        assert_eq!(seen.len(), 2 * 2 * 3 * 2 * 2);
    }

    #[test]
    fn judge_follows_the_truth_table_for_segments_and_gaps() {
        let table = rows(SEGMENTS);
        assert_eq!(table.len(), 3);
        for (words, verdicts) in table {
            let place = match words[..] {
                ["header"] => Place::Header,
                ["other-version"] => Place::OtherVersion,
                ["gap"] => Place::Gap,
                _ => panic!("not a place: {words:?}"),
            };
            for (mode, expected) in MODES.into_iter().zip(verdicts) {
                // The frame facts do not matter outside a segment's frames.
                for last_segment in [false, true] {
                    let facts = DamageFacts {
                        last_segment,
                        misplaced: last_segment,
                        later: Later::Durable,
                        ..DamageFacts::segment(place)
                    };
                    assert_eq!(judge(facts, mode), expected, "{place:?} in {mode:?}");
                    assert_eq!(judge(DamageFacts::segment(place), mode), expected);
                }
            }
        }
    }
}
