//! Percentiles over latency samples (milliseconds).

/// Samples, sorted once for any number of percentile queries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples {
    sorted: Vec<f64>,
}

impl Samples {
    /// Sorts `values`; NaNs are dropped.
    pub(crate) fn new(mut values: Vec<f64>) -> Self {
        values.retain(|v| !v.is_nan());
        values.sort_by(f64::total_cmp);
        Self { sorted: values }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The nearest-rank percentile (`p` in 0..=100): the smallest sample
    /// with at least p% of the samples at or below it; 0 when empty.
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub(crate) fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(0.0)
    }
}

/// Rounds to 3 decimals for the JSON output.
pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        let s = Samples::new(Vec::new());
        assert!(s.is_empty());
        assert_eq!(s.percentile(50.0), 0.0);
        assert_eq!(s.percentile(99.0), 0.0);
        assert_eq!(s.max(), 0.0);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let s = Samples::new(vec![7.0]);
        assert_eq!(s.percentile(0.0), 7.0);
        assert_eq!(s.percentile(50.0), 7.0);
        assert_eq!(s.percentile(100.0), 7.0);
    }

    #[test]
    fn nearest_rank_over_one_to_hundred() {
        let s = Samples::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(s.len(), 100);
        assert_eq!(s.percentile(50.0), 50.0);
        assert_eq!(s.percentile(99.0), 99.0);
        assert_eq!(s.percentile(100.0), 100.0);
        assert_eq!(s.percentile(0.0), 1.0);
        assert_eq!(s.max(), 100.0);
    }

    #[test]
    fn p99_of_few_samples_is_the_maximum() {
        let s = Samples::new(vec![1.0, 2.0, 3.0, 1000.0]);
        assert_eq!(s.percentile(99.0), 1000.0);
        assert_eq!(s.percentile(50.0), 2.0);
    }

    #[test]
    fn out_of_range_and_nan_are_handled() {
        let s = Samples::new(vec![f64::NAN, 3.0, 1.0]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.percentile(-5.0), 1.0);
        assert_eq!(s.percentile(500.0), 3.0);
    }

    #[test]
    fn round3_rounds() {
        assert_eq!(round3(1.23456), 1.235);
        assert_eq!(round3(0.0), 0.0);
    }
}
