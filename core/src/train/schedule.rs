//! BERT's learning-rate schedule: linear warm-up to the peak, then linear decay to zero at
//! the last step. A pure function of the step, so a resumed run needs nothing but the step.

/// The learning rate of (0-based) `step` of `total`: `peak * (step + 1) / warmup` during the
/// warm-up, then `peak * (total - step) / (total - warmup)`; 0 from `total` on.
pub fn lr_at(step: usize, peak: f64, warmup: usize, total: usize) -> f64 {
    if step >= total {
        return 0.0;
    }
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay = (total - warmup).max(1) as f64;
    peak * (total - step) as f64 / decay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_zero() {
        let (peak, warmup, total) = (1e-4, 10, 110);
        assert!((lr_at(0, peak, warmup, total) - 1e-5).abs() < 1e-15);
        assert!((lr_at(9, peak, warmup, total) - peak).abs() < 1e-15);
        assert!((lr_at(10, peak, warmup, total) - peak).abs() < 1e-15);
        assert!((lr_at(60, peak, warmup, total) - peak / 2.0).abs() < 1e-15);
        assert!(lr_at(109, peak, warmup, total) > 0.0);
        assert_eq!(lr_at(110, peak, warmup, total), 0.0);
        // Never above the peak, never rising after the warm-up.
        let rates: Vec<f64> = (0..total).map(|s| lr_at(s, peak, warmup, total)).collect();
        assert!(rates.iter().all(|&r| r <= peak * (1.0 + 1e-12)));
        assert!(rates[warmup..].windows(2).all(|w| w[1] <= w[0]));
        // No warm-up: the peak at step 0.
        assert!((lr_at(0, peak, 0, 100) - peak).abs() < 1e-15);
    }
}
