using System.Runtime.InteropServices;

namespace Virtio.Kvm.Interop;

/// <summary>The pthread calls Tmds.LibC lacks (pthread_self) or types awkwardly (pthread_kill's pthread_t).</summary>
internal static partial class Pthread
{
    [LibraryImport("libc", EntryPoint = "pthread_self")]
    public static partial nuint Self();

    /// <returns>0, or an errno value (pthread_kill does not set errno).</returns>
    [LibraryImport("libc", EntryPoint = "pthread_kill")]
    public static partial int Kill(nuint thread, int signal);
}
