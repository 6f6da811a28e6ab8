//! Token ids back to text: the bytes of each token (llama.cpp's `token_to_piece`), whole-sequence
//! detokenization, and a streaming decoder that only ever yields complete UTF-8.

use super::vocab::{attr, Vocab};
use super::{ModelType, Tokenizer, TokenizerError};
use std::collections::HashMap;

/// The bytes of every token, rendered as llama.cpp's `token_to_piece(id, lstrip = 0, special =
/// true)`: control, unknown and user-defined tokens as their text, normal tokens unescaped (GPT-2
/// characters back to bytes, or `▁` back to a space), byte tokens as their byte, anything else
/// (unused, undefined) as nothing.
#[derive(Debug, Clone)]
pub(super) struct Pieces {
    bytes: Vec<u8>,
    /// `ends[i]` is where token i's bytes end; they start where token i - 1's end.
    ends: Vec<usize>,
}

impl Pieces {
    pub fn new(vocab: &Vocab, model: ModelType) -> Self {
        let char_byte: HashMap<char, u8> = (0..=255u8)
            .map(|b| (crate::synth::byte_to_char(b), b))
            .collect();
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(vocab.len());
        for (id, text) in vocab.texts.iter().enumerate() {
            let a = vocab.attrs[id];
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                bytes.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                match model {
                    ModelType::Spm => bytes.extend_from_slice(text.replace('▁', " ").as_bytes()),
                    ModelType::Bpe => byte_decode(text, &char_byte, &mut bytes),
                }
            } else if a & attr::BYTE != 0 {
                bytes.push(byte_of(text));
            }
            ends.push(bytes.len());
        }
        Self { bytes, ends }
    }

    pub fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// llama.cpp's `llama_decode_text`: each character of a byte-level token back to its byte; a
/// character outside GPT-2's table becomes `[UNK_BYTE_0x<hex of its UTF-8><token text>]`.
fn byte_decode(text: &str, char_byte: &HashMap<char, u8>, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_byte.get(&c) {
            Some(&b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// llama.cpp's `token_to_byte`: the hex digits at `<0x` **`XX`** `>`, read as `strtol` would
/// (leading hex digits only; none gives 0).
fn byte_of(text: &str) -> u8 {
    let hex = text.get(3..).unwrap_or("");
    let digits: String = hex
        .chars()
        .take(2)
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u8::from_str_radix(&digits, 16).unwrap_or(0)
}

/// Options of [`Tokenizer::detokenize`], llama.cpp's `llama_detokenize` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DetokenizeOptions {
    /// Drop a leading BOS and a trailing EOS where the vocabulary adds them.
    pub remove_special: bool,
    /// Render control and unknown tokens as their text (otherwise as nothing).
    pub unparse_special: bool,
}

impl Tokenizer {
    fn check(&self, id: u32) -> Result<(), TokenizerError> {
        if (id as usize) < self.vocab.len() {
            Ok(())
        } else {
            Err(TokenizerError::TokenOutOfRange {
                id,
                vocab_size: self.vocab.len(),
            })
        }
    }

    /// The bytes token `id` stands for (special tokens as their text). A token can hold part of a
    /// UTF-8 sequence, so this is bytes, not a string.
    pub fn token_to_piece(&self, id: u32) -> Result<&[u8], TokenizerError> {
        self.check(id)?;
        Ok(self.pieces.get(id))
    }

    /// Whether decoding drops the leading space of the first token: where encoding adds one (a
    /// SentencePiece vocabulary with `add_space_prefix`).
    fn strips_first_space(&self) -> bool {
        self.model_type == ModelType::Spm && self.add_space_prefix
    }

    /// The exact bytes of `ids`: their pieces concatenated, less the space prefix encoding added
    /// (SentencePiece with `add_space_prefix` only). Special tokens appear as their text.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_to_piece(id)?;
            let piece = if i == 0 && self.strips_first_space() {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    /// [`Tokenizer::decode_bytes`] as text; invalid UTF-8 (ids that split a character) becomes
    /// U+FFFD, as [`Decoder`] renders it.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// llama.cpp's `llama_detokenize`, flag for flag: the leading space of the first token dropped
    /// where `add_space_prefix` is set, BOS/EOS dropped with `remove_special`, and for vocabularies
    /// with `clean_spaces` its three clean-up passes (`" ?"` → `"?"`, `" ' "` → `"'"`, `" 's"` →
    /// `"'s"`...). Use [`Tokenizer::decode`] for text that round-trips.
    pub fn detokenize(
        &self,
        ids: &[u32],
        opts: DetokenizeOptions,
    ) -> Result<Vec<u8>, TokenizerError> {
        for &id in ids {
            self.check(id)?;
        }
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if opts.remove_special
            && self.add_bos
            && !ids.is_empty()
            && ids.first() == self.special.bos.as_ref()
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if opts.remove_special
            && self.add_eos
            && !ids.is_empty()
            && ids.last() == self.special.eos.as_ref()
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut text = Vec::new();
        for &id in ids {
            let special = self.vocab.has_attr(id, attr::UNKNOWN | attr::CONTROL);
            if !opts.unparse_special && special {
                remove_space = false;
                continue;
            }
            let piece = self.pieces.get(id);
            let piece = if remove_space {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            remove_space = false;
            text.extend_from_slice(piece);
        }
        if self.clean_spaces {
            clean_spaces(&mut text);
        }
        Ok(text)
    }
}

/// llama.cpp's three clean-up passes of `llama_detokenize`, byte for byte.
fn clean_spaces(text: &mut Vec<u8>) {
    // " ?", " !", " .", " ," lose the space.
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // " ' " becomes "'". llama.cpp overwrites the dropped space with NUL in place, so the byte
    // after it never counts as following a space.
    let mut src = std::mem::take(&mut out);
    let mut i = 0;
    while i < src.len() {
        let x = src[i];
        if i > 0 && x == b'\'' && i + 1 < src.len() && src[i - 1] == b' ' && src[i + 1] == b' ' {
            out.pop();
            out.push(x);
            src[i + 1] = 0;
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // " 's", " 'm", " 're", " 've" lose the space.
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' && i + 1 < src.len() {
            let x1 = src[i + 1];
            let x2 = src.get(i + 2).copied();
            if matches!(x1, b's' | b'm')
                || matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e')))
            {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

/// Streaming detokenization for generation: feed ids one at a time, get back only complete UTF-8
/// text. Bytes of a character split across tokens wait for the rest; bytes that can never become
/// valid UTF-8 come out as U+FFFD. The concatenation of everything [`Decoder::push`] and
/// [`Decoder::finish`] return equals [`Tokenizer::decode`] of the same ids.
#[derive(Debug)]
pub struct Decoder<'t> {
    tok: &'t Tokenizer,
    pending: Vec<u8>,
    first: bool,
}

impl<'t> Decoder<'t> {
    pub fn new(tok: &'t Tokenizer) -> Self {
        Self {
            tok,
            pending: Vec::new(),
            first: true,
        }
    }

    /// Adds one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        let piece = self.tok.token_to_piece(id)?;
        let piece = if self.first && self.tok.strips_first_space() {
            piece.strip_prefix(b" ").unwrap_or(piece)
        } else {
            piece
        };
        self.first = false;
        self.pending.extend_from_slice(piece);
        Ok(self.take_complete())
    }

    /// Ends the stream: whatever is still pending, an incomplete character as U+FFFD.
    pub fn finish(mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }

    /// Bytes still waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // SAFETY-free: `valid_up_to` guarantees this prefix is UTF-8.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete at the end: wait for more bytes.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_spaces_matches_llama_cpp_passes() {
        let mut t = b"Hello , world ! it 's a ' b ' c 're 't".to_vec();
        clean_spaces(&mut t);
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "Hello, world! it's a'b'c're 't"
        );
        // The space dropped after a quote no longer counts as a space for the next quote.
        let mut t = b"a ' ' b".to_vec();
        clean_spaces(&mut t);
        assert_eq!(t, b"a'' b");
    }

    #[test]
    fn byte_tokens_parse_like_strtol() {
        assert_eq!(byte_of("<0x41>"), 0x41);
        assert_eq!(byte_of("<0x0A>"), 0x0a);
        assert_eq!(byte_of("<0xG1>"), 0);
        assert_eq!(byte_of("<0x"), 0);
    }
}
