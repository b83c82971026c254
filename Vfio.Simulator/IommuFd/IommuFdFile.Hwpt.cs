// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class IommuFdFile
{
    /// <summary>
    /// IOMMU_HWPT_ALLOC (iommufd_hwpt_alloc). The simulated VT-d (like QEMU's) supports user domain allocation but not nesting:
    /// NEST_PARENT and user data are <c>EOPNOTSUPP</c>, so no nest parent — and no nested HWPT — can exist.
    /// </summary>
    private int HwptAlloc(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 24, out iommu_hwpt_alloc cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        if ((cmd.data_type == IommuUapi.IOMMU_HWPT_DATA_NONE) != (cmd.data_len == 0))
        {
            return -EINVAL;
        }
        if (Find<DeviceObject>(cmd.dev_id) is null)
        {
            return -ENOENT;
        }
        if (!_objects.TryGetValue(cmd.pt_id, out IommuFdObject? pt))
        {
            return -EINVAL;
        }
        if (pt is HwptObject)
        {
            // A nested HWPT needs user data and a NEST_PARENT parent; this IOMMU never makes one.
            return (cmd.flags & ~IommuUapi.IOMMU_HWPT_FAULT_ID_VALID) != 0 || cmd.data_len == 0 ? -EOPNOTSUPP : -EINVAL;
        }
        if (pt is not IoasObject ioas)
        {
            return -EINVAL;
        }
        const uint Valid = IommuUapi.IOMMU_HWPT_ALLOC_NEST_PARENT | IommuUapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
        bool dirty = (cmd.flags & IommuUapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING) != 0;
        if ((cmd.flags & ~Valid) != 0
            || (dirty && !Kernel.IommuDirtyTracking)
            || (cmd.flags & IommuUapi.IOMMU_HWPT_ALLOC_NEST_PARENT) != 0
            || cmd.data_len != 0)
        {
            return -EOPNOTSUPP;
        }
        var hwpt = new HwptObject(ioas, autoDomain: false, dirtyCapable: dirty);
        Insert(hwpt);
        rc = ioas.AddDomain(hwpt);
        if (rc < 0)
        {
            Remove(hwpt);
            return rc;
        }
        cmd.out_hwpt_id = hwpt.Id;
        rc = Respond(argument, size, cmd);
        if (rc < 0)
        {
            ioas.RemoveDomain(hwpt);
            Remove(hwpt);
        }
        return rc;
    }

    /// <summary>IOMMU_GET_HW_INFO (iommufd_get_hw_info): Intel VT-d data (type 1, 24 bytes), the rest of the buffer zeroed.</summary>
    private int GetHwInfo(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 32, out iommu_hw_info cmd);
        if (rc < 0)
        {
            return rc;
        }
        ReadOnlySpan<byte> raw = MemoryMarshal.AsBytes(MemoryMarshal.CreateReadOnlySpan(ref cmd, 1));
        if (cmd.flags != 0 || raw.Slice(29, 3).ContainsAnyExcept((byte)0))
        {
            return -EOPNOTSUPP;
        }
        if (Find<DeviceObject>(cmd.dev_id) is null)
        {
            return -ENOENT;
        }
        var info = new iommu_hw_info_vtd { cap_reg = SimulatedVtd.CapReg, ecap_reg = SimulatedVtd.EcapReg };
        ReadOnlySpan<byte> data = MemoryMarshal.AsBytes(MemoryMarshal.CreateReadOnlySpan(ref info, 1));
        int copy = (int)Math.Min(cmd.data_len, (uint)Unsafe.SizeOf<iommu_hw_info_vtd>());
        rc = UserMemory.CopyTo((nint)cmd.data_uptr, data[..copy]);
        if (rc < 0)
        {
            return rc;
        }
        Span<byte> zeros = stackalloc byte[256];
        zeros.Clear();
        for (ulong offset = (ulong)copy; offset < cmd.data_len;)
        {
            int n = (int)Math.Min((ulong)zeros.Length, cmd.data_len - offset);
            rc = UserMemory.CopyTo((nint)(cmd.data_uptr + offset), zeros[..n]);
            if (rc < 0)
            {
                return rc;
            }
            offset += (ulong)n;
        }
        cmd.data_len = (uint)Unsafe.SizeOf<iommu_hw_info_vtd>();
        cmd.out_data_type = IommuUapi.IOMMU_HW_INFO_TYPE_INTEL_VTD;
        cmd.out_capabilities = Kernel.IommuDirtyTracking ? IommuUapi.IOMMU_HW_CAP_DIRTY_TRACKING : 0;
        cmd.out_max_pasid_log2 = 0;
        return Respond(argument, size, cmd);
    }

    /// <summary>IOMMU_HWPT_SET_DIRTY_TRACKING (iommufd_hwpt_set_dirty_tracking); <c>__reserved</c> is not checked. Enabling clears old dirty bits.</summary>
    private int SetDirtyTracking(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 16, out iommu_hwpt_set_dirty_tracking cmd);
        if (rc < 0)
        {
            return rc;
        }
        if ((cmd.flags & ~IommuUapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE) != 0)
        {
            return -EOPNOTSUPP;
        }
        HwptObject? hwpt = Find<HwptObject>(cmd.hwpt_id);
        if (hwpt is null)
        {
            return -ENOENT;
        }
        if (!hwpt.DirtyCapable)
        {
            return -EOPNOTSUPP;
        }
        bool enable = (cmd.flags & IommuUapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE) != 0;
        if (enable)
        {
            hwpt.ClearDirty();
        }
        hwpt.DirtyTracking = enable;
        return 0;
    }

    /// <summary>IOMMU_HWPT_GET_DIRTY_BITMAP (iommufd_hwpt_get_dirty_bitmap): sets (never clears) bit (X − iova) / page_size for dirty X.</summary>
    private int GetDirtyBitmap(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 48, out iommu_hwpt_get_dirty_bitmap cmd);
        if (rc < 0)
        {
            return rc;
        }
        if ((cmd.flags & ~IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) != 0 || cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        HwptObject? hwpt = Find<HwptObject>(cmd.hwpt_id);
        if (hwpt is null)
        {
            return -ENOENT;
        }
        if (cmd.length == 0)
        {
            return -EINVAL;
        }
        if (cmd.iova > ulong.MaxValue - (cmd.length - 1))
        {
            return -EOVERFLOW;
        }
        ulong last = cmd.iova + cmd.length - 1;
        ulong alignment = hwpt.Ioas.IovaAlignment;
        if ((cmd.iova & (alignment - 1)) != 0 || ((last + 1) & (alignment - 1)) != 0)
        {
            return -EINVAL;
        }
        if (cmd.page_size == 0 || (cmd.iova & (cmd.page_size - 1)) != 0 || ((last + 1) & (cmd.page_size - 1)) != 0)
        {
            return -EINVAL;
        }
        if (!hwpt.DirtyCapable)
        {
            return -EOPNOTSUPP;
        }
        bool keep = (cmd.flags & IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) != 0;
        var words = new SortedDictionary<ulong, ulong>();
        foreach (ulong page in hwpt.TakeDirty(cmd.iova, last, keep))
        {
            if (hwpt.Ioas.IndexOfArea(page) < 0)
            {
                continue; // only mapped IOPTEs carry dirty bits
            }
            ulong from = Math.Max(page, cmd.iova);
            ulong to = Math.Min(page + SimulatedVtd.PageSize - 1, last);
            for (ulong bit = (from - cmd.iova) / cmd.page_size; bit <= (to - cmd.iova) / cmd.page_size; bit++)
            {
                words[bit / 64] = words.GetValueOrDefault(bit / 64) | (1UL << (int)(bit % 64));
            }
        }
        foreach ((ulong word, ulong bits) in words)
        {
            nint address = (nint)(cmd.data + (word * 8));
            rc = UserMemory.Read(address, sizeof(ulong), out ulong current);
            if (rc < 0 || (rc = UserMemory.Write(address, sizeof(ulong), current | bits)) < 0)
            {
                return rc;
            }
        }
        return 0;
    }

    /// <summary>IOMMU_HWPT_INVALIDATE (iommufd_hwpt_invalidate): <c>entry_num</c> is always written back; no nested HWPT exists here.</summary>
    private int HwptInvalidate(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 32, out iommu_hwpt_invalidate cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.__reserved != 0)
        {
            rc = -EOPNOTSUPP;
        }
        else if (cmd.entry_num > 0 && (cmd.data_uptr == 0 || cmd.entry_len == 0 || cmd.entry_len > SimulatedVtd.PageSize || cmd.entry_num > 524288))
        {
            rc = -EINVAL;
        }
        else
        {
            rc = -ENOENT; // hwpt_id is never a HWPT_NESTED: this IOMMU cannot allocate one
        }
        cmd.entry_num = 0;
        return Respond(argument, size, cmd) < 0 ? -EFAULT : rc;
    }
}
