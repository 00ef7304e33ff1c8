namespace Virtio.Net.Interop;

/// <summary>struct iovec (readv/writev): a base pointer and a length.</summary>
internal unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}
