//! Whether the small model is good enough on a task: its main metric against the hosted
//! model's on the same items, judged with a margin and the uncertainty of the difference.
//!
//! The rule, applied in this order to the small-minus-hosted difference `d` of the main
//! metric (scores in 0..1, so a margin of 0.05 is 5 points) over the `n` items scored
//! for both models, and its paired 95% interval `[low, high]`:
//! 1. inconclusive when `n < MIN_ITEMS`: a bootstrap over a handful of items can have
//!    no width at all (two items the small model gets right and the hosted one wrong);
//! 2. inconclusive when `high - low > 2 × margin`: too few items to tell;
//! 3. better when `low > 0`: the small model scores higher beyond doubt;
//! 4. comparable when `d ≥ -margin`;
//! 5. worse otherwise.

use serde::{Deserialize, Serialize};

use crate::tasks::metrics::interval::bootstrap_mean;

/// The margin the page and the CLI start from: 5 points of the main metric.
pub const DEFAULT_MARGIN: f64 = 0.05;

/// Items scored for both models below which every task is inconclusive.
pub const MIN_ITEMS: usize = 10;

/// Tasks the study compares on; the headline counts against this.
pub const STUDY_TASKS: usize = 6;

/// Seed of the paired bootstrap, fixed so a report is reproducible.
const SEED: u64 = 0x5eed_d1ff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Better,
    Comparable,
    Worse,
    Inconclusive,
}

impl Verdict {
    /// Better and comparable both mean the small model is good enough for the task.
    pub fn good_enough(self) -> bool {
        matches!(self, Verdict::Better | Verdict::Comparable)
    }
}

/// The step of the rule that decided, so the page can word it in its own language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    TooFewItems,
    WideInterval,
    AboveZero,
    WithinMargin,
    BeyondMargin,
}

/// The verdict on one task with the figures it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub rule: Rule,
    /// Items scored for both models, and the fewest the rule accepts.
    pub items: usize,
    pub minimum_items: usize,
    /// Small minus hosted mean score.
    pub difference: f64,
    /// Paired 95% percentile-bootstrap interval of the difference.
    pub interval: (f64, f64),
    pub margin: f64,
    /// The rule that decided, in English, with the numbers filled in.
    pub reason: String,
}

/// Computes the 95% interval of the mean difference over paired item scores
/// `(small, hosted)`, resampling items so both models' scores on an item stay together.
pub fn difference_interval(paired: &[(f64, f64)]) -> (f64, f64) {
    let differences: Vec<f64> = paired.iter().map(|(s, h)| s - h).collect();
    bootstrap_mean(&differences, SEED)
}

/// Applies the rule in the module documentation.
pub fn judge(difference: f64, interval: (f64, f64), margin: f64, items: usize) -> Judgement {
    let (low, high) = interval;
    let width = high - low;
    let points = |v: f64| format!("{:+.1}", v * 100.0);
    let (verdict, rule, reason) = if items < MIN_ITEMS {
        (
            Verdict::Inconclusive,
            Rule::TooFewItems,
            format!("only {items} items were compared; a verdict needs at least {MIN_ITEMS}"),
        )
    } else if width > 2.0 * margin {
        (
            Verdict::Inconclusive,
            Rule::WideInterval,
            format!(
                "the 95% interval of the difference, [{}, {}] points, is {:.1} points wide, \
                 more than twice the {:.1}-point margin",
                points(low),
                points(high),
                width * 100.0,
                margin * 100.0
            ),
        )
    } else if low > 0.0 {
        (
            Verdict::Better,
            Rule::AboveZero,
            format!(
                "the whole 95% interval of the difference, [{}, {}] points, is above zero",
                points(low),
                points(high)
            ),
        )
    } else if difference >= -margin {
        (
            Verdict::Comparable,
            Rule::WithinMargin,
            format!(
                "the difference, {} points, is within the {:.1}-point margin",
                points(difference),
                margin * 100.0
            ),
        )
    } else {
        (
            Verdict::Worse,
            Rule::BeyondMargin,
            format!(
                "the difference, {} points, is below minus the {:.1}-point margin",
                points(difference),
                margin * 100.0
            ),
        )
    };
    Judgement {
        verdict,
        rule,
        items,
        minimum_items: MIN_ITEMS,
        difference,
        interval,
        margin,
        reason,
    }
}

/// One task's verdict and carbon per query, as the headline counts them.
pub struct TaskOutcome {
    pub verdict: Verdict,
    pub small_g_co2e_per_item: f64,
    pub hosted_g_co2e_per_item: f64,
}

/// "N of 6 tasks comparable, at X times less carbon": how many tasks the small model is
/// good enough on, and hosted over small carbon per query summed over those tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// Tasks judged better or comparable.
    pub good_enough: usize,
    /// Tasks with a verdict: those scored for both models.
    pub judged: usize,
    pub inconclusive: usize,
    /// The study's task count.
    pub of: usize,
    /// Hosted over small gCO2e per query over the good-enough tasks; `None` when there
    /// are none or the small model's carbon is zero.
    pub carbon_ratio: Option<f64>,
}

pub fn headline(outcomes: &[TaskOutcome]) -> Headline {
    let good: Vec<&TaskOutcome> = outcomes
        .iter()
        .filter(|o| o.verdict.good_enough())
        .collect();
    let small: f64 = good.iter().map(|o| o.small_g_co2e_per_item).sum();
    let hosted: f64 = good.iter().map(|o| o.hosted_g_co2e_per_item).sum();
    Headline {
        good_enough: good.len(),
        judged: outcomes.len(),
        inconclusive: outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Inconclusive)
            .count(),
        of: STUDY_TASKS,
        carbon_ratio: (!good.is_empty() && small > 0.0).then(|| hosted / small),
    }
}

/// Judges a saved report's comparisons again with another margin, and recomputes its
/// headline; the paired intervals are kept, so no item is needed. Used when the user
/// moves the margin after a run, or opens a saved report.
pub fn rejudge(report: &mut serde_json::Value, margin: f64) -> crate::error::Result<()> {
    if !(0.0..=1.0).contains(&margin) {
        return Err(crate::error::Error::InvalidOption {
            value: format!("{} points", margin * 100.0),
            option: "the verdict margin",
            expected: "give a margin from 0 to 100 points, e.g. 5".into(),
        });
    }
    let number = |value: &serde_json::Value, key: &str| {
        value.get(key).and_then(|v| v.as_f64()).ok_or_else(|| {
            crate::error::Error::InvalidDataFile {
                file: "the report".into(),
                reason: format!("a comparison has no number `{key}`; open a report Seedling saved"),
            }
        })
    };
    let mut outcomes = Vec::new();
    let Some(comparisons) = report.get_mut("comparisons").and_then(|c| c.as_array_mut()) else {
        return Ok(());
    };
    for comparison in comparisons.iter_mut() {
        let difference = number(comparison, "difference")?;
        let judgement: Judgement =
            serde_json::from_value(comparison.get("judgement").cloned().unwrap_or_default())
                .map_err(|e| crate::error::Error::InvalidDataFile {
                    file: "the report".into(),
                    reason: format!(
                "a comparison's judgement is unreadable ({e}); open a report Seedling saved"
            ),
                })?;
        let again = judge(difference, judgement.interval, margin, judgement.items);
        let estimate = |key: &str| {
            comparison
                .get(key)
                .and_then(|band| band.get("estimate"))
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
        };
        outcomes.push(TaskOutcome {
            verdict: again.verdict,
            small_g_co2e_per_item: estimate("small_g_co2e_per_item"),
            hosted_g_co2e_per_item: estimate("hosted_g_co2e_per_item"),
        });
        comparison["judgement"] = serde_json::to_value(&again).unwrap_or_default();
    }
    if !outcomes.is_empty() {
        report["headline"] = serde_json::to_value(headline(&outcomes)).unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejudge_wider_margin_turns_comparable() {
        let judged = judge(-0.08, (-0.12, -0.04), 0.05, 40);
        let mut report = serde_json::json!({
            "comparisons": [{
                "difference": -0.08,
                "judgement": judged,
                "small_g_co2e_per_item": { "estimate": 0.001 },
                "hosted_g_co2e_per_item": { "estimate": 0.1 },
            }],
        });
        rejudge(&mut report, 0.10).unwrap();
        assert_eq!(
            report["comparisons"][0]["judgement"]["verdict"],
            "comparable"
        );
        assert_eq!(report["headline"]["good_enough"], 1);
        assert!((report["headline"]["carbon_ratio"].as_f64().unwrap() - 100.0).abs() < 1e-9);
        rejudge(&mut report, 0.05).unwrap();
        assert_eq!(report["comparisons"][0]["judgement"]["verdict"], "worse");
        assert_eq!(report["headline"]["good_enough"], 0);
        let message = rejudge(&mut report, 1.5).unwrap_err().to_string();
        assert!(message.contains("150 points"), "{message}");
        let mut foreign = serde_json::json!({ "comparisons": [{ "score": 1 }] });
        let message = rejudge(&mut foreign, 0.05).unwrap_err().to_string();
        assert!(message.contains("`difference`"), "{message}");
    }

    #[test]
    fn judge_wide_interval_inconclusive() {
        // Even a large lead is inconclusive when the interval is wider than twice the margin.
        let judged = judge(0.30, (0.05, 0.55), 0.05, 40);
        assert_eq!(judged.verdict, Verdict::Inconclusive);
        assert_eq!(judged.rule, Rule::WideInterval);
        assert!(
            judged.reason.contains("50.0 points wide"),
            "{}",
            judged.reason
        );
        assert!(
            judged.reason.contains("5.0-point margin"),
            "{}",
            judged.reason
        );
    }

    #[test]
    fn judge_too_few_items_inconclusive() {
        // Two items the small model got right and the hosted one wrong: the bootstrap
        // interval has no width, yet two items prove nothing.
        let judged = judge(1.0, (1.0, 1.0), 0.05, 2);
        assert_eq!(
            (judged.verdict, judged.rule),
            (Verdict::Inconclusive, Rule::TooFewItems)
        );
        assert!(judged.reason.contains("only 2 items"), "{}", judged.reason);
        assert_eq!(
            judge(1.0, (1.0, 1.0), 0.05, MIN_ITEMS).verdict,
            Verdict::Better
        );
    }

    #[test]
    fn judge_interval_above_zero_better() {
        assert_eq!(judge(0.06, (0.02, 0.10), 0.05, 40).verdict, Verdict::Better);
        // Touching zero is not beyond doubt: within the margin, so comparable.
        assert_eq!(
            judge(0.04, (0.0, 0.08), 0.05, 40).verdict,
            Verdict::Comparable
        );
    }

    #[test]
    fn judge_margin_separates_comparable_worse() {
        assert_eq!(
            judge(-0.05, (-0.09, -0.01), 0.05, 40).verdict,
            Verdict::Comparable
        );
        assert_eq!(
            judge(-0.051, (-0.09, -0.01), 0.05, 40).verdict,
            Verdict::Worse
        );
        // A wider margin turns the same figures comparable.
        assert_eq!(
            judge(-0.08, (-0.12, -0.04), 0.10, 40).verdict,
            Verdict::Comparable
        );
        assert_eq!(
            judge(-0.08, (-0.12, -0.04), 0.05, 40).verdict,
            Verdict::Worse
        );
    }

    #[test]
    fn difference_interval_keeps_pairs() {
        // The hosted model always scores exactly 0.1 more: every resample gives -0.1, so
        // the paired interval has no width, where unpaired resampling would have some.
        let paired: Vec<(f64, f64)> = (0..40)
            .map(|i| {
                let s = (i % 5) as f64 / 10.0;
                (s, s + 0.1)
            })
            .collect();
        let (low, high) = difference_interval(&paired);
        assert!(
            (low + 0.1).abs() < 1e-12 && (high + 0.1).abs() < 1e-12,
            "{low} {high}"
        );
        let coin: Vec<(f64, f64)> = (0..100).map(|i| ((i % 2) as f64, 0.5)).collect();
        let (low, high) = difference_interval(&coin);
        assert!(low < 0.0, "{low}");
        assert!(high > 0.0, "{high}");
        assert!(high - low > 0.1, "{low} {high}");
    }

    #[test]
    fn headline_counts_good_enough_tasks() {
        let outcome = |verdict, small, hosted| TaskOutcome {
            verdict,
            small_g_co2e_per_item: small,
            hosted_g_co2e_per_item: hosted,
        };
        let line = headline(&[
            outcome(Verdict::Comparable, 0.01, 0.5),
            outcome(Verdict::Better, 0.03, 1.5),
            outcome(Verdict::Worse, 0.01, 100.0),
            outcome(Verdict::Inconclusive, 0.01, 100.0),
        ]);
        assert_eq!(line.good_enough, 2);
        assert_eq!(line.judged, 4);
        assert_eq!(line.inconclusive, 1);
        assert_eq!(line.of, 6);
        // (0.5 + 1.5) / (0.01 + 0.03) = 50.
        assert!((line.carbon_ratio.unwrap() - 50.0).abs() < 1e-9);
        let none = headline(&[outcome(Verdict::Worse, 0.01, 1.0)]);
        assert_eq!((none.good_enough, none.carbon_ratio), (0, None));
    }
}
