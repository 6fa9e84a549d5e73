//! A pair's score as per-signal contributions, and their summary in words.

/// Bits each signal contributed to one pair's score, in the order of `NAMES`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Breakdown<const N: usize> {
    pub bits: [f64; N],
}

impl<const N: usize> Breakdown<N> {
    pub fn new() -> Self {
        Breakdown { bits: [0.0; N] }
    }

    pub fn score(&self) -> f64 {
        self.bits.iter().sum()
    }

    /// Signal `i` spoke against the pair and no other did.
    pub fn only_differs_in(&self, i: usize) -> bool {
        self.bits[i] < 0.0
            && self
                .bits
                .iter()
                .enumerate()
                .all(|(j, b)| j == i || *b >= 0.0)
    }

    /// "remark, avatar, nick name; differs: signature": the signals that
    /// spoke for the pair, strongest first, then those that spoke against.
    /// `names[i]` names signal `i`; `detail` may replace a name with a
    /// longer phrase (a member overlap's figures).
    pub fn words(&self, names: &[&str; N], detail: impl Fn(usize) -> Option<String>) -> String {
        let name = |i: usize| detail(i).unwrap_or_else(|| names[i].to_string());
        let mut order: Vec<usize> = (0..N).collect();
        order.sort_by(|a, b| self.bits[*b].total_cmp(&self.bits[*a]).then(a.cmp(b)));
        let agree: Vec<String> = order
            .iter()
            .filter(|i| self.bits[**i] > 0.0)
            .map(|i| name(*i))
            .collect();
        let differ: Vec<String> = order
            .iter()
            .rev()
            .filter(|i| self.bits[**i] < 0.0)
            .map(|i| name(*i))
            .collect();
        let mut text = if agree.is_empty() {
            "nothing in common".to_string()
        } else {
            agree.join(", ")
        };
        if !differ.is_empty() {
            text.push_str("; differs: ");
            text.push_str(&differ.join(", "));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = ["remark", "avatar", "nick name", "signature"];

    #[test]
    fn words_list_agreement_strongest_first_then_differences() {
        let b = Breakdown {
            bits: [12.0, 16.0, -3.0, 0.0],
        };
        assert_eq!(b.score(), 25.0);
        assert_eq!(
            b.words(&NAMES, |_| None),
            "avatar, remark; differs: nick name"
        );
        let b = Breakdown {
            bits: [0.0, -3.0, -4.0, 0.0],
        };
        assert_eq!(
            b.words(&NAMES, |i| (i == 2).then(|| "nick name (Tom → Tim)".into())),
            "nothing in common; differs: nick name (Tom → Tim), avatar"
        );
    }
}
