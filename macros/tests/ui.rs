//! Compile-time tests of the macros: `ui/pass` must compile (warning-free: each case denies
//! warnings) and run; `ui/fail` must fail with exactly the errors in the `.stderr` files.
//! Regenerate those with `TRYBUILD=overwrite cargo test -p amber-macros --test ui`, then
//! read every one.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
