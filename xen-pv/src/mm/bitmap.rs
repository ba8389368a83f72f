//! A bitmap allocator of indices `0..len` (bit set = free), lowest index first. Pure logic,
//! host-tested; it backs the page-frame allocator, the grant-map VA slots and the grant refs.

/// Why a bitmap operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitmapError {
    /// The index is not below the bitmap's length.
    OutOfRange(usize),
    /// Freeing an index that is already free (a double free).
    AlreadyFree(usize),
}

/// Allocator of indices `0..len` over a word array `S` (`Vec<u64>`, `&'static mut [u64]`, ...).
pub struct Bitmap<S> {
    words: S,
    len: usize,
    free: usize,
    /// Every index below `hint` is in use (search starts here).
    hint: usize,
}

/// Number of `u64` words needed for `len` bits.
pub const fn words_for(len: usize) -> usize {
    len.div_ceil(64)
}

impl<S: AsRef<[u64]> + AsMut<[u64]>> Bitmap<S> {
    /// A bitmap of `len` indices: `first_free..len` start free, `0..first_free` in use.
    /// Panics if `words` holds fewer than `len` bits.
    pub fn new(mut words: S, len: usize, first_free: usize) -> Self {
        assert!(
            words.as_ref().len() >= words_for(len),
            "bitmap storage too small"
        );
        words.as_mut().fill(0);
        let first_free = first_free.min(len);
        let mut b = Bitmap {
            words,
            len,
            free: len - first_free,
            hint: first_free,
        };
        (first_free..len).for_each(|i| b.set(i, true));
        b
    }

    /// Number of indices managed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the bitmap manages no index at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of free indices.
    pub fn free_count(&self) -> usize {
        self.free
    }

    /// True if `idx` is in range and free.
    pub fn is_free(&self, idx: usize) -> bool {
        idx < self.len && self.words.as_ref()[idx / 64] & (1 << (idx % 64)) != 0
    }

    fn set(&mut self, idx: usize, free: bool) {
        let w = &mut self.words.as_mut()[idx / 64];
        if free {
            *w |= 1 << (idx % 64);
        } else {
            *w &= !(1 << (idx % 64));
        }
    }

    /// Allocates the lowest free index.
    pub fn alloc(&mut self) -> Option<usize> {
        if self.free == 0 {
            return None;
        }
        let words = self.words.as_ref();
        let first = self.hint / 64;
        let (wi, w) = words
            .iter()
            .enumerate()
            .skip(first)
            .find(|(_, w)| **w != 0)?;
        let idx = wi * 64 + w.trailing_zeros() as usize;
        if idx >= self.len {
            return None;
        }
        self.set(idx, false);
        self.free -= 1;
        self.hint = idx + 1;
        Some(idx)
    }

    /// Allocates the lowest run of `n` consecutive free indices; returns its first index.
    pub fn alloc_run(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut start = self.hint;
        let mut run = 0;
        let mut idx = self.hint;
        while idx < self.len {
            if self.is_free(idx) {
                if run == 0 {
                    start = idx;
                }
                run += 1;
                if run == n {
                    for i in start..start + n {
                        self.set(i, false);
                    }
                    self.free -= n;
                    if start == self.hint {
                        self.hint = start + n;
                    }
                    return Some(start);
                }
            } else {
                run = 0;
            }
            idx += 1;
        }
        None
    }

    /// Returns `idx` to the free pool.
    pub fn free(&mut self, idx: usize) -> Result<(), BitmapError> {
        if idx >= self.len {
            return Err(BitmapError::OutOfRange(idx));
        }
        if self.is_free(idx) {
            return Err(BitmapError::AlreadyFree(idx));
        }
        self.set(idx, true);
        self.free += 1;
        self.hint = self.hint.min(idx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(len: usize) -> Bitmap<Vec<u64>> {
        Bitmap::new(vec![u64::MAX; words_for(len)], len, 0)
    }

    #[test]
    fn only_the_tail_starts_free() {
        let mut b = Bitmap::new(vec![u64::MAX; 2], 100, 97);
        assert_eq!(b.free_count(), 3);
        assert!(!b.is_free(96));
        assert_eq!(b.alloc(), Some(97));
        assert_eq!(b.alloc(), Some(98));
        assert_eq!(b.alloc(), Some(99));
        assert_eq!(b.alloc(), None);
        b.free(10).unwrap();
        assert_eq!(b.alloc(), Some(10));
        let empty = Bitmap::new(vec![0; 1], 5, 9);
        assert_eq!(empty.free_count(), 0);
    }

    #[test]
    fn allocates_lowest_first_and_reuses_freed() {
        let mut b = bitmap(130);
        for i in 0..130 {
            assert_eq!(b.alloc(), Some(i));
        }
        assert_eq!(b.alloc(), None);
        b.free(70).unwrap();
        b.free(3).unwrap();
        assert_eq!(b.free_count(), 2);
        assert_eq!(b.alloc(), Some(3));
        assert_eq!(b.alloc(), Some(70));
        assert_eq!(b.alloc(), None);
    }

    #[test]
    fn never_hands_out_bits_past_len() {
        let mut b = Bitmap::new(vec![0; 1], 5, 0);
        let got: Vec<_> = core::iter::from_fn(|| b.alloc()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn rejects_double_free_and_out_of_range() {
        let mut b = bitmap(10);
        assert_eq!(b.free(4), Err(BitmapError::AlreadyFree(4)));
        assert_eq!(b.free(10), Err(BitmapError::OutOfRange(10)));
        assert_eq!(b.free_count(), 10);
    }

    #[test]
    fn runs_are_contiguous_and_skip_holes() {
        let mut b = Bitmap::new(vec![0; words_for(200)], 200, 200);
        (0..200)
            .filter(|i| ![5, 100].contains(i))
            .for_each(|i| b.free(i).unwrap());
        assert_eq!(b.alloc_run(5), Some(0));
        assert_eq!(b.alloc_run(90), Some(6));
        assert_eq!(b.alloc_run(10), Some(101));
        assert_eq!(b.alloc(), Some(96));
        assert_eq!(b.alloc_run(100), None);
        assert_eq!(b.alloc_run(0), None);
        assert_eq!(b.free_count(), 200 - 2 - 5 - 90 - 10 - 1);
        assert_eq!(
            b.alloc_run(b.free_count()),
            None,
            "97..100 is a separate hole"
        );
        assert_eq!(b.alloc_run(89), Some(111));
    }
}
