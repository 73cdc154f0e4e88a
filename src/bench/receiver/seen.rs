//! Which benchmark events arrived on a path, by their number (`"id":"e00001234"`): whether
//! every one arrived, how many arrived more than once (at-least-once delivery re-sends after a
//! crash or a rebalance), and, when the scenario says how events were spread over source
//! partitions (number modulo partitions), whether each partition's events first arrived in
//! order. A bitmap and a few counters: cheap enough for the `wrk` reference path, and nothing
//! is recorded unless a body carries ids.

use std::sync::LazyLock;

use memchr::memmem::Finder;

static ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""id":"e"#).into_owned());

/// What one path saw.
#[derive(Debug, Default)]
pub struct Seen {
    bits: Vec<u64>,
    /// Distinct event numbers.
    pub distinct: u64,
    /// Arrivals of a number already seen.
    pub duplicates: u64,
    /// Partitions the events were spread over (number modulo this); 0: order not checked.
    modulus: u64,
    /// Per partition, the highest number arrived (first arrivals only).
    last: Vec<u64>,
    /// First arrivals lower than an earlier first arrival of the same partition.
    pub out_of_order: u64,
}

impl Seen {
    /// Checks order over `modulus` partitions from now on (0: not at all).
    pub fn check_order(&mut self, modulus: u64) {
        self.modulus = modulus;
        self.last = vec![u64::MAX; modulus as usize];
    }

    /// Records event number `n`.
    pub fn record(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.bits[word] |= 1 << bit;
        self.distinct += 1;
        if self.modulus > 0 {
            let last = &mut self.last[(n % self.modulus) as usize];
            if *last != u64::MAX && n < *last {
                self.out_of_order += 1;
            }
            if *last == u64::MAX || n > *last {
                *last = n;
            }
        }
    }

    /// Records every event number in `body`.
    pub fn record_body(&mut self, body: &[u8]) {
        for at in ID.find_iter(body) {
            let rest = &body[at + ID.needle().len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(n) = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                self.record(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_duplicates_and_order_per_partition() {
        let mut seen = Seen::default();
        seen.check_order(2);
        seen.record_body(br#"[{"id":"e00000000","x":1},{"id":"e00000002"},{"id":"e00000001"}]"#);
        seen.record_body(br#"{"id":"e00000003"}"#);
        seen.record_body(br#"{"id":"e00000002"}"#); // a re-delivery: not an order problem
        assert_eq!(
            (seen.distinct, seen.duplicates, seen.out_of_order),
            (4, 1, 0)
        );
        seen.record(6);
        seen.record(4); // partition 0 went 0, 2, 6, then 4
        assert_eq!(seen.out_of_order, 1);
        seen.record_body(b"no ids here");
        assert_eq!(seen.distinct, 6);
    }
}
