//! Job ids. An id is uuid-shaped (8-4-4-4-12 hex, version 7 layout: creation time first,
//! then random bits) and its last 12 hex digits are the row's `seq`, so a lookup by id is a
//! rowid lookup plus a comparison, and the `jobs` table needs no index on `id` (one fewer
//! page written by every enqueue, claim and completion).

/// The first 24 characters of a new id: `tttttttt-tttt-7rrr-vrrr-`.
pub fn prefix(now_ms: i64) -> String {
    let t = (now_ms as u64) & 0xFFFF_FFFF_FFFF;
    let r = fastrand::u64(..);
    let rand_a = r & 0x0FFF;
    let variant = 0x8000 | ((r >> 12) & 0x3FFF);
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-",
        t >> 16,
        t & 0xFFFF,
        rand_a,
        variant
    )
}

/// The `seq` an id carries, or -1 (which matches no row) for a string that is not an id.
pub fn seq_of(id: &str) -> i64 {
    if id.len() != 36 || !id.is_ascii() {
        return -1;
    }
    i64::from_str_radix(&id[24..], 16).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_seq() {
        let id = format!("{}{:012x}", prefix(1_700_000_000_000), 4242);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "7");
        assert_eq!(seq_of(&id), 4242);
        assert_eq!(seq_of("not-an-id"), -1);
        assert_eq!(seq_of("01234567-89ab-7def-8123-zzzzzzzzzzzz"), -1);
    }
}
