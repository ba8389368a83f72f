//! `IrqMutex`: the kernel's lock. Taking it masks event upcalls (restored on release), so data
//! shared between threads and event handlers is never seen half-updated. The kernel runs on one
//! vCPU, so the lock can only be found taken through re-entry, which is a bug: it panics
//! instead of deadlocking.

use crate::arch::upcall as events;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A mutex whose guard also keeps event delivery disabled.
pub struct IrqMutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `locked` (checked with an atomic swap) and the
// kernel runs on a single vCPU with upcalls masked while the guard lives.
unsafe impl<T: Send> Sync for IrqMutex<T> {}
// SAFETY: moving the mutex moves the value; T: Send suffices.
unsafe impl<T: Send> Send for IrqMutex<T> {}

impl<T> IrqMutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> IrqMutex<T> {
        IrqMutex {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Masks events and takes the lock; panics on re-entry.
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let events_were_enabled = events::disable();
        if self.locked.swap(true, Ordering::Acquire) {
            panic!("IrqMutex re-entered (lock taken twice on one vCPU)");
        }
        IrqMutexGuard {
            mutex: self,
            events_were_enabled,
        }
    }

    /// Takes the lock if it is free (used by the panic path, which must not re-enter).
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let events_were_enabled = events::disable();
        if self.locked.swap(true, Ordering::Acquire) {
            events::restore(events_were_enabled);
            return None;
        }
        Some(IrqMutexGuard {
            mutex: self,
            events_were_enabled,
        })
    }
}

/// Guard of an [`IrqMutex`]; dropping it unlocks and restores event delivery.
pub struct IrqMutexGuard<'a, T> {
    mutex: &'a IrqMutex<T>,
    events_were_enabled: bool,
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access (lock held).
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access (lock held).
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.locked.store(false, Ordering::Release);
        events::restore(self.events_were_enabled);
    }
}
