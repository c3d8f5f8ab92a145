//! Small helpers for the words of the terminal lines and the report pages.

/// `n` and the noun in the right number: "1 window", "2 windows", "0 windows".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn one_is_singular_everything_else_plural() {
        assert_eq!(plural(1, "window", "windows"), "1 window");
        assert_eq!(plural(0, "window", "windows"), "0 windows");
        assert_eq!(plural(2, "anomaly", "anomalies"), "2 anomalies");
    }
}
