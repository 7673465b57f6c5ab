//! What people read: pictures of labs, predictions, and (later) run reports. Functions return
//! text; only the CLI prints.

pub mod commands;
pub mod graph;
pub mod live;
pub mod nat;
pub mod plot;
pub mod run;
pub mod topology;

/// `64512` -> `64,512`: the numbers are the lesson, so make them readable.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::count(0), "0");
        assert_eq!(super::count(999), "999");
        assert_eq!(super::count(64_512), "64,512");
        assert_eq!(super::count(1_000_000), "1,000,000");
    }
}
