//! A job's time limit: read in Slurm's forms, written in each scheduler's.
//!
//! Owns parsing `--time` (`MINUTES`, `MINUTES:SECONDS`, `HOURS:MINUTES:SECONDS`,
//! `DAYS-HOURS`, `DAYS-HOURS:MINUTES`, `DAYS-HOURS:MINUTES:SECONDS`, as
//! `sbatch --time` takes them) and rendering it for Slurm (`D-HH:MM:SS` or
//! `HH:MM:SS`) and PBS (`HH:MM:SS`, hours unbounded). Pure.

use std::fmt;

/// A positive time limit, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walltime(u64);

impl Walltime {
    /// Parses a `--time` value (see the module doc); zero is refused (Slurm
    /// reads it as "no limit", which sites rarely allow).
    pub fn parse(value: &str) -> Result<Walltime, String> {
        let bad = || {
            format!(
                "expected a time limit such as 30 (minutes), 01:30:00, 2-00:00:00 or 1-12, \
                 not {value:?}"
            )
        };
        let text = value.trim();
        let (days, rest) = match text.split_once('-') {
            Some((days, rest)) => (Some(number(days).ok_or_else(bad)?), rest),
            None => (None, text),
        };
        let parts = rest
            .split(':')
            .map(number)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(bad)?;
        let (h, m, s) = match (days.is_some(), parts.as_slice()) {
            (false, [m]) => (0, *m, 0),
            (false, [m, s]) => (0, *m, *s),
            (_, [h, m, s]) => (*h, *m, *s),
            (true, [h]) => (*h, 0, 0),
            (true, [h, m]) => (*h, *m, 0),
            _ => return Err(bad()),
        };
        let seconds = days
            .unwrap_or(0)
            .checked_mul(24)
            .and_then(|d| d.checked_add(h))
            .and_then(|h| h.checked_mul(60))
            .and_then(|h| h.checked_add(m))
            .and_then(|m| m.checked_mul(60))
            .and_then(|m| m.checked_add(s))
            .ok_or_else(bad)?;
        if seconds == 0 {
            return Err("the time limit must be more than 0".to_string());
        }
        Ok(Walltime(seconds))
    }

    /// The limit in seconds.
    #[cfg(test)]
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// Slurm's form: `HH:MM:SS`, or `D-HH:MM:SS` from one day on.
    pub fn slurm(self) -> String {
        let (days, rest) = (self.0 / 86_400, self.0 % 86_400);
        let hms = hms(rest);
        if days > 0 {
            format!("{days}-{hms}")
        } else {
            hms
        }
    }

    /// PBS's `walltime` form: `HH:MM:SS`, hours past 24 as they are.
    pub fn pbs(self) -> String {
        hms(self.0)
    }
}

impl fmt::Display for Walltime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.slurm())
    }
}

/// `HH:MM:SS` of a number of seconds (hours not wrapped).
fn hms(seconds: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A whole number of digits only (no sign, no spaces inside).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(value: &str) -> u64 {
        Walltime::parse(value).unwrap().seconds()
    }

    #[test]
    fn slurm_forms() {
        assert_eq!(secs("30"), 30 * 60);
        assert_eq!(secs("30:15"), 30 * 60 + 15);
        assert_eq!(secs("00:10:00"), 600);
        assert_eq!(secs("36:00:00"), 36 * 3600);
        assert_eq!(secs("2-00:00:00"), 2 * 86_400);
        assert_eq!(secs("1-12"), 36 * 3600);
        assert_eq!(secs("1-0:30"), 86_400 + 1800);
        for bad in [
            "", "0", "00:00:00", "abc", "1:2:3:4", "-5", "1-", "1-2-3", "+5", "1.5",
        ] {
            assert!(Walltime::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rendered_per_scheduler() {
        let ten = Walltime::parse("10").unwrap();
        assert_eq!(
            (ten.slurm(), ten.pbs()),
            ("00:10:00".into(), "00:10:00".into())
        );
        let long = Walltime::parse("36:05:09").unwrap();
        assert_eq!(long.slurm(), "1-12:05:09");
        assert_eq!(long.pbs(), "36:05:09");
        assert_eq!(long.to_string(), "1-12:05:09");
    }
}
