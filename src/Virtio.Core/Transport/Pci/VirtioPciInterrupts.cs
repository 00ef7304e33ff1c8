using System;
using System.Buffers.Binary;
using Virtio.Core.Notifications;

namespace Virtio.Core.Transport.Pci;

/// <summary>
/// The interrupt side of a virtio-pci function: the ISR status byte, the INTx line, the queue and
/// configuration MSI-X vectors, and the MSI-X table with its Pending Bit Array. The device notifies it
/// (as its <see cref="IGuestNotifier"/>) from its I/O threads while a vCPU reads the ISR, programs the
/// table or flips masks: everything is kept under one lock, and the embedder's
/// <see cref="IMsiXDelivery"/> and INTx line are called under it (both must not block or call back).
/// </summary>
internal sealed class VirtioPciInterrupts : IGuestNotifier
{
    /// <summary>ISR bit 0: a queue interrupt (virtio 1.2 §4.1.4.5).</summary>
    public const byte IsrQueue = 1;

    /// <summary>ISR bit 1: a device configuration change.</summary>
    public const byte IsrConfig = 2;

    /// <summary>One MSI-X table entry's size (PCI 3.0 §6.8.2.6).</summary>
    public const int EntrySize = 16;

    private readonly object _gate = new();
    private readonly IGuestNotifier _intxLine;
    private readonly IMsiXDelivery? _delivery;
    private readonly ushort[] _queueVectors;
    private readonly uint[] _table; // four dwords per entry: address low, address high, data, vector control
    private readonly ulong[] _pending;
    private readonly MsiMessage[] _reportedMessage;
    private readonly bool[] _reportedMasked;
    private ushort _configVector = VirtioPciFunction.NoVector;
    private byte _isr;
    private bool _msiXEnabled;
    private bool _functionMask;
    private bool _busMaster;
    private bool _intxDisabled;

    public VirtioPciInterrupts(IGuestNotifier intxLine, IMsiXDelivery? delivery, int vectorCount, int queueCount)
    {
        _intxLine = intxLine;
        _delivery = delivery;
        VectorCount = delivery is null ? 0 : vectorCount;
        _queueVectors = new ushort[queueCount];
        _table = new uint[VectorCount * 4];
        _pending = new ulong[(VectorCount + 63) / 64];
        _reportedMessage = new MsiMessage[VectorCount];
        _reportedMasked = new bool[VectorCount];
        _reportedMasked.AsSpan().Fill(true);
        ResetTable();
        ResetVirtio();
    }

    /// <summary>The MSI-X table's entries; 0 without MSI-X.</summary>
    public int VectorCount { get; }

    /// <summary>The table's size in bytes.</summary>
    public int TableLength => VectorCount * EntrySize;

    /// <summary>The PBA's size in bytes (whole qwords).</summary>
    public int PbaLength => _pending.Length * 8;

    public byte Isr
    {
        get { lock (_gate) { return _isr; } }
    }

    public bool IsMsiXEnabled
    {
        get { lock (_gate) { return _msiXEnabled; } }
    }

    /// <summary>PCI Status's Interrupt Status bit: INTx mode and an ISR bit set (Interrupt Disable does not hide it).</summary>
    public bool IsIntxPending
    {
        get { lock (_gate) { return !_msiXEnabled && _isr != 0; } }
    }

    /// <summary>Whether the INTx line is asserted: pending and Interrupt Disable clear.</summary>
    public bool IsIntxAsserted
    {
        get { lock (_gate) { return !_msiXEnabled && !_intxDisabled && _isr != 0; } }
    }

    public ushort ConfigVector
    {
        get { lock (_gate) { return _configVector; } }
    }

    /// <inheritdoc />
    public void Notify(InterruptReason reason, ushort queueIndex)
    {
        lock (_gate)
        {
            ushort vector;
            if (reason == InterruptReason.ConfigurationChange)
            {
                // virtio 1.2 §4.1.4.5.1: the configuration bit is set before the notification, with or
                // without MSI-X (a driver may read it to learn why its config vector fired).
                _isr |= IsrConfig;
                vector = _configVector;
            }
            else
            {
                vector = queueIndex < _queueVectors.Length ? _queueVectors[queueIndex] : VirtioPciFunction.NoVector;
            }

            if (_msiXEnabled)
            {
                // §4.1.5.3, §4.1.5.4: with MSI-X the queue bit stays clear and the vector is signalled;
                // NO_VECTOR means the driver wants no interrupt for it.
                Deliver(vector);
                return;
            }

            if (reason == InterruptReason.UsedBuffer)
            {
                _isr |= IsrQueue; // §4.1.5.3: set before the INTx interrupt
            }

            if (!_intxDisabled)
            {
                _intxLine.Notify(reason, queueIndex);
            }
        }
    }

    /// <summary>The driver read the ISR: returns it and clears it (read-to-clear, §4.1.4.5), which deasserts INTx.</summary>
    public byte ReadAndClearIsr()
    {
        lock (_gate)
        {
            byte isr = _isr;
            _isr = 0;
            return isr;
        }
    }

    /// <summary>The queue's vector as the driver reads it back.</summary>
    public ushort GetQueueVector(ushort queue)
    {
        lock (_gate)
        {
            return queue < _queueVectors.Length ? _queueVectors[queue] : VirtioPciFunction.NoVector;
        }
    }

    /// <summary>Assigns a queue's vector: one beyond the table reads back NO_VECTOR (§4.1.5.1.2).</summary>
    public void SetQueueVector(ushort queue, ushort vector)
    {
        lock (_gate)
        {
            if (queue < _queueVectors.Length)
            {
                _queueVectors[queue] = Accepted(vector);
            }
        }
    }

    /// <summary>Assigns the configuration vector, under the same rule.</summary>
    public void SetConfigVector(ushort vector)
    {
        lock (_gate)
        {
            _configVector = Accepted(vector);
        }
    }

    /// <summary>
    /// The configuration space changed the controls that gate interrupts: MSI-X Enable, Function Mask,
    /// Bus Master Enable and Interrupt Disable. Reports every vector whose effective mask changed, delivers
    /// pending vectors that became unmasked, and asserts INTx when it became unblocked with an ISR bit set.
    /// </summary>
    /// <returns>True when MSI-X Enable, Function Mask or Bus Master Enable changed.</returns>
    public bool SetControls(bool msiXEnabled, bool functionMask, bool busMaster, bool intxDisabled)
    {
        lock (_gate)
        {
            bool wasIntxBlocked = _msiXEnabled || _intxDisabled;
            bool changed = _msiXEnabled != msiXEnabled || _functionMask != functionMask || _busMaster != busMaster;
            _msiXEnabled = msiXEnabled && VectorCount > 0;
            _functionMask = functionMask;
            _busMaster = busMaster;
            _intxDisabled = intxDisabled;
            if (changed)
            {
                for (int vector = 0; vector < VectorCount; vector++)
                {
                    Refresh((ushort)vector);
                }
            }

            // INTx is a level: if the guest unblocked it while the ISR holds a reason, the line is up again.
            if (wasIntxBlocked && !_msiXEnabled && !_intxDisabled && _isr != 0)
            {
                _intxLine.Notify((_isr & IsrQueue) != 0 ? InterruptReason.UsedBuffer : InterruptReason.ConfigurationChange, 0);
            }

            return changed;
        }
    }

    /// <summary>Reads the MSI-X table; the caller checked width and alignment (4 or 8 bytes, aligned) and range.</summary>
    public void ReadTable(int offset, Span<byte> data)
    {
        lock (_gate)
        {
            for (int i = 0; i < data.Length; i += 4)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(data[i..], _table[(offset + i) / 4]);
            }
        }
    }

    /// <summary>Writes the MSI-X table (the caller checked width, alignment and range), then reports the entry.</summary>
    public void WriteTable(int offset, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            for (int i = 0; i < data.Length; i += 4)
            {
                int dword = (offset + i) / 4;
                uint value = BinaryPrimitives.ReadUInt32LittleEndian(data[i..]);

                // Vector Control: only bit 0 (Mask) is defined; the rest reads as zero.
                _table[dword] = dword % 4 == 3 ? value & 1 : value;
            }

            Refresh((ushort)(offset / EntrySize));
        }
    }

    /// <summary>Reads the PBA (read-only; the caller checked width, alignment and range).</summary>
    public void ReadPba(int offset, Span<byte> data)
    {
        lock (_gate)
        {
            ulong qword = _pending[offset / 8];
            if (data.Length == 8)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(data, qword);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(data, (uint)(qword >> (offset % 8 * 8)));
            }
        }
    }

    /// <summary>The transport part of a virtio reset: ISR clear, every vector NO_VECTOR.</summary>
    public void ResetVirtio()
    {
        lock (_gate)
        {
            _isr = 0;
            _configVector = VirtioPciFunction.NoVector;
            _queueVectors.AsSpan().Fill(VirtioPciFunction.NoVector);
        }
    }

    /// <summary>A PCI reset: the table masked with zero messages, nothing pending, MSI-X off (the caller clears the controls too).</summary>
    public void ResetFunction()
    {
        lock (_gate)
        {
            ResetTable();
            SetControls(msiXEnabled: false, functionMask: false, busMaster: false, intxDisabled: false);
            for (int vector = 0; vector < VectorCount; vector++)
            {
                Refresh((ushort)vector);
            }
        }
    }

    private void ResetTable()
    {
        Array.Clear(_table);
        for (int vector = 0; vector < VectorCount; vector++)
        {
            _table[(vector * 4) + 3] = 1; // PCI 3.0 §6.8.2.9: Mask is set after reset
        }

        Array.Clear(_pending);
    }

    private ushort Accepted(ushort vector) => vector < VectorCount ? vector : VirtioPciFunction.NoVector;

    private bool IsMasked(ushort vector) => !_msiXEnabled || _functionMask || !_busMaster || (_table[(vector * 4) + 3] & 1) != 0;

    private MsiMessage MessageOf(ushort vector) =>
        new(_table[vector * 4] | ((ulong)_table[(vector * 4) + 1] << 32), _table[(vector * 4) + 2]);

    /// <summary>Tells the embedder of a changed message or effective mask; sends a pending vector that became unmasked.</summary>
    private void Refresh(ushort vector)
    {
        if (vector >= VectorCount)
        {
            return;
        }

        bool masked = IsMasked(vector);
        MsiMessage message = MessageOf(vector);
        if (masked != _reportedMasked[vector] || message != _reportedMessage[vector])
        {
            _reportedMasked[vector] = masked;
            _reportedMessage[vector] = message;
            _delivery!.Configure(vector, message, masked);
        }

        ulong bit = 1UL << (vector % 64);
        if (!masked && (_pending[vector / 64] & bit) != 0)
        {
            // PCI 3.0 §6.8.3.5: a pending message is sent once its vector is unmasked, and the bit clears.
            _pending[vector / 64] &= ~bit;
            _delivery!.Raise(vector);
        }
    }

    private void Deliver(ushort vector)
    {
        if (vector >= VectorCount)
        {
            return;
        }

        if (IsMasked(vector))
        {
            _pending[vector / 64] |= 1UL << (vector % 64);
            return;
        }

        _delivery!.Raise(vector);
    }
}
