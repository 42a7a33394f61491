//! Every misuse of the attributes is a compile error at the offending token (`tests/ui/*.stderr`).

#[test]
fn attribute_misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
