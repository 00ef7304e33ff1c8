using System;
using System.Globalization;
using System.Text;
using System.Threading;
using Tmds.Linux;
using Virtio.Kvm.Bus;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm;

/// <summary>
/// One virtual CPU: its registers, its shared kvm_run page and the run loop that serves MMIO and PIO
/// exits from a <see cref="KvmBus"/>.
/// </summary>
/// <remarks>
/// <see cref="Run"/> runs on one thread at a time (the vCPU thread). <see cref="RequestPause"/> may be
/// called from any thread: it sets kvm_run.immediate_exit and sends the vCPU thread a real-time signal
/// (SIGRTMAX - 1, which gets a no-op native handler) so a KVM_RUN in progress returns EINTR. The
/// register accessors must not be called while <see cref="Run"/> is in progress.
/// </remarks>
public sealed class KvmVcpu : IDisposable
{
    private readonly KvmFdHandle _fd;
    private readonly int _mmapSize;
    private readonly Lock _threadGate = new();
    // SAFETY: the kvm_run mapping (mmapSize bytes) from the constructor until Dispose unmaps it and sets it
    // to null; every access below reads or writes inside it at a KvmRunLayout offset.
    private unsafe byte* _run;
    private nuint _runThread;
    private bool _inRun;
    private int _pauseRequested;
    private long _mmioExits;
    private long _pioExits;

    internal unsafe KvmVcpu(KvmFdHandle fd, int id, int mmapSize)
    {
        _fd = fd;
        Id = id;
        _mmapSize = mmapSize;
        try
        {
            KickSignal.EnsureInstalled();
            // SAFETY: maps the vCPU's kvm_run area, shared with the kernel; kept until Dispose.
            void* p = LibC.mmap(null, (size_t)mmapSize, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED, (int)fd.DangerousGetHandle(), 0);
            if (p == LibC.MAP_FAILED)
            {
                throw new KvmException("mmap kvm_run", LibC.errno);
            }

            _run = (byte*)p;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>The vCPU id given at creation.</summary>
    public int Id { get; }

    /// <summary>How many MMIO exits <see cref="Run"/> has served.</summary>
    public long MmioExits => Volatile.Read(ref _mmioExits);

    /// <summary>How many PIO exits <see cref="Run"/> has served.</summary>
    public long PioExits => Volatile.Read(ref _pioExits);

    /// <summary>Reads the general registers (KVM_GET_REGS).</summary>
    /// <returns>The registers.</returns>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public unsafe KvmRegisters GetRegisters()
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmRegisters regs;
        // SAFETY: `regs` is a local of the 144 bytes the request encodes; the kernel fills it.
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.GetRegs, &regs, "KVM_GET_REGS");
        return regs;
    }

    /// <summary>Writes the general registers (KVM_SET_REGS).</summary>
    /// <param name="registers">The registers.</param>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public unsafe void SetRegisters(in KvmRegisters registers)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmRegisters copy = registers;
        // SAFETY: `copy` is a local of the 144 bytes the request encodes.
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetRegs, &copy, "KVM_SET_REGS");
    }

    /// <summary>Reads the segment, descriptor-table and control registers (KVM_GET_SREGS).</summary>
    /// <returns>The registers.</returns>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public unsafe KvmSpecialRegisters GetSpecialRegisters()
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmSpecialRegisters sregs;
        // SAFETY: `sregs` is a local of the 312 bytes the request encodes; the kernel fills it.
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.GetSregs, &sregs, "KVM_GET_SREGS");
        return sregs;
    }

    /// <summary>Writes the segment, descriptor-table and control registers (KVM_SET_SREGS).</summary>
    /// <param name="registers">The registers, best read with <see cref="GetSpecialRegisters"/> and changed.</param>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public unsafe void SetSpecialRegisters(in KvmSpecialRegisters registers)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmSpecialRegisters copy = registers;
        // SAFETY: `copy` is a local of the 312 bytes the request encodes.
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetSregs, &copy, "KVM_SET_SREGS");
    }

    /// <summary>Reads the in-kernel local APIC's registers (KVM_GET_LAPIC) into <paramref name="state"/>.</summary>
    /// <param name="state">struct kvm_lapic_state: <see cref="KvmIoctl.LapicStateSize"/> bytes, each register at its APIC page offset.</param>
    /// <exception cref="KvmException">The ioctl failed (ENXIO without the in-kernel irqchip).</exception>
    internal void GetLocalApic(Span<byte> state)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.GetLapic, state, KvmIoctl.LapicStateSize, "KVM_GET_LAPIC");
    }

    /// <summary>Writes the in-kernel local APIC's registers (KVM_SET_LAPIC), best read with <see cref="GetLocalApic"/> and changed.</summary>
    /// <param name="state">struct kvm_lapic_state: <see cref="KvmIoctl.LapicStateSize"/> bytes; the kernel only reads them.</param>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    internal void SetLocalApic(Span<byte> state)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetLapic, state, KvmIoctl.LapicStateSize, "KVM_SET_LAPIC");
    }

    /// <summary>Sets the CPUID leaves the guest sees (KVM_SET_CPUID2); call it before the first <see cref="Run"/>.</summary>
    /// <param name="entries">The leaves, typically <see cref="KvmSystem.GetSupportedCpuid"/>.</param>
    /// <exception cref="KvmException">The ioctl failed (E2BIG for too many entries, EINVAL for inconsistent ones).</exception>
    public unsafe void SetCpuid(ReadOnlySpan<KvmCpuidEntry> entries)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        byte[] buffer = new byte[8 + (entries.Length * sizeof(KvmCpuidEntry))];
        fixed (byte* p = buffer)
        {
            *(uint*)p = (uint)entries.Length;
            entries.CopyTo(new Span<KvmCpuidEntry>(p + 8, entries.Length));
            // SAFETY: `p` holds struct kvm_cpuid2 with nent entries; pinned for the call.
            KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetCpuid2, p, "KVM_SET_CPUID2");
        }
    }

    /// <summary>The guest TSC frequency in kHz (KVM_GET_TSC_KHZ).</summary>
    /// <returns>The frequency, or 0 when KVM does not know it.</returns>
    /// <exception cref="KvmException">The ioctl failed (EIO when the host TSC is unstable).</exception>
    public uint GetTscKhz()
    {
        KvmCall.ThrowIfClosed(_fd, this);
        return (uint)KvmCall.IoctlOrThrow(_fd, KvmIoctl.GetTscKhz, 0, "KVM_GET_TSC_KHZ");
    }

    /// <summary>
    /// Runs the guest on the calling thread until it halts, shuts down or is paused, serving MMIO and
    /// PIO exits from <paramref name="bus"/> on the way.
    /// </summary>
    /// <param name="bus">Where exits go.</param>
    /// <returns>Why the vCPU stopped.</returns>
    /// <exception cref="InvalidOperationException">Another thread is running this vCPU.</exception>
    /// <exception cref="KvmVcpuFailureException">KVM reported an internal error (for example an emulation failure), a failed entry or an unknown exit; the message holds the guest's RIP.</exception>
    /// <exception cref="KvmException">KVM_RUN failed.</exception>
    public KvmVcpuStopReason Run(KvmBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        KvmCall.ThrowIfClosed(_fd, this);
        lock (_threadGate)
        {
            if (_inRun)
            {
                throw new InvalidOperationException($"vCPU {Id} is already running on another thread.");
            }

            _inRun = true;
            _runThread = Pthread.Self();
        }

        try
        {
            KickSignal.UnblockOnCurrentThread();
            return RunLoop(bus);
        }
        finally
        {
            lock (_threadGate)
            {
                _inRun = false;
                _runThread = 0;
            }
        }
    }

    /// <summary>
    /// Makes <see cref="Run"/> return <see cref="KvmVcpuStopReason.Paused"/> promptly: at once if it is
    /// in KVM_RUN, or before it next enters the guest. Any thread may call it; a request made while the
    /// vCPU is not running is kept for the next <see cref="Run"/>.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The vCPU has been disposed.</exception>
    public unsafe void RequestPause()
    {
        lock (_threadGate)
        {
            ObjectDisposedException.ThrowIf(_run == null, this);

            // SAFETY: _run is mapped (checked under _threadGate, which Dispose takes before unmapping).
            // Order matters (see RunLoop): the flag is visible before immediate_exit, and both before the signal.
            Volatile.Write(ref _pauseRequested, 1);
            Volatile.Write(ref _run[KvmRunLayout.ImmediateExit], 1);
            Interlocked.MemoryBarrier();
            if (_inRun)
            {
                // The thread is alive while _inRun holds (Run clears it under this lock before returning).
                int error = Pthread.Kill(_runThread, KickSignal.Number);
                if (error != 0)
                {
                    throw new KvmException("pthread_kill", error);
                }
            }
        }
    }

    /// <summary>Unmaps kvm_run and closes the vCPU fd.</summary>
    /// <exception cref="InvalidOperationException">The vCPU is running.</exception>
    public unsafe void Dispose()
    {
        lock (_threadGate)
        {
            if (_inRun)
            {
                throw new InvalidOperationException($"vCPU {Id} is running; pause it before disposing.");
            }

            if (_run != null)
            {
                // SAFETY: unmaps exactly the mapping made in the constructor, once; no Run is in progress.
                _ = LibC.munmap(_run, (size_t)_mmapSize);
                _run = null;
            }
        }

        _fd.Dispose();
    }

    private unsafe KvmVcpuStopReason RunLoop(KvmBus bus)
    {
        // SAFETY: Run holds the vCPU (no Dispose while _inRun), so _run stays mapped; KVM_RUN takes no argument.
        while (true)
        {
            if (Volatile.Read(ref _pauseRequested) != 0)
            {
                Volatile.Write(ref _pauseRequested, 0);
                Volatile.Write(ref _run[KvmRunLayout.ImmediateExit], 0);
                return KvmVcpuStopReason.Paused;
            }

            int rc = KvmCall.Ioctl(_fd, KvmIoctl.Run, null);
            if (rc < 0)
            {
                if (rc == -LibC.EINTR || rc == -LibC.EAGAIN)
                {
                    // A kick without a pending pause (a stale immediate_exit or signal): clear it, then look at
                    // the flag again. A pause request writes its flag before immediate_exit, so if our clear
                    // overwrote its immediate_exit, the check at the top of the loop sees its flag.
                    if (Volatile.Read(ref _pauseRequested) == 0)
                    {
                        Volatile.Write(ref _run[KvmRunLayout.ImmediateExit], 0);
                        Interlocked.MemoryBarrier();
                    }

                    continue;
                }

                throw new KvmException("KVM_RUN", -rc);
            }

            uint reason = Volatile.Read(ref *(uint*)(_run + KvmRunLayout.ExitReason));
            switch (reason)
            {
                case KvmRunLayout.ExitMmio:
                    HandleMmio(bus);
                    break;
                case KvmRunLayout.ExitIo:
                    HandleIo(bus);
                    break;
                case KvmRunLayout.ExitIntr:
                    break;
                case KvmRunLayout.ExitHlt:
                    return KvmVcpuStopReason.Halted;
                case KvmRunLayout.ExitShutdown:
                    return KvmVcpuStopReason.Shutdown;
                case KvmRunLayout.ExitSystemEvent:
                    return KvmVcpuStopReason.SystemEvent;
                default:
                    throw CreateFailure(reason);
            }
        }
    }

    private unsafe void HandleMmio(KvmBus bus)
    {
        _mmioExits++;
        ulong address = *(ulong*)(_run + KvmRunLayout.MmioPhysAddr);
        uint length = *(uint*)(_run + KvmRunLayout.MmioLength);
        bool isWrite = _run[KvmRunLayout.MmioIsWrite] != 0;
        if (length > 8)
        {
            throw CreateFailure(KvmRunLayout.ExitMmio, $"MMIO exit with length {length} (at most 8)");
        }

        // SAFETY: data[8] lies inside the kvm_run mapping and length <= 8 was checked.
        var data = new Span<byte>(_run + KvmRunLayout.MmioData, (int)length);
        bus.Dispatch(KvmIoSpace.Mmio, address, data, isWrite);
    }

    private unsafe void HandleIo(KvmBus bus)
    {
        _pioExits++;
        bool isWrite = _run[KvmRunLayout.IoDirection] == KvmRunLayout.IoDirectionOut;
        int size = _run[KvmRunLayout.IoSize];
        ushort port = *(ushort*)(_run + KvmRunLayout.IoPort);
        uint count = *(uint*)(_run + KvmRunLayout.IoCount);
        ulong offset = *(ulong*)(_run + KvmRunLayout.IoDataOffset);
        ulong total = (ulong)size * count;
        if (size is not (1 or 2 or 4) || offset > (ulong)_mmapSize || total > (ulong)_mmapSize - offset)
        {
            throw CreateFailure(KvmRunLayout.ExitIo, $"PIO exit with size {size}, count {count}, data offset {offset} outside kvm_run");
        }

        for (uint i = 0; i < count; i++)
        {
            // SAFETY: offset + count * size <= the kvm_run mapping's size, checked above.
            var data = new Span<byte>(_run + offset + (i * (ulong)size), size);
            bus.Dispatch(KvmIoSpace.Pio, port, data, isWrite);
        }
    }

    private unsafe KvmVcpuFailureException CreateFailure(uint reason, string? detail = null)
    {
        // SAFETY: called from RunLoop, so _run is mapped; the reads are at fixed offsets inside kvm_run.
        ulong suberror = 0;
        var message = new StringBuilder();
        switch (reason)
        {
            case KvmRunLayout.ExitInternalError:
            {
                uint sub = *(uint*)(_run + KvmRunLayout.InternalSuberror);
                uint ndata = Math.Min(*(uint*)(_run + KvmRunLayout.InternalNData), 16u);
                suberror = sub;
                message.Append(CultureInfo.InvariantCulture, $"KVM internal error, suberror {sub}");
                message.Append(sub switch
                {
                    1 => " (emulation failure: an instruction KVM's emulator cannot run)",
                    2 => " (simultaneous exceptions)",
                    3 => " (delivery event)",
                    4 => " (unexpected exit reason)",
                    _ => string.Empty,
                });
                for (uint i = 0; i < ndata; i++)
                {
                    message.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? "; data" : ",")} 0x{*(ulong*)(_run + KvmRunLayout.InternalData + (8 * i)):x}");
                }

                break;
            }

            case KvmRunLayout.ExitFailEntry:
                suberror = *(ulong*)(_run + KvmRunLayout.FailEntryReason);
                message.Append(CultureInfo.InvariantCulture, $"KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x{suberror:x} on cpu {*(uint*)(_run + KvmRunLayout.FailEntryCpu)}");
                break;
            default:
                message.Append(CultureInfo.InvariantCulture, $"KVM exit reason {reason}");
                message.Append(detail is null ? " is not handled" : ": " + detail);
                break;
        }

        ulong? rip = null;
        try
        {
            KvmRegisters regs = GetRegisters();
            KvmSpecialRegisters sregs = GetSpecialRegisters();
            rip = regs.Rip;
            message.Append(CultureInfo.InvariantCulture, $"; vCPU {Id} at RIP 0x{regs.Rip:x} (CS base 0x{sregs.Cs.Base:x}, linear 0x{sregs.Cs.Base + regs.Rip:x}), RFLAGS 0x{regs.Rflags:x}.");
        }
        catch (KvmException e)
        {
            message.Append(CultureInfo.InvariantCulture, $"; vCPU {Id}, RIP unknown ({e.Message}).");
        }

        return new KvmVcpuFailureException(message.ToString(), reason, suberror, rip);
    }
}
