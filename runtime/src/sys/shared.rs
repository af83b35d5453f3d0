//! Memory shared with the processes forked after it is made: an anonymous shared
//! mapping of atomics (the load board's table).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// `len` atomics, all 0 at first, in an anonymous `MAP_SHARED` mapping: a process
/// forked afterwards sees the same memory at the same place. Unmapped when dropped
/// (a forked process keeps its own mapping until it exits).
#[derive(Debug)]
pub struct SharedAtomics {
    ptr: NonNull<AtomicU32>,
    len: usize,
}

// SAFETY: the mapping holds only atomics, which any thread may use through shared
// references, and it is owned by this handle alone (unmapped once, on drop).
unsafe impl Send for SharedAtomics {}
// SAFETY: as for Send: `&SharedAtomics` only hands out `&[AtomicU32]`.
unsafe impl Sync for SharedAtomics {}

impl SharedAtomics {
    /// Maps `len` (at least 1) atomics, zero-filled.
    pub fn new(len: usize) -> io::Result<SharedAtomics> {
        let size = len
            .max(1)
            .checked_mul(std::mem::size_of::<AtomicU32>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses: it
        // overlaps no memory of this program.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<AtomicU32>()).ok_or_else(|| io::Error::other("mmap"))?;
        Ok(SharedAtomics {
            ptr,
            len: len.max(1),
        })
    }

    /// The atomics.
    pub fn get(&self) -> &[AtomicU32] {
        // SAFETY: the mapping is `len` atomics long, page-aligned (so aligned for
        // AtomicU32), zero-filled by the kernel (0 is a valid AtomicU32), readable
        // and writable, and lives until `self` is dropped; atomics may be shared.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedAtomics {
    fn drop(&mut self) {
        // SAFETY: the pointer and size are those of the mmap in `new`, and no
        // reference from `get` outlives `self`.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                self.len * std::mem::size_of::<AtomicU32>(),
            );
        }
    }
}
