//! Memory shared with the processes forked after it is made: an anonymous shared
//! mapping of atomics (the load board's table, the counters of `stats`).

use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An atomic integer that may live in a [`SharedAtomics`] mapping: all-zero bytes
/// are one of its values (the kernel fills a new mapping with zeroes).
pub trait Word: sealed::Sealed + Sync + Send {
    /// Stores 0, relaxed.
    fn zero(&self);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::AtomicU32 {}
    impl Sealed for super::AtomicU64 {}
}

impl Word for AtomicU32 {
    fn zero(&self) {
        self.store(0, Ordering::Relaxed);
    }
}

impl Word for AtomicU64 {
    fn zero(&self) {
        self.store(0, Ordering::Relaxed);
    }
}

/// `len` atomics, all 0 at first, in an anonymous `MAP_SHARED` mapping: a process
/// forked afterwards sees the same memory at the same place. Unmapped when dropped
/// (a forked process keeps its own mapping until it exits).
///
/// Only the pages a process touches become resident (and count in its RSS): a large
/// mapping costs address space, not memory, until it is used.
#[derive(Debug)]
pub struct SharedAtomics<T: Word = AtomicU32> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the mapping holds only atomics (`Word` is sealed: AtomicU32, AtomicU64),
// which any thread may use through shared references, and it is owned by this handle
// alone (unmapped once, on drop).
unsafe impl<T: Word> Send for SharedAtomics<T> {}
// SAFETY: as for Send: `&SharedAtomics` only hands out `&[T]` of atomics.
unsafe impl<T: Word> Sync for SharedAtomics<T> {}

impl<T: Word> SharedAtomics<T> {
    /// Maps `len` (at least 1) atomics, zero-filled. The mapping reserves no swap
    /// (`MAP_NORESERVE`) where the kernel's overcommit policy allows it.
    pub fn new(len: usize) -> io::Result<SharedAtomics<T>> {
        let size = len
            .max(1)
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses: it
        // overlaps no memory of this program.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<T>()).ok_or_else(|| io::Error::other("mmap"))?;
        Ok(SharedAtomics {
            ptr,
            len: len.max(1),
        })
    }

    /// The atomics.
    pub fn get(&self) -> &[T] {
        // SAFETY: the mapping is `len` atomics long, page-aligned (so aligned for
        // T), zero-filled by the kernel (0 is a valid T: `Word`), readable and
        // writable, and lives until `self` is dropped; atomics may be shared.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Sets the atomics of `range` (clipped to the mapping) to 0, of which only the
    /// first `written` may hold anything else (the rest are known to be 0 still).
    /// The pages wholly inside `range` are given back to the system (`MADV_REMOVE`,
    /// on Linux): they read as 0 and are resident again only once touched; the
    /// other words among the first `written` are stored 0 (all of them where
    /// pages cannot be given back). What another process stores into the range
    /// meanwhile may be lost: callers clear only what no process writes any more.
    pub fn clear(&self, range: Range<usize>, written: usize) {
        let words = self.get();
        let end = range.end.min(words.len());
        let Some(words) = words.get(range.start.min(end)..end) else {
            return;
        };
        let removed = remove_pages(words);
        for word in words.iter().take(written) {
            let at = word as *const T as usize;
            if !removed.contains(&at) {
                word.zero();
            }
        }
    }
}

/// Punches out the whole pages inside `words` (Linux's `MADV_REMOVE` on shared
/// memory): the address range whose pages now read as 0, empty when nothing was
/// removed.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn remove_pages<T: Word>(words: &[T]) -> Range<usize> {
    let page = page_size();
    let start = words.as_ptr() as usize;
    let end = start + std::mem::size_of_val(words);
    let (Some(first), last) = (start.checked_next_multiple_of(page), end / page * page) else {
        return 0..0;
    };
    if first >= last {
        return 0..0;
    }
    // SAFETY: [first, last) is page-aligned and lies within `words`, hence within a
    // MAP_SHARED | MAP_ANONYMOUS mapping of this process (shared memory, which
    // MADV_REMOVE punches a hole in). The pages hold only atomics (`Word`), for which
    // the zeroes read afterwards are valid values, and atomics may change under a
    // shared reference (as when another process stores to them); no reference to
    // anything but atomics points into the range.
    let done =
        unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_REMOVE) };
    if done == 0 {
        first..last
    } else {
        0..0
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn remove_pages<T: Word>(_words: &[T]) -> Range<usize> {
    0..0
}

/// A time as one word of a shared table: milliseconds since the Unix epoch, at least
/// 1, so that 0 can stand for "never" ([`word_time`]); a time before the epoch is 1.
pub fn time_word(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(1, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

/// The time a word written by [`time_word`] holds (`None` for 0: never).
pub fn word_time(word: u64) -> Option<SystemTime> {
    (word != 0).then(|| UNIX_EPOCH + Duration::from_millis(word))
}

/// The system's page size (4 KiB when it cannot say).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn page_size() -> usize {
    // SAFETY: sysconf(3) takes a constant and touches no memory of the caller.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

impl<T: Word> Drop for SharedAtomics<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer and size are those of the mmap in `new`, and no
        // reference from `get` outlives `self`.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                self.len * std::mem::size_of::<T>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clear` zeroes exactly its range (the words around it keep their values),
    /// and the whole pages inside it are no longer resident.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn clear_zeroes_its_range_and_gives_the_pages_inside_back() {
        let per_page = page_size() / std::mem::size_of::<AtomicU64>();
        let shared = SharedAtomics::<AtomicU64>::new(4 * per_page).unwrap();
        let words = shared.get();
        for (i, word) in words.iter().enumerate() {
            word.store(i as u64 + 1, Ordering::Relaxed);
        }
        let resident = || crate::sys::testing::resident_kib(words.as_ptr() as usize).unwrap();
        let page_kib = (page_size() / 1024) as u64;
        assert_eq!(resident(), 4 * page_kib);
        // From inside page 0 to inside page 2: page 1 is wholly inside.
        let range = per_page / 2..2 * per_page + 3;
        shared.clear(range.clone(), range.len());
        for (i, word) in words.iter().enumerate() {
            let expected = if range.contains(&i) { 0 } else { i as u64 + 1 };
            assert_eq!(word.load(Ordering::Relaxed), expected, "word {i}");
        }
        // Reading page 1 back (above) made it resident again, as zeroes: clear it
        // and look before touching it.
        shared.clear(per_page..2 * per_page, 0);
        assert_eq!(resident(), 3 * page_kib, "page 1 given back");
        assert_eq!(words[per_page + 7].load(Ordering::Relaxed), 0);
        // Out of range or empty: nothing happens.
        shared.clear(4 * per_page..8 * per_page, 8 * per_page);
        shared.clear(3..3, 0);
        assert_eq!(words[3].load(Ordering::Relaxed), 4);
    }
}
