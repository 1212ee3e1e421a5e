//! Any text either fails to parse with a typed error or parses to money that formats back to
//! text that parses to the same money.
#![no_main]

use commerce_core::Money;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(m) = text.parse::<Money>() {
        let printed = m.to_string();
        let again: Money = printed.parse().expect("formatted money parses");
        assert_eq!(again, m);
        assert_eq!(
            Money::from_minor(m.to_minor().expect("parsed money is rounded"), m.currency()),
            m
        );
    }
});
