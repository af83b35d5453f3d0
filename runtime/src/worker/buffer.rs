//! Relay buffers: one scratch buffer per worker, and a per-direction remainder
//! allocated only while a destination is slower than its source.
//!
//! A relayed connection that is idle holds no user-space buffer at all: data is read
//! into the worker's scratch buffer and written straight to the other side; only
//! the part the other side did not accept is copied into a [`Pending`], which is
//! freed as soon as it has been written. While a direction has a remainder its
//! source is not read (backpressure), so a remainder never exceeds one scratch
//! buffer.

/// Size of the worker's scratch buffer, and so the largest single read.
pub const SCRATCH_SIZE: usize = 64 * 1024;

/// The worker's scratch buffer.
pub fn scratch() -> Box<[u8]> {
    vec![0u8; SCRATCH_SIZE].into_boxed_slice()
}

/// Bytes read from one side that the other side has not accepted yet.
#[derive(Debug, Default)]
pub struct Pending {
    data: Option<Box<[u8]>>,
    /// How much of `data` has been written already.
    offset: usize,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
    }

    /// Unwritten bytes.
    pub fn len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len() - self.offset)
    }

    /// Bytes allocated (0 when nothing is pending).
    pub fn allocated(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.data {
            Some(d) => &d[self.offset..],
            None => &[],
        }
    }

    /// Keeps `rest`, the part of a read the destination did not take. Only called
    /// when nothing is pending (the source is not read while something is).
    pub fn store(&mut self, rest: &[u8]) {
        debug_assert!(self.is_empty(), "a remainder is stored over another");
        if rest.is_empty() {
            return;
        }
        self.data = Some(rest.into());
        self.offset = 0;
    }

    /// Marks `n` bytes as written; frees the buffer once everything is.
    pub fn consume(&mut self, n: usize) {
        self.offset += n;
        if self.data.as_ref().is_some_and(|d| self.offset >= d.len()) {
            self.data = None;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remainder_is_freed_once_written() {
        let mut p = Pending::default();
        assert!(p.is_empty());
        assert_eq!(p.allocated(), 0);
        p.store(b"hello");
        assert_eq!(p.len(), 5);
        p.consume(2);
        assert_eq!(p.as_slice(), b"llo");
        assert_eq!(p.allocated(), 5);
        p.consume(3);
        assert!(p.is_empty());
        assert_eq!(p.allocated(), 0);
        p.store(b"");
        assert!(p.is_empty());
    }
}
