//! ELF reading for `nook pack`: is a binary static, and if not, its interpreter and the
//! DT_NEEDED closure resolved the way ld.so resolves it.
