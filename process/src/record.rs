//! A small state record rewritten on every change, kept in two slot files replaced in place.
//!
//! Writing a whole new file and renaming it over the old one costs a new inode every time,
//! and on ext4 allocating inodes next to many recently freed ones is slow: an agent that wrote
//! each Application's memory that way spent a tenth of a fleet sync's CPU in it. A [`Record`]
//! instead keeps two files, `<path>` and `<path>.alt`, created once, and overwrites one of
//! them in place with a header line — `bosun-record 1 <seq> <len> <crc32>` — in front of the
//! content, so a torn write is recognised and the other slot still holds an earlier version:
//!
//! - a write never touches the slot holding the newest durable (fsynced) version, so a crash
//!   of the machine leaves at least that version readable;
//! - while nothing is durable yet, writes alternate between the slots, so a process killed in
//!   the middle of a write leaves the version before it; once a version is durable, later
//!   non-durable writes reuse the other slot, and a kill in the middle of one leaves the
//!   durable version (what a crash of the machine would leave anyway);
//! - reading takes the version with the highest sequence number whose length and checksum
//!   hold. A file without the header (written whole by an older version) is read as the
//!   oldest version.
//! - a sequence number is never written twice, and a slot found damaged is emptied (durably)
//!   before it is written again: a new header can begin with the same bytes as the one it
//!   overwrites, so a write torn there over a version the reader could no longer see would
//!   otherwise bring that version back.
//!
//! Bytes left after the content (a shorter version written over a longer one) are ignored;
//! the file is cut when they exceed [`SLACK`].

use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &str = "bosun-record 1 ";

/// Stale bytes tolerated after the content before the file is cut to size.
pub const SLACK: u64 = 4096;

/// The suffix of a record's second slot file.
pub const ALT_SUFFIX: &str = ".alt";

/// One record: two slot files and what this process knows of them.
#[derive(Debug)]
pub struct Record {
    paths: [PathBuf; 2],
    mode: u32,
    /// `None` until the files were read (by [`Record::read`], or by the first write).
    slots: Mutex<Option<Slots>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slots {
    /// The sequence number of the newest version read or written.
    seq: u64,
    /// The slot holding the newest version, when known.
    latest: Option<usize>,
    /// The slot holding the newest durable version: not written again until a newer version
    /// is durable in the other.
    durable: Option<usize>,
    /// Slots whose directory entry is known durable.
    entry_durable: [bool; 2],
    /// Slots whose bytes may hide a complete version this process does not know of: one
    /// found damaged (a write killed in the middle of it, over a version the read could no
    /// longer see), or one a write of this process failed in. Emptied durably before it is
    /// written again: a write torn in the same place could otherwise bring that version back,
    /// since the new header can be a prefix of the old one.
    unclean: [bool; 2],
}

/// What [`Record::read`] found.
#[derive(Debug)]
pub struct Read<T> {
    /// The newest version the caller's parser accepted.
    pub value: Option<T>,
    /// Slot files that held something unusable (torn, edited, refused by the parser), with
    /// the reason. Expected after a process was killed during a write when `value` is found;
    /// when it is not, the record is lost and these are worth keeping for a post-mortem.
    pub damaged: Vec<(PathBuf, String)>,
}

impl Record {
    /// The record at `path` (and `path` + [`ALT_SUFFIX`]); files are created with `mode` when
    /// first written. Touches nothing on disk: the files are read by [`Record::read`] or,
    /// failing that, by the first write.
    pub fn new(path: &Path, mode: u32) -> Self {
        let mut alt = path.as_os_str().to_owned();
        alt.push(ALT_SUFFIX);
        Self { paths: [path.to_path_buf(), PathBuf::from(alt)], mode, slots: Mutex::default() }
    }

    /// The primary slot file's path.
    pub fn path(&self) -> &Path {
        &self.paths[0]
    }

    /// Reads the newest usable version: slots are tried newest first and `parse` decides
    /// whether the content is usable. With `make_durable`, the version found is fsynced (it
    /// may have been written without fsync by a process killed since) and counts as durable.
    pub fn read<T>(&self, make_durable: bool, parse: impl Fn(&[u8]) -> Result<T, String>) -> io::Result<Read<T>> {
        let mut guard = self.lock();
        self.read_locked(&mut guard, make_durable, parse)
    }

    fn read_locked<T>(
        &self,
        guard: &mut Option<Slots>,
        make_durable: bool,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> io::Result<Read<T>> {
        // Kept only once the files are read: a read that fails leaves the record unlearned,
        // so the next write reads again instead of writing over a slot it knows nothing of.
        let mut slots = Slots::default();
        let mut found = Vec::new();
        let mut damaged = Vec::new();
        for (i, path) in self.paths.iter().enumerate() {
            match std::fs::read(path) {
                Ok(bytes) => match decode(&bytes, i) {
                    Ok((seq, range)) => found.push((seq, i, bytes, range)),
                    Err(why) => {
                        slots.unclean[i] = true;
                        damaged.push((path.clone(), why));
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
            }
        }
        found.sort_by(|a, b| (b.0, a.1).cmp(&(a.0, b.1)));
        slots.seq = found.first().map(|f| f.0).unwrap_or_default();
        for (seq, i, bytes, range) in found {
            match parse(&bytes[range]) {
                Ok(value) => {
                    slots.latest = Some(i);
                    if make_durable {
                        std::fs::File::open(&self.paths[i])?.sync_all()?;
                        sync_dir(&self.paths[i])?;
                        slots.durable = Some(i);
                        slots.entry_durable[i] = true;
                    }
                    *guard = Some(slots);
                    return Ok(Read { value: Some(value), damaged });
                }
                Err(why) => damaged.push((self.paths[i].clone(), format!("version {seq}: {why}"))),
            }
        }
        *guard = Some(slots);
        Ok(Read { value: None, damaged })
    }

    /// Writes a new version; with `durable`, it is on disk when this returns (the file is
    /// fsynced, and its directory the first time the slot is written).
    pub fn write(&self, content: &[u8], durable: bool) -> io::Result<()> {
        self.write_cut(content, durable, usize::MAX)
    }

    /// [`Record::write`] stopping after `cut` bytes of the slot's new content, as a process
    /// killed in the middle of the write would (for tests).
    #[doc(hidden)]
    pub fn write_cut(&self, content: &[u8], durable: bool, cut: usize) -> io::Result<()> {
        let mut guard = self.lock();
        if guard.is_none() {
            // Written before this process read it: learn which slot holds what, and make the
            // newest version durable, as a read at start would.
            self.read_locked(&mut guard, true, |_| Ok(()))?;
        }
        let slots = guard.get_or_insert_default();
        let target = match (slots.durable, slots.latest) {
            (Some(d), _) => 1 - d,
            (None, Some(l)) => 1 - l,
            (None, None) => 0,
        };
        let seq = slots.seq + 1;
        let crc = checksum(seq, content);
        let mut bytes = format!("{MAGIC}{seq} {} {crc:08x}\n", content.len()).into_bytes();
        bytes.extend_from_slice(content);
        let path = &self.paths[target];
        // The sequence number is spent whatever happens: it is never written with other
        // content.
        slots.seq = seq;
        let result = (|| {
            let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(self.mode).open(path)?;
            if slots.unclean[target] {
                f.set_len(0)?;
                f.sync_all()?;
            } else {
                // Until the write completes, the slot is as unclean as a damaged one.
                slots.unclean[target] = true;
            }
            f.write_all_at(&bytes[..cut.min(bytes.len())], 0)?;
            if cut < bytes.len() {
                return Ok(());
            }
            if f.metadata()?.len() > bytes.len() as u64 + SLACK {
                f.set_len(bytes.len() as u64)?;
            }
            if durable {
                f.sync_data()?;
                if !slots.entry_durable[target] {
                    sync_dir(path)?;
                    slots.entry_durable[target] = true;
                }
            }
            slots.unclean[target] = false;
            Ok(())
        })();
        // Whatever happened, the slot written to no longer holds what it held.
        if slots.latest == Some(target) {
            slots.latest = None;
        }
        result.map_err(|e: io::Error| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
        slots.latest = Some(target);
        if durable {
            slots.durable = Some(target);
        }
        Ok(())
    }

    /// Deletes both slot files (missing ones are fine).
    pub fn remove(&self) -> io::Result<()> {
        let mut slots = self.lock();
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io::Error::new(e.kind(), format!("removing {}: {e}", path.display())));
                }
                _ => {}
            }
        }
        *slots = Some(Slots::default());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Slots>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The stem of a record's slot file name: `name` without [`ALT_SUFFIX`].
pub fn primary_name(name: &str) -> &str {
    name.strip_suffix(ALT_SUFFIX).unwrap_or(name)
}

/// A slot's sequence number and content range; a file without the header (an older
/// version's whole-file write) is version 0 when it is the primary slot.
fn decode(bytes: &[u8], slot: usize) -> Result<(u64, std::ops::Range<usize>), String> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_bytes()) else {
        // A write killed in the middle of the header leaves part of it.
        let torn_header = MAGIC.as_bytes().starts_with(&bytes[..bytes.len().min(MAGIC.len())]);
        return if slot == 0 && !torn_header { Ok((0, 0..bytes.len())) } else { Err("no record header".into()) };
    };
    let end = rest.iter().position(|b| *b == b'\n').ok_or("the record header is cut short")?;
    let header = std::str::from_utf8(&rest[..end]).map_err(|_| "the record header is not text")?;
    let mut fields = header.split(' ');
    let mut field = |what: &str, radix: u32| {
        fields
            .next()
            .and_then(|f| u64::from_str_radix(f, radix).ok())
            .ok_or_else(|| format!("the record header has no valid {what}"))
    };
    let (seq, len, crc) = (field("sequence number", 10)?, field("length", 10)?, field("checksum", 16)?);
    let start = MAGIC.len() + end + 1;
    let stop = usize::try_from(len).ok().and_then(|l| start.checked_add(l)).filter(|s| *s <= bytes.len());
    let stop = stop.ok_or_else(|| format!("version {seq} is cut short ({} of {len} bytes)", bytes.len() - start))?;
    if u64::from(checksum(seq, &bytes[start..stop])) != crc {
        return Err(format!("version {seq} does not match its checksum"));
    }
    Ok((seq, start..stop))
}

/// The checksum of a version: over its sequence number too, so that a header torn in the
/// middle and completed by an older header's bytes does not pass for a newer version.
fn checksum(seq: u64, content: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(content);
    h.finalize()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    fn text(b: &[u8]) -> Result<String, String> {
        String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
    }

    fn read(r: &Record) -> Option<String> {
        r.read(false, text).unwrap().value
    }

    /// What a new process reads.
    fn reread(path: &Path) -> Option<String> {
        read(&Record::new(path, 0o600))
    }

    #[test]
    fn the_newest_version_is_read_back_by_a_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.json");
        let r = Record::new(&path, 0o600);
        assert_eq!(read(&r), None);
        r.write(b"a longer first version", false).unwrap();
        r.write(b"second", true).unwrap();
        r.write(b"third", false).unwrap();
        // Another process: a new handle on the same files.
        let again = Record::new(&path, 0o600);
        let found = again.read(true, text).unwrap();
        assert_eq!(found.value.as_deref(), Some("third"));
        assert!(found.damaged.is_empty());
        again.write(b"fourth", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("fourth"));
        // A process that writes without reading first learns the slots before writing: a
        // write it is killed in leaves the newest version, and the next one wins.
        Record::new(&path, 0o600).write_cut(b"fifth", false, 12).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("fourth"));
        Record::new(&path, 0o600).write(b"fifth", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("fifth"));
        for p in [&path, &dir.path().join("web.json.alt")] {
            assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let mut names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["web.json", "web.json.alt"], "two slot files and nothing else");
        r.remove().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(read(&r), None);
    }

    #[test]
    fn a_file_written_whole_by_an_older_version_is_the_oldest_version_and_kept_until_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"generation\": 3}").unwrap();
        let r = Record::new(&path, 0o600);
        assert_eq!(r.read(true, text).unwrap().value.as_deref(), Some("{\"generation\": 3}"));
        // Killed during the first write: the old file is untouched.
        r.write_cut(b"{\"generation\": 4}", false, 20).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("{\"generation\": 3}"));
        r.write(b"{\"generation\": 4}", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("{\"generation\": 4}"));
    }

    #[test]
    fn a_write_whose_first_read_failed_reads_again_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let alt = dir.path().join("r.alt");
        let r = Record::new(&path, 0o600);
        r.write(b"first", true).unwrap();
        r.write(b"second", false).unwrap();
        // A new process whose first look at the files fails (a directory in a slot's place).
        let kept = dir.path().join("kept");
        std::fs::rename(&alt, &kept).unwrap();
        std::fs::create_dir(&alt).unwrap();
        let b = Record::new(&path, 0o600);
        assert!(b.write(b"third", false).is_err());
        std::fs::remove_dir(&alt).unwrap();
        std::fs::rename(&kept, &alt).unwrap();
        // Its next write learns the slots first: it lands after "second", not under it.
        b.write(b"fourth", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("fourth"));
    }

    #[test]
    fn a_version_lost_to_a_killed_write_does_not_come_back_through_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let r = Record::new(&path, 0o600);
        r.write(b"one", true).unwrap();
        r.write(b"two", false).unwrap();
        // Killed in the middle of the header over "two": the durable "one" is what is left.
        r.write_cut(b"three", false, MAGIC.len() + 1).unwrap();
        let r = Record::new(&path, 0o600);
        assert_eq!(r.read(true, text).unwrap().value.as_deref(), Some("one"));
        // The next write takes the sequence number "two" had, into the slot still holding
        // the rest of "two"'s header and content; killed at the same byte, it must not
        // leave "two" readable again.
        r.write_cut(b"four", false, MAGIC.len() + 1).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("one"));
        // The next complete write wins.
        let r = Record::new(&path, 0o600);
        assert_eq!(r.read(true, text).unwrap().value.as_deref(), Some("one"));
        r.write(b"five", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("five"));
    }

    #[test]
    fn stale_bytes_after_a_shorter_version_are_ignored_and_cut_when_many() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let r = Record::new(&path, 0o600);
        let big = vec![b'x'; 20_000];
        r.write(&big, false).unwrap();
        r.write(&big, false).unwrap();
        r.write(b"small", false).unwrap();
        r.write(b"tiny", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("tiny"));
        for p in [&path, &dir.path().join("r.alt")] {
            assert!(std::fs::metadata(p).unwrap().len() < 100, "cut to size");
        }
        let r = Record::new(&path, 0o600);
        r.write(b"a version of forty bytes, give or take..", false).unwrap();
        r.write(b"shorter", false).unwrap();
        assert_eq!(reread(&path).as_deref(), Some("shorter"));
    }

    #[test]
    fn a_slot_the_parser_refuses_is_reported_and_the_other_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let r = Record::new(&path, 0o600);
        r.write(b"good", true).unwrap();
        r.write(b"bad", false).unwrap();
        let found = Record::new(&path, 0o600)
            .read(false, |b| if b == b"bad" { Err("refused".to_string()) } else { text(b) })
            .unwrap();
        assert_eq!(found.value.as_deref(), Some("good"));
        assert_eq!(found.damaged.len(), 1);
        assert!(found.damaged[0].1.contains("refused"), "{:?}", found.damaged);
        // Garbage in both: nothing, and both named.
        std::fs::write(&path, b"bosun-record 1 9 4 00000000\nabcd").unwrap();
        std::fs::write(dir.path().join("r.alt"), b"").unwrap();
        let found = Record::new(&path, 0o600).read(false, text).unwrap();
        assert_eq!(found.value, None);
        assert_eq!(found.damaged.len(), 2, "{:?}", found.damaged);
    }

    /// One step of a history: write a new version (durable or not), possibly killed after
    /// `cut` bytes; then perhaps restart the process, or crash the machine.
    #[derive(Debug, Clone)]
    struct Step {
        durable: bool,
        cut: Option<usize>,
        reopen: bool,
        crash: Option<Crash>,
    }

    /// What a crash does to each slot file whose content was not fsynced: the file as last
    /// fsynced, as written, or the written bytes up to `torn` over the fsynced ones.
    #[derive(Debug, Clone, Copy)]
    struct Crash {
        keep: [u8; 2],
        torn: usize,
    }

    fn step() -> impl Strategy<Value = Step> {
        let crash = (any::<[u8; 2]>(), 0usize..120).prop_map(|(keep, torn)| Crash { keep, torn });
        (
            any::<bool>(),
            prop::option::weighted(0.2, 0usize..80),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.2, crash),
        )
            .prop_map(|(durable, cut, reopen, crash)| Step { durable, cut, reopen, crash })
    }

    /// The slot files' contents.
    fn images(paths: &[PathBuf; 2]) -> [Option<Vec<u8>>; 2] {
        [std::fs::read(&paths[0]).ok(), std::fs::read(&paths[1]).ok()]
    }

    /// The machine crashes: every slot file not as last fsynced ends up as fsynced, as
    /// written, or torn between the two.
    fn crash(paths: &[PathBuf; 2], synced: &[Option<Vec<u8>>; 2], how: Crash) {
        for (i, path) in paths.iter().enumerate() {
            let now = std::fs::read(path).ok();
            if now == synced[i] {
                continue;
            }
            let after = match how.keep[i] % 3 {
                0 => synced[i].clone(),
                1 => now,
                _ => {
                    let (new, old) = (now.unwrap_or_default(), synced[i].clone().unwrap_or_default());
                    let cut = how.torn.min(new.len());
                    let mut torn = new[..cut].to_vec();
                    torn.extend_from_slice(old.get(cut..).unwrap_or_default());
                    Some(torn)
                }
            };
            match after {
                Some(b) => std::fs::write(path, b).unwrap(),
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }

    fn version_of(text: &str) -> usize {
        text.split(' ').nth(1).unwrap().parse().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Whatever the history of writes, kills in the middle of writes, restarts and crashes
        /// of the machine: what is read is the last complete write, or — after a kill during
        /// a write or a crash — a version no older than the last durable one.
        #[test]
        fn reads_never_go_behind_the_last_durable_version(steps in prop::collection::vec(step(), 1..25)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r");
            let mut r = Record::new(&path, 0o600);
            let paths = r.paths.clone();
            // What each slot file holds as far as fsyncs made it durable.
            let mut synced: [Option<Vec<u8>>; 2] = [None, None];
            let (mut last_complete, mut last_durable): (Option<usize>, Option<usize>) = (None, None);
            for (n, s) in steps.iter().enumerate() {
                // Each version's own filler: stale bytes of another never complete it.
                let filler = char::from(b'a' + (n % 26) as u8).to_string().repeat(n % 7 * 5 + 1);
                let content = format!("version {n} {filler}");
                let before = images(&paths);
                let mut lost = false;
                match s.cut {
                    Some(cut) if cut < content.len() + 20 => {
                        r.write_cut(content.as_bytes(), s.durable, cut).unwrap();
                        lost = true;
                    }
                    _ => {
                        r.write(content.as_bytes(), s.durable).unwrap();
                        last_complete = Some(n);
                        if s.durable {
                            last_durable = Some(n);
                            let after = images(&paths);
                            for i in 0..2 {
                                if after[i] != before[i] {
                                    synced[i] = after[i].clone();
                                }
                            }
                        }
                    }
                }
                if let Some(how) = s.crash {
                    crash(&paths, &synced, how);
                    lost = true;
                }
                if s.reopen || lost {
                    r = Record::new(&path, 0o600);
                    let got = r.read(true, text).unwrap().value;
                    let got_n = got.as_deref().map(version_of);
                    if lost {
                        prop_assert!(got_n >= last_durable, "read {got_n:?}, last durable {last_durable:?}");
                        prop_assert!(got_n <= last_complete, "read {got_n:?}, last complete {last_complete:?}");
                    } else {
                        prop_assert_eq!(got_n, last_complete);
                    }
                    // What was read is fsynced now, and is what the next writes build on.
                    let now = images(&paths);
                    for i in 0..2 {
                        let holds = now[i].as_deref().and_then(|b| decode(b, i).ok().map(|(_, range)| b[range].to_vec()));
                        if got.is_some() && holds.as_deref() == got.as_deref().map(str::as_bytes) {
                            synced[i] = now[i].clone();
                        }
                    }
                    last_complete = got_n;
                    last_durable = got_n;
                }
            }
        }
    }
}
