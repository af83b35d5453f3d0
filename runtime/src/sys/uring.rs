//! io_uring submissions that refer to no memory of ours, so queueing them is safe:
//! the kernel reads a submission when it is submitted, and a poll or its cancellation
//! names only a descriptor or another request's `user_data` (a descriptor closed by
//! then fails the poll with `EBADF`, it touches nothing of this process).

use io_uring::{opcode, squeue, types, IoUring};
use std::os::fd::RawFd;

/// Queues a poll of `fd` for `events` (poll(2) bits), multishot or not, under
/// `user_data`; `false` if the submission queue is full.
pub fn push_poll(ring: &mut IoUring, fd: RawFd, events: u32, multi: bool, user_data: u64) -> bool {
    let entry = opcode::PollAdd::new(types::Fd(fd), events)
        .multi(multi)
        .build()
        .user_data(user_data);
    // SAFETY: a poll request holds no pointer into this process's memory.
    unsafe { ring.submission().push(&entry) }.is_ok()
}

/// Queues the cancellation of the request submitted under `target` (a poll), its
/// own completion under `user_data` and posted only if it fails; `false` if the
/// queue is full.
pub fn push_cancel(ring: &mut IoUring, target: u64, user_data: u64) -> bool {
    let entry = opcode::AsyncCancel::new(target)
        .build()
        .user_data(user_data)
        .flags(squeue::Flags::SKIP_SUCCESS);
    // SAFETY: a cancellation names a request by its `user_data`, a number, not a
    // pointer.
    unsafe { ring.submission().push(&entry) }.is_ok()
}
