// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Platform;

/// <summary>The kind of resource a vfio-platform region stands for.</summary>
public enum VfioPlatformRegionKind
{
    /// <summary>A memory-mapped resource: readable (and writable unless read-only), mappable when page-aligned.</summary>
    Mmio,

    /// <summary>An I/O-port resource: the kernel reports no access flags for it and refuses reads, writes and mmap.</summary>
    Pio,
}

/// <summary>
/// One region of a <see cref="VfioPlatformDevice"/>. Accesses go through the mapping while the region is mapped and the
/// device is on the fast path, and through <c>pread</c>/<c>pwrite</c> of the device fd (the slow path) otherwise; with
/// end-of-interrupt emulation on, every access, once done, is also the end of interrupt of the active IRQ.
/// </summary>
/// <remarks>The accessors are allocation-free. Multi-byte values are little-endian.</remarks>
public sealed class VfioPlatformRegion
{
    private readonly VfioPlatformDevice _owner;
    private VfioRegionMapping? _mapping;

    internal VfioPlatformRegion(VfioPlatformDevice owner, VfioRegionInfo info)
    {
        _owner = owner;
        Info = info;
        Kind = (info.Flags & (VfioRegionFlags.Read | VfioRegionFlags.Write | VfioRegionFlags.Mmap)) == 0
            ? VfioPlatformRegionKind.Pio
            : VfioPlatformRegionKind.Mmio;
    }

    /// <summary>The region index.</summary>
    public int Index => Info.Index;

    /// <summary>The size in bytes.</summary>
    public ulong Size => Info.Size;

    /// <summary>MMIO or PIO (a region without any access flag is an I/O-port resource).</summary>
    public VfioPlatformRegionKind Kind { get; }

    /// <summary>What the kernel reported for the region.</summary>
    public VfioRegionInfo Info { get; }

    /// <summary>Whether the kernel lets the region be mapped (page-aligned MMIO).</summary>
    public bool CanMap => Info.CanMmap;

    /// <summary>Whether the region is mapped (<see cref="Map"/>).</summary>
    public bool IsMapped => Volatile.Read(ref _mapping) is not null;

    /// <summary>Maps the region; accesses then use the mapping while the device is on the fast path.</summary>
    /// <exception cref="InvalidOperationException">The region is PIO, or the kernel does not let it be mapped (it
    /// stays accessible through the slow path), or it is mapped already.</exception>
    /// <exception cref="VfioException"><c>mmap</c> failed.</exception>
    public void Map()
    {
        if (Kind == VfioPlatformRegionKind.Pio)
        {
            throw new InvalidOperationException($"{Name} is an I/O-port (PIO) region, which vfio-platform cannot map; it has no user-space access at all.");
        }
        if (!CanMap)
        {
            throw new InvalidOperationException($"{Name} cannot be mapped: the kernel maps only page-aligned MMIO regions. Leave it unmapped; its accessors use pread/pwrite.");
        }
        VfioRegionMapping mapping = _owner.Device.MapRegion(Index);
        if (Interlocked.CompareExchange(ref _mapping, mapping, null) is not null)
        {
            mapping.Dispose();
            throw new InvalidOperationException($"{Name} is mapped already.");
        }
    }

    /// <summary>Reads one byte.</summary>
    /// <param name="offset">The offset in the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="InvalidOperationException">The region is PIO.</exception>
    public byte Read8(ulong offset)
    {
        byte value = Route(offset, 1) is { } m ? m.Read8(offset) : _owner.Device.ReadRegion8(Index, offset);
        _owner.AfterRegionAccess();
        return value;
    }

    /// <summary>Reads a 16-bit value.</summary>
    /// <param name="offset">The offset in the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="InvalidOperationException">The region is PIO.</exception>
    public ushort Read16(ulong offset)
    {
        ushort value = Route(offset, 2) is { } m ? m.Read16(offset) : _owner.Device.ReadRegion16(Index, offset);
        _owner.AfterRegionAccess();
        return value;
    }

    /// <summary>Reads a 32-bit value.</summary>
    /// <param name="offset">The offset in the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="InvalidOperationException">The region is PIO.</exception>
    public uint Read32(ulong offset)
    {
        uint value = Route(offset, 4) is { } m ? m.Read32(offset) : _owner.Device.ReadRegion32(Index, offset);
        _owner.AfterRegionAccess();
        return value;
    }

    /// <summary>Writes one byte.</summary>
    /// <param name="offset">The offset in the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="InvalidOperationException">The region is PIO.</exception>
    public void Write8(ulong offset, byte value)
    {
        if (Route(offset, 1) is { } m)
        {
            m.Write8(offset, value);
        }
        else
        {
            _owner.Device.WriteRegion8(Index, offset, value);
        }
        _owner.AfterRegionAccess();
    }

    /// <summary>Writes a 16-bit value.</summary>
    /// <param name="offset">The offset in the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="InvalidOperationException">The region is PIO.</exception>
    public void Write16(ulong offset, ushort value)
    {
        if (Route(offset, 2) is { } m)
        {
            m.Write16(offset, value);
        }
        else
        {
            _owner.Device.WriteRegion16(Index, offset, value);
        }
        _owner.AfterRegionAccess();
    }

    /// <summary>Writes a 32-bit value.</summary>
    /// <param name="offset">The offset in the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="InvalidOperationException">The region is PIO.</exception>
    public void Write32(ulong offset, uint value)
    {
        if (Route(offset, 4) is { } m)
        {
            m.Write32(offset, value);
        }
        else
        {
            _owner.Device.WriteRegion32(Index, offset, value);
        }
        _owner.AfterRegionAccess();
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Kind}, 0x{Size:X} bytes{(IsMapped ? ", mapped" : "")}";

    internal string Name => $"{_owner.Name} region {Index}";

    internal void Unmap() => Interlocked.Exchange(ref _mapping, null)?.Dispose();

    /// <summary>Checks the access and returns the mapping to use (null for the slow path). The end of interrupt comes
    /// after the access (<see cref="VfioPlatformDevice.AfterRegionAccess"/>), so that a write clearing the device's
    /// interrupt status lowers its line before the line is unmasked.</summary>
    private VfioRegionMapping? Route(ulong offset, int width)
    {
        if (Kind == VfioPlatformRegionKind.Pio)
        {
            throw new InvalidOperationException($"{Name} is an I/O-port (PIO) region: vfio-platform implements no access to PIO resources.");
        }
        if (offset > Size || (ulong)width > Size - offset)
        {
            ThrowOutOfRange(offset, width);
        }
        VfioRegionMapping? mapping = Volatile.Read(ref _mapping);
        return mapping is not null && _owner.IsFastPath && mapping.IsMapped(offset, (ulong)width) ? mapping : null;
    }

    private void ThrowOutOfRange(ulong offset, int width)
        => throw new ArgumentOutOfRangeException(nameof(offset), offset,
            $"{Name}: a {width}-byte access at 0x{offset:X} is outside its 0x{Size:X} bytes. Keep offset + width within the region size.");
}
