// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Vfio.Core;
using Vfio.Devices.Platform;

namespace Vfio.Conformance;

/// <summary>
/// A minimal user-space virtio-blk driver (virtio 1.2 §5.2) on <see cref="VirtioMmioDriver"/>'s transport and split
/// virtqueue: one request at a time, a chain of the 16-byte header (device-readable), the data in descriptors of at most
/// one page (the buffer's pages are not physically contiguous) and the status byte (device-writable). It waits for
/// each completion through the level IRQ: the eventfd fires once, the driver acknowledges InterruptStatus (the device
/// lowers its line) and only then unmasks the automasked line, by the unmask eventfd or by the caller's resample fd.
/// Test code: it checks nothing itself, the cases assert.
/// </summary>
internal sealed class VirtioBlkDriver : IDisposable
{
    internal const uint BlockDeviceId = 2;
    internal const int SectorSize = 512, PageSize = 4096;
    internal const ulong FeatureSegMax = 1UL << 2, FeatureBlkSize = 1UL << 6, FeatureFlush = 1UL << 9;
    internal const ulong CapacityOffset = 0x00, SegMaxOffset = 0x0c, BlkSizeOffset = 0x14;
    internal const uint TypeIn = 0, TypeOut = 1, TypeFlush = 4;
    internal const byte StatusOk = 0, StatusIoError = 1, StatusUnsupported = 2;

    /// <summary>The largest request's data: the data pages of the I/O buffer.</summary>
    internal const int MaxDataPages = 8;

    /// <summary>The queue's size: a chain of <see cref="MaxDataPages"/> pages in 1 KiB descriptors (34) fits.</summary>
    internal const ushort QueueSize = VirtioMmioDriver.MaxQueueSize;

    // Page 0: the header at 0x000, the status byte at 0x800; pages 1..MaxDataPages: the data.
    private const ulong Header = 0x000, StatusByte = 0x800, Data = PageSize;

    private readonly PhysicalDmaBuffer _io;
    private InterruptEvent? _resample;

    internal VirtioBlkDriver(VfioDevice device, IKernel kernel)
    {
        Virtio = new VirtioMmioDriver(device, kernel);
        try
        {
            _io = PhysicalDmaBuffer.Allocate(kernel, (ulong)(PageSize * (1 + MaxDataPages)));
        }
        catch
        {
            Virtio.Dispose();
            throw;
        }
    }

    internal VirtioMmioDriver Virtio { get; }

    /// <summary>The interrupts the driver has taken (one per request).</summary>
    internal int Interrupts { get; private set; }

    /// <summary>Initialises the device with <paramref name="features"/> and queue 0 of <see cref="QueueSize"/> entries,
    /// and enables its IRQ: unmasked by the unmask eventfd, or by <paramref name="resample"/> when given.</summary>
    internal void Start(ulong features = VirtioMmioDriver.VersionOne, InterruptEvent? resample = null)
    {
        Virtio.Start(QueueSize, features);
        if (!Virtio.Irq.IsEnabled)
        {
            Virtio.Irq.Enable(resample);
            _resample = resample;
        }
    }

    /// <summary>The disk's capacity in 512-byte sectors (configuration space).</summary>
    internal ulong Capacity => Virtio.ReadConfig64(CapacityOffset);

    /// <summary>The data pages, as written or read by the last request.</summary>
    internal Span<byte> DataBuffer(int length) => _io.GetSpan(Data, length);

    /// <summary>Writes <paramref name="data"/> at <paramref name="sector"/>.</summary>
    internal Completion Write(ulong sector, ReadOnlySpan<byte> data, int segment = PageSize)
    {
        data.CopyTo(DataBuffer(data.Length));
        return Request(TypeOut, sector, data.Length, segment);
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="sector"/> into <see cref="DataBuffer"/>.</summary>
    internal Completion Read(ulong sector, int length, int segment = PageSize) => Request(TypeIn, sector, length, segment);

    /// <summary>Makes one request of <paramref name="type"/> with <paramref name="length"/> data bytes (device-readable
    /// for OUT, device-writable otherwise) in descriptors of at most <paramref name="segment"/> bytes, and waits for it.</summary>
    internal Completion Request(uint type, ulong sector, int length, int segment = PageSize)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, PageSize * MaxDataPages);
        ArgumentOutOfRangeException.ThrowIfLessThan(segment, 1);
        MemoryMapping m = _io.Memory;
        m.Write32(Header, type);
        m.Write32(Header + 4, 0);
        m.Write64(Header + 8, sector);
        m.Write8(StatusByte, 0xff);
        bool deviceWrites = type != TypeOut;
        var chain = new List<VirtqBuffer> { new(_io.GetPhysicalAddress(Header), 16, DeviceWrites: false) };
        for (int offset = 0; offset < length;)
        {
            int inPage = PageSize - (offset % PageSize);
            int n = Math.Min(Math.Min(segment, inPage), length - offset);
            chain.Add(new VirtqBuffer(_io.GetPhysicalAddress(Data + (ulong)offset), (uint)n, deviceWrites));
            offset += n;
        }
        chain.Add(new VirtqBuffer(_io.GetPhysicalAddress(StatusByte), 1, DeviceWrites: true));
        ushort expected = (ushort)(Virtio.AvailableIndex + 1);
        Virtio.Submit(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(chain));
        ulong signals = WaitForUsed(expected);
        (uint id, uint used) = Virtio.UsedElement(expected - 1);
        return new Completion(m.Read8(StatusByte), id, used, chain.Count, signals);
    }

    /// <summary>Waits for the used-buffer interrupt, then until the used ring's idx is <paramref name="expected"/>;
    /// acknowledges and unmasks each interrupt. Returns the eventfd's count of the last interrupt. The driver waits
    /// for the interrupt even when the used ring is already there: QEMU can complete a request before the notifying
    /// write returns, and the interrupt it raised must be consumed, acknowledged and unmasked all the same.</summary>
    private ulong WaitForUsed(ushort expected)
    {
        VfioPlatformIrq irq = Virtio.Irq;
        ulong count;
        do
        {
            if (!irq.TryWait(Rig.Timeout, out count))
            {
                throw new TimeoutException(
                    $"No used-buffer interrupt from {Virtio.Platform.Device.Name} within {Rig.Timeout.TotalSeconds} s " +
                    $"(used idx {Virtio.UsedIndex}, expected {expected}, InterruptStatus 0x{Virtio.Registers.Read(VirtioMmioDriver.InterruptStatus):x}).");
            }
            Interrupts++;
            uint status = Virtio.Registers.Read(VirtioMmioDriver.InterruptStatus);
            Virtio.Registers.Write(VirtioMmioDriver.InterruptAck, status);   // the device lowers its line
            if (_resample is { } resample)
            {
                resample.Signal();
            }
            else
            {
                irq.Unmask();
            }
        }
        while (Virtio.UsedIndex != expected);
        return count;
    }

    public void Dispose()
    {
        Virtio.Dispose();
        _io.Dispose();
    }

    /// <summary>A completed request: the status byte, the used element (head and bytes written), the chain's
    /// descriptor count, and the interrupt eventfd's count.</summary>
    internal readonly record struct Completion(byte Status, uint Head, uint UsedLength, int Descriptors, ulong IrqCount);
}
