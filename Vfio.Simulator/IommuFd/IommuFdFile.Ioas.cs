// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class IommuFdFile
{
    private const uint MapFlags = IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA | IommuUapi.IOMMU_IOAS_MAP_WRITEABLE | IommuUapi.IOMMU_IOAS_MAP_READABLE;

    private IoasObject CreateIoas()
    {
        var ioas = new IoasObject(this);
        Insert(ioas);
        return ioas;
    }

    /// <summary>IOMMU_IOAS_ALLOC (iommufd_ioas_alloc_ioctl).</summary>
    private int IoasAlloc(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 12, out iommu_ioas_alloc cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.flags != 0)
        {
            return -EOPNOTSUPP;
        }
        IoasObject ioas = CreateIoas();
        cmd.out_ioas_id = ioas.Id;
        rc = Respond(argument, size, cmd);
        if (rc < 0)
        {
            Remove(ioas);
        }
        return rc;
    }

    /// <summary>IOMMU_IOAS_IOVA_RANGES (iommufd_ioas_iova_ranges): the holes of the reserved set; <c>EMSGSIZE</c> after the header was
    /// updated when the array is too short.</summary>
    private int IoasIovaRanges(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 32, out iommu_ioas_iova_ranges cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        IoasObject? ioas = Find<IoasObject>(cmd.ioas_id);
        if (ioas is null)
        {
            return -ENOENT;
        }
        uint capacity = cmd.num_iovas;
        List<(ulong Start, ulong Last)> ranges = ioas.UsableRanges();
        for (int i = 0; i < ranges.Count && i < capacity; i++)
        {
            var range = new iommu_iova_range { start = ranges[i].Start, last = ranges[i].Last };
            rc = UserMemory.Write((nint)(cmd.allowed_iovas + (ulong)(i * 16)), 16, range);
            if (rc < 0)
            {
                return rc;
            }
        }
        cmd.num_iovas = (uint)ranges.Count;
        cmd.out_iova_alignment = ioas.IovaAlignment;
        rc = Respond(argument, size, cmd);
        if (rc < 0)
        {
            return rc;
        }
        return cmd.num_iovas > capacity ? -(int)Errno.EMSGSIZE : 0;
    }

    /// <summary>IOMMU_IOAS_MAP (iommufd_ioas_map), checked in the kernel's order.</summary>
    private int IoasMap(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 40, out iommu_ioas_map cmd);
        if (rc < 0)
        {
            return rc;
        }
        if ((cmd.flags & ~MapFlags) != 0 || cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        if (cmd.iova == ulong.MaxValue || cmd.length == ulong.MaxValue)
        {
            return -EOVERFLOW;
        }
        if ((cmd.flags & (IommuUapi.IOMMU_IOAS_MAP_WRITEABLE | IommuUapi.IOMMU_IOAS_MAP_READABLE)) == 0)
        {
            return -EINVAL;
        }
        IoasObject? ioas = Find<IoasObject>(cmd.ioas_id);
        if (ioas is null)
        {
            return -ENOENT;
        }
        ulong iova = cmd.iova;
        rc = MapUserPages(ioas, ref iova, (cmd.flags & IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA) != 0, cmd.user_va, cmd.length,
            (cmd.flags & IommuUapi.IOMMU_IOAS_MAP_READABLE) != 0, (cmd.flags & IommuUapi.IOMMU_IOAS_MAP_WRITEABLE) != 0);
        if (rc < 0)
        {
            return rc;
        }
        cmd.iova = iova;
        return Respond(argument, size, cmd);
    }

    /// <summary>iopt_map_user_pages (iommufd_ioas_map), shared with the compat MAP_DMA.</summary>
    private static int MapUserPages(IoasObject ioas, ref ulong iova, bool fixedIova, ulong userVa, ulong length, bool readable, bool writable)
    {
        if (length == 0 || length > ulong.MaxValue - SimulatedVtd.PageSize)
        {
            return -EINVAL;
        }
        if (userVa > ulong.MaxValue - length)
        {
            return -EOVERFLOW;
        }
        var piece = new PagesPiece(userVa, length, writable);
        return ioas.Map(ref iova, fixedIova, new ReadOnlySpan<PagesPiece>(in piece), length, readable, writable);
    }

    /// <summary>IOMMU_IOAS_ALLOW_IOVAS (iommufd_ioas_allow_iovas).</summary>
    private int IoasAllowIovas(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 24, out iommu_ioas_allow_iovas cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        IoasObject? ioas = Find<IoasObject>(cmd.ioas_id);
        if (ioas is null)
        {
            return -ENOENT;
        }
        var ranges = new List<(ulong Start, ulong Last)>();
        for (uint i = 0; i < cmd.num_iovas; i++)
        {
            rc = UserMemory.Read((nint)(cmd.allowed_iovas + (i * 16UL)), 16, out iommu_iova_range range);
            if (rc < 0)
            {
                return rc;
            }
            if (range.start >= range.last || ranges.Exists(r => r.Start <= range.last && r.Last >= range.start))
            {
                return -EINVAL;
            }
            ranges.Add((range.start, range.last));
        }
        return ioas.SetAllowed(ranges);
    }

    /// <summary>IOMMU_IOAS_COPY (iommufd_ioas_copy).</summary>
    private int IoasCopy(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 40, out iommu_ioas_copy cmd);
        if (rc < 0)
        {
            return rc;
        }
        if ((cmd.flags & ~MapFlags) != 0)
        {
            return -EOPNOTSUPP;
        }
        if (cmd.length == ulong.MaxValue || cmd.src_iova == ulong.MaxValue || cmd.dst_iova == ulong.MaxValue)
        {
            return -EOVERFLOW;
        }
        if ((cmd.flags & (IommuUapi.IOMMU_IOAS_MAP_WRITEABLE | IommuUapi.IOMMU_IOAS_MAP_READABLE)) == 0)
        {
            return -EINVAL;
        }
        IoasObject? source = Find<IoasObject>(cmd.src_ioas_id);
        if (source is null)
        {
            return -ENOENT;
        }
        if (cmd.length == 0)
        {
            return -EINVAL;
        }
        if (cmd.src_iova > ulong.MaxValue - (cmd.length - 1))
        {
            return -EOVERFLOW;
        }
        var pieces = new List<PagesPiece>();
        rc = source.GetPieces(cmd.src_iova, cmd.src_iova + cmd.length - 1, pieces);
        if (rc < 0)
        {
            return rc;
        }
        IoasObject? destination = Find<IoasObject>(cmd.dst_ioas_id);
        if (destination is null)
        {
            return -ENOENT;
        }
        ulong iova = cmd.dst_iova;
        rc = destination.Map(ref iova, (cmd.flags & IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA) != 0, [.. pieces], cmd.length,
            (cmd.flags & IommuUapi.IOMMU_IOAS_MAP_READABLE) != 0, (cmd.flags & IommuUapi.IOMMU_IOAS_MAP_WRITEABLE) != 0);
        if (rc < 0)
        {
            return rc;
        }
        cmd.dst_iova = iova;
        return Respond(argument, size, cmd);
    }

    /// <summary>IOMMU_IOAS_UNMAP (iommufd_ioas_unmap): on failure nothing is written back, though areas already removed stay removed.</summary>
    private int IoasUnmap(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 24, out iommu_ioas_unmap cmd);
        if (rc < 0)
        {
            return rc;
        }
        IoasObject? ioas = Find<IoasObject>(cmd.ioas_id);
        if (ioas is null)
        {
            return -ENOENT;
        }
        ulong unmapped;
        if (cmd.iova == 0 && cmd.length == ulong.MaxValue)
        {
            ioas.UnmapAll(out unmapped);
        }
        else
        {
            if (cmd.iova == ulong.MaxValue || cmd.length == ulong.MaxValue)
            {
                return -EOVERFLOW;
            }
            rc = UnmapIova(ioas, cmd.iova, cmd.length, out unmapped);
            if (rc < 0)
            {
                return rc;
            }
        }
        cmd.length = unmapped;
        return Respond(argument, size, cmd);
    }

    /// <summary>iopt_unmap_iova: <c>EINVAL</c> for length 0, <c>EOVERFLOW</c> on wrap, then the area walk.</summary>
    private static int UnmapIova(IoasObject ioas, ulong iova, ulong length, out ulong unmapped)
    {
        unmapped = 0;
        if (length == 0)
        {
            return -EINVAL;
        }
        if (iova > ulong.MaxValue - (length - 1))
        {
            return -EOVERFLOW;
        }
        return ioas.Unmap(iova, iova + length - 1, out unmapped);
    }
}
