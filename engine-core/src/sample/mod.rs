//! Choosing the next token from logits: greedy, or repetition penalty → top-k → top-p → min-p →
//! temperature → a seeded draw (llama.cpp's default order). The same seed gives the same tokens.

mod logprobs;
pub use logprobs::{logprobs, TokenLogprob};

use crate::rng::SplitMix64;
use crate::{Error, Result};
use std::collections::VecDeque;

/// Sampling settings. `temperature <= 0` means greedy (argmax after the repetition penalty).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: none).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens by this (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// llama.cpp's defaults.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks the settings are in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(format!("sampler: {what}")));
        if !self.temperature.is_finite() {
            return bad("temperature must be finite");
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad("top_p must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty must be positive");
        }
        Ok(())
    }
}

/// A sampler with its random stream and the recent tokens the penalty sees.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    rng: SplitMix64,
    recent: VecDeque<u32>,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            rng: SplitMix64::new(config.seed),
            recent: VecDeque::new(),
            config,
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Records a token the penalty should see (prompt tokens and generated ones).
    pub fn accept(&mut self, token: u32) {
        if self.config.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.config.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Whether `sample` is a plain argmax of the logits (greedy, no repetition penalty), so the
    /// largest logit can be found on the device and only its index read back.
    pub fn is_plain_argmax(&self) -> bool {
        self.config.temperature <= 0.0 && self.config.repeat_penalty == 1.0
    }

    /// Picks the next token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::Shape {
                op: "sample",
                detail: "empty logits".into(),
            });
        }
        let mut logits = logits.to_vec();
        self.apply_penalty(&mut logits);
        if self.config.temperature <= 0.0 {
            return Ok(argmax(&logits));
        }
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        if cand.is_empty() {
            return Err(Error::Shape {
                op: "sample",
                detail: "every logit is NaN".into(),
            });
        }
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = self.config.top_k;
        if k > 0 && k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_logit);
            cand.truncate(k);
        }
        cand.sort_by(by_logit);
        if self.config.top_p < 1.0 {
            let probs = softmax(cand.iter().map(|c| c.1), 1.0);
            let mut mass = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    mass += p;
                    mass >= f64::from(self.config.top_p)
                })
                .map_or(cand.len(), |i| i + 1);
            cand.truncate(keep.max(1));
        }
        if self.config.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  l_i >= l_max + ln(min_p)
            let floor = cand[0].1 + self.config.min_p.ln();
            let keep = cand.iter().take_while(|c| c.1 >= floor).count();
            cand.truncate(keep.max(1));
        }
        let probs = softmax(cand.iter().map(|c| c.1), self.config.temperature);
        let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut mass = 0.0;
        for (c, p) in cand.iter().zip(&probs) {
            mass += p;
            if draw < mass {
                return Ok(c.0);
            }
        }
        Ok(cand[cand.len() - 1].0)
    }

    fn apply_penalty(&self, logits: &mut [f32]) {
        let penalty = self.config.repeat_penalty;
        if penalty == 1.0 {
            return;
        }
        let mut seen: Vec<u32> = self.recent.iter().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
            }
        }
    }
}

/// Index of the largest logit (the first on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Softmax of `logits / temperature`, in f64.
fn softmax(logits: impl Iterator<Item = f32> + Clone, temperature: f32) -> Vec<f64> {
    let t = f64::from(temperature);
    let max = logits
        .clone()
        .fold(f64::NEG_INFINITY, |m, l| m.max(f64::from(l)));
    let exps: Vec<f64> = logits.map(|l| ((f64::from(l) - max) / t).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests;
