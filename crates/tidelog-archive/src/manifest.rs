//! What an archive holds and how it is laid out in the store: one object per segment copy under
//! `segments/`, named so that names sort by log and LSN, and a chain of manifests under
//! `manifests/`, one written after every upload it names: an object counts as archived once a
//! manifest names it, so the manifest is the archive's commit point.
//!
//! Manifests are named `manifests/{sequence:020}.json` and never overwritten: each is created
//! with a conditional put that fails if the name is taken, so of two writers that read the same
//! manifest and write the next, exactly one succeeds. That is the fence: a writer claims a
//! generation by writing the next manifest with a higher generation, and a writer whose next
//! manifest is taken by a higher generation has lost the archive (see `fence`). The newest
//! manifest (the highest sequence) is the archive; writers remove old ones, keeping the last
//! [`MANIFESTS_KEPT`].
//!
//! Readers in progress (followers, restores) keep a lease under `readers/`, which retention
//! respects (see `retention`).
//!
//! An object's name is `segments/{log id:032x}-{first LSN:020}-{last LSN:020}-{generation:010}-
//! {crc32c:08x}.{seg|tail}`: `seg` for a complete segment (sealed, never to change), `tail` for
//! the durable part of the segment that takes appends; the checksum is of the object's bytes.
//! Names are parsed strictly: nothing else under the prefix is ever read as part of the archive.

use serde::{Deserialize, Serialize};
use tidelog::Lsn;

use crate::error::{Error, Result};

/// The folder of manifests under the archive's prefix.
pub const MANIFESTS: &str = "manifests";
/// The folder of segment objects under the archive's prefix.
pub const SEGMENTS: &str = "segments";
/// The folder of reader leases under the archive's prefix.
pub const READERS: &str = "readers";
/// The manifest format this crate writes and reads.
pub const MANIFEST_FORMAT: u32 = 2;
/// How many of the newest manifests a writer keeps (older ones are removed).
pub const MANIFESTS_KEPT: u64 = 16;

/// The name of the manifest with sequence number `seq`.
pub fn manifest_name(seq: u64) -> String {
    format!("{MANIFESTS}/{seq:020}.json")
}

/// The sequence number of a manifest's name; `None` for any other name.
pub fn parse_manifest_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(MANIFESTS)?
        .strip_prefix('/')?
        .strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What kind of copy an object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A complete segment.
    Seg,
    /// The durable part of the segment taking appends.
    Tail,
}

/// One archived object, as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Its name under the archive's prefix.
    pub name: String,
    /// The LSN of the segment's first record.
    pub first_lsn: u64,
    /// The LSN of its last record.
    pub last_lsn: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// The CRC-32C of its bytes.
    pub crc32c: u32,
    /// The time of its first batch (ms since the Unix epoch), if its records carry times.
    pub first_ms: Option<u64>,
    /// The time of its last batch.
    pub last_ms: Option<u64>,
    /// Complete segment or tail.
    pub kind: ObjectKind,
    /// The generation of the archiver that wrote it.
    pub generation: u64,
}

impl ObjectEntry {
    /// The name an object of these fields has.
    pub(crate) fn name_for(
        log_id: u128,
        first: Lsn,
        last: Lsn,
        generation: u64,
        crc: u32,
        kind: ObjectKind,
    ) -> String {
        let ext = match kind {
            ObjectKind::Seg => "seg",
            ObjectKind::Tail => "tail",
        };
        format!(
            "{SEGMENTS}/{log_id:032x}-{:020}-{:020}-{generation:010}-{crc:08x}.{ext}",
            first.get(),
            last.get()
        )
    }
}

/// The fields of an object name, if `name` is one (strictly: any other name is foreign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedName {
    /// The log id.
    pub log_id: u128,
    /// The first LSN.
    pub first_lsn: u64,
    /// The last LSN.
    pub last_lsn: u64,
    /// The writer's generation.
    pub generation: u64,
    /// The CRC-32C of the bytes.
    pub crc32c: u32,
    /// Complete segment or tail.
    pub kind: ObjectKind,
}

/// Parses an object name of the layout above; `None` for anything else.
pub fn parse_name(name: &str) -> Option<ParsedName> {
    let rest = name.strip_prefix(SEGMENTS)?.strip_prefix('/')?;
    let (stem, ext) = rest.rsplit_once('.')?;
    let kind = match ext {
        "seg" => ObjectKind::Seg,
        "tail" => ObjectKind::Tail,
        _ => return None,
    };
    let fields: Vec<&str> = stem.split('-').collect();
    let [id, first, last, generation, crc] = fields.as_slice() else {
        return None;
    };
    let widths = [
        (id, 32),
        (first, 20),
        (last, 20),
        (generation, 10),
        (crc, 8),
    ];
    if widths.iter().any(|(f, w)| f.len() != *w) {
        return None;
    }
    let decimal = |f: &str| {
        f.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| f.parse().ok())
            .flatten()
    };
    let hex = |f: &str| {
        f.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if !hex(id) || !hex(crc) {
        return None;
    }
    let parsed = ParsedName {
        log_id: u128::from_str_radix(id, 16).ok()?,
        first_lsn: decimal(first)?,
        last_lsn: decimal(last)?,
        generation: decimal(generation)?,
        crc32c: u32::from_str_radix(crc, 16).ok()?,
        kind,
    };
    let after_last = parsed.last_lsn.checked_add(1)?;
    (parsed.first_lsn >= 1 && after_last >= parsed.first_lsn).then_some(parsed)
}

/// A manifest: the archive's log, the generation that holds it and who claimed it, and its
/// objects in LSN order (complete segments, then at most one tail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// Its place in the chain: its name is [`manifest_name`] of it.
    pub seq: u64,
    /// The archived log's id, as 32 hexadecimal digits.
    pub log_id: String,
    /// The writer generation that holds the archive: the one that wrote this manifest, or whose
    /// manifest a prune trimmed.
    pub generation: u64,
    /// Who claimed that generation (host, process and a token unique to the claim).
    pub holder: String,
    /// The objects, in LSN order.
    pub objects: Vec<ObjectEntry>,
}

impl Manifest {
    /// An empty manifest for `log_id`, before the first of the chain.
    pub(crate) fn new(log_id: u128) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            seq: 0,
            log_id: format!("{log_id:032x}"),
            generation: 0,
            holder: String::new(),
            objects: Vec::new(),
        }
    }

    /// The LSN of the first archived record (1 past the last if none is).
    pub fn first_lsn(&self) -> Lsn {
        Lsn::new(self.objects.first().map_or(1, |o| o.first_lsn))
    }

    /// The time of the newest archived batch, if the records carry times.
    pub fn last_ms(&self) -> Option<u64> {
        self.objects.last().and_then(|o| o.last_ms)
    }

    /// The object holding `lsn`, if one does.
    pub fn object_holding(&self, lsn: Lsn) -> Option<&ObjectEntry> {
        let i = self.objects.partition_point(|o| o.last_lsn < lsn.get());
        self.objects
            .get(i)
            .filter(|o| o.first_lsn <= lsn.get() && lsn.get() <= o.last_lsn)
    }

    /// The log id.
    pub fn log_id(&self) -> u128 {
        u128::from_str_radix(&self.log_id, 16).unwrap_or(0)
    }

    /// The last archived LSN (0 if nothing is).
    pub fn last_lsn(&self) -> Lsn {
        Lsn::new(self.objects.last().map_or(0, |o| o.last_lsn))
    }

    /// Decodes and checks a manifest read from `key`: its format, its log id, every object's
    /// name against its fields, and that the objects follow each other with no gap or overlap
    /// (a tail only last).
    pub(crate) fn decode(bytes: &[u8], key: &str) -> Result<Manifest> {
        Manifest::check(bytes, key, None)
    }

    /// As [`Manifest::decode`], but a hole between two objects is no error: it is returned
    /// among the gaps instead, for describing an archive (restores and writers refuse it).
    pub(crate) fn decode_with_gaps(bytes: &[u8], key: &str) -> Result<(Manifest, Vec<Gap>)> {
        let mut gaps = Vec::new();
        let manifest = Manifest::check(bytes, key, Some(&mut gaps))?;
        Ok((manifest, gaps))
    }

    /// Decodes and checks a manifest; a hole between two objects is [`Error::Gap`], or with
    /// `gaps` added to them.
    fn check(bytes: &[u8], key: &str, mut gaps: Option<&mut Vec<Gap>>) -> Result<Manifest> {
        let bad = |reason: String| Error::BadManifest {
            key: key.to_owned(),
            reason,
        };
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("does not decode: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(bad(format!("unknown format {}", manifest.format)));
        }
        let id_ok = manifest.log_id.len() == 32
            && u128::from_str_radix(&manifest.log_id, 16).is_ok()
            && manifest.log_id.bytes().all(|b| !b.is_ascii_uppercase());
        if !id_ok {
            return Err(bad("the log id is not 32 hexadecimal digits".to_owned()));
        }
        let log_id = manifest.log_id();
        for (i, o) in manifest.objects.iter().enumerate() {
            let named = parse_name(&o.name)
                .ok_or_else(|| bad(format!("object name {:?} is not an archive object", o.name)))?;
            let fits = named.log_id == log_id
                && named.first_lsn == o.first_lsn
                && named.last_lsn == o.last_lsn
                && named.crc32c == o.crc32c
                && named.kind == o.kind
                && named.generation == o.generation;
            if !fits {
                return Err(bad(format!("object {} does not match its name", o.name)));
            }
            if o.kind == ObjectKind::Tail && i + 1 != manifest.objects.len() {
                return Err(bad(format!("tail {} is not the last object", o.name)));
            }
            // Names parse only with a last LSN below the largest: no overflow here.
            let Some(prev) = i.checked_sub(1).and_then(|p| manifest.objects.get(p)) else {
                continue;
            };
            if o.first_lsn <= prev.last_lsn {
                return Err(bad(format!("object {} overlaps the one before it", o.name)));
            }
            if o.first_lsn > prev.last_lsn + 1 {
                let (first, last) = (Lsn::new(prev.last_lsn + 1), Lsn::new(o.first_lsn - 1));
                match gaps.as_deref_mut() {
                    Some(gaps) => gaps.push(Gap {
                        first,
                        last,
                        cause: GapCause::Hole,
                    }),
                    None => return Err(Error::Gap { first, last }),
                }
            }
        }
        Ok(manifest)
    }

    /// The manifest's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// A run of LSNs inside an archive (between its first and its last LSN) that it cannot
/// restore, from [`describe`]. Records below the archive's first LSN are not a gap: a prune
/// removes them on purpose, and the archive starts later.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// The first LSN missing.
    pub first: Lsn,
    /// The last LSN missing.
    pub last: Lsn,
    /// Why these records are missing.
    pub cause: GapCause,
}

/// Why a [`Gap`] is missing its records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GapCause {
    /// The manifest names no object holding them: the objects before and after leave a hole.
    Hole,
    /// The manifest names the object holding them (this name under the archive's prefix), but
    /// the store does not hold it.
    MissingObject(String),
}

/// What an archive holds, from [`describe`]: its manifest and every object under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Description {
    /// The manifest, if there is one. Unlike a restore, describing takes a manifest whose
    /// objects leave a hole: the hole is among [`gaps`](Self::gaps).
    pub manifest: Option<Manifest>,
    /// The records between the archive's first and last LSN that it cannot restore, in LSN
    /// order: holes between the manifest's objects, and the ranges of objects it names that
    /// the store does not hold. Empty for an archive a restore can read through (and for one
    /// with no manifest).
    pub gaps: Vec<Gap>,
    /// Objects under `segments/` with an archive object's name that the manifest does not
    /// name (left by an upload whose manifest write never happened, or a replaced tail), with
    /// their sizes.
    pub unreferenced: Vec<(String, u64)>,
    /// Other objects under the prefix (never read by the archive), with their sizes.
    pub foreign: Vec<(String, u64)>,
    /// The leases of readers (followers, restores), renewed or not.
    pub readers: Vec<crate::ReaderLease>,
}

/// How many times [`describe`] reads the newest manifest and lists the store again when a
/// newer manifest appeared between the two (a writer or a prune at work).
const DESCRIBE_ATTEMPTS: u32 = 3;

/// Reads the manifest of the archive in `store` and lists its objects. Blocking.
///
/// A manifest whose objects leave a hole is described, not refused: the hole is listed among
/// [`Description::gaps`], with the ranges of named objects the store does not hold.
///
/// # Errors
/// [`Error::BadManifest`] for a manifest that does not check out, [`Error::Store`],
/// [`Error::Io`] if no runtime can be started.
pub fn describe(store: &crate::Store) -> Result<Description> {
    crate::io::not_in_runtime("describe")?;
    let runtime = crate::io::runtime(
        "start a runtime for",
        std::path::PathBuf::from(store.location()),
    )?;
    runtime.block_on(async {
        let mut attempt = 0;
        let (found, all) = loop {
            attempt += 1;
            let found = crate::io::latest_manifest_as(store, Manifest::decode_with_gaps).await?;
            let all = crate::io::list(store, "").await?;
            let newer = found.as_ref().is_some_and(|(m, _)| {
                all.iter()
                    .filter_map(|(name, _)| parse_manifest_name(name))
                    .any(|seq| seq > m.seq)
            });
            if !newer || attempt >= DESCRIBE_ATTEMPTS {
                break (found, all);
            }
        };
        let (manifest, mut gaps) = found.map_or((None, Vec::new()), |(m, g)| (Some(m), g));
        let listed: std::collections::HashSet<&str> =
            all.iter().map(|(name, _)| name.as_str()).collect();
        for o in manifest.iter().flat_map(|m| &m.objects) {
            if !listed.contains(o.name.as_str()) {
                gaps.push(Gap {
                    first: Lsn::new(o.first_lsn),
                    last: Lsn::new(o.last_lsn),
                    cause: GapCause::MissingObject(o.name.clone()),
                });
            }
        }
        gaps.sort_by_key(|g| g.first);
        let named: std::collections::HashSet<&str> = manifest
            .iter()
            .flat_map(|m| m.objects.iter().map(|o| o.name.as_str()))
            .collect();
        let (mut unreferenced, mut foreign) = (Vec::new(), Vec::new());
        for (name, size) in all {
            let bookkeeping =
                parse_manifest_name(&name).is_some() || name.starts_with(&format!("{READERS}/"));
            if bookkeeping || named.contains(name.as_str()) {
                continue;
            }
            if parse_name(&name).is_some() {
                unreferenced.push((name, size));
            } else {
                foreign.push((name, size));
            }
        }
        let readers = crate::retention::leases(store).await?;
        Ok(Description {
            manifest,
            gaps,
            unreferenced,
            foreign,
            readers,
        })
    })
}
