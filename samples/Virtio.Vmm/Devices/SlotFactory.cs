using System;
using Virtio.Core.Devices;
using Virtio.Core.Threading;

namespace Virtio.Vmm.Devices;

/// <summary>Wires one device on the run's transport: slot <paramref name="index"/>, named <paramref name="name"/>, its device made on its started I/O thread, <paramref name="owned"/> closed with it.</summary>
internal delegate DeviceSlot SlotFactory(int index, string name, Func<IoThread, VirtioDevice> createDevice, IDisposable? owned);
