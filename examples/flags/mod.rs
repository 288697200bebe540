//! The command line of the benchmark examples: `--name N` numbers (underscores allowed, as in
//! `30_000`) and bare `--name` switches. Included by each example with
//! `#[path = "flags/mod.rs"] mod flags;`.

/// The arguments after the program's name.
pub(crate) struct Flags(Vec<String>);

impl Flags {
    pub(crate) fn from_env() -> Flags {
        Flags(std::env::args().skip(1).collect())
    }

    /// The number after `flag`, or `default` if the flag is absent.
    ///
    /// # Panics
    ///
    /// If the flag is not followed by a number (a usage error in a benchmark program).
    pub(crate) fn number(&self, flag: &str, default: usize) -> usize {
        self.0.iter().position(|a| a == flag).map_or(default, |i| {
            self.0
                .get(i + 1)
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{flag} takes a number"))
        })
    }

    /// Whether the switch `flag` is given.
    pub(crate) fn switch(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
}
