//! Replaces delivered Secret values (and their base64 forms) with `***`
//! in everything a run leaves behind: its output log (and so `slothctl
//! logs` and `status.logTail`), its results and its status message.
//!
//! The rule is leftmost-longest: scanning left to right, at each position
//! the longest value starting there is replaced. The streaming form holds
//! back only what could still become a value (a suffix of what it has seen
//! that is a proper prefix of a value, so fewer than the longest value's
//! length) and gives exactly the output of masking the whole text at once,
//! however the text is cut into chunks.

use std::collections::BTreeMap;

/// What a value is replaced with.
pub(crate) const MASK: &[u8] = b"***";

/// The byte strings to hide.
#[derive(Clone, Debug)]
pub(crate) struct Masks {
    /// Non-empty, distinct.
    patterns: Vec<Vec<u8>>,
    /// Whether some pattern starts with this byte: output is copied in runs
    /// of bytes that start none, so masking costs little per byte.
    starts: [bool; 256],
}

impl Default for Masks {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            starts: [false; 256],
        }
    }
}

impl Masks {
    /// Hides every value and its standard base64 form (empty values hide
    /// nothing).
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for value in values {
            if value.is_empty() {
                continue;
            }
            for pattern in [
                value.to_vec(),
                sloth_sdk::objects::secret::encode(value).into_bytes(),
            ] {
                if !patterns.contains(&pattern) {
                    patterns.push(pattern);
                }
            }
        }
        let mut starts = [false; 256];
        for p in &patterns {
            starts[usize::from(p[0])] = true;
        }
        Self { patterns, starts }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every value replaced.
    pub(crate) fn bytes(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        self.scan(text, true, &mut out);
        out
    }

    /// [`Masks::bytes`] for text (a value cut by a mask may leave invalid
    /// UTF-8 behind; it is replaced, as a log reader would).
    pub(crate) fn text(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.bytes(text.as_bytes())).into_owned()
    }

    /// Every value of `map` masked.
    pub(crate) fn map(&self, map: BTreeMap<String, String>) -> BTreeMap<String, String> {
        if self.is_empty() {
            return map;
        }
        map.into_iter().map(|(k, v)| (k, self.text(&v))).collect()
    }

    /// Masks `text` into `out`; returns how many bytes were consumed. When
    /// `at_end` is false, stops where the rest could still begin a value.
    fn scan(&self, text: &[u8], at_end: bool, out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < text.len() {
            // Neither a value nor the start of one can begin at a byte no
            // pattern starts with.
            let run = text[i..]
                .iter()
                .position(|b| self.starts[usize::from(*b)])
                .unwrap_or(text.len() - i);
            out.extend_from_slice(&text[i..i + run]);
            i += run;
            if i == text.len() {
                break;
            }
            let rest = &text[i..];
            if !at_end
                && self
                    .patterns
                    .iter()
                    .any(|p| p.len() > rest.len() && p.starts_with(rest))
            {
                return i;
            }
            let longest = self
                .patterns
                .iter()
                .filter(|p| rest.starts_with(p))
                .map(Vec::len)
                .max();
            match longest {
                Some(len) => {
                    out.extend_from_slice(MASK);
                    i += len;
                }
                None => {
                    out.push(text[i]);
                    i += 1;
                }
            }
        }
        i
    }
}

/// Masks a stream cut into arbitrary chunks.
#[derive(Debug)]
pub(crate) struct StreamMasker {
    masks: Masks,
    pending: Vec<u8>,
}

impl StreamMasker {
    pub(crate) fn new(masks: Masks) -> Self {
        Self {
            masks,
            pending: Vec::new(),
        }
    }

    /// What can be written after `chunk` (the rest is held back).
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let used = self.masks.scan(&self.pending, false, &mut out);
        self.pending.drain(..used);
        out
    }

    /// What was held back, masked, at the end of the stream.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let out = self.masks.bytes(&self.pending);
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn masks(values: &[&str]) -> Masks {
        Masks::new(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn values_and_their_base64_are_replaced() {
        let m = masks(&["hunter2", ""]);
        assert_eq!(
            m.text("pw=hunter2 b64=aHVudGVyMg== end"),
            "pw=*** b64=*** end"
        );
        assert_eq!(m.text("nothing here"), "nothing here");
        assert!(masks(&[""]).is_empty());
    }

    #[test]
    fn the_longest_value_at_a_position_wins() {
        let m = masks(&["abc", "abcdef", "cde"]);
        assert_eq!(m.text("xabcdefx"), "x***x");
        assert_eq!(m.text("xabcdx"), "x***dx");
        assert_eq!(m.text("xbcdex"), "xb***x");
    }

    #[test]
    fn a_value_split_across_chunks_is_still_masked() {
        let mut s = StreamMasker::new(masks(&["hunter2"]));
        let mut out = s.push(b"echo hun");
        assert_eq!(out, b"echo ");
        out.extend(s.push(b"te"));
        out.extend(s.push(b"r2 done\nhunt"));
        out.extend(s.finish());
        assert_eq!(out, b"echo *** done\nhunt");
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        // No '*': a value made of stars would be "found" in the mask itself.
        proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(b'='), Just(b'\n')],
            1..6,
        )
    }

    proptest! {
        /// However the output is cut, streaming gives what masking the
        /// whole text gives, and no value (or its base64) survives.
        #[test]
        fn streaming_equals_whole_text_and_hides_every_value(
            values in proptest::collection::vec(value(), 1..4),
            pieces in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>().prop_map(|b| b % 4 + b'a'), 0..8),
                    (0usize..4).prop_map(|i| vec![i as u8]),
                ],
                0..24,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..10),
        ) {
            let m = Masks::new(values.iter().map(Vec::as_slice));
            // Text built from noise and the values themselves, in plain
            // and base64 form.
            let mut text = Vec::new();
            for piece in &pieces {
                match piece.as_slice() {
                    [i] if (*i as usize) < 4 => {
                        let v = &values[*i as usize % values.len()];
                        if i % 2 == 0 {
                            text.extend_from_slice(v);
                        } else {
                            text.extend_from_slice(
                                sloth_sdk::objects::secret::encode(v).as_bytes(),
                            );
                        }
                    }
                    noise => text.extend_from_slice(noise),
                }
            }
            let whole = m.bytes(&text);
            let mut streamed = Vec::new();
            let mut s = StreamMasker::new(m.clone());
            let mut at = 0;
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
            bounds.sort_unstable();
            for bound in bounds {
                streamed.extend(s.push(&text[at..bound.max(at)]));
                at = bound.max(at);
            }
            streamed.extend(s.push(&text[at..]));
            streamed.extend(s.finish());
            prop_assert_eq!(&streamed, &whole);
            for v in &values {
                let b64 = sloth_sdk::objects::secret::encode(v);
                for pattern in [v.as_slice(), b64.as_bytes()] {
                    prop_assert!(
                        !whole.windows(pattern.len()).any(|w| w == pattern),
                        "{:?} survives in {:?}", String::from_utf8_lossy(pattern),
                        String::from_utf8_lossy(&whole)
                    );
                }
            }
        }
    }
}
