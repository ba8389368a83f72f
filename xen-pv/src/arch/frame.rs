//! The register frame the entry stubs of `boot/entry.S` save before calling into Rust: what
//! a trap handler and the event upcall receive.

/// The registers the entry stubs save, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Exception vector, 256 for an event upcall.
    pub vector: u64,
    /// Error code (0 when the vector has none).
    pub error_code: u64,
    pub rip: u64,
    /// CS; bits 32..40 hold the saved upcall mask.
    pub cs: u64,
    /// RFLAGS; IF = events were enabled when interrupted.
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
