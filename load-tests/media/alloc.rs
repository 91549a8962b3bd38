//! The global allocator of the load test: mimalloc, as in the tsps binary, counting the
//! bytes live on the heap and the allocations made. RSS says little about a bridge's
//! memory here: mimalloc keeps freed pages for reuse, so after one mode's teardown the
//! next mode's allocations fill them without RSS moving. The live byte count does not
//! depend on that.
//!
//! The counters are sharded by thread (one cache line each), so that counting does not
//! make the engine's threads contend on one line at every allocation of the mixer.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

pub struct Counting;

const SHARDS: usize = 16;

#[repr(align(64))]
struct Shard {
    bytes: AtomicI64,
    allocations: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Shard = Shard {
    bytes: AtomicI64::new(0),
    allocations: AtomicU64::new(0),
};
static COUNTS: [Shard; SHARDS] = [EMPTY; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // const-initialized and without a destructor: usable in any allocation, even while
    // the thread's other thread-locals are being destroyed.
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn shard() -> &'static Shard {
    let i = MY_SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0);
    &COUNTS[i]
}

fn count(bytes: i64, allocations: u64) {
    let s = shard();
    s.bytes.fetch_add(bytes, Relaxed);
    if allocations > 0 {
        s.allocations.fetch_add(allocations, Relaxed);
    }
}

// SAFETY: every call is forwarded to mimalloc unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) };
        count(-(layout.size() as i64), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64, 1);
        }
        p
    }
}

/// Bytes live on the heap now, and allocations made so far (reallocations included).
pub fn heap() -> (i64, u64) {
    COUNTS.iter().fold((0, 0), |(b, a), s| {
        (b + s.bytes.load(Relaxed), a + s.allocations.load(Relaxed))
    })
}
