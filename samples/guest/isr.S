/* Interrupt and exception entry stubs: 16 bytes each, vector v at isr_stubs + 16 * v. Each pushes a dummy
   error code where the CPU pushes none, then the vector, and jumps to the common path, which saves the
   caller-saved registers and calls irq_dispatch(vector, frame). Only general registers exist here. */
    .text
    .balign 16
    .globl isr_stubs
isr_stubs:
    vector = 0
    .rept 256
    .balign 16
    /* Vectors 8, 10-14, 17, 21, 29 and 30 come with an error code from the CPU. */
    .if vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 || vector == 30
    .else
    pushq   $0
    .endif
    pushq   $vector
    jmp     isr_common
    vector = vector + 1
    .endr

isr_common:
    push    %rax
    push    %rcx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %rbx
    mov     80(%rsp), %rdi      /* vector */
    lea     88(%rsp), %rsi      /* error code, then RIP, CS, RFLAGS, RSP, SS */
    mov     %rsp, %rbx          /* callee-saved: the stack before aligning it for the call */
    and     $-16, %rsp
    call    irq_dispatch
    mov     %rbx, %rsp
    pop     %rbx
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rax
    add     $16, %rsp           /* vector and error code */
    iretq
