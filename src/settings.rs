//! Durations the user sets through the environment (`RANKVIEW_*` seconds:
//! the shutdown grace, the group grace, the note on a long wait in a
//! task's collective): one reading rule for all of them. Which variable
//! means what is documented where it is used.

use std::time::Duration;

/// The seconds in the environment variable `name` (a decimal number, `inf`
/// allowed), or `default` when it is unset, not a number or negative; a
/// value too large for a `Duration` is `Duration::MAX` (no limit).
pub(crate) fn seconds(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map_or(default, |s| {
            Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_default_and_saturate() {
        let name = "RANKVIEW_SETTINGS_TEST_SECONDS";
        let default = Duration::from_secs(7);
        std::env::remove_var(name);
        assert_eq!(seconds(name, default), default);
        for (value, want) in [
            (" 1.5 ", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
            ("inf", Duration::MAX),
            ("1e300", Duration::MAX),
            ("-1", default),
            ("soon", default),
        ] {
            std::env::set_var(name, value);
            assert_eq!(seconds(name, default), want, "{value:?}");
        }
        std::env::remove_var(name);
    }
}
