//! Turning sampled tokens into a reply's text: end-of-generation tokens end it unseen, text is
//! decoded across token boundaries, and stop strings are held back and cut. Shared by a
//! conversation's `Reply` and the batched slots of `SlotPool`.

use super::options::GenerateOptions;
use super::stop::{StopReason, StopStrings};
use crate::tokenizer::{Decoder, Tokenizer};
use crate::Result;

pub(super) struct Emitter<'t> {
    tokenizer: &'t Tokenizer,
    decoder: Option<Decoder<'t>>,
    stops: StopStrings,
    ignore_eog: bool,
    /// The text emitted (without a stop string that ended it).
    pub text: String,
    /// The tokens emitted.
    pub tokens: Vec<u32>,
}

impl<'t> Emitter<'t> {
    pub fn new(tokenizer: &'t Tokenizer, options: &GenerateOptions) -> Self {
        Self {
            tokenizer,
            decoder: Some(Decoder::new(tokenizer)),
            stops: StopStrings::new(&options.stop),
            ignore_eog: options.ignore_eog,
            text: String::new(),
            tokens: Vec::new(),
        }
    }

    /// Takes a sampled token: the text it lets out, and why the reply ends with it, if it does
    /// (an end-of-generation token, not emitted; or a stop string, cut from the text).
    pub fn push(&mut self, token: u32) -> Result<(String, Option<StopReason>)> {
        if !self.ignore_eog && self.tokenizer.is_eog(token) {
            return Ok((String::new(), Some(StopReason::EndOfGeneration)));
        }
        let piece = match self.decoder.as_mut() {
            Some(d) => d.push(token)?,
            None => String::new(),
        };
        self.tokens.push(token);
        let (out, hit) = self.stops.push(&piece);
        self.text.push_str(&out);
        Ok((out, hit.then_some(StopReason::StopString)))
    }

    /// The text still held back when the reply ends for `reason` (nothing after a stop string),
    /// once.
    pub fn finish(&mut self, reason: StopReason) -> String {
        let mut rest = String::new();
        if reason != StopReason::StopString {
            let tail = self.decoder.take().map(Decoder::finish).unwrap_or_default();
            let (out, hit) = self.stops.push(&tail);
            rest.push_str(&out);
            if !hit {
                rest.push_str(&self.stops.finish());
            }
        }
        self.decoder = None;
        self.text.push_str(&rest);
        rest
    }
}
