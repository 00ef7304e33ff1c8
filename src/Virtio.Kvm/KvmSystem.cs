using System;
using System.Text;
using Tmds.Linux;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm;

/// <summary>
/// The KVM system handle (/dev/kvm): checks the API version and capabilities and creates VMs.
/// </summary>
/// <remarks>Thread-safe. VMs it created stay usable after it is disposed.</remarks>
public sealed class KvmSystem : IDisposable
{
    private readonly KvmFdHandle _fd;

    private KvmSystem(KvmFdHandle fd, int vcpuMmapSize)
    {
        _fd = fd;
        VcpuMmapSize = vcpuMmapSize;
    }

    /// <summary>The default device path.</summary>
    public const string DefaultPath = "/dev/kvm";

    /// <summary>The size of each vCPU's shared kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE).</summary>
    public int VcpuMmapSize { get; }

    /// <summary>Opens <paramref name="path"/> and checks that it speaks KVM API version 12.</summary>
    /// <param name="path">The KVM device, normally /dev/kvm.</param>
    /// <returns>The open system handle.</returns>
    /// <exception cref="KvmException">open(2) or an ioctl failed (ENOENT when there is no KVM, EACCES without permission), or the API version is not 12.</exception>
    public static unsafe KvmSystem Open(string path = DefaultPath)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] name = Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = name)
        {
            // SAFETY: `p` is a NUL-terminated buffer pinned for the duration of the call.
            fd = LibC.open(p, LibC.O_RDWR | LibC.O_CLOEXEC);
        }

        if (fd < 0)
        {
            throw new KvmException($"open {path}", LibC.errno);
        }

        var handle = new KvmFdHandle(fd);
        try
        {
            int version = KvmCall.IoctlOrThrow(handle, KvmIoctl.GetApiVersion, 0, "KVM_GET_API_VERSION");
            if (version != KvmIoctl.ExpectedApiVersion)
            {
                throw new KvmException($"{path} reports KVM API version {version}; version {KvmIoctl.ExpectedApiVersion} is required.");
            }

            int mmapSize = KvmCall.IoctlOrThrow(handle, KvmIoctl.GetVcpuMmapSize, 0, "KVM_GET_VCPU_MMAP_SIZE");
            return new KvmSystem(handle, mmapSize);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Asks KVM_CHECK_EXTENSION about <paramref name="capability"/> on the system fd.</summary>
    /// <param name="capability">The capability.</param>
    /// <returns>0 when absent; otherwise a positive value whose meaning depends on the capability (a count for <see cref="KvmCapability.NrMemSlots"/>).</returns>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public int CheckExtension(KvmCapability capability)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        return KvmCall.IoctlOrThrow(_fd, KvmIoctl.CheckExtension, (nint)capability, "KVM_CHECK_EXTENSION");
    }

    /// <summary>
    /// The CPUID leaves this host's KVM can offer a guest (KVM_GET_SUPPORTED_CPUID), for
    /// <see cref="KvmVcpu.SetCpuid"/>.
    /// </summary>
    /// <returns>The entries, in the kernel's order.</returns>
    /// <exception cref="KvmException">The ioctl failed with something other than E2BIG, or more than 4096 entries were reported.</exception>
    public unsafe KvmCpuidEntry[] GetSupportedCpuid()
    {
        KvmCall.ThrowIfClosed(_fd, this);
        for (int capacity = 64; capacity <= 4096; capacity *= 2)
        {
            // struct kvm_cpuid2: u32 nent, u32 padding, then the entries.
            byte[] buffer = new byte[8 + (capacity * sizeof(KvmCpuidEntry))];
            fixed (byte* p = buffer)
            {
                *(uint*)p = (uint)capacity;
                // SAFETY: `p` holds the header and `capacity` entries, as nent says; pinned for the call.
                int rc = KvmCall.Ioctl(_fd, KvmIoctl.GetSupportedCpuid, p);
                if (rc == -LibC.E2BIG)
                {
                    continue;
                }

                if (rc < 0)
                {
                    throw new KvmException("KVM_GET_SUPPORTED_CPUID", -rc);
                }

                int count = (int)Math.Min(*(uint*)p, (uint)capacity);
                var entries = new KvmCpuidEntry[count];
                new ReadOnlySpan<KvmCpuidEntry>(p + 8, count).CopyTo(entries);
                return entries;
            }
        }

        throw new KvmException("KVM_GET_SUPPORTED_CPUID reports more than 4096 entries.");
    }

    /// <summary>Creates a VM (KVM_CREATE_VM, default machine type).</summary>
    /// <returns>The VM; dispose it after its vCPUs.</returns>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public KvmVm CreateVm()
    {
        KvmCall.ThrowIfClosed(_fd, this);
        int fd = KvmCall.IoctlOrThrow(_fd, KvmIoctl.CreateVm, 0, "KVM_CREATE_VM");
        return new KvmVm(new KvmFdHandle(fd), VcpuMmapSize);
    }

    /// <summary>Closes /dev/kvm.</summary>
    public void Dispose() => _fd.Dispose();
}
