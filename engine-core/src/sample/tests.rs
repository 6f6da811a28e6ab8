use super::*;

fn logits() -> Vec<f32> {
    vec![1.0, 3.0, 2.5, -1.0, 3.0, 0.0]
}

fn sampler(cfg: SamplerConfig) -> Sampler {
    Sampler::new(cfg).unwrap()
}

#[test]
fn greedy_takes_the_first_maximum_and_skips_nan() {
    let mut s = sampler(SamplerConfig::greedy());
    assert_eq!(s.sample(&logits()).unwrap(), 1);
    assert_eq!(argmax(&[f32::NAN, 1.0, 2.0]), 2);
    assert!(s.sample(&[]).is_err());
}

#[test]
fn top_k_1_and_tiny_top_p_are_greedy() {
    for cfg in [
        SamplerConfig {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerConfig::default()
        },
        SamplerConfig {
            temperature: 5.0,
            top_k: 0,
            top_p: 1e-6,
            min_p: 0.0,
            ..SamplerConfig::default()
        },
    ] {
        let mut s = sampler(cfg);
        for _ in 0..50 {
            assert_eq!(s.sample(&logits()).unwrap(), 1);
        }
    }
}

#[test]
fn same_seed_same_tokens_other_seed_other_tokens() {
    let cfg = SamplerConfig {
        temperature: 2.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplerConfig::default()
    };
    let run = |seed| {
        let mut s = sampler(SamplerConfig {
            seed,
            ..cfg.clone()
        });
        (0..64)
            .map(|_| s.sample(&logits()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn draws_follow_the_softmax_distribution() {
    let cfg = SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 3,
        ..SamplerConfig::default()
    };
    let mut s = sampler(cfg);
    let l = logits();
    let n = 60_000;
    let mut counts = vec![0usize; l.len()];
    for _ in 0..n {
        counts[s.sample(&l).unwrap() as usize] += 1;
    }
    let probs = softmax(l.iter().copied(), 1.0);
    for (i, (&c, p)) in counts.iter().zip(&probs).enumerate() {
        let expected = p * n as f64;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt().max(1.0);
        assert!(
            (c as f64 - expected).abs() < 5.0 * sigma,
            "token {i}: {c} draws, expected {expected:.0}"
        );
    }
}

#[test]
fn filters_remove_what_they_should() {
    // min_p 0.5 keeps tokens within ln(2) of the best: 1, 4 (3.0) and 2 (2.5).
    let cfg = SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.5,
        seed: 1,
        ..SamplerConfig::default()
    };
    let mut s = sampler(cfg);
    for _ in 0..500 {
        assert!([1, 2, 4].contains(&s.sample(&logits()).unwrap()));
    }
    // top_k 2 keeps the two 3.0 logits.
    let cfg = SamplerConfig {
        temperature: 1.0,
        top_k: 2,
        top_p: 1.0,
        min_p: 0.0,
        seed: 1,
        ..SamplerConfig::default()
    };
    let mut s = sampler(cfg);
    for _ in 0..500 {
        assert!([1, 4].contains(&s.sample(&logits()).unwrap()));
    }
}

#[test]
fn repetition_penalty_moves_greedy_away_from_recent_tokens() {
    let mut s = sampler(SamplerConfig {
        repeat_penalty: 2.0,
        ..SamplerConfig::greedy()
    });
    s.accept(1);
    s.accept(4);
    assert_eq!(s.sample(&logits()).unwrap(), 2);
}

#[test]
fn bad_settings_are_rejected() {
    for cfg in [
        SamplerConfig {
            top_p: 1.5,
            ..SamplerConfig::default()
        },
        SamplerConfig {
            min_p: -0.1,
            ..SamplerConfig::default()
        },
        SamplerConfig {
            repeat_penalty: 0.0,
            ..SamplerConfig::default()
        },
        SamplerConfig {
            temperature: f32::NAN,
            ..SamplerConfig::default()
        },
    ] {
        assert!(matches!(Sampler::new(cfg), Err(Error::Config(_))));
    }
}
