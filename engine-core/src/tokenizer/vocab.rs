//! The token list of a GGUF vocabulary: texts, scores and llama.cpp's per-token attributes.

use super::TokenizerError;
use crate::gguf::{Array, Metadata};
use std::collections::HashMap;

/// llama.cpp's `llama_token_attr` bits.
pub(super) mod attr {
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
}

/// The attribute a `tokenizer.ggml.token_type` value gives (llama.cpp's `LLAMA_TOKEN_TYPE_*`).
fn attr_of_type(ty: i32) -> u32 {
    match ty {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => 0,
    }
}

#[derive(Debug, Clone)]
pub(super) struct Vocab {
    pub texts: Vec<String>,
    pub scores: Vec<f32>,
    pub attrs: Vec<u32>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Reads `tokenizer.ggml.tokens`, `.scores` and `.token_type` as llama.cpp does: an empty token
    /// is renamed `[EMPTY_<id>]`; scores default to 0 and types to normal; a duplicated token text
    /// is an error (llama.cpp aborts on it).
    pub fn from_metadata(m: &Metadata) -> Result<Self, TokenizerError> {
        const TOKENS: &str = "tokenizer.ggml.tokens";
        let texts = match m.get_array(TOKENS)? {
            Some(Array::String(t)) => t.clone(),
            Some(other) => {
                return Err(TokenizerError::invalid(
                    TOKENS,
                    format!(
                        "is an array of {}, not of strings",
                        other.elem_type().name()
                    ),
                ))
            }
            None => return Err(TokenizerError::invalid(TOKENS, "is missing")),
        };
        let n = texts.len();
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::invalid(
                TOKENS,
                format!("holds {n} tokens, more than ids can address"),
            ));
        }
        const SCORES: &str = "tokenizer.ggml.scores";
        let scores: Vec<f32> = match m.get_array(SCORES)? {
            None => vec![0.0; n],
            Some(Array::F32(s)) if s.len() >= n => s[..n].to_vec(),
            Some(Array::I32(s)) if s.len() >= n => s[..n].iter().map(|&x| x as f32).collect(),
            Some(a) => {
                return Err(TokenizerError::invalid(
                    SCORES,
                    format!(
                        "must be {n} or more FLOAT32 or INT32 values, found {} {}",
                        a.len(),
                        a.elem_type().name()
                    ),
                ))
            }
        };
        const TYPES: &str = "tokenizer.ggml.token_type";
        let attrs: Vec<u32> = match m.get_array(TYPES)? {
            None => vec![attr::NORMAL; n],
            Some(Array::I32(t)) if t.len() >= n => {
                t[..n].iter().map(|&x| attr_of_type(x)).collect()
            }
            Some(a) => {
                return Err(TokenizerError::invalid(
                    TYPES,
                    format!(
                        "must be {n} or more INT32 values, found {} {}",
                        a.len(),
                        a.elem_type().name()
                    ),
                ))
            }
        };
        let mut texts = texts;
        let mut ids = HashMap::with_capacity(n);
        for (i, text) in texts.iter_mut().enumerate() {
            if text.is_empty() {
                *text = format!("[EMPTY_{i}]");
            }
            if let Some(first) = ids.insert(text.clone(), i as u32) {
                return Err(TokenizerError::invalid(
                    TOKENS,
                    format!("holds {text:?} twice (ids {first} and {i})"),
                ));
            }
        }
        Ok(Self {
            texts,
            scores,
            attrs,
            ids,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// The id of a token text.
    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn has_attr(&self, id: u32, bits: u32) -> bool {
        self.attrs[id as usize] & bits != 0
    }
}
