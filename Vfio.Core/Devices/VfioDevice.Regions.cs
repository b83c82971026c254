// SPDX-License-Identifier: MIT
using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vfio.Core.Interop;

namespace Vfio.Core;

public sealed partial class VfioDevice
{
    /// <summary>
    /// Returns the info of region <paramref name="index"/> (<c>VFIO_DEVICE_GET_REGION_INFO</c>, with the
    /// <c>argsz</c> retry for the capability chain), parsed: flags, size, file offset, sparse mmap areas, type and
    /// MSI-X mappability. Cached after the first successful call.
    /// </summary>
    /// <param name="index">The region index.</param>
    /// <returns>The region info.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is negative.</exception>
    /// <exception cref="VfioException">The kernel refused (<c>EINVAL</c> for an index it does not know, e.g. vfio-pci's
    /// VGA region of a non-VGA device), or the capability chain is malformed.</exception>
    /// <exception cref="ObjectDisposedException">The device is disposed.</exception>
    public VfioRegionInfo GetRegion(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ThrowIfDisposed();
        VfioRegionInfo?[] cache = _regions;
        if ((uint)index < (uint)cache.Length && cache[index] is { } cached)
        {
            return cached;
        }
        VfioRegionInfo region = ReadRegionInfo(index);
        if ((uint)index < (uint)cache.Length)
        {
            cache[index] = region;
        }
        return region;
    }

    /// <summary>Reads one byte at <paramref name="offset"/> of region <paramref name="index"/> (<c>pread</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public byte ReadRegion8(int index, ulong offset)
    {
        Span<byte> value = stackalloc byte[1];
        ReadCore(index, offset, value);
        return value[0];
    }

    /// <summary>Reads a little-endian 16-bit value at <paramref name="offset"/> of region <paramref name="index"/> (<c>pread</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public ushort ReadRegion16(int index, ulong offset)
    {
        Span<byte> value = stackalloc byte[2];
        ReadCore(index, offset, value);
        return BinaryPrimitives.ReadUInt16LittleEndian(value);
    }

    /// <summary>Reads a little-endian 32-bit value at <paramref name="offset"/> of region <paramref name="index"/> (<c>pread</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public uint ReadRegion32(int index, ulong offset)
    {
        // A local read in place (no zeroed stackalloc frame, no span copy-out).
        uint value = 0;
        ReadCore(index, offset, MemoryMarshal.AsBytes(new Span<uint>(ref value)));
        return BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
    }

    /// <summary>Reads a little-endian 64-bit value at <paramref name="offset"/> of region <paramref name="index"/> (<c>pread</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public ulong ReadRegion64(int index, ulong offset)
    {
        Span<byte> value = stackalloc byte[8];
        ReadCore(index, offset, value);
        return BinaryPrimitives.ReadUInt64LittleEndian(value);
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes at <paramref name="offset"/> of region
    /// <paramref name="index"/> in one <c>pread</c> (the kernel splits it into naturally aligned accesses).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="destination">Where the bytes go.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public void ReadRegion(int index, ulong offset, Span<byte> destination) => ReadCore(index, offset, destination);

    /// <summary>Writes one byte at <paramref name="offset"/> of region <paramref name="index"/> (<c>pwrite</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public void WriteRegion8(int index, ulong offset, byte value)
    {
        Span<byte> bytes = [value];
        WriteCore(index, offset, bytes);
    }

    /// <summary>Writes a little-endian 16-bit value at <paramref name="offset"/> of region <paramref name="index"/> (<c>pwrite</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public void WriteRegion16(int index, ulong offset, ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        WriteCore(index, offset, bytes);
    }

    /// <summary>Writes a little-endian 32-bit value at <paramref name="offset"/> of region <paramref name="index"/> (<c>pwrite</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public void WriteRegion32(int index, ulong offset, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        WriteCore(index, offset, bytes);
    }

    /// <summary>Writes a little-endian 64-bit value at <paramref name="offset"/> of region <paramref name="index"/> (<c>pwrite</c>).</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public void WriteRegion64(int index, ulong offset, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        WriteCore(index, offset, bytes);
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="offset"/> of region <paramref name="index"/> in one
    /// <c>pwrite</c>.</summary>
    /// <param name="index">The region index.</param>
    /// <param name="offset">The offset within the region.</param>
    /// <param name="source">The bytes to write.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the region.</exception>
    /// <exception cref="VfioException">The kernel refused the access or transferred fewer bytes.</exception>
    public void WriteRegion(int index, ulong offset, ReadOnlySpan<byte> source) => WriteCore(index, offset, source);

    /// <summary>
    /// Maps region <paramref name="index"/>: the whole region, or, when it has a sparse mmap capability, each of its
    /// areas separately (at the kernel's page-aligned offsets), readable and writable as the region's flags allow.
    /// </summary>
    /// <remarks>
    /// Each area is placed as QEMU places it: at a virtual address that is a multiple of its size rounded up to a power
    /// of two, capped at 1 GiB, so that vfio-pci (6.12+, <c>huge_fault</c>) can back a large BAR with PMD/PUD-sized
    /// entries; that saves TLB and KVM page-table entries when a VMM passes a
    /// multi-megabyte BAR to a guest, and changes nothing for register access.
    /// </remarks>
    /// <param name="index">The region index.</param>
    /// <returns>The mapping; the caller disposes it, or the device's disposal (its detach) does.</returns>
    /// <exception cref="InvalidOperationException">The region cannot be mapped (no <c>VFIO_REGION_INFO_FLAG_MMAP</c>,
    /// or no area to map): use the pread/pwrite accessors.</exception>
    /// <exception cref="VfioException"><c>mmap</c> failed, or the kernel's sparse areas are malformed.</exception>
    public VfioRegionMapping MapRegion(int index) => MapRegionCore(index, null);

    /// <summary>
    /// Maps the given areas of region <paramref name="index"/> only, e.g. a BAR around an MSI-X table that the kernel
    /// does not let be mapped (a kernel that reports neither sparse areas nor MSI-X mappability for the BAR).
    /// </summary>
    /// <param name="index">The region index.</param>
    /// <param name="areas">The areas, by region offset: page-aligned, inside the region, not overlapping; areas of
    /// size 0 are ignored.</param>
    /// <returns>The mapping; the caller disposes it.</returns>
    /// <exception cref="ArgumentException">An area is not page-aligned, leaves the region, or overlaps another.</exception>
    /// <exception cref="InvalidOperationException">The region cannot be mapped, or no area has a size.</exception>
    /// <exception cref="VfioException"><c>mmap</c> failed.</exception>
    public VfioRegionMapping MapRegion(int index, IReadOnlyList<VfioSparseMmapArea> areas)
    {
        ArgumentNullException.ThrowIfNull(areas);
        VfioRegionInfo region = GetRegion(index);
        ulong pageSize = (ulong)Environment.SystemPageSize;
        foreach (VfioSparseMmapArea area in areas)
        {
            if (((area.Offset | area.Size) & (pageSize - 1)) != 0 || area.Offset > region.Size || area.Size > region.Size - area.Offset)
            {
                throw new ArgumentException($"{RegionName(index)}: the area 0x{area.Offset:X}+0x{area.Size:X} is not page-aligned inside the region's 0x{region.Size:X} bytes; pass whole pages of the region.", nameof(areas));
            }
        }
        VfioSparseMmapArea[] sorted = SortedAreas(areas);
        for (int i = 1; i < sorted.Length; i++)
        {
            if (sorted[i].Offset < sorted[i - 1].Offset + sorted[i - 1].Size)
            {
                throw new ArgumentException($"{RegionName(index)}: the areas at 0x{sorted[i - 1].Offset:X} and 0x{sorted[i].Offset:X} overlap; pass each page once.", nameof(areas));
            }
        }
        return MapRegionCore(index, sorted);
    }

    private VfioRegionMapping MapRegionCore(int index, IReadOnlyList<VfioSparseMmapArea>? chosen)
    {
        VfioRegionInfo region = GetRegion(index);
        if (!region.CanMmap)
        {
            throw new InvalidOperationException($"{RegionName(index)} cannot be mapped: the kernel does not set VFIO_REGION_INFO_FLAG_MMAP for it. Use ReadRegion/WriteRegion (pread/pwrite).");
        }
        MemoryProtection protection = (region.CanRead ? MemoryProtection.Read : MemoryProtection.None)
            | (region.CanWrite ? MemoryProtection.Write : MemoryProtection.None);
        if (protection == MemoryProtection.None)
        {
            throw new InvalidOperationException($"{RegionName(index)} is mmap-able but neither readable nor writable.");
        }
        VfioSparseMmapArea[] areas = chosen is null ? MappableAreas(region) : SortedAreas(chosen);
        if (areas.Length == 0)
        {
            throw new InvalidOperationException($"{RegionName(index)} has no mmap-able area (its sparse mmap capability lists none of non-zero size). Use ReadRegion/WriteRegion (pread/pwrite).");
        }
        ulong pageSize = (ulong)Environment.SystemPageSize;
        for (int i = 0; i < areas.Length; i++)
        {
            if (((region.Offset + areas[i].Offset) & (pageSize - 1)) != 0)
            {
                throw VfioCapabilityChain.Malformed("VFIO_DEVICE_GET_REGION_INFO", RegionName(index),
                    $"the sparse mmap area at 0x{areas[i].Offset:X} is not aligned to the {pageSize}-byte page");
            }
            if (i > 0 && areas[i].Offset < areas[i - 1].Offset + areas[i - 1].Size)
            {
                throw VfioCapabilityChain.Malformed("VFIO_DEVICE_GET_REGION_INFO", RegionName(index),
                    $"the sparse mmap areas at 0x{areas[i - 1].Offset:X} and 0x{areas[i].Offset:X} overlap");
            }
        }

        var mapped = new VfioMappedArea[areas.Length];
        int count = 0;
        try
        {
            for (; count < areas.Length; count++)
            {
                VfioSparseMmapArea area = areas[count];
                ulong alignment = MappingAlignment(area.Size);
                int rc = alignment <= pageSize
                    ? _kernel.Map(_fd, (long)(region.Offset + area.Offset), area.Size, protection, out MemoryMapping? mapping)
                    : _kernel.MapAligned(_fd, (long)(region.Offset + area.Offset), area.Size, protection, alignment, out mapping);
                if (rc < 0)
                {
                    string what = region.SparseMmapAreas is null ? RegionName(index) : $"{RegionName(index)} area 0x{area.Offset:X}+0x{area.Size:X}";
                    VfioException.Throw(rc, "mmap", what);
                }
                mapped[count] = new VfioMappedArea(area.Offset, area.Size, mapping!);
            }
        }
        catch
        {
            for (int i = 0; i < count; i++)
            {
                mapped[i].Mapping.Dispose();
            }
            throw;
        }
        return Track(new VfioRegionMapping(index, region.Size, mapped, RegionName(index), Untrack));
    }

    /// <summary>The largest alignment <see cref="MapRegion(int)"/> gives a mapping: 1 GiB, the x86 PUD size (QEMU's cap).</summary>
    internal const ulong MaxMappingAlignment = 1UL << 30;

    /// <summary>The virtual-address alignment <see cref="MapRegion(int)"/> gives a mapped area of
    /// <paramref name="size"/> bytes: the size rounded up to a power of two, at most <see cref="MaxMappingAlignment"/>
    /// (QEMU's <c>vfio_region_mmap</c>); an area of a page or less is simply page-aligned.</summary>
    /// <param name="size">The area's size in bytes.</param>
    /// <returns>The alignment, a power of two.</returns>
    internal static ulong MappingAlignment(ulong size)
        => size >= MaxMappingAlignment ? MaxMappingAlignment : Math.Max(System.Numerics.BitOperations.RoundUpToPowerOf2(size), (ulong)Environment.SystemPageSize);

    /// <summary>The areas to map, by increasing offset: the sparse areas of non-zero size, or the whole region.</summary>
    private static VfioSparseMmapArea[] MappableAreas(VfioRegionInfo region)
    {
        if (region.SparseMmapAreas is null)
        {
            return region.Size == 0 ? [] : [new VfioSparseMmapArea(0, region.Size)];
        }
        return SortedAreas(region.SparseMmapAreas);
    }

    /// <summary>The areas of non-zero size, by increasing offset.</summary>
    private static VfioSparseMmapArea[] SortedAreas(IReadOnlyList<VfioSparseMmapArea> list)
    {
        var areas = new List<VfioSparseMmapArea>(list.Count);
        foreach (VfioSparseMmapArea area in list)
        {
            if (area.Size != 0)
            {
                areas.Add(area);
            }
        }
        areas.Sort(static (a, b) => a.Offset.CompareTo(b.Offset));
        return [.. areas];
    }

    private string RegionName(int index) => $"{Name} region {index}";

    private void ReadCore(int index, ulong offset, Span<byte> buffer)
    {
        long fileOffset = FileOffset(index, offset, buffer.Length);
        if (buffer.IsEmpty)
        {
            return;
        }
        // The Linux port is called directly (sealed: no interface dispatch, inlinable); any other port (the
        // simulator) through the interface.
        long rc = _kernel is LinuxKernel linux ? linux.PRead(_fd, buffer, fileOffset) : _kernel.PRead(_fd, buffer, fileOffset);
        if (rc != buffer.Length)
        {
            ThrowAccess("pread", index, offset, buffer.Length, rc);
        }
    }

    private void WriteCore(int index, ulong offset, ReadOnlySpan<byte> buffer)
    {
        long fileOffset = FileOffset(index, offset, buffer.Length);
        if (buffer.IsEmpty)
        {
            return;
        }
        long rc = _kernel is LinuxKernel linux ? linux.PWrite(_fd, buffer, fileOffset) : _kernel.PWrite(_fd, buffer, fileOffset);
        if (rc != buffer.Length)
        {
            ThrowAccess("pwrite", index, offset, buffer.Length, rc);
        }
    }

    /// <summary>The device fd offset of an access, checked to lie inside the region (vfio-pci's next region starts
    /// right after the 40-bit offset space, so an unchecked offset could reach another region).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long FileOffset(int index, ulong offset, int length)
    {
        VfioRegionInfo region = GetRegion(index);
        if (offset > region.Size || region.Size - offset < (ulong)length)
        {
            ThrowOutsideRegion(region, offset, length);
        }
        return (long)(region.Offset + offset);
    }

    [DoesNotReturn]
    private void ThrowOutsideRegion(VfioRegionInfo region, ulong offset, int length)
        => throw new ArgumentOutOfRangeException(nameof(offset), offset,
            $"A {length}-byte access at 0x{offset:X} is outside {RegionName(region.Index)} (0x{region.Size:X} bytes).");

    [DoesNotReturn]
    private void ThrowAccess(string operation, int index, ulong offset, int length, long rc)
    {
        string what = $"{RegionName(index)} offset 0x{offset:X}";
        if (rc < 0)
        {
            VfioException.Throw((int)rc, operation, what);
        }
        throw new VfioException(operation, what, $"short transfer: {rc} of {length} bytes");
    }

    /// <summary>What to do when the kernel refused a region's info: an index beyond the device's regions says how many
    /// there are (the failure path only).</summary>
    private string? RegionHint(Errno errno, int index)
        => errno == Errno.EINVAL && index >= Info.RegionCount
            ? $"{Name} has {Info.RegionCount} regions (indexes 0 to {Info.RegionCount - 1}; vfio-pci: BAR0-5 0-5, ROM 6, config 7, VGA 8): use one of those (VfioDevice.Info.RegionCount)."
            : null;

    private VfioRegionInfo ReadRegionInfo(int index)
    {
        const string Operation = "VFIO_DEVICE_GET_REGION_INFO";
        int fixedSize = Unsafe.SizeOf<vfio_region_info>();
        Span<byte> stack = stackalloc byte[InfoStackBytes];
        byte[]? rented = null;
        try
        {
            uint argsz = (uint)fixedSize;
            for (int attempt = 1; ; attempt++)
            {
                Span<byte> buffer = InfoBuffer(argsz, stack, ref rented);
                MemoryMarshal.Write(buffer, new vfio_region_info { argsz = argsz, index = (uint)index });
                int rc = _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, buffer);
                if (rc < 0)
                {
                    throw new VfioException((Errno)(-rc), Operation, RegionName(index), RegionHint((Errno)(-rc), index));
                }
                vfio_region_info info = MemoryMarshal.Read<vfio_region_info>(buffer);
                bool hasCaps = (info.flags & VfioUapi.VFIO_REGION_INFO_FLAG_CAPS) != 0;
                if (hasCaps && info.argsz > argsz)
                {
                    argsz = GrowInfo(info.argsz, attempt, Operation, RegionName(index));
                    continue;
                }
                return ParseRegion(index, info, hasCaps ? buffer : [], Operation);
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private VfioRegionInfo ParseRegion(int index, in vfio_region_info info, ReadOnlySpan<byte> buffer, string operation)
    {
        string name = RegionName(index);
        if (info.offset > long.MaxValue || info.size > long.MaxValue - info.offset)
        {
            throw new VfioException(operation, name, $"implausible region offset 0x{info.offset:X} and size 0x{info.size:X}");
        }
        IReadOnlyList<VfioCapability> capabilities = buffer.IsEmpty
            ? []
            : VfioCapabilityChain.Parse(buffer, Unsafe.SizeOf<vfio_region_info>(), info.cap_offset, operation, name);

        VfioSparseMmapArea[]? sparse = null;
        if (VfioCapabilityChain.Find(capabilities, VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP) is { } sparseCap)
        {
            int areaSize = Unsafe.SizeOf<vfio_region_sparse_mmap_area>();
            ReadOnlySpan<byte> bytes = VfioCapabilityChain.Require(sparseCap, vfio_region_info_cap_sparse_mmap.areas_offset, "SPARSE_MMAP", operation, name);
            uint count = VfioCapabilityChain.ReadUInt32(bytes, 8);
            VfioCapabilityChain.Require(sparseCap, vfio_region_info_cap_sparse_mmap.areas_offset + ((ulong)count * (ulong)areaSize), $"SPARSE_MMAP ({count} areas)", operation, name);
            sparse = new VfioSparseMmapArea[count];
            for (int i = 0; i < sparse.Length; i++)
            {
                int at = vfio_region_info_cap_sparse_mmap.areas_offset + (i * areaSize);
                var area = new VfioSparseMmapArea(VfioCapabilityChain.ReadUInt64(bytes, at), VfioCapabilityChain.ReadUInt64(bytes, at + 8));
                if (area.Offset > info.size || area.Size > info.size - area.Offset)
                {
                    throw VfioCapabilityChain.Malformed(operation, name,
                        $"sparse mmap area {i} (0x{area.Offset:X}+0x{area.Size:X}) of the capability at 0x{sparseCap.Offset:X} is outside the 0x{info.size:X}-byte region");
                }
                sparse[i] = area;
            }
        }

        VfioRegionType? type = null;
        if (VfioCapabilityChain.Find(capabilities, VfioUapi.VFIO_REGION_INFO_CAP_TYPE) is { } typeCap)
        {
            ReadOnlySpan<byte> bytes = VfioCapabilityChain.Require(typeCap, 16, "TYPE", operation, name);
            type = new VfioRegionType(VfioCapabilityChain.ReadUInt32(bytes, 8), VfioCapabilityChain.ReadUInt32(bytes, 12));
        }

        bool msixMappable = VfioCapabilityChain.Find(capabilities, VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) is not null;
        return new VfioRegionInfo(index, (VfioRegionFlags)info.flags, info.size, info.offset, capabilities, sparse, type, msixMappable);
    }
}
