//! Gives memory the allocator holds free back to the operating system after a burst of work.
//!
//! A thousand agents connecting, or a commit reported by every cluster at once, allocate and
//! free a great deal in a few seconds. glibc's allocator keeps what was freed in the middle of
//! its heaps for reuse and returns it only when asked (`malloc_trim`): after such a burst the
//! control plane's resident memory stayed about 10 KiB per connected agent above what it
//! holds. [`trim_after_bursts`] looks every [`TICK`] and trims once a burst is over: when
//! resident memory grew by [`GROWTH`] since the last trim, the allocator holds at least that
//! much free, and resident memory stopped growing (by less than [`QUIET`] over the last
//! tick). Never during a burst: pages given back then are taken again at once, and trimming
//! every tick while a fleet synced slowed the control plane and the whole fleet with it.
//! Memory in use is never touched; a trim costs milliseconds and happens once per burst.

use std::time::Duration;

/// How often resident memory is looked at.
pub const TICK: Duration = Duration::from_secs(2);

/// Growth of resident memory, and free memory held by the allocator, that make a trim worth it.
pub const GROWTH: u64 = 4 << 20;

/// Growth over one tick below which a burst is taken to be over.
pub const QUIET: u64 = 1 << 20;

/// What a trim is decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Resident memory of the process.
    pub resident: u64,
    /// Memory the allocator holds free.
    pub free: u64,
}

/// Whether to trim now, given resident memory a tick ago and after the last trim (or the
/// lowest seen since).
pub fn worth_trimming(now: Sample, tick_ago: u64, after_last: u64) -> bool {
    now.resident >= after_last.saturating_add(GROWTH)
        && now.free >= GROWTH
        && now.resident < tick_ago.saturating_add(QUIET)
}

/// Runs until `stop` completes, trimming the heap after bursts (a no-op where the allocator is
/// not glibc's).
pub async fn trim_after_bursts(stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let Some(first) = sample() else { return };
    let (mut after_last, mut tick_ago) = (first.resident, first.resident);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = &mut stop => return,
        }
        let Some(now) = sample() else { return };
        let last_tick = std::mem::replace(&mut tick_ago, now.resident);
        if !worth_trimming(now, last_tick, after_last) {
            // Memory given back otherwise lowers the mark the next burst is measured from.
            after_last = after_last.min(now.resident);
            continue;
        }
        // The trim walks the allocator's free lists: on the blocking pool.
        let Ok(after) = tokio::task::spawn_blocking(|| {
            trim();
            sample()
        })
        .await
        else {
            return;
        };
        let Some(after) = after else { return };
        tracing::debug!(
            resident_before = now.resident,
            resident_after = after.resident,
            "gave free heap memory back to the system"
        );
        (after_last, tick_ago) = (after.resident, after.resident);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn sample() -> Option<Sample> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf and mallinfo2 read process-wide values and have no preconditions.
    let (page, info) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::mallinfo2()) };
    Some(Sample { resident: pages * u64::try_from(page).ok()?, free: info.fordblks as u64 })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases pages of free chunks; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn sample() -> Option<Sample> {
    None
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_trim_waits_for_growth_with_free_memory_to_give_back() {
        let s = |resident_mib: u64, free_mib: u64| Sample { resident: resident_mib * MIB, free: free_mib * MIB };
        // (sample, resident a tick ago and after the last trim in MiB, trim?)
        let table = [
            (s(100, 10), 100, 100, false), // nothing grew
            (s(103, 10), 103, 100, false), // grew less than GROWTH
            (s(104, 10), 104, 100, true),  // grew by GROWTH, with as much free, and is quiet
            (s(104, 10), 103, 100, false), // grew by QUIET in the last tick: the burst goes on
            (s(130, 10), 100, 100, false), // grew by all of it in the last tick
            (s(150, 3), 150, 100, false),  // grew, but it is all in use
            (s(150, 4), 150, 100, true),
            (s(90, 50), 90, 100, false), // below the mark: memory went back otherwise
        ];
        for (now, tick_ago, after_last, want) in table {
            assert_eq!(
                worth_trimming(now, tick_ago * MIB, after_last * MIB),
                want,
                "{now:?}, {tick_ago} MiB a tick ago, {after_last} MiB after the last trim"
            );
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn memory_freed_in_the_middle_of_the_heap_goes_back_to_the_system() {
        // Many small blocks, every other one kept: the freed ones cannot shrink the heap from
        // its end, only a trim returns their pages.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|_| vec![1u8; 2048]).collect();
        let before = sample().unwrap();
        let kept: Vec<Vec<u8>> = blocks.drain(..).enumerate().filter(|(i, _)| i % 8 == 0).map(|(_, b)| b).collect();
        let held = sample().unwrap();
        assert!(held.free >= GROWTH, "the allocator holds the freed blocks: {held:?}");
        trim();
        let after = sample().unwrap();
        assert!(
            after.resident + 8 * MIB < before.resident,
            "a trim gave back the pages of the freed blocks: {before:?} → {after:?}"
        );
        drop(kept);
    }
}
