/*
 * ferrostore trap and callback entry stubs (Intel syntax, included by kernel/src/arch/mod.rs).
 *
 * Xen enters every handler on the interrupted kernel stack with, lowest address first:
 * RCX, R11, [error code], RIP, CS, RFLAGS, RSP, SS. The stubs pop RCX/R11 back, make the frame
 * uniform (vector + error code, a 0 for vectors without one), save all GPRs into a
 * `TrapFrame` (kernel/src/traps.rs) and call Rust with its address in rdi.
 *
 * Return (`frame_return`): restore the GPRs; if the frame's saved RFLAGS.IF is set, events
 * must be re-enabled on the way back, which only HYPERVISOR_iret does atomically (it clears
 * the upcall mask and delivers anything pending before resuming), so push its flags word (0)
 * and jump to the iret stub. Otherwise events stay masked and a native iretq suffices, with
 * CS/SS RPL forced to 3 (the guest kernel runs in ring 3, Xen cleared the RPL).
 */

    .section .text.entry, "ax"

.macro TRAP_NOEC name, vec
    .globl \name
\name:
    pop rcx
    pop r11
    push 0
    push \vec
    jmp trap_common
.endm

.macro TRAP_EC name, vec
    .globl \name
\name:
    pop rcx
    pop r11
    push \vec
    jmp trap_common
.endm

TRAP_NOEC trap_divide_error, 0
TRAP_NOEC trap_debug, 1
TRAP_NOEC trap_int3, 3
TRAP_NOEC trap_overflow, 4
TRAP_NOEC trap_bounds, 5
TRAP_NOEC trap_invalid_op, 6
TRAP_NOEC trap_device_not_available, 7
TRAP_NOEC trap_coprocessor_segment_overrun, 9
TRAP_EC   trap_invalid_tss, 10
TRAP_EC   trap_segment_not_present, 11
TRAP_EC   trap_stack_segment, 12
TRAP_EC   trap_general_protection, 13
TRAP_EC   trap_page_fault, 14
TRAP_NOEC trap_spurious_interrupt_bug, 15
TRAP_NOEC trap_coprocessor_error, 16
TRAP_EC   trap_alignment_check, 17
TRAP_NOEC trap_simd_coprocessor_error, 19

/* Save the GPRs below the (vector, error code, iret frame) already on the stack. */
.macro SAVE_GPRS
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
.endm

trap_common:
    SAVE_GPRS
    mov rdi, rsp
    mov rbp, rsp
    and rsp, -16
    call ferrostore_trap
    mov rsp, rbp
    jmp frame_return

/* Event upcall: Xen set the upcall mask before entering. Vector 256 marks an event frame. */
    .globl hypervisor_callback
hypervisor_callback:
    pop rcx
    pop r11
    push 0
    push 256
    SAVE_GPRS
    mov rdi, rsp
    mov rbp, rsp
    and rsp, -16
    call ferrostore_upcall
    mov rsp, rbp
    jmp frame_return

frame_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16                      /* vector, error code */
    test byte ptr [rsp + 17], 2      /* RFLAGS.IF (bit 9) = events enabled when interrupted */
    jnz 1f
    or qword ptr [rsp + 8], 3        /* CS RPL 3 */
    or qword ptr [rsp + 32], 3       /* SS RPL 3 */
    iretq
1:
    push 0                           /* HYPERVISOR_iret flags: not in a syscall */
    jmp hypercall_page + 23 * 32

/*
 * Failsafe callback: Xen could not load a segment register while returning to us. The frame
 * is RCX, R11, DS, ES, FS, GS, RIP, CS, RFLAGS, RSP, SS. Report it and crash (never returns).
 */
    .globl failsafe_callback
failsafe_callback:
    pop rcx
    pop r11
    mov rdi, rsp
    and rsp, -16
    call ferrostore_failsafe
    ud2
