using System;
using System.Threading;
using Tmds.Linux;

namespace Virtio.Kvm.Interop;

/// <summary>
/// The real-time signal that kicks a vCPU thread out of KVM_RUN (EINTR). It gets a handler that
/// does nothing: a signal left at SIG_DFL would kill the process and one set to SIG_IGN is
/// discarded before it can interrupt the ioctl. The handler is five bytes of native code
/// (endbr64; ret) in a page of its own, so no managed code ever runs in signal context.
/// </summary>
internal static class KickSignal
{
    private static readonly Lock s_gate = new();
    private static bool s_installed;

    /// <summary>
    /// SIGRTMAX - 1. CoreCLR takes SIGRTMIN for thread activation and glibc reserves the two
    /// below it; the top of the real-time range is left alone by both.
    /// </summary>
    public static int Number => LibC.SIGRTMAX - 1;

    /// <summary>Installs the no-op handler once per process; later calls return at once.</summary>
    public static unsafe void EnsureInstalled()
    {
        lock (s_gate)
        {
            if (s_installed)
            {
                return;
            }

            sigaction old;
            // SAFETY: `old` is a local the call fills; a null new action only queries.
            if (LibC.sigaction(Number, null, &old) != 0)
            {
                throw new KvmException("sigaction (query)", LibC.errno);
            }

            if (old.sa_handler != null && old.sa_handler != (void*)1 /* SIG_IGN */)
            {
                throw new InvalidOperationException($"Signal {Number} already has a handler; the vCPU kick signal needs it.");
            }

            // SAFETY: a fresh private anonymous page; we write five bytes into it before making it executable.
            void* page = LibC.mmap(null, 4096, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
            if (page == LibC.MAP_FAILED)
            {
                throw new KvmException("mmap (signal stub)", LibC.errno);
            }

            byte* code = (byte*)page;
            code[0] = 0xF3; // endbr64: a valid indirect-branch target where IBT is enforced, a NOP elsewhere
            code[1] = 0x0F;
            code[2] = 0x1E;
            code[3] = 0xFA;
            code[4] = 0xC3; // ret

            // SAFETY: the page is ours and holds only the stub; it is never unmapped (the handler lives as long as the process).
            if (LibC.mprotect(page, 4096, LibC.PROT_READ | LibC.PROT_EXEC) != 0)
            {
                int errno = LibC.errno;
                _ = LibC.munmap(page, 4096);
                throw new KvmException("mprotect (signal stub)", errno);
            }

            sigaction action = default;
            action.sa_handler = page;
            action.sa_flags = LibC.SA_RESTART;
            // SAFETY: `action` is a local that outlives both calls; sigemptyset writes only its mask.
            _ = LibC.sigemptyset(&action.sa_mask);
            if (LibC.sigaction(Number, &action, null) != 0)
            {
                throw new KvmException("sigaction", LibC.errno);
            }

            s_installed = true;
        }
    }

    /// <summary>Makes sure the calling thread does not block the kick signal.</summary>
    public static unsafe void UnblockOnCurrentThread()
    {
        sigset_t set;
        // SAFETY: `set` is a local that outlives the calls.
        _ = LibC.sigemptyset(&set);
        _ = LibC.sigaddset(&set, Number);
        if (LibC.pthread_sigmask(LibC.SIG_UNBLOCK, &set, null) != 0)
        {
            throw new InvalidOperationException("pthread_sigmask failed to unblock the vCPU kick signal.");
        }
    }
}
