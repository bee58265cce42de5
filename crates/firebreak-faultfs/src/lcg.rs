//! [`Lcg`]: the small deterministic generator of the randomized tests, so a
//! failing seed replays.

/// A 64-bit linear congruential generator seeded with its state.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// The next number in `0..bound`.
    pub(crate) fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}
