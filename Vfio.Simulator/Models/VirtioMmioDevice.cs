// SPDX-License-Identifier: MIT
using System.Buffers.Binary;

namespace Vfio.Simulator;

/// <summary>
/// A virtio-mmio (version 2) transport as QEMU's on a microvm, with one device behind it (<see cref="VirtioRngDevice"/>,
/// <see cref="VirtioBlkDevice"/>): one 0x200-byte register region (read/write, not mmap-able: smaller than a page) and
/// one level-triggered interrupt, served by vfio-platform.
/// </summary>
/// <remarks>
/// The registers follow the virtio 1.x MMIO layout (magic <c>0x74726976</c>, version 2, vendor "QEMU"); the device's
/// configuration space starts at 0x100. The transport has one split virtqueue of up to <see cref="QueueSizeMax"/>
/// entries (no indirect descriptors, no event index). When the driver notifies queue 0, the device walks the available
/// ring after <see cref="Latency"/>, serves every chain, adds it to the used ring with the bytes the device wrote, sets
/// bit 0 of InterruptStatus and asserts its line until the driver acknowledges every bit. Registers take 32-bit
/// accesses (other widths read 0 and are ignored); the configuration space takes 1-, 2- and 4-byte accesses. Writing 0
/// to Status resets the device. A chain the device cannot parse sets DEVICE_NEEDS_RESET (0x40) in Status and stops the
/// queue, as QEMU's <c>virtio_error</c> does; a blocked DMA leaves the chain uncompleted.
/// </remarks>
public abstract class VirtioMmioDevice : EmulatedPlatformDevice
{
    /// <summary>The virtio-mmio magic value ("virt").</summary>
    public const uint MagicValue = 0x74726976;

    /// <summary>What QueueNumMax reads: QEMU's virtio-mmio reports <c>VIRTQUEUE_MAX_SIZE</c> (1024) for any existing queue,
    /// not the device's own queue size, and accepts any QueueNum from 1 to it (seen on the testbed).</summary>
    public const int QueueSizeMax = 1024;

    /// <summary>VIRTIO_F_VERSION_1 (feature bit 32).</summary>
    private protected const ulong VersionOne = 1UL << 32;

    private const uint DriverOk = 4, NeedsReset = 0x40;
    private const ushort DescNext = 1, DescWrite = 2;

    private readonly PlatformRegion[] _regions = [new PlatformRegion(0x200)];
    private readonly PlatformIrq[] _irqs = [new PlatformIrq(LevelTriggered: true)];
    private readonly uint _deviceId;
    private readonly ulong _deviceFeatures;
    private readonly uint[] _driverFeatures = new uint[2];
    private uint _deviceFeaturesSel, _driverFeaturesSel, _queueSel, _status, _interruptStatus;
    private uint _queueNum;
    private bool _queueReady;
    private ulong _desc, _avail, _used;
    private ushort _lastAvail, _usedIdx;

    /// <summary>Creates the transport for a device.</summary>
    /// <param name="deviceId">The virtio device ID.</param>
    /// <param name="deviceFeatures">The feature bits the device offers (VIRTIO_F_VERSION_1 is added).</param>
    private protected VirtioMmioDevice(uint deviceId, ulong deviceFeatures)
    {
        _deviceId = deviceId;
        _deviceFeatures = deviceFeatures | VersionOne;
    }

    /// <summary>How long the device takes to answer a notification (default 1 ms). Zero serves the queue during the
    /// notifying write, so the used ring and the interrupt are there before the write returns: QEMU does that too (seen
    /// on the testbed's virtio-blk), and a driver must still take that interrupt.</summary>
    public TimeSpan Latency { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>The number of requests (descriptor chains) the device has completed.</summary>
    public int CompletedRequests { get; private set; }

    /// <inheritdoc/>
    public override IReadOnlyList<PlatformRegion> Regions => _regions;

    /// <inheritdoc/>
    public override IReadOnlyList<PlatformIrq> Irqs => _irqs;

    /// <summary>The feature bits the driver accepted.</summary>
    private protected ulong DriverFeatures => ((ulong)_driverFeatures[1] << 32) | _driverFeatures[0];

    /// <summary>The device's configuration space (read-only to the driver), at offset 0x100 of the region.</summary>
    private protected abstract ReadOnlySpan<byte> Config { get; }

    /// <summary>Serves one chain.</summary>
    /// <param name="chain">The chain's descriptors in order.</param>
    /// <returns>The bytes the device wrote into the chain (the used element's length), or null to stop serving the
    /// queue without completing the chain: a DMA the IOMMU blocked, or a malformed chain (after
    /// <see cref="SetNeedsReset"/>).</returns>
    private protected abstract uint? Serve(IReadOnlyList<VirtqDescriptor> chain);

    /// <summary>Sets DEVICE_NEEDS_RESET in Status: the device serves the queue no more until it is reset.</summary>
    private protected void SetNeedsReset() => _status |= NeedsReset;

    /// <summary>Returns the device to its power-on state (beyond the transport's registers).</summary>
    private protected virtual void ResetState()
    {
    }

    /// <inheritdoc/>
    protected sealed override ulong ReadRegister(int region, ulong offset, int width)
    {
        if (offset >= 0x100)
        {
            return ReadConfig(offset - 0x100, width);
        }
        if (width != 4)
        {
            return 0;
        }
        return offset switch
        {
            0x000 => MagicValue,
            0x004 => 2,
            0x008 => _deviceId,
            0x00c => 0x554d4551, // "QEMU"
            0x010 => _deviceFeaturesSel < 2 ? (uint)(_deviceFeatures >> (32 * (int)_deviceFeaturesSel)) : 0u,
            0x034 => _queueSel == 0 ? QueueSizeMax : 0u,
            0x044 => _queueSel == 0 && _queueReady ? 1u : 0u,
            0x060 => _interruptStatus,
            0x070 => _status,
            0x080 => (uint)_desc,
            0x084 => (uint)(_desc >> 32),
            0x090 => (uint)_avail,
            0x094 => (uint)(_avail >> 32),
            0x0a0 => (uint)_used,
            0x0a4 => (uint)(_used >> 32),
            _ => 0, // ConfigGeneration (0x0fc) included: the configuration never changes
        };
    }

    /// <inheritdoc/>
    protected sealed override void WriteRegister(int region, ulong offset, int width, ulong value)
    {
        if (width != 4)
        {
            return;
        }
        uint v = (uint)value;
        switch (offset)
        {
            case 0x014:
                _deviceFeaturesSel = v;
                break;
            case 0x020:
                if (_driverFeaturesSel < 2)
                {
                    _driverFeatures[_driverFeaturesSel] = v;
                }
                break;
            case 0x024:
                _driverFeaturesSel = v;
                break;
            case 0x030:
                _queueSel = v;
                break;
            case 0x038:
                if (_queueSel == 0 && v is > 0 and <= QueueSizeMax)
                {
                    _queueNum = v;
                }
                break;
            case 0x044:
                if (_queueSel == 0)
                {
                    _queueReady = v != 0;
                }
                break;
            case 0x050:
                if (v == 0 && Latency <= TimeSpan.Zero)
                {
                    ProcessQueue();   // served during the notifying write, as QEMU can
                }
                else if (v == 0)
                {
                    Schedule(Latency, ProcessQueue);
                }
                break;
            case 0x064:
                _interruptStatus &= ~v;
                if (_interruptStatus == 0)
                {
                    SetIrq(0, false);
                }
                break;
            case 0x070:
                if (v == 0)
                {
                    ResetDevice();
                }
                else
                {
                    _status = v;
                }
                break;
            case 0x080:
                SetLow(ref _desc, v);
                break;
            case 0x084:
                SetHigh(ref _desc, v);
                break;
            case 0x090:
                SetLow(ref _avail, v);
                break;
            case 0x094:
                SetHigh(ref _avail, v);
                break;
            case 0x0a0:
                SetLow(ref _used, v);
                break;
            case 0x0a4:
                SetHigh(ref _used, v);
                break;
            default:
                break;
        }
    }

    /// <inheritdoc/>
    protected sealed override void OnReset() => ResetDevice();

    private ulong ReadConfig(ulong offset, int width)
    {
        ReadOnlySpan<byte> config = Config;
        if (offset + (ulong)width > (ulong)config.Length)
        {
            return 0;
        }
        ulong value = 0;
        for (int i = width - 1; i >= 0; i--)
        {
            value = (value << 8) | config[(int)offset + i];
        }
        return value;
    }

    private void SetLow(ref ulong register, uint value)
    {
        if (_queueSel == 0)
        {
            register = (register & 0xffff_ffff_0000_0000) | value;
        }
    }

    private void SetHigh(ref ulong register, uint value)
    {
        if (_queueSel == 0)
        {
            register = (register & 0xffff_ffff) | ((ulong)value << 32);
        }
    }

    private void ResetDevice()
    {
        _status = _interruptStatus = _deviceFeaturesSel = _driverFeaturesSel = _queueSel = 0;
        _driverFeatures[0] = _driverFeatures[1] = 0;
        _queueNum = 0;
        _queueReady = false;
        _desc = _avail = _used = 0;
        _lastAvail = _usedIdx = 0;
        SetIrq(0, false);
        ResetState();
    }

    /// <summary>Serves every available chain of queue 0 (virtio 1.x split ring, no indirect descriptors).</summary>
    private void ProcessQueue()
    {
        if (!_queueReady || (_status & DriverOk) == 0 || (_status & NeedsReset) != 0 || _queueNum == 0)
        {
            return;
        }
        Span<byte> word = stackalloc byte[16];
        if (!DmaRead(_avail + 2, word[..2]))
        {
            return;
        }
        ushort availIdx = BinaryPrimitives.ReadUInt16LittleEndian(word);
        bool completed = false;
        var chain = new List<VirtqDescriptor>();
        while (_lastAvail != availIdx)
        {
            if (!DmaRead(_avail + 4 + (2UL * (ulong)(_lastAvail % _queueNum)), word[..2]))
            {
                return;
            }
            ushort head = BinaryPrimitives.ReadUInt16LittleEndian(word);
            chain.Clear();
            ushort index = head;
            for (int steps = 0; steps < _queueNum && index < _queueNum; steps++)
            {
                if (!DmaRead(_desc + (16UL * index), word))
                {
                    return;
                }
                ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(word[12..]);
                chain.Add(new VirtqDescriptor(
                    BinaryPrimitives.ReadUInt64LittleEndian(word),
                    BinaryPrimitives.ReadUInt32LittleEndian(word[8..]),
                    (flags & DescWrite) != 0));
                if ((flags & DescNext) == 0)
                {
                    break;
                }
                index = BinaryPrimitives.ReadUInt16LittleEndian(word[14..]);
            }
            if (Serve(chain) is not uint written)
            {
                break;
            }
            BinaryPrimitives.WriteUInt32LittleEndian(word, head);
            BinaryPrimitives.WriteUInt32LittleEndian(word[4..], written);
            if (!DmaWrite(_used + 4 + (8UL * (ulong)(_usedIdx % _queueNum)), word[..8]))
            {
                return;
            }
            _usedIdx++;
            BinaryPrimitives.WriteUInt16LittleEndian(word, _usedIdx);
            if (!DmaWrite(_used + 2, word[..2]))
            {
                return;
            }
            _lastAvail++;
            CompletedRequests++;
            completed = true;
        }
        if (completed)
        {
            _interruptStatus |= 1;
            SetIrq(0, true);
        }
    }
}

/// <summary>One descriptor of a chain: a buffer in the driver's memory (bus addresses).</summary>
/// <param name="Address">The buffer's bus address.</param>
/// <param name="Length">Its length in bytes.</param>
/// <param name="DeviceWritable">VIRTQ_DESC_F_WRITE: the device writes it (else reads it).</param>
internal readonly record struct VirtqDescriptor(ulong Address, uint Length, bool DeviceWritable);
