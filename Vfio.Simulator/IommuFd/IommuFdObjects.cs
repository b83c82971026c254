// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>An object of an iommufd context's ID table (kernel-uapi-6.12.md §8.1).</summary>
internal abstract class IommuFdObject
{
    internal uint Id { get; set; }
}

/// <summary>A DEVICE object: a device bound to the context (cdev bind, or a group-path open with an iommufd).</summary>
internal sealed class DeviceObject(IommuFdFile context, SimDevice device, bool viaCdev) : IommuFdObject
{
    internal IommuFdFile Context { get; } = context;

    internal SimDevice Device { get; } = device;

    /// <summary>True for a cdev bind; false for a device opened through a group attached to the iommufd.</summary>
    internal bool ViaCdev { get; } = viaCdev;

    /// <summary>The HWPT the device is attached to, or null (DMA blocked).</summary>
    internal HwptObject? Hwpt { get; set; }
}

/// <summary>
/// A HWPT_PAGING object: an IOMMU domain holding every mapping of its IOAS. It is the IDmaSpace of the devices
/// attached to it; with dirty tracking on, device writes mark pages dirty (§8.14).
/// </summary>
internal sealed class HwptObject(IoasObject ioas, bool autoDomain, bool dirtyCapable) : IommuFdObject, IDmaSpace
{
    private readonly HashSet<ulong> _dirtyPages = [];

    internal IoasObject Ioas { get; } = ioas;

    /// <summary>Created by attaching a device to an IOAS; destroyed with its last device.</summary>
    internal bool AutoDomain { get; } = autoDomain;

    /// <summary>Allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the domain has dirty-tracking ops.</summary>
    internal bool DirtyCapable { get; } = dirtyCapable;

    internal bool DirtyTracking { get; set; }

    internal List<DeviceObject> Devices { get; } = [];

    internal void ClearDirty() => _dirtyPages.Clear();

    /// <summary>Reads (and unless <paramref name="keep"/>, clears) the dirty 4 KiB pages in [start, last].</summary>
    internal List<ulong> TakeDirty(ulong start, ulong last, bool keep)
    {
        var pages = new List<ulong>();
        foreach (ulong page in _dirtyPages)
        {
            ulong iova = page * SimulatedVtd.PageSize;
            if (iova + SimulatedVtd.PageSize - 1 >= start && iova <= last)
            {
                pages.Add(iova);
            }
        }
        if (!keep)
        {
            foreach (ulong iova in pages)
            {
                _dirtyPages.Remove(iova / SimulatedVtd.PageSize);
            }
        }
        pages.Sort();
        return pages;
    }

    public bool TryTranslate(ulong iova, ulong length, bool write, out nint address)
    {
        address = 0;
        if (length == 0 || iova > ulong.MaxValue - (length - 1))
        {
            return false;
        }
        ulong last = iova + length - 1;
        int index = Ioas.IndexOfArea(iova);
        if (index < 0)
        {
            return false;
        }
        IoasArea first = Ioas.Areas[index];
        IoasArea previous = first;
        for (int i = index; ; i++)
        {
            IoasArea area = Ioas.Areas[i];
            if (i > index && (area.Iova != previous.Last + 1 || area.UserVa != previous.UserVa + previous.Length))
            {
                return false;
            }
            if (write ? !area.Writable : !area.Readable)
            {
                return false;
            }
            if (area.Last >= last)
            {
                break;
            }
            if (i + 1 >= Ioas.Areas.Count)
            {
                return false;
            }
            previous = area;
        }
        address = (nint)(first.UserVa + (iova - first.Iova));
        if (write && DirtyTracking)
        {
            for (ulong page = iova / SimulatedVtd.PageSize; page <= last / SimulatedVtd.PageSize; page++)
            {
                _dirtyPages.Add(page);
            }
        }
        return true;
    }
}

/// <summary>A mapping of an IOAS: [Iova, Last] → process memory at UserVa.</summary>
internal sealed class IoasArea
{
    internal ulong Iova { get; set; }

    internal ulong Last { get; set; }

    internal ulong UserVa { get; set; }

    internal bool Readable { get; init; }

    internal bool Writable { get; init; }

    /// <summary>The pages were pinned writable (the original MAP had WRITEABLE); COPY may not add write access otherwise.</summary>
    internal bool PagesWritable { get; init; }

    internal ulong Length => Last - Iova + 1;
}

/// <summary>One piece of memory for a new mapping: from MAP (one piece) or COPY (one per source area).</summary>
internal readonly record struct PagesPiece(ulong UserVa, ulong Length, bool PagesWritable);
