/*
 * ferrostore boot head: the Xen ELF notes, the entry point `_start`, the hypercall page and
 * the page-aligned placeholders the kernel remaps (shared_info) or runs on (boot stack).
 * Included by kernel/src/arch/mod.rs with global_asm! (Intel syntax).
 */

/* ---- ELF notes (name "Xen", read by Xen's libelf from the PT_NOTE segment) ---- */
    .section .note.xen, "a", @note
    .balign 4
    .long 4, 99f - 98f, 6           /* XEN_ELFNOTE_GUEST_OS */
    .asciz "Xen"
98: .asciz "ferrostore"
99: .balign 4

    .long 4, 99f - 98f, 7           /* XEN_ELFNOTE_GUEST_VERSION */
    .asciz "Xen"
98: .asciz "0.1"
99: .balign 4

    .long 4, 99f - 98f, 5           /* XEN_ELFNOTE_XEN_VERSION */
    .asciz "Xen"
98: .asciz "xen-3.0"
99: .balign 4

    .long 4, 99f - 98f, 8           /* XEN_ELFNOTE_LOADER */
    .asciz "Xen"
98: .asciz "generic"
99: .balign 4

    .long 4, 99f - 98f, 2           /* XEN_ELFNOTE_HYPERCALL_PAGE */
    .asciz "Xen"
98: .quad hypercall_page
99: .balign 4

/* ---- entry: rsi = start_info VA, rsp = top of Xen's 4 KiB boot stack page ---- */
    .section .text.boot, "ax"
    .globl _start
_start:
    lea rsp, [rip + boot_stack_top]
    mov rdi, rsi
    xor ebp, ebp
    call ferrostore_start
    ud2

/*
 * ---- live update's jump into the next kernel (xen_pv::handover) ----
 * rdi = mmuext_op array, esi = count (its last op is NEW_BASEPTR), rdx = the next kernel's
 * start_info VA. The hypercall is made with a direct `syscall` (the hypercall page and the
 * stack are not the same in the next kernel's address space); once Xen has loaded the new
 * page tables, execution goes on at the same VA in the next kernel's copy of these bytes
 * (the old kernel checks they are identical), which enters its `_start` as Xen would.
 */
    .globl xen_handover
xen_handover:
    mov r12, rdx
    xor edx, edx                    /* no done count */
    mov r10d, 0x7ff0                /* DOMID_SELF */
    mov eax, 26                     /* __HYPERVISOR_mmuext_op */
    syscall
    test rax, rax
    jnz 1f
    mov rsi, r12
    jmp _start
1:  ud2
    .globl xen_handover_end
xen_handover_end:

/* ---- the hypercall page: Xen writes one 32-byte stub per hypercall here ---- */
    .section .text.hypercall_page, "ax"
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc

/* ---- shared_info: a page of VA that kernel/src/arch/mod.rs remaps onto Xen's frame ---- */
    .section .bss.shared_info, "aw", @nobits
    .balign 4096
    .globl shared_info_page
shared_info_page:
    .skip 4096

/* ---- the kernel's boot stack (the boot thread keeps it) ---- */
    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
    .globl boot_stack_bottom
boot_stack_bottom:
    .skip 65536
    .globl boot_stack_top
boot_stack_top:
