//! Helpers shared by the integration tests in `tests/tests/`.

/// True when the tests must fail rather than skip without a GPU adapter
/// (`REALM_REQUIRE_GPU=1`, which `scripts/test.sh` sets).
pub fn gpu_required() -> bool {
    std::env::var("REALM_REQUIRE_GPU").as_deref() == Ok("1")
}
