//! The reporting period a pipeline run covers, and the seed of its
//! synthetic data.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tasker_worker::{StepContext, StepError};

/// The longest period one run may cover, in days, both ends included. It
/// keeps each extract's result well under the broker's message limit.
pub const MAX_DAYS: u32 = 31;

/// The seed when the request gives none.
pub const DEFAULT_SEED: u64 = 1;

/// The days a run covers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPeriod {
    /// The first day.
    pub start_date: NaiveDate,
    /// The last day.
    pub end_date: NaiveDate,
}

impl ReportPeriod {
    /// A period from its first and last day, as `YYYY-MM-DD`.
    ///
    /// # Errors
    ///
    /// A permanent `MISSING_START_DATE`, `MISSING_END_DATE`, `INVALID_DATE`,
    /// `INVALID_DATE_RANGE` (the end is before the start) or
    /// `DATE_RANGE_TOO_LONG` (more than [`MAX_DAYS`]).
    pub fn parse(start: Option<&str>, end: Option<&str>) -> Result<Self, StepError> {
        let start_date = date("start_date", start, "MISSING_START_DATE")?;
        let end_date = date("end_date", end, "MISSING_END_DATE")?;
        if end_date < start_date {
            return Err(StepError::permanent(
                "INVALID_DATE_RANGE",
                format!("end_date {end_date} is before start_date {start_date}; swap them"),
            ));
        }
        let period = Self { start_date, end_date };
        if period.days() > MAX_DAYS {
            return Err(StepError::permanent(
                "DATE_RANGE_TOO_LONG",
                format!(
                    "{start_date} to {end_date} is {} days; one run covers at most {MAX_DAYS}, so split it",
                    period.days()
                ),
            ));
        }
        Ok(period)
    }

    /// The period and the seed from the task context: `start_date`,
    /// `end_date` and, optionally, `seed`.
    ///
    /// # Errors
    ///
    /// As [`ReportPeriod::parse`], or a permanent `invalid_input` error when
    /// a field has the wrong type.
    pub fn from_context(ctx: &StepContext) -> Result<(Self, u64), StepError> {
        let start: Option<String> = ctx.input_or("start_date", None)?;
        let end: Option<String> = ctx.input_or("end_date", None)?;
        let seed = ctx.input_or("seed", DEFAULT_SEED)?;
        Ok((Self::parse(start.as_deref(), end.as_deref())?, seed))
    }

    /// How many days, both ends included.
    #[must_use]
    pub fn days(&self) -> u32 {
        let days = (self.end_date - self.start_date).num_days() + 1;
        u32::try_from(days).unwrap_or(0)
    }

    /// Each day, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let end = self.end_date;
        self.start_date.iter_days().take_while(move |d| *d <= end)
    }
}

fn date(field: &str, value: Option<&str>, missing: &str) -> Result<NaiveDate, StepError> {
    let text = value.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(StepError::permanent(
            missing,
            format!("the pipeline request has no {field}; give it as YYYY-MM-DD"),
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        StepError::permanent(
            "INVALID_DATE",
            format!("{field} {text:?} is not a date ({e}); give it as YYYY-MM-DD"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(start: Option<&str>, end: Option<&str>) -> String {
        ReportPeriod::parse(start, end)
            .expect_err("should be refused")
            .code()
            .to_owned()
    }

    #[test]
    fn counts_both_ends() {
        let period = ReportPeriod::parse(Some("2025-02-27"), Some("2025-03-02")).expect("valid");
        assert_eq!(period.days(), 4);
        let dates: Vec<String> = period.dates().map(|d| d.to_string()).collect();
        assert_eq!(dates, ["2025-02-27", "2025-02-28", "2025-03-01", "2025-03-02"]);
        assert_eq!(
            ReportPeriod::parse(Some("2025-01-01"), Some("2025-01-01")).map(|p| p.days()),
            Ok(1)
        );
    }

    #[test]
    fn refuses_bad_periods() {
        assert_eq!(code(None, Some("2025-01-02")), "MISSING_START_DATE");
        assert_eq!(code(Some("2025-01-01"), Some(" ")), "MISSING_END_DATE");
        assert_eq!(code(Some("01/02/2025"), Some("2025-01-02")), "INVALID_DATE");
        assert_eq!(code(Some("2025-01-05"), Some("2025-01-04")), "INVALID_DATE_RANGE");
        assert!(ReportPeriod::parse(Some("2025-01-01"), Some("2025-01-31")).is_ok());
        assert_eq!(
            code(Some("2025-01-01"), Some("2025-02-01")),
            "DATE_RANGE_TOO_LONG"
        );
    }
}
