//! How a reply ends: the stop reasons, stop strings matched across token boundaries, and the
//! cancellation handle another thread or task flips.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-generation token (not emitted).
    EndOfGeneration,
    /// `max_tokens` were emitted.
    MaxTokens,
    /// The text reached one of the stop strings (not emitted).
    StopString,
    /// The session holds no more positions.
    ContextFull,
    /// The cancellation handle was flipped.
    Cancelled,
}

impl StopReason {
    /// The name used in JSON and by the web API.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::EndOfGeneration => "eog",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopString => "stop_string",
            StopReason::ContextFull => "context_full",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// Stops a running reply after its current token; clones share the flag, and it may be flipped
/// from any thread (a signal handler, a server's disconnect watcher, a page's stop button).
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Clears the flag (a new reply starts uncancelled).
    pub(crate) fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Streams text through while watching for stop strings: text that might be the start of one is
/// held back until the next piece tells.
#[derive(Debug, Default)]
pub(crate) struct StopStrings {
    stops: Vec<String>,
    held: String,
}

impl StopStrings {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds `piece`: returns the text safe to emit, and whether a stop string was reached (the
    /// text from it on is dropped).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.held.push_str(piece);
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        let keep = self.longest_partial();
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// The text still held back (emitted when the reply ends for another reason).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes at the end of the held text that begin some stop string (on a char boundary).
    fn longest_partial(&self) -> usize {
        let held = self.held.as_str();
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len().min(held.len() + 1))
                    .rev()
                    .filter(|&n| s.is_char_boundary(n))
                    .find(|&n| held.ends_with(&s[..n]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopStrings::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let (text, hit) = m.push(p);
            out.push_str(&text);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_strings_match_across_pieces_and_hold_back_only_prefixes() {
        assert_eq!(
            run(&["END"], &["ab", "cE", "N", "Dx"]),
            ("abc".into(), true)
        );
        assert_eq!(run(&["END"], &["ab", "cE", "x"]), ("abcEx".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        // The earliest of several stops wins; a multi-byte stop is matched on char boundaries.
        assert_eq!(run(&["yz", "b"], &["ab", "yz"]), ("a".into(), true));
        assert_eq!(run(&["é!"], &["caf", "é", "!"]), ("caf".into(), true));
        let mut m = StopStrings::new(&["\n\n".to_string()]);
        assert_eq!(m.push("hi\n"), ("hi".into(), false));
        assert_eq!(m.push("x"), ("\nx".into(), false));
    }

    #[test]
    fn a_cancel_handle_is_shared_by_its_clones() {
        let h = CancelHandle::default();
        let other = h.clone();
        assert!(!h.is_cancelled());
        std::thread::spawn(move || other.cancel()).join().unwrap();
        assert!(h.is_cancelled());
        h.clear();
        assert!(!h.is_cancelled());
    }
}
