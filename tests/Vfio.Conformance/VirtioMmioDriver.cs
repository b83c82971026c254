// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Devices.Platform;

namespace Vfio.Conformance;

/// <summary>
/// A minimal user-space virtio-mmio (version 2) driver with one split virtqueue (virtio 1.2 §2.7, §4.2.2–4.2.3), enough
/// for the conformance suite to make entropy requests and, under <see cref="VirtioBlkDriver"/>, block requests through
/// vfio-platform, on <see cref="VfioPlatformDevice"/>:
/// registers by pread/pwrite of region 0 (the kernel does not let this region be mmap-ed), the used-buffer interrupt on
/// the device's level IRQ 0 (automasked; unmasked through its unmask eventfd), the rings in a
/// <see cref="PhysicalDmaBuffer"/> whose physical addresses the device is given (no IOMMU). One chain is in flight at a
/// time, always from descriptor 0. Test code: it checks nothing itself, the cases assert.
/// </summary>
internal sealed class VirtioMmioDriver : IDisposable
{
    internal const ulong MagicValue = 0x000, MmioVersion = 0x004, DeviceId = 0x008, VendorId = 0x00c;
    internal const ulong DeviceFeatures = 0x010, DeviceFeaturesSel = 0x014, DriverFeatures = 0x020, DriverFeaturesSel = 0x024;
    internal const ulong QueueSel = 0x030, QueueNumMax = 0x034, QueueNum = 0x038, QueueReady = 0x044, QueueNotify = 0x050;
    internal const ulong InterruptStatus = 0x060, InterruptAck = 0x064, Status = 0x070;
    internal const ulong QueueDescLow = 0x080, QueueDriverLow = 0x090, QueueDeviceLow = 0x0a0;
    internal const ulong ConfigGeneration = 0x0fc, Config = 0x100;

    internal const uint Acknowledge = 1, Driver = 2, DriverOk = 4, FeaturesOk = 8;
    internal const uint UsedBufferInterrupt = 1;
    internal const ulong VersionOne = 1UL << 32;   // VIRTIO_F_VERSION_1
    private const ushort DescriptorNext = 1, DescriptorWrite = 2;

    /// <summary>The largest queue the rings' page holds.</summary>
    internal const ushort MaxQueueSize = 64;

    // One 4 KiB page (physically contiguous by construction): descriptor table (64 × 16 bytes), driver area
    // (4 + 2 × 64 + 2 bytes), device area (4 + 8 × 64 + 2 bytes), data.
    private const ulong DescTable = 0x000, DriverArea = 0x400, DeviceArea = 0x500, DataArea = 0x800;

    private readonly PhysicalDmaBuffer _memory;
    private ushort _availIdx;

    internal VfioPlatformDevice Platform { get; }

    internal VfioMmioRegion Registers { get; }

    /// <summary>The device's interrupt (level-triggered, automasked).</summary>
    internal VfioPlatformIrq Irq => Platform.GetIrq(0);

    internal VirtioMmioDriver(VfioDevice device, IKernel kernel)
    {
        Platform = new VfioPlatformDevice(device);
        Registers = new VfioMmioRegion(Platform.GetRegion(0));
        _memory = PhysicalDmaBuffer.Allocate(kernel, 4096);
    }

    internal ushort QueueSize { get; private set; }

    /// <summary>Writes the device status register (0 resets the device).</summary>
    internal void SetStatus(uint status) => Registers.Write(Status, status);

    /// <summary>The 64 feature bits the device offers (DeviceFeaturesSel 0 and 1).</summary>
    internal ulong ReadDeviceFeatures()
    {
        Registers.Write(DeviceFeaturesSel, 1);
        ulong high = Registers.Read(DeviceFeatures);
        Registers.Write(DeviceFeaturesSel, 0);
        return (high << 32) | Registers.Read(DeviceFeatures);
    }

    internal void WriteDriverFeatures(ulong features)
    {
        Registers.Write(DriverFeaturesSel, 1);
        Registers.Write(DriverFeatures, (uint)(features >> 32));
        Registers.Write(DriverFeaturesSel, 0);
        Registers.Write(DriverFeatures, (uint)features);
    }

    /// <summary>Sets up queue 0 with <paramref name="size"/> entries in the buffer's page and marks it ready.</summary>
    internal void SetUpQueue(ushort size)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxQueueSize);
        QueueSize = size;
        _availIdx = 0;
        _memory.GetSpan(0, 4096).Clear();
        Registers.Write(QueueSel, 0);
        Registers.Write(QueueNum, size);
        WriteAddress(QueueDescLow, _memory.GetPhysicalAddress(DescTable));
        WriteAddress(QueueDriverLow, _memory.GetPhysicalAddress(DriverArea));
        WriteAddress(QueueDeviceLow, _memory.GetPhysicalAddress(DeviceArea));
        Registers.Write(QueueReady, 1);
    }

    /// <summary>Initialises the device (virtio 1.2 §3.1.1: reset, ACKNOWLEDGE | DRIVER, <paramref name="features"/>
    /// (VIRTIO_F_VERSION_1 by default), FEATURES_OK), sets up queue 0 with <paramref name="queueSize"/> entries and sets
    /// DRIVER_OK.</summary>
    internal void Start(ushort queueSize, ulong features = VersionOne)
    {
        SetStatus(0);
        SetStatus(Acknowledge | Driver);
        WriteDriverFeatures(features);
        SetStatus(Acknowledge | Driver | FeaturesOk);
        SetUpQueue(queueSize);
        SetStatus(Acknowledge | Driver | FeaturesOk | DriverOk);
    }

    /// <summary>Makes one device-writable buffer of <paramref name="length"/> bytes (descriptor 0) available and notifies.</summary>
    internal void Submit(uint length)
    {
        _memory.GetSpan(DataArea, (int)length).Clear();
        Submit([new VirtqBuffer(_memory.GetPhysicalAddress(DataArea), length, DeviceWrites: true)]);
    }

    /// <summary>Makes <paramref name="chain"/> available as one chain from descriptor 0 and notifies.</summary>
    internal void Submit(ReadOnlySpan<VirtqBuffer> chain)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chain.Length, (int)QueueSize);
        MemoryMapping m = _memory.Memory;
        for (int i = 0; i < chain.Length; i++)
        {
            ulong d = DescTable + (16UL * (ulong)i);
            bool last = i == chain.Length - 1;
            m.Write64(d, chain[i].Address);
            m.Write32(d + 8, chain[i].Length);
            m.Write16(d + 12, (ushort)((chain[i].DeviceWrites ? DescriptorWrite : 0) | (last ? 0 : DescriptorNext)));
            m.Write16(d + 14, last ? (ushort)0 : (ushort)(i + 1));
        }
        m.Write16(DriverArea + 4 + (2UL * (ulong)(_availIdx % QueueSize)), 0);   // ring[idx % size] = head 0
        Interlocked.MemoryBarrier();   // the descriptors and ring entry before the index (virtio 1.2 §2.7.13)
        _availIdx++;
        m.Write16(DriverArea + 2, _availIdx);
        Interlocked.MemoryBarrier();   // the index before the notification
        Registers.Write(QueueNotify, 0);
    }

    /// <summary>The available ring's idx: the chains made available since the queue was set up.</summary>
    internal ushort AvailableIndex => _availIdx;

    /// <summary>The device area's idx.</summary>
    internal ushort UsedIndex => _memory.Memory.Read16(DeviceArea + 2);

    /// <summary>Used ring element <paramref name="i"/>: the chain's head and the bytes written.</summary>
    internal (uint Id, uint Length) UsedElement(int i)
    {
        ulong element = DeviceArea + 4 + (8UL * (ulong)(i % QueueSize));
        return (_memory.Memory.Read32(element), _memory.Memory.Read32(element + 4));
    }

    /// <summary>The data buffer's bytes.</summary>
    internal byte[] Data(int length) => _memory.GetSpan(DataArea, length).ToArray();

    /// <summary>A 32-bit field of the device's configuration space.</summary>
    internal uint ReadConfig32(ulong offset) => Registers.Read(Config + offset);

    /// <summary>A 64-bit field of the device's configuration space, read as two halves until ConfigGeneration is the same
    /// before and after (virtio 1.2 §4.2.2.2).</summary>
    internal ulong ReadConfig64(ulong offset)
    {
        while (true)
        {
            uint generation = Registers.Read(ConfigGeneration);
            ulong value = Registers.Read(Config + offset) | ((ulong)Registers.Read(Config + offset + 4) << 32);
            if (Registers.Read(ConfigGeneration) == generation)
            {
                return value;
            }
        }
    }

    private void WriteAddress(ulong low, ulong address)
    {
        Registers.Write(low, (uint)address);
        Registers.Write(low + 4, (uint)(address >> 32));
    }

    /// <summary>Disables the interrupt and frees the rings.</summary>
    public void Dispose()
    {
        Platform.Dispose();
        _memory.Dispose();
    }

    /// <summary>Region 0 of the vfio-platform device: 32-bit little-endian registers.</summary>
    internal sealed class VfioMmioRegion(VfioPlatformRegion region)
    {
        internal uint Read(ulong offset) => region.Read32(offset);

        internal void Write(ulong offset, uint value) => region.Write32(offset, value);
    }
}

/// <summary>One buffer of a chain: its physical address, length and direction.</summary>
internal readonly record struct VirtqBuffer(ulong Address, uint Length, bool DeviceWrites);
