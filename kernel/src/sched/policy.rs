//! The scheduler's decisions, without any context switching: thread slots and their states, a
//! FIFO run queue (round robin), deadlines of blocked threads, and what to do next (stay, switch
//! to a slot, or idle until the earliest deadline). Pure logic, host-tested.
//!
//! `wake` never allocates (the run queue keeps room for every thread), so event handlers may
//! call it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Index of a thread in the scheduler's table (slots are reused after a thread is reaped).
pub type Slot = usize;

/// A thread's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// On the CPU.
    Running,
    /// In the run queue.
    Runnable,
    /// Waiting for a wake-up, or for its deadline (system time in ns) if it has one.
    Blocked(Option<u64>),
    /// Finished; its slot is reaped by the next thread to run.
    Exited,
}

/// What the scheduler should do after the current thread gave up the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep running the current thread.
    Stay,
    /// Switch from slot `from` to slot `to`.
    Switch {
        /// The thread giving up the CPU.
        from: Slot,
        /// The thread to run.
        to: Slot,
    },
    /// Nothing can run: block the domain until an event or the deadline (if any).
    Idle(Option<u64>),
}

/// Thread states and the run queue.
pub struct Policy {
    states: Vec<Option<State>>,
    runq: VecDeque<Slot>,
    current: Slot,
    zombie: Option<Slot>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy {
    /// Slot 0 is the thread that called `new` (the boot thread), running.
    pub fn new() -> Policy {
        Policy {
            states: alloc::vec![Some(State::Running)],
            runq: VecDeque::with_capacity(1),
            current: 0,
            zombie: None,
        }
    }

    /// Adds a runnable thread at the back of the run queue; returns its slot.
    pub fn add(&mut self) -> Slot {
        let slot = match self.states.iter().position(Option::is_none) {
            Some(s) => {
                self.states[s] = Some(State::Runnable);
                s
            }
            None => {
                self.states.push(Some(State::Runnable));
                self.states.len() - 1
            }
        };
        let live = self.states.iter().filter(|s| s.is_some()).count();
        self.runq.reserve(live.saturating_sub(self.runq.len()));
        self.runq.push_back(slot);
        slot
    }

    /// The running thread's slot.
    pub fn current(&self) -> Slot {
        self.current
    }

    /// State of `slot` (`None`: free slot).
    pub fn state(&self, slot: Slot) -> Option<State> {
        self.states.get(slot).copied().flatten()
    }

    /// Threads alive (not reaped).
    pub fn live(&self) -> usize {
        self.states.iter().filter(|s| s.is_some()).count()
    }

    fn set(&mut self, slot: Slot, state: State) {
        if let Some(s) = self.states.get_mut(slot) {
            *s = Some(state);
        }
    }

    /// The current thread goes to the back of the run queue.
    pub fn yield_current(&mut self) {
        self.set(self.current, State::Runnable);
        self.runq.push_back(self.current);
    }

    /// The current thread waits for [`Policy::wake`] or until `deadline`.
    pub fn block_current(&mut self, deadline: Option<u64>) {
        self.set(self.current, State::Blocked(deadline));
    }

    /// The current thread is done.
    pub fn exit_current(&mut self) {
        self.set(self.current, State::Exited);
    }

    /// Makes a blocked thread runnable; returns whether it was blocked. Never allocates.
    pub fn wake(&mut self, slot: Slot) -> bool {
        if let Some(State::Blocked(_)) = self.state(slot) {
            self.set(slot, State::Runnable);
            self.runq.push_back(slot);
            true
        } else {
            false
        }
    }

    /// Wakes every blocked thread whose deadline is at or before `now`.
    pub fn expire(&mut self, now: u64) {
        for slot in 0..self.states.len() {
            if let Some(State::Blocked(Some(d))) = self.state(slot) {
                if d <= now {
                    self.wake(slot);
                }
            }
        }
    }

    /// Earliest deadline among blocked threads.
    pub fn next_deadline(&self) -> Option<u64> {
        self.states
            .iter()
            .filter_map(|s| match s {
                Some(State::Blocked(d)) => *d,
                _ => None,
            })
            .min()
    }

    /// Decides what runs next at time `now` (call after yield/block/exit of the current one).
    pub fn pick(&mut self, now: u64) -> Next {
        self.expire(now);
        if self.state(self.current) == Some(State::Running) {
            return Next::Stay;
        }
        match self.runq.pop_front() {
            Some(to) if to == self.current => {
                self.set(to, State::Running);
                Next::Stay
            }
            Some(to) => {
                let from = self.current;
                if self.state(from) == Some(State::Exited) {
                    self.zombie = Some(from);
                }
                self.set(to, State::Running);
                self.current = to;
                Next::Switch { from, to }
            }
            None => Next::Idle(self.next_deadline()),
        }
    }

    /// The exited thread the last switch left behind (its stack can be freed now that it is
    /// no longer in use); its slot becomes free.
    pub fn take_zombie(&mut self) -> Option<Slot> {
        let z = self.zombie.take()?;
        if let Some(s) = self.states.get_mut(z) {
            *s = None;
        }
        Some(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_in_spawn_order() {
        let mut p = Policy::new();
        let a = p.add();
        let b = p.add();
        assert_eq!((a, b), (1, 2));
        p.yield_current();
        assert_eq!(p.pick(0), Next::Switch { from: 0, to: 1 });
        p.yield_current();
        assert_eq!(p.pick(0), Next::Switch { from: 1, to: 2 });
        p.yield_current();
        assert_eq!(p.pick(0), Next::Switch { from: 2, to: 0 });
        assert_eq!(p.state(0), Some(State::Running));
        assert_eq!(p.state(1), Some(State::Runnable));
    }

    #[test]
    fn yield_alone_stays() {
        let mut p = Policy::new();
        p.yield_current();
        assert_eq!(p.pick(5), Next::Stay);
        assert_eq!(p.state(0), Some(State::Running));
    }

    #[test]
    fn blocked_threads_idle_until_earliest_deadline_then_wake() {
        let mut p = Policy::new();
        let a = p.add();
        p.block_current(Some(500));
        assert_eq!(p.pick(0), Next::Switch { from: 0, to: a });
        p.block_current(Some(300));
        assert_eq!(p.pick(100), Next::Idle(Some(300)));
        assert_eq!(p.pick(299), Next::Idle(Some(300)));
        assert_eq!(
            p.pick(300),
            Next::Stay,
            "a's own deadline passed: it runs on"
        );
        assert_eq!(p.state(a), Some(State::Running));
        p.block_current(None);
        assert_eq!(p.pick(400), Next::Idle(Some(500)));
        assert_eq!(p.pick(500), Next::Switch { from: a, to: 0 });
    }

    #[test]
    fn wake_only_moves_blocked_threads_once() {
        let mut p = Policy::new();
        let a = p.add();
        assert!(!p.wake(a), "runnable already");
        p.block_current(None);
        assert_eq!(p.pick(0), Next::Switch { from: 0, to: a });
        assert!(p.wake(0));
        assert!(!p.wake(0), "second wake is a no-op");
        assert!(!p.wake(7), "unknown slot");
        p.block_current(None);
        assert_eq!(p.pick(0), Next::Switch { from: a, to: 0 });
        p.block_current(None);
        assert_eq!(p.pick(0), Next::Idle(None));
    }

    #[test]
    fn exited_thread_is_reaped_after_switch_and_slot_reused() {
        let mut p = Policy::new();
        let a = p.add();
        p.block_current(None);
        assert_eq!(p.pick(0), Next::Switch { from: 0, to: a });
        p.wake(0);
        p.exit_current();
        assert_eq!(p.take_zombie(), None);
        assert_eq!(p.pick(0), Next::Switch { from: a, to: 0 });
        assert_eq!(p.take_zombie(), Some(a));
        assert_eq!(p.state(a), None);
        assert_eq!(p.live(), 1);
        assert_eq!(p.add(), a, "slot reused");
    }

    #[test]
    fn exited_thread_with_nothing_runnable_idles_on_its_stack() {
        let mut p = Policy::new();
        p.exit_current();
        assert_eq!(p.pick(0), Next::Idle(None));
        let a = p.add();
        assert_eq!(p.pick(0), Next::Switch { from: 0, to: a });
        assert_eq!(p.take_zombie(), Some(0));
    }

    #[test]
    fn wake_does_not_grow_the_run_queue() {
        let mut p = Policy::new();
        let slots: Vec<_> = (0..10).map(|_| p.add()).collect();
        let cap = p.runq.capacity();
        p.block_current(None);
        for _ in &slots {
            assert!(matches!(p.pick(0), Next::Switch { .. }));
            p.block_current(None);
        }
        assert_eq!(p.pick(0), Next::Idle(None));
        for s in 0..=10 {
            assert!(p.wake(s));
        }
        assert_eq!(p.runq.capacity(), cap);
        assert_eq!(p.runq.len(), 11);
    }
}
