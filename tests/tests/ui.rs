//! Every misuse of the attributes is a compile error at the offending token (`tests/ui/*.stderr`),
//! and what must compile does, and runs (`tests/ui/pass/`): every spelling of `Result` and
//! `Option`, methods, generics with a key, `impl Trait` arguments, lifetimes, the prelude's names
//! shadowed or absent, bodies as users write them. One `TestCases`, so the two sets share
//! trybuild's project directory one after the other.

#[test]
fn attribute_misuse_is_a_compile_error_and_supported_shapes_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
    t.pass("ui/pass/*.rs");
}
