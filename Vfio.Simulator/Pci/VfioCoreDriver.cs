// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// What the VFIO core does for every bus driver's device fd (drivers/vfio/vfio_main.c): <c>VFIO_DEVICE_FEATURE</c>
/// dispatch and validation (vfio_ioctl_device_feature), the shared SET_IRQS header validation (vfio_set_irqs_validate_and_prepare), and the <c>pread</c>/<c>pwrite</c>
/// dispatch of both bus drivers (region index in the offset's bits 40 and up, vfio_pci_rw): a bus driver supplies only
/// its region handlers.
/// </summary>
internal abstract class VfioCoreDriver : VfioBusDriver
{
    protected const int EINVAL = (int)Errno.EINVAL;
    protected const int ENOTTY = (int)Errno.ENOTTY;
    protected const int EFAULT = (int)Errno.EFAULT;
    protected const int SetIrqsMinsz = vfio_irq_set.data_offset;

    /// <summary>The region index sits in the device-fd offset's bits 40 and up (VFIO_PCI_OFFSET_SHIFT, vfio-platform's too).</summary>
    protected const int OffsetShift = 40;
    protected const ulong OffsetMask = (1UL << OffsetShift) - 1;
    protected const ulong PageSize = 4096;

    /// <summary>How many regions the device has: an index at or above it is <c>EINVAL</c>.</summary>
    protected abstract uint RegionCount { get; }

    /// <summary>Reads or writes <paramref name="buffer"/> at <paramref name="pos"/> of region <paramref name="index"/>
    /// (below <see cref="RegionCount"/>; the buffer is not empty). Returns the bytes done or <c>-errno</c>.</summary>
    protected abstract long RegionReadWrite(int index, Span<byte> buffer, ulong pos, bool write);

    internal sealed override long Read(Span<byte> buffer, long offset) => ReadWrite(buffer, offset, write: false);

    internal sealed override long Write(ReadOnlySpan<byte> buffer, long offset)
    {
        // The bytes are copied to a scratch buffer so one code path serves both directions.
        Span<byte> copy = buffer.Length <= 64 ? stackalloc byte[buffer.Length] : new byte[buffer.Length];
        buffer.CopyTo(copy);
        return ReadWrite(copy, offset, write: true);
    }

    private long ReadWrite(Span<byte> buffer, long offset, bool write)
    {
        if (buffer.Length == 0)
        {
            return 0;
        }
        ulong index = (ulong)offset >> OffsetShift;
        ulong pos = (ulong)offset & OffsetMask;
        return index >= RegionCount ? -EINVAL : RegionReadWrite((int)index, buffer, pos, write);
    }

    /// <summary>The little-endian value of a 1, 2, 4 or 8 byte piece.</summary>
    protected static ulong ReadLittleEndian(ReadOnlySpan<byte> piece) => piece.Length switch
    {
        8 => BinaryPrimitives.ReadUInt64LittleEndian(piece),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(piece),
        2 => BinaryPrimitives.ReadUInt16LittleEndian(piece),
        _ => piece[0],
    };

    /// <summary>Stores <paramref name="value"/> little-endian in a 1, 2, 4 or 8 byte piece.</summary>
    protected static void WriteLittleEndian(Span<byte> piece, ulong value)
    {
        switch (piece.Length)
        {
            case 8:
                BinaryPrimitives.WriteUInt64LittleEndian(piece, value);
                break;
            case 4:
                BinaryPrimitives.WriteUInt32LittleEndian(piece, (uint)value);
                break;
            case 2:
                BinaryPrimitives.WriteUInt16LittleEndian(piece, (ushort)value);
                break;
            default:
                piece[0] = (byte)value;
                break;
        }
    }

    /// <summary>The device this driver serves.</summary>
    internal SimDevice BoundDevice => Device;

    internal sealed override int Ioctl(uint request, nint argument)
        => request == VfioUapi.VFIO_DEVICE_FEATURE ? Feature(argument) : DriverIoctl(request, argument);

    /// <summary>The bus driver's own ioctls (everything but FEATURE).</summary>
    protected abstract int DriverIoctl(uint request, nint argument);

    /// <summary>The driver's <c>device_feature</c> op for features the core does not handle; a driver without one
    /// gives <c>-EINVAL</c>.</summary>
    protected virtual int DeviceFeature(uint flags, nint data, uint dataSize) => -EINVAL;

    /// <summary>vfio_ioctl_device_feature.</summary>
    private int Feature(nint argument)
    {
        const int Minsz = vfio_device_feature.data_offset;
        if (UserMemory.Read(argument, Minsz, out vfio_device_feature feature) < 0)
        {
            return -EFAULT;
        }
        if (feature.argsz < Minsz)
        {
            return -EINVAL;
        }
        const uint Known = VfioUapi.VFIO_DEVICE_FEATURE_MASK | VfioUapi.VFIO_DEVICE_FEATURE_SET | VfioUapi.VFIO_DEVICE_FEATURE_GET | VfioUapi.VFIO_DEVICE_FEATURE_PROBE;
        if ((feature.flags & ~Known) != 0)
        {
            return -EINVAL;
        }
        if ((feature.flags & VfioUapi.VFIO_DEVICE_FEATURE_PROBE) == 0
            && (feature.flags & VfioUapi.VFIO_DEVICE_FEATURE_SET) != 0 && (feature.flags & VfioUapi.VFIO_DEVICE_FEATURE_GET) != 0)
        {
            return -EINVAL;
        }
        switch (feature.flags & VfioUapi.VFIO_DEVICE_FEATURE_MASK)
        {
            case 1: // MIGRATION
            case 2: // MIG_DEVICE_STATE
            case 9: // MIG_DATA_SIZE
            case 6: // DMA_LOGGING_START
            case 7: // DMA_LOGGING_STOP
            case 8: // DMA_LOGGING_REPORT
                // No simulated device has migration or dirty-logging ops.
                return -ENOTTY;
            default:
                return DeviceFeature(feature.flags, argument + Minsz, feature.argsz - Minsz);
        }
    }

    /// <summary>vfio_check_feature: 1 to go on with the GET/SET, 0 for a successful PROBE, or <c>-errno</c>.</summary>
    protected static int CheckFeature(uint flags, uint dataSize, uint supportedOps, uint minsz)
    {
        const uint GetSet = VfioUapi.VFIO_DEVICE_FEATURE_GET | VfioUapi.VFIO_DEVICE_FEATURE_SET;
        if ((flags & VfioUapi.VFIO_DEVICE_FEATURE_PROBE) != 0)
        {
            return (flags & GetSet & ~supportedOps) != 0 ? -EINVAL : 0;
        }
        if ((flags & GetSet) == 0)
        {
            return -EINVAL;
        }
        if ((flags & GetSet & ~supportedOps) != 0)
        {
            return -EINVAL;
        }
        return dataSize < minsz ? -EINVAL : 1;
    }

    /// <summary>
    /// The SET_IRQS header copy and <c>vfio_set_irqs_validate_and_prepare</c>, then the data copy:
    /// <paramref name="maxOf"/> gives the IRQ count of an index.
    /// </summary>
    protected static int ReadSetIrqs(nint argument, uint numIndexes, Func<uint, uint> maxOf, out vfio_irq_set header, out byte[] data)
    {
        data = [];
        if (UserMemory.Read(argument, SetIrqsMinsz, out header) < 0)
        {
            return -EFAULT;
        }
        uint max = maxOf(header.index);
        const uint KnownFlags = VfioUapi.VFIO_IRQ_SET_DATA_TYPE_MASK | VfioUapi.VFIO_IRQ_SET_ACTION_TYPE_MASK;
        if (header.argsz < SetIrqsMinsz || header.index >= numIndexes
            || header.count >= uint.MaxValue - header.start || (header.flags & ~KnownFlags) != 0)
        {
            return -EINVAL;
        }
        if (header.start >= max || header.start + header.count > max)
        {
            return -EINVAL;
        }
        uint size;
        switch (header.flags & VfioUapi.VFIO_IRQ_SET_DATA_TYPE_MASK)
        {
            case VfioUapi.VFIO_IRQ_SET_DATA_NONE:
                size = 0;
                break;
            case VfioUapi.VFIO_IRQ_SET_DATA_BOOL:
                size = 1;
                break;
            case VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD:
                size = 4;
                break;
            default:
                return -EINVAL;
        }
        if (size != 0)
        {
            if ((ulong)(header.argsz - SetIrqsMinsz) < (ulong)header.count * size)
            {
                return -EINVAL;
            }
            data = new byte[header.count * size];
            if (UserMemory.CopyFrom(argument + SetIrqsMinsz, data) < 0)
            {
                return -EFAULT;
            }
        }
        return 0;
    }

    /// <summary>The s32 eventfd number at element <paramref name="i"/> of SET_IRQS EVENTFD data.</summary>
    protected static int FdAt(byte[] data, int i) => BitConverter.ToInt32(data, i * 4);

    /// <summary>Replaces an eventfd reference, disposing the old one.</summary>
    protected static void Replace(ref SimEventFd? slot, SimEventFd? value)
    {
        SimEventFd? old = slot;
        slot = value;
        if (!ReferenceEquals(old, value))
        {
            old?.Dispose();
        }
    }

    /// <summary>Writes the fixed part of an INFO struct and a capability chain (vfio_info_cap_add): returns 0 or <c>-EFAULT</c>.</summary>
    protected static int WriteCaps(nint argument, int structSize, uint argsz, ReadOnlySpan<byte> caps)
        => argsz < structSize + caps.Length ? 0 : UserMemory.CopyTo(argument + structSize, caps);
}
