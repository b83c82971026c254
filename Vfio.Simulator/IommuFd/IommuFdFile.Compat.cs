// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>The iommufd as a VFIO container: the container ioctls of drivers/iommu/iommufd/vfio_compat.c and the group path of vfio_group_ioctl_set_container / vfio_group_ioctl_get_device_fd.</summary>
internal sealed partial class IommuFdFile : IVfioCompatContainer
{
    /// <summary>iommufd_vfio_ioctl: everything outside the iommufd table; unknown numbers are <c>ENOTTY</c>.</summary>
    private int CompatIoctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_GET_API_VERSION)
        {
            return VfioUapi.VFIO_API_VERSION;
        }
        if (request == VfioUapi.VFIO_CHECK_EXTENSION)
        {
            return CheckExtension((ulong)argument);
        }
        if (request == VfioUapi.VFIO_SET_IOMMU)
        {
            return SetIommu((ulong)argument);
        }
        if (request == VfioUapi.VFIO_IOMMU_GET_INFO)
        {
            return GetIommuInfo(argument);
        }
        if (request == VfioUapi.VFIO_IOMMU_MAP_DMA)
        {
            return MapDma(argument);
        }
        return request == VfioUapi.VFIO_IOMMU_UNMAP_DMA ? UnmapDma(argument) : -(int)Errno.ENOTTY;
    }

    /// <summary>VFIO_CHECK_EXTENSION as iommufd_vfio_check_extension answers it.</summary>
    private int CheckExtension(ulong extension)
    {
        switch (extension)
        {
            case VfioUapi.VFIO_TYPE1_IOMMU:
            case VfioUapi.VFIO_TYPE1v2_IOMMU:
            case VfioUapi.VFIO_UNMAP_ALL:
            case VfioUapi.VFIO_NOIOMMU_IOMMU: // CONFIG_VFIO_NOIOMMU, as in the testbed's kernel
                return 1;
            case VfioUapi.VFIO_DMA_CC_IOMMU:
                // 1 iff every HWPT of the compat IOAS enforces coherency; the VT-d has no snoop control (ecap.SC = 0).
                return CompatIoas is null ? -ENODEV : CompatIoas.Hwpts.Count == 0 ? 1 : 0;
            default:
                return 0;
        }
    }

    /// <summary>iommufd_vfio_set_iommu (drivers/iommu/iommufd/vfio_compat.c): no "already set" state; type 1 disables huge IOPTEs.</summary>
    private int SetIommu(ulong type)
    {
        if (type == VfioUapi.VFIO_NOIOMMU_IOMMU && NoIommuMode)
        {
            return Kernel.Topology.Privileged ? 0 : -EPERM;
        }
        if ((type != VfioUapi.VFIO_TYPE1_IOMMU && type != VfioUapi.VFIO_TYPE1v2_IOMMU) || NoIommuMode)
        {
            return -EINVAL;
        }
        if (CompatIoas is null)
        {
            return -ENODEV;
        }
        return type == VfioUapi.VFIO_TYPE1_IOMMU ? CompatIoas.DisableHugePages() : 0;
    }

    /// <summary>iommufd_vfio_iommu_get_info (drivers/iommu/iommufd/vfio_compat.c): DMA_AVAIL then IOVA_RANGE, written while space remains.</summary>
    private int GetIommuInfo(nint argument)
    {
        const int MinSize = 16, InfoSize = 24;
        int rc = UserMemory.Read(argument, MinSize, out vfio_iommu_type1_info info);
        if (rc < 0)
        {
            return rc;
        }
        if (info.argsz < MinSize)
        {
            return -EINVAL;
        }
        int copyBack = (int)Math.Min(info.argsz, (uint)InfoSize);
        IoasObject? ioas = CompatIoas;
        if (ioas is null)
        {
            return -ENODEV;
        }
        info.flags = VfioUapi.VFIO_IOMMU_INFO_PGSIZES;
        ulong pageSizes = ioas.Hwpts.Count > 0 ? SimulatedVtd.PageSizes : ~(SimulatedVtd.PageSize - 1);
        info.iova_pgsizes = Math.Max(pageSizes, ioas.IovaAlignment);
        info.cap_offset = 0;

        // DMA_AVAIL: 12 bytes, 16 in the chain.
        ulong total = InfoSize;
        if (info.argsz > total && info.argsz - total >= 12)
        {
            Span<byte> cap = stackalloc byte[12];
            cap.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(cap, VfioUapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
            BinaryPrimitives.WriteUInt16LittleEndian(cap[2..], 1);
            BinaryPrimitives.WriteUInt32LittleEndian(cap[8..], uint.MaxValue);
            if ((rc = UserMemory.CopyTo(argument + (nint)total, cap)) < 0)
            {
                return rc;
            }
        }
        ulong lastCap = total;
        total += 16;

        // IOVA_RANGE: 16 + 16 per range.
        List<(ulong Start, ulong Last)> ranges = ioas.UsableRanges();
        ulong avail = info.argsz > total ? info.argsz - total : 0;
        Span<byte> entry = stackalloc byte[16];
        for (int i = 0; i < ranges.Count; i++)
        {
            if (avail >= 16 + (16 * ((ulong)i + 1)))
            {
                BinaryPrimitives.WriteUInt64LittleEndian(entry, ranges[i].Start);
                BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], ranges[i].Last);
                if ((rc = UserMemory.CopyTo(argument + (nint)(total + 16 + (16 * (ulong)i)), entry)) < 0)
                {
                    return rc;
                }
            }
        }
        ulong capSize = 16 + (16 * (ulong)ranges.Count);
        if (avail >= capSize)
        {
            entry.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(entry, VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[2..], 1);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], (uint)ranges.Count);
            if ((rc = UserMemory.CopyTo(argument + (nint)total, entry)) < 0)
            {
                return rc;
            }
        }
        if (info.argsz >= total && (rc = UserMemory.Write(argument + (nint)lastCap + 4, sizeof(uint), (uint)total)) < 0)
        {
            return rc;
        }
        total += capSize;

        if (info.argsz >= total)
        {
            info.cap_offset = InfoSize;
        }
        info.argsz = (uint)total;
        info.flags |= VfioUapi.VFIO_IOMMU_INFO_CAPS;
        return UserMemory.Write(argument, copyBack, info);
    }

    /// <summary>iommufd_vfio_map_dma (drivers/iommu/iommufd/vfio_compat.c): fixed-IOVA IOAS map semantics; neither READ nor WRITE is accepted.</summary>
    private int MapDma(nint argument)
    {
        int rc = UserMemory.Read(argument, 32, out vfio_iommu_type1_dma_map map);
        if (rc < 0)
        {
            return rc;
        }
        if (map.argsz < 32 || (map.flags & ~(VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE)) != 0)
        {
            return -EINVAL;
        }
        if (CompatIoas is null)
        {
            return -ENODEV;
        }
        ulong iova = map.iova;
        return MapUserPages(CompatIoas, ref iova, fixedIova: true, map.vaddr, map.size,
            (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_READ) != 0, (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0);
    }

    /// <summary>iommufd_vfio_unmap_dma (drivers/iommu/iommufd/vfio_compat.c): a cut mapping is <c>ENOENT</c> (type1 v1 mode cuts first); <c>size</c>
    /// is written back with the bytes unmapped, also when the unmap failed part-way.</summary>
    private int UnmapDma(nint argument)
    {
        const int MinSize = 24;
        int rc = UserMemory.Read(argument, MinSize, out vfio_iommu_type1_dma_unmap unmap);
        if (rc < 0)
        {
            return rc;
        }
        if (unmap.argsz < MinSize || (unmap.flags & ~VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL) != 0)
        {
            return -EINVAL;
        }
        IoasObject? ioas = CompatIoas;
        if (ioas is null)
        {
            return -ENODEV;
        }
        ulong unmapped;
        if ((unmap.flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL) != 0)
        {
            if (unmap.iova != 0 || unmap.size != 0)
            {
                return -EINVAL;
            }
            ioas.UnmapAll(out unmapped);
            rc = 0;
        }
        else
        {
            if (ioas.DisableLargePages)
            {
                rc = ioas.CutAfter(unmap.iova + unmap.size - 1);
                if (rc == 0 && unmap.iova != 0)
                {
                    rc = ioas.CutAfter(unmap.iova - 1);
                }
                if (rc < 0)
                {
                    return rc;
                }
            }
            rc = UnmapIova(ioas, unmap.iova, unmap.size, out unmapped);
        }
        unmap.size = unmapped;
        return UserMemory.Write(argument, MinSize, unmap) < 0 ? -EFAULT : rc;
    }

    /// <summary>VFIO_GROUP_SET_CONTAINER with this iommufd (vfio_group_ioctl_set_container).</summary>
    public int AttachGroup(SimGroup group)
    {
        if (group.NoIommu)
        {
            if (CompatIoas is not null)
            {
                return -EINVAL;
            }
            NoIommuMode = true;
        }
        else
        {
            if (NoIommuMode)
            {
                return -EINVAL;
            }
            CompatIoas ??= CreateIoas();
        }
        group.IommuFdContainer = this;
        AddReference();
        return 0;
    }

    /// <summary>The group left (UNSET_CONTAINER, or its last reference went).</summary>
    public void DetachGroup(SimGroup group) => DropReference();

    /// <summary>First open of a device through a group attached to this iommufd (vfio_group_ioctl_get_device_fd): bind, then attach to
    /// the compat IOAS. A no-IOMMU device needs CAP_SYS_RAWIO and no compat IOAS, and DMAs untranslated.</summary>
    public int OpenDevice(SimDevice device)
    {
        if (device.Group.NoIommu)
        {
            if (!Kernel.Topology.Privileged || CompatIoas is not null)
            {
                return -EPERM;
            }
            device.Dma = Kernel.PhysicalMemory;   // no translation: physical addresses
            return 0;
        }
        int rc = BindDevice(device, viaCdev: false, out DeviceObject? binding);
        if (rc < 0)
        {
            return rc;
        }
        rc = CompatIoas is null ? -ENODEV : AttachIoas(binding!, CompatIoas, out _);
        if (rc < 0)
        {
            UnbindDevice(binding!);
        }
        return rc;
    }

    /// <summary>Last close of a device opened through the group path: unbind.</summary>
    public void CloseDevice(SimDevice device)
    {
        if (Kernel.IommuFdBindings.TryGetValue(device, out DeviceObject? binding) && binding.Context == this && !binding.ViaCdev)
        {
            UnbindDevice(binding);
        }
        else if (device.Group.NoIommu)
        {
            device.Dma = null;
        }
    }
}
