/* Entry: 64-bit long mode, interrupts off, RDI = boot info (see README.md). */
    .section .text.start, "ax"
    .globl _start
_start:
    cli
    lea     stack_top(%rip), %rsp
    xor     %ebp, %ebp
    call    guest_main          /* RDI still holds the boot info address */
    /* guest_main returns the exit status: write it to the exit port and stop. */
    mov     $0xf4, %dx
    out     %eax, %dx
1:  hlt
    jmp     1b

    .section .bss
    .balign 16
    .space  65536
stack_top:
