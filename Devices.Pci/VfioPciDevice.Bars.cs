// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;

namespace Vfio.Devices.Pci;

public sealed partial class VfioPciDevice
{
    /// <summary>The number of BARs of a type-0 header.</summary>
    public const int BarCount = 6;

    private readonly Lock _barLock = new();
    private readonly VfioRegionMapping?[] _barMappings = new VfioRegionMapping?[BarCount];
    private PciBar[]? _bars;

    /// <summary>The six BARs, decoded (<see cref="PciBarKind.Unimplemented"/> and <see cref="PciBarKind.UpperHalf"/>
    /// included, so the list's index is the BAR index). Read on first use.</summary>
    /// <exception cref="VfioException">A region or configuration query failed.</exception>
    public IReadOnlyList<PciBar> Bars
    {
        get
        {
            if (Volatile.Read(ref _bars) is { } known)
            {
                return known;
            }
            var bars = new PciBar[BarCount];
            bool previousIs64 = false;
            for (int i = 0; i < BarCount; i++)
            {
                VfioRegionInfo region = Device.GetRegion(VfioPciRegion.Bar0 + i);
                uint register = ReadConfig32(PciConfigRegister.Bar0 + (4 * i));
                (PciBarKind kind, bool is64, bool prefetchable) = PciBar.Decode(register, region.Size, previousIs64);
                bars[i] = new PciBar(i, kind, is64, prefetchable, region);
                previousIs64 = kind != PciBarKind.UpperHalf && is64;
            }
            return Interlocked.CompareExchange(ref _bars, bars, null) ?? bars;
        }
    }

    /// <summary>Returns BAR <paramref name="index"/>.</summary>
    /// <param name="index">The BAR index, 0–5.</param>
    /// <returns>The BAR (possibly <see cref="PciBarKind.Unimplemented"/>).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not 0–5.</exception>
    public PciBar GetBar(int index)
    {
        CheckBarIndex(index);
        return Bars[index];
    }

    /// <summary>
    /// Maps memory BAR <paramref name="index"/> (once; later calls return the same mapping) for the fast accessors:
    /// <see cref="VfioRegionMapping.Acquire(ulong, ulong)"/> gives an <see cref="MmioWindow"/>. When the BAR holds the
    /// MSI-X table or pending-bit array and the kernel neither lists sparse mmap areas nor reports the MSI-X structures
    /// mappable, the pages holding them are left out (reach them with pread/pwrite, e.g. <see cref="VfioDevice.ReadRegion32"/>).
    /// </summary>
    /// <param name="index">The BAR index, 0–5.</param>
    /// <returns>The mapping, owned by this object (unmapped by <see cref="Dispose"/>); do not dispose it.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not 0–5.</exception>
    /// <exception cref="InvalidOperationException">The BAR is an I/O BAR, not implemented, the upper half of a 64-bit
    /// BAR, or the kernel does not let it be mapped.</exception>
    /// <exception cref="VfioException"><c>mmap</c> failed.</exception>
    public VfioRegionMapping MapBar(int index)
    {
        CheckBarIndex(index);
        ThrowIfDisposed();
        PciBar bar = Bars[index];
        string? refusal = bar.Kind switch
        {
            PciBarKind.Io => $"BAR{index} of {Name} is an I/O-port BAR, which cannot be mapped; use Device.ReadRegion*/WriteRegion* (pread/pwrite) with region index {index}.",
            PciBarKind.Unimplemented => $"BAR{index} of {Name} is not implemented (size 0); see Bars for the BARs the device has.",
            PciBarKind.UpperHalf => $"BAR{index} of {Name} is the upper half of the 64-bit BAR{index - 1}; map BAR{index - 1}.",
            _ => bar.Region.CanMmap ? null : $"the kernel does not let BAR{index} of {Name} be mapped (no VFIO_REGION_INFO_FLAG_MMAP: e.g. smaller than a page on an unaligned address); use Device.ReadRegion*/WriteRegion*.",
        };
        if (refusal is not null)
        {
            throw new InvalidOperationException(refusal);
        }
        lock (_barLock)
        {
            ThrowIfDisposed();
            if (_barMappings[index] is { } existing)
            {
                return existing;
            }
            VfioRegionMapping mapping = MsixHoleAreas(bar) is { } areas
                ? Device.MapRegion(index, areas)
                : Device.MapRegion(index);
            _barMappings[index] = mapping;
            return mapping;
        }
    }

    /// <summary>
    /// The areas of BAR <paramref name="index"/> that <see cref="MapBar"/> maps, by BAR offset: the whole BAR, the
    /// kernel's sparse mmap areas, or the BAR around the pages of the MSI-X table and PBA (<see cref="LeavesOutMsix"/>).
    /// Empty when the BAR cannot be mapped (I/O, not implemented, an upper half, or no mmap from the kernel).
    /// </summary>
    /// <param name="index">The BAR index, 0–5.</param>
    /// <returns>The areas, each page-aligned.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not 0–5.</exception>
    /// <exception cref="VfioException">A region or configuration query failed.</exception>
    public IReadOnlyList<VfioSparseMmapArea> GetMapAreas(int index)
    {
        CheckBarIndex(index);
        PciBar bar = Bars[index];
        if (!bar.CanMap)
        {
            return [];
        }
        if (MsixHoleAreas(bar) is { } aroundMsix)
        {
            return aroundMsix;
        }
        return bar.Region.SparseMmapAreas is { } sparse
            ? [.. sparse.Where(static a => a.Size != 0).OrderBy(static a => a.Offset)]
            : [new VfioSparseMmapArea(0, bar.Region.Size)];
    }

    /// <summary>Whether <see cref="MapBar"/> leaves the pages of the MSI-X table and PBA out of BAR
    /// <paramref name="index"/>: the BAR holds them and the kernel neither lists sparse mmap areas nor reports them
    /// mappable (kernels before 4.16).</summary>
    /// <param name="index">The BAR index, 0–5.</param>
    /// <returns>True when the MSI-X structures are left out of the mapping.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not 0–5.</exception>
    /// <exception cref="VfioException">A region or configuration query failed.</exception>
    public bool LeavesOutMsix(int index)
    {
        CheckBarIndex(index);
        PciBar bar = Bars[index];
        return bar.CanMap && MsixHoleAreas(bar) is not null;
    }

    /// <summary>The areas to map around the MSI-X structures when the kernel requires it; null to map as the kernel
    /// reports (whole, or its sparse areas).</summary>
    internal VfioSparseMmapArea[]? MsixHoleAreas(PciBar bar)
    {
        if (bar.Region.SparseMmapAreas is not null || bar.Region.IsMsixMappable)
        {
            return null;
        }
        if (MsixLayout is not { } msix || (msix.TableBar != bar.Index && msix.PbaBar != bar.Index))
        {
            return null;
        }
        return PciBarLayout.AroundMsix(bar.Index, bar.Region.Size, msix, (ulong)Environment.SystemPageSize);
    }

    private void DisposeBars()
    {
        lock (_barLock)
        {
            for (int i = 0; i < _barMappings.Length; i++)
            {
                _barMappings[i]?.Dispose();
                _barMappings[i] = null;
            }
        }
    }

    private void CheckBarIndex(int index)
    {
        if ((uint)index >= BarCount)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index,
                string.Create(CultureInfo.InvariantCulture, $"{Name} has BARs 0–5; BAR {index} does not exist. Use an index from 0 to 5 (the ROM is ReadRom/TryReadRom)."));
        }
    }
}
