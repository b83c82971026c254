// SPDX-License-Identifier: MIT
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace Vfio.Core;

/// <summary>One mapped part of a region: the whole region, or one area of its sparse mmap capability.</summary>
public sealed class VfioMappedArea
{
    internal VfioMappedArea(ulong offset, ulong size, MemoryMapping mapping)
    {
        Offset = offset;
        Size = size;
        Mapping = mapping;
    }

    /// <summary>The area's offset within the region.</summary>
    public ulong Offset { get; }

    /// <summary>The area's size in bytes.</summary>
    public ulong Size { get; }

    /// <summary>The mapping of the area (offset 0 of the mapping is <see cref="Offset"/> of the region); owned by the
    /// <see cref="VfioRegionMapping"/>, which unmaps it when disposed.</summary>
    public MemoryMapping Mapping { get; }
}

/// <summary>
/// A device region mapped into the process: the whole region, or each area of its sparse mmap capability, with
/// volatile little-endian accessors addressed by region offset.
/// </summary>
/// <remarks>
/// <para>
/// An access is routed to the area that contains it; an access that no mapped area covers (e.g. an MSI-X table the
/// kernel left out of the sparse areas) throws <see cref="ArgumentOutOfRangeException"/>: use
/// <see cref="VfioDevice.ReadRegion32(int, ulong)"/> and the other pread/pwrite accessors there.
/// Accesses must be naturally aligned.
/// </para>
/// <para>
/// The mapping is independent of the <see cref="VfioDevice"/> that made it: it stays valid after the device is
/// disposed (a mapping keeps the device file open in the kernel) and the caller disposes it. Disposing it unmaps
/// every area; an access in flight finishes first.
/// </para>
/// <para>
/// <b>Memory safety.</b> The memory is the device's: reads may have side effects and writes take effect on the
/// device. vfio-pci makes a BAR mapping fault (SIGBUS) while the device's memory decoding is disabled or a reset is
/// in progress.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using VfioRegionMapping bar0 = device.MapRegion(0);
/// uint id = bar0.Read32(0x00);
/// </code>
/// </example>
public sealed class VfioRegionMapping : IDisposable
{
    private readonly VfioMappedArea[] _areas;
    private readonly string _objectName;
    private volatile bool _disposed;

    private readonly Action<VfioRegionMapping>? _onDisposed;

    internal VfioRegionMapping(int regionIndex, ulong regionSize, VfioMappedArea[] areas, string objectName,
        Action<VfioRegionMapping>? onDisposed = null)
    {
        _onDisposed = onDisposed;
        RegionIndex = regionIndex;
        RegionSize = regionSize;
        _areas = areas;
        _objectName = objectName;
    }

    /// <summary>The index of the mapped region.</summary>
    public int RegionIndex { get; }

    /// <summary>The size of the whole region (the mapped areas may cover less).</summary>
    public ulong RegionSize { get; }

    /// <summary>The mapped areas, by increasing offset.</summary>
    public IReadOnlyList<VfioMappedArea> Areas => _areas;

    /// <summary>Whether an access of <paramref name="length"/> bytes at <paramref name="offset"/> falls inside one
    /// mapped area.</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="length">The access length in bytes.</param>
    /// <returns>True when the accessors can reach it.</returns>
    public bool IsMapped(ulong offset, ulong length)
    {
        foreach (VfioMappedArea area in _areas)
        {
            if (Contains(area, offset, length))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Opens a window of <paramref name="length"/> bytes at region offset <paramref name="offset"/> for a loop of
    /// register accesses: checked once here, held mapped until disposed, and each access through it is a volatile load
    /// or store (see <see cref="MmioWindow"/>). Offsets in the window are relative to <paramref name="offset"/>.</summary>
    /// <param name="offset">The window's start in the region (8-byte aligned).</param>
    /// <param name="length">The window's length in bytes; the window must lie inside one mapped area.</param>
    /// <returns>The window; dispose it when the loop ends.</returns>
    /// <exception cref="ObjectDisposedException">The mapping was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The window is empty or no one mapped area covers it.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not 8-byte aligned.</exception>
    /// <example>
    /// <code>
    /// using MmioWindow regs = bar0.Acquire(0, 0x100);
    /// regs.Write32(0x08, 5);
    /// uint status = regs.Read32(0x20);
    /// </code>
    /// </example>
    public MmioWindow Acquire(ulong offset, ulong length)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        return RouteWindow(offset, length, out ulong local).Acquire(local, length);
    }

    /// <summary>Reads one byte at region offset <paramref name="offset"/>.</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public byte Read8(ulong offset) => Route(offset, 1, out ulong local).Read8(local);

    /// <summary>Reads a little-endian 16-bit value at region offset <paramref name="offset"/> (2-byte aligned).</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public ushort Read16(ulong offset) => Route(offset, 2, out ulong local).Read16(local);

    /// <summary>Reads a little-endian 32-bit value at region offset <paramref name="offset"/> (4-byte aligned).</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public uint Read32(ulong offset) => Route(offset, 4, out ulong local).Read32(local);

    /// <summary>Reads a little-endian 64-bit value at region offset <paramref name="offset"/> (8-byte aligned).</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public ulong Read64(ulong offset) => Route(offset, 8, out ulong local).Read64(local);

    /// <summary>Writes one byte at region offset <paramref name="offset"/>.</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public void Write8(ulong offset, byte value) => Route(offset, 1, out ulong local).Write8(local, value);

    /// <summary>Writes a little-endian 16-bit value at region offset <paramref name="offset"/> (2-byte aligned).</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public void Write16(ulong offset, ushort value) => Route(offset, 2, out ulong local).Write16(local, value);

    /// <summary>Writes a little-endian 32-bit value at region offset <paramref name="offset"/> (4-byte aligned).</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public void Write32(ulong offset, uint value) => Route(offset, 4, out ulong local).Write32(local, value);

    /// <summary>Writes a little-endian 64-bit value at region offset <paramref name="offset"/> (8-byte aligned).</summary>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">No mapped area covers the access.</exception>
    public void Write64(ulong offset, ulong value) => Route(offset, 8, out ulong local).Write64(local, value);

    /// <summary>Unmaps every area.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (VfioMappedArea area in _areas)
        {
            area.Mapping.Dispose();
        }
        _onDisposed?.Invoke(this);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{_objectName}: {_areas.Length} mapped area(s) of 0x{RegionSize:X} bytes";

    /// <summary>Whether every area's memory is unmapped (disposed, and no access or window holds it any more).</summary>
    internal bool IsUnmapped
    {
        get
        {
            foreach (VfioMappedArea area in _areas)
            {
                if (!area.Mapping.IsUnmapped)
                {
                    return false;
                }
            }
            return true;
        }
    }

    private MemoryMapping RouteWindow(ulong offset, ulong length, out ulong local)
    {
        if (_disposed)
        {
            ThrowUnmapped();
        }
        foreach (VfioMappedArea area in _areas)
        {
            if (Contains(area, offset, length))
            {
                local = offset - area.Offset;
                return area.Mapping;
            }
        }
        throw NotMapped(offset, $"0x{length:X}-byte window");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private MemoryMapping Route(ulong offset, uint width, out ulong local)
    {
        if (_disposed)
        {
            ThrowUnmapped();
        }
        VfioMappedArea[] areas = _areas;
        for (int i = 0; i < areas.Length; i++)
        {
            VfioMappedArea area = areas[i];
            if (Contains(area, offset, width))
            {
                local = offset - area.Offset;
                return area.Mapping;
            }
        }
        ThrowNotMapped(offset, width);
        local = 0;
        return null;
    }

    private static bool Contains(VfioMappedArea area, ulong offset, ulong length)
        => offset >= area.Offset && offset - area.Offset <= area.Size && area.Size - (offset - area.Offset) >= length;

    [DoesNotReturn]
    private void ThrowNotMapped(ulong offset, uint width) => throw NotMapped(offset, $"{width}-byte access");

    private ArgumentOutOfRangeException NotMapped(ulong offset, string what)
    {
        var areas = new StringBuilder();
        foreach (VfioMappedArea area in _areas)
        {
            areas.Append(areas.Length == 0 ? string.Empty : ", ").Append($"0x{area.Offset:X}-0x{area.Offset + area.Size - 1:X}");
        }
        return new ArgumentOutOfRangeException(nameof(offset), offset,
            $"A {what} at 0x{offset:X} of {_objectName} is not inside a mapped area (mapped: {areas}); " +
            "the kernel does not allow mapping that part of the region: use the device's pread/pwrite accessors (ReadRegion/WriteRegion) there.");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUnmapped()
        => throw new ObjectDisposedException(_objectName,
            $"{_objectName} is no longer mapped: the mapping was disposed, or its device was detached (a detach unmaps the device's regions). Map the region again from the device attached again.");
}
