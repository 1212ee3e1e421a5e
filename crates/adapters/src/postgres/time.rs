//! Instants as the database keeps them: `timestamptz` has microseconds, chrono nanoseconds.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// The end of a lease as its column holds it: rounded *up* to the microsecond. The driver
/// rounds the `now` it compares with down, so a stored lease reads as ended only once it has
/// ended to the nanosecond: a lease may outlive its end by under a microsecond, never be cut
/// short (two holders at once is the failure a lease exists to prevent).
pub(crate) fn lease_end(until: DateTime<Utc>) -> DateTime<Utc> {
    let down = until.trunc_subsecs(6);
    if down == until {
        until
    } else {
        down.checked_add_signed(TimeDelta::microseconds(1))
            .unwrap_or(down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lease_ends_round_up_to_the_microsecond() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert_eq!(lease_end(whole), whole);
        let odd = whole + TimeDelta::nanoseconds(1_001);
        assert_eq!(lease_end(odd), whole + TimeDelta::microseconds(2));
    }
}
