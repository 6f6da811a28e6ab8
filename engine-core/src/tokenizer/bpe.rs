//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`), as llama.cpp's `llm_tokenizer_bpe_session`:
//! each pre-tokenized word is mapped byte by byte to GPT-2's printable characters, then the pair of
//! adjacent symbols with the lowest merge rank is merged (leftmost first on ties) until no pair has
//! a rank.
//!
//! Symbols are tracked by an interned id instead of their text: ids below the vocabulary size are
//! token ids, the others name merge sides and results that are not tokens. A merge is then a lookup
//! of two integers, and a finished symbol is a token without another string lookup.

use super::pretokenize::{self, PreTokenizerKind};
use super::vocab::Vocab;
use super::TokenizerError;
use crate::gguf::{Array, Metadata};
use crate::synth::byte_to_char;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

#[derive(Debug, Clone)]
pub(super) struct Bpe {
    pre: PreTokenizerKind,
    ignore_merges: bool,
    n_tokens: u32,
    /// GPT-2's character for each byte.
    byte_char: [char; 256],
    /// Interned id of each byte's character.
    byte_sym: [u32; 256],
    /// `(left, right)` → `(rank, merged)`, all interned ids.
    merges: HashMap<(u32, u32), (u32, u32)>,
}

impl Bpe {
    pub fn new(
        m: &Metadata,
        vocab: &Vocab,
        pre: PreTokenizerKind,
        ignore_merges: bool,
    ) -> Result<Self, TokenizerError> {
        const MERGES: &str = "tokenizer.ggml.merges";
        let merges = match m.get_array(MERGES)? {
            Some(Array::String(v)) => v.as_slice(),
            Some(a) => {
                return Err(TokenizerError::invalid(
                    MERGES,
                    format!("is an array of {}, not of strings", a.elem_type().name()),
                ))
            }
            None => return Err(TokenizerError::invalid(MERGES, "is missing")),
        };
        let n_tokens = vocab.len() as u32;
        let mut extra: HashMap<String, u32> = HashMap::new();
        let mut intern = |s: &str| -> u32 {
            if let Some(id) = vocab.id(s) {
                return id;
            }
            let next = n_tokens + extra.len() as u32;
            *extra.entry(s.to_string()).or_insert(next)
        };
        let byte_char: [char; 256] = std::array::from_fn(|b| byte_to_char(b as u8));
        let byte_sym: [u32; 256] =
            std::array::from_fn(|b| intern(byte_char[b].encode_utf8(&mut [0; 4])));
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte; a merge without one
            // becomes the pair ("", ""), which no symbol ever forms.
            let Some(pos) = merge.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (left, right) = (&merge[..pos], &merge[pos + 1..]);
            let key = (intern(left), intern(right));
            let merged = intern(&format!("{left}{right}"));
            // The first rank of a repeated pair wins (`emplace`).
            table.entry(key).or_insert((rank as u32, merged));
        }
        Ok(Self {
            pre,
            ignore_merges,
            n_tokens,
            byte_char,
            byte_sym,
            merges: table,
        })
    }

    /// Appends the tokens of one text fragment.
    pub fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut work = Work::default();
        for word in pretokenize::split(self.pre, text) {
            self.encode_word(vocab, &text.as_bytes()[word], &mut work, out);
        }
    }

    fn encoded(&self, word: &[u8]) -> String {
        word.iter().map(|&b| self.byte_char[b as usize]).collect()
    }

    fn encode_word(&self, vocab: &Vocab, word: &[u8], w: &mut Work, out: &mut Vec<u32>) {
        if self.ignore_merges {
            if let Some(id) = vocab.id(&self.encoded(word)) {
                out.push(id);
                return;
            }
        }
        w.syms.clear();
        w.heap.clear();
        let n = word.len();
        w.syms.extend(word.iter().enumerate().map(|(i, &b)| Sym {
            start: i as u32,
            len: 1,
            id: self.byte_sym[b as usize],
            prev: i as i64 - 1,
            next: if i + 1 == n { -1 } else { i as i64 + 1 },
        }));
        for i in 1..n {
            self.push_pair(w, i as i64 - 1, i as i64);
        }
        while let Some(Reverse((_, left, right, size, merged))) = w.heap.pop() {
            let (l, r) = (left as usize, right as usize);
            // Stale pair: a side was merged away or has grown since it was queued.
            if w.syms[l].len == 0 || w.syms[r].len == 0 || w.syms[l].len + w.syms[r].len != size {
                continue;
            }
            w.syms[l].len += w.syms[r].len;
            w.syms[l].id = merged;
            w.syms[r].len = 0;
            let next = w.syms[r].next;
            w.syms[l].next = next;
            if next >= 0 {
                w.syms[next as usize].prev = left as i64;
            }
            self.push_pair(w, w.syms[l].prev, left as i64);
            self.push_pair(w, left as i64, next);
        }
        for s in w.syms.iter().filter(|s| s.len > 0) {
            if s.id < self.n_tokens {
                out.push(s.id);
                continue;
            }
            // Not a token: llama.cpp looks each byte of the symbol's text up alone, which finds
            // only the ASCII ones.
            let text = self.encoded(&word[s.start as usize..(s.start + s.len) as usize]);
            for b in text.bytes() {
                if let Some(id) = std::str::from_utf8(&[b]).ok().and_then(|t| vocab.id(t)) {
                    out.push(id);
                }
            }
        }
    }

    fn push_pair(&self, w: &mut Work, left: i64, right: i64) {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (&w.syms[left as usize], &w.syms[right as usize]);
        if let Some(&(rank, merged)) = self.merges.get(&(l.id, r.id)) {
            w.heap.push(Reverse((
                rank,
                left as u32,
                right as u32,
                l.len + r.len,
                merged,
            )));
        }
    }
}

/// A symbol of the word being merged: the original bytes `start..start + len` (`len` 0 once merged
/// into its left neighbour), its interned id, and its neighbours (-1 for none).
#[derive(Debug, Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    id: u32,
    prev: i64,
    next: i64,
}

/// Buffers reused across the words of one call. Heap entries are `(rank, left, right, size,
/// merged)`, popped lowest rank first, then leftmost.
#[derive(Default)]
struct Work {
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<Candidate>>,
}

/// A queued merge: `(rank, left, right, size, merged)`.
type Candidate = (u32, u32, u32, u32, u32);
