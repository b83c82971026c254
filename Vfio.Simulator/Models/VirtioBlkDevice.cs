// SPDX-License-Identifier: MIT
using System.Buffers.Binary;

namespace Vfio.Simulator;

/// <summary>
/// A virtio-mmio block device on a RAM disk, as QEMU's <c>-device virtio-blk-device</c> on a raw image (the transport is
/// <see cref="VirtioMmioDevice"/>'s).
/// </summary>
/// <remarks>
/// Device ID 2. The device offers <c>VIRTIO_F_VERSION_1</c>, <c>VIRTIO_BLK_F_SEG_MAX</c>, <c>VIRTIO_BLK_F_BLK_SIZE</c>
/// and <c>VIRTIO_BLK_F_FLUSH</c> (QEMU's offers more: GEOMETRY, TOPOLOGY, CONFIG_WCE, DISCARD, WRITE_ZEROES and the
/// ring features, which the model does not implement). Configuration space (<c>struct virtio_blk_config</c>):
/// capacity in 512-byte sectors (le64 at 0x00), seg_max 254 (0x0c: QEMU's queue size 256 less 2), blk_size 512
/// (0x14). A request is a 16-byte header (type, reserved, sector) in the device-readable bytes, then the data (written
/// to the disk for OUT), then the device-writable bytes: the data (read from the disk for IN) and the status byte last.
/// The used length is every device-writable byte, data and status, whatever the status (QEMU's <c>in_len</c>). IN and
/// OUT whose length is not a multiple of 512, or whose sectors do not all lie below the capacity, complete with
/// <see cref="StatusIoError"/> and touch neither disk nor memory; FLUSH completes with <see cref="StatusOk"/>;
/// GET_ID writes the serial and its NUL (at most 20 bytes, as QEMU); any other type completes with
/// <see cref="StatusUnsupported"/>. A chain without a header or a status byte sets DEVICE_NEEDS_RESET.
/// </remarks>
public sealed class VirtioBlkDevice : VirtioMmioDevice
{
    /// <summary>The virtio device ID of a block device.</summary>
    public const uint BlockDeviceId = 2;

    /// <summary>The sector size of capacity and request sectors.</summary>
    public const int SectorSize = 512;

    /// <summary>VIRTIO_BLK_S_OK.</summary>
    public const byte StatusOk = 0;

    /// <summary>VIRTIO_BLK_S_IOERR.</summary>
    public const byte StatusIoError = 1;

    /// <summary>VIRTIO_BLK_S_UNSUPP.</summary>
    public const byte StatusUnsupported = 2;

    private const ulong SegMax = 1UL << 2, BlkSize = 1UL << 6, Flush = 1UL << 9;
    private const uint TypeIn = 0, TypeOut = 1, TypeFlush = 4, TypeGetId = 8;
    private const int HeaderSize = 16, IdBytes = 20;

    private readonly byte[] _disk;
    private readonly byte[] _config = new byte[0x18];
    private readonly byte[] _serial;

    /// <summary>Creates the device on a zero-filled RAM disk.</summary>
    /// <param name="capacityBytes">The disk's size: a positive multiple of <see cref="SectorSize"/>, at most 1 GiB.</param>
    /// <param name="serial">What GET_ID returns (QEMU's <c>serial</c> property; none by default).</param>
    public VirtioBlkDevice(int capacityBytes = 1 << 20, string serial = "")
        : base(BlockDeviceId, SegMax | BlkSize | Flush)
    {
        if (capacityBytes <= 0 || capacityBytes % SectorSize != 0 || capacityBytes > 1 << 30)
        {
            throw new ArgumentOutOfRangeException(nameof(capacityBytes), capacityBytes,
                $"A virtio-blk RAM disk holds a positive multiple of {SectorSize} bytes, at most 1 GiB.");
        }
        ArgumentNullException.ThrowIfNull(serial);
        _disk = new byte[capacityBytes];
        _serial = System.Text.Encoding.ASCII.GetBytes(serial);
        if (_serial.Length > IdBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(serial), serial, $"A virtio-blk serial has at most {IdBytes} bytes.");
        }
        BinaryPrimitives.WriteUInt64LittleEndian(_config, (ulong)(capacityBytes / SectorSize));
        BinaryPrimitives.WriteUInt32LittleEndian(_config.AsSpan(0x0c), 254);
        BinaryPrimitives.WriteUInt32LittleEndian(_config.AsSpan(0x14), SectorSize);
    }

    /// <summary>The disk's capacity in sectors.</summary>
    public ulong Capacity => (ulong)(_disk.Length / SectorSize);

    /// <summary>The disk's bytes (what the device reads and writes), e.g. to check what a driver wrote.</summary>
    public Span<byte> Disk => _disk;

    private protected override ReadOnlySpan<byte> Config => _config;

    private protected override uint? Serve(IReadOnlyList<VirtqDescriptor> chain)
    {
        // The device-readable bytes come first, then the device-writable ones (virtio 1.2 §2.7.4.2).
        byte[] readable = [];
        var writable = new List<VirtqDescriptor>();
        uint inLength = 0;
        foreach (VirtqDescriptor d in chain)
        {
            if (d.DeviceWritable)
            {
                writable.Add(d);
                inLength += d.Length;
            }
            else if (writable.Count > 0)
            {
                SetNeedsReset();   // a readable buffer after a writable one
                return null;
            }
            else
            {
                byte[] bytes = new byte[d.Length];
                if (!DmaRead(d.Address, bytes))
                {
                    return null;
                }
                readable = [.. readable, .. bytes];
            }
        }
        if (readable.Length < HeaderSize || inLength < 1)
        {
            SetNeedsReset();   // QEMU: "virtio-blk missing headers" / "request inhdr too short"
            return null;
        }
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(readable);
        ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(readable.AsSpan(8));
        int dataIn = (int)inLength - 1;
        byte status;
        switch (type)
        {
            case TypeIn:
                status = InRange(sector, dataIn) ? StatusOk : StatusIoError;
                if (status == StatusOk && !Scatter(writable, _disk.AsSpan((int)(sector * SectorSize), dataIn)))
                {
                    return null;
                }
                break;
            case TypeOut:
                int dataOut = readable.Length - HeaderSize;
                status = InRange(sector, dataOut) ? StatusOk : StatusIoError;
                if (status == StatusOk)
                {
                    readable.AsSpan(HeaderSize).CopyTo(_disk.AsSpan((int)(sector * SectorSize)));
                }
                break;
            case TypeFlush:
                status = StatusOk;
                break;
            case TypeGetId:
                byte[] id = new byte[Math.Min(Math.Min(_serial.Length + 1, IdBytes), dataIn)];   // with the NUL when it fits
                _serial.AsSpan(0, Math.Min(_serial.Length, id.Length)).CopyTo(id);
                if (!Scatter(writable, id))
                {
                    return null;
                }
                status = StatusOk;
                break;
            default:
                status = StatusUnsupported;
                break;
        }
        VirtqDescriptor last = writable[^1];
        return DmaWrite(last.Address + last.Length - 1, [status]) ? inLength : null;
    }

    /// <summary>QEMU's <c>virtio_blk_sect_range_ok</c>: whole sectors, all below the capacity.</summary>
    private bool InRange(ulong sector, int length)
        => length % SectorSize == 0 && sector <= Capacity && (ulong)(length / SectorSize) <= Capacity - sector;

    /// <summary>Writes <paramref name="data"/> into the device-writable buffers in order.</summary>
    private bool Scatter(List<VirtqDescriptor> writable, ReadOnlySpan<byte> data)
    {
        foreach (VirtqDescriptor d in writable)
        {
            if (data.IsEmpty)
            {
                break;
            }
            int n = (int)Math.Min(d.Length, (uint)data.Length);
            if (!DmaWrite(d.Address, data[..n]))
            {
                return false;
            }
            data = data[n..];
        }
        return true;
    }
}
