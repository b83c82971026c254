// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Vfio.Simulator;

/// <summary>
/// A virtio-mmio (version 2) entropy device as QEMU's <c>-device virtio-rng-device</c> on a microvm: one 0x200-byte
/// register region (read/write, not mmap-able) and one level-triggered interrupt, served by vfio-platform.
/// </summary>
/// <remarks>
/// The registers follow the virtio 1.x MMIO layout (magic <c>0x74726976</c>, version 2, device ID 4, vendor
/// "QEMU"). The device offers only <c>VIRTIO_F_VERSION_1</c> (QEMU's offers 0x0000010130000000: also INDIRECT_DESC,
/// EVENT_IDX and RING_RESET, which the model does not implement) and one split virtqueue of up to 1024 entries. When the
/// driver notifies queue 0, the device walks the available ring, fills every device-writable descriptor with random
/// bytes by DMA, adds the chains to the used ring, sets bit 0 of InterruptStatus and asserts its line until the
/// driver acknowledges it. Registers take 32-bit accesses; other widths read 0 and are ignored.
/// </remarks>
public sealed class VirtioRngDevice : EmulatedPlatformDevice
{
    /// <summary>The virtio-mmio magic value ("virt").</summary>
    public const uint MagicValue = 0x74726976;

    /// <summary>The virtio device ID of an entropy source.</summary>
    public const uint EntropyDeviceId = 4;

    /// <summary>What QueueNumMax reads: QEMU's virtio-mmio reports <c>VIRTQUEUE_MAX_SIZE</c> (1024) for any existing queue,
    /// not the device's own queue size (8 for virtio-rng), and accepts any QueueNum from 1 to it (seen on the testbed).</summary>
    public const int QueueSizeMax = 1024;

    private readonly PlatformRegion[] _regions = [new PlatformRegion(0x200)];
    private readonly PlatformIrq[] _irqs = [new PlatformIrq(LevelTriggered: true)];
    private uint _deviceFeaturesSel, _driverFeaturesSel, _queueSel, _status, _interruptStatus;
    private readonly uint[] _driverFeatures = new uint[2];
    private uint _queueNum;
    private bool _queueReady;
    private ulong _desc, _avail, _used;
    private ushort _lastAvail, _usedIdx;

    /// <summary>How long the device takes to answer a notification (default 1 ms).</summary>
    public TimeSpan Latency { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>The number of requests (descriptor chains) the device has completed.</summary>
    public int CompletedRequests { get; private set; }

    /// <inheritdoc/>
    public override IReadOnlyList<PlatformRegion> Regions => _regions;

    /// <inheritdoc/>
    public override IReadOnlyList<PlatformIrq> Irqs => _irqs;

    /// <inheritdoc/>
    protected override ulong ReadRegister(int region, ulong offset, int width)
    {
        if (width != 4)
        {
            return 0;
        }
        return offset switch
        {
            0x000 => MagicValue,
            0x004 => 2,
            0x008 => EntropyDeviceId,
            0x00c => 0x554d4551, // "QEMU"
            0x010 => _deviceFeaturesSel == 1 ? 1u : 0u, // VIRTIO_F_VERSION_1 (bit 32)
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
            _ => 0,
        };
    }

    /// <inheritdoc/>
    protected override void WriteRegister(int region, ulong offset, int width, ulong value)
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
                if (v == 0)
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
    protected override void OnReset() => ResetDevice();

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
    }

    /// <summary>Serves every available chain of queue 0 (virtio 1.x split ring, no indirect descriptors).</summary>
    private void ProcessQueue()
    {
        const uint DriverOk = 4;
        const ushort DescNext = 1, DescWrite = 2;
        if (!_queueReady || (_status & DriverOk) == 0 || _queueNum == 0)
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
        while (_lastAvail != availIdx)
        {
            if (!DmaRead(_avail + 4 + (2UL * (ulong)(_lastAvail % _queueNum)), word[..2]))
            {
                return;
            }
            ushort head = BinaryPrimitives.ReadUInt16LittleEndian(word);
            uint written = 0;
            ushort index = head;
            for (int steps = 0; steps < _queueNum && index < _queueNum; steps++)
            {
                if (!DmaRead(_desc + (16UL * index), word))
                {
                    return;
                }
                ulong address = BinaryPrimitives.ReadUInt64LittleEndian(word);
                uint length = BinaryPrimitives.ReadUInt32LittleEndian(word[8..]);
                ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(word[12..]);
                ushort next = BinaryPrimitives.ReadUInt16LittleEndian(word[14..]);
                if ((flags & DescWrite) != 0 && length > 0)
                {
                    byte[] entropy = RandomNumberGenerator.GetBytes((int)Math.Min(length, 1u << 20));
                    if (!DmaWrite(address, entropy))
                    {
                        return;
                    }
                    written += (uint)entropy.Length;
                }
                if ((flags & DescNext) == 0)
                {
                    break;
                }
                index = next;
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
