// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

internal sealed partial class IommuFdFile
{
    /// <summary>
    /// iommufd_device_bind (vfio_df_ioctl_bind_iommufd): the IOMMU must isolate MSIs, and DMA ownership of the IOMMU group must be free
    /// or already held by this context; then a DEVICE object is created. The binding holds the context.
    /// </summary>
    internal int BindDevice(SimDevice device, bool viaCdev, out DeviceObject? binding)
    {
        binding = null;
        SimGroup group = device.Group;
        if (group.NoIommu || group.Id < 0)
        {
            return -ENODEV;
        }
        if (!Kernel.Topology.InterruptRemapping && !Kernel.Topology.IommuFdAllowUnsafeInterrupts)
        {
            return -EPERM;
        }
        if (group.KernelOwned || group.Container is not null || group.Devices.Exists(d => Kernel.IommuFdBindings.TryGetValue(d, out DeviceObject? other) && other.Context != this))
        {
            return -EPERM;
        }
        binding = new DeviceObject(this, device, viaCdev);
        Insert(binding);
        Kernel.IommuFdBindings[device] = binding;
        AddReference();
        if (viaCdev)
        {
            device.BoundThroughCdev = true;
            group.UserOwned = true;
        }
        return 0;
    }

    /// <summary>Unbind (device fd closed): detach, destroy the DEVICE object, release ownership and the context.</summary>
    internal void UnbindDevice(DeviceObject binding)
    {
        Detach(binding);
        Remove(binding);
        SimDevice device = binding.Device;
        Kernel.IommuFdBindings.Remove(device);
        if (binding.ViaCdev)
        {
            device.BoundThroughCdev = false;
            if (!device.Group.AnyCdevBound)
            {
                device.Group.UserOwned = false;
            }
        }
        DropReference();
    }

    /// <summary>The HWPT other devices of <paramref name="binding"/>'s IOMMU group in this context are attached to.</summary>
    private HwptObject? GroupHwpt(DeviceObject binding)
    {
        foreach (IommuFdObject obj in _objects.Values)
        {
            if (obj is DeviceObject other && other != binding && other.Hwpt is not null && other.Device.Group == binding.Device.Group)
            {
                return other.Hwpt;
            }
        }
        return null;
    }

    /// <summary>The device's reserved regions (the VT-d interrupt window) join the IOAS's reserved set.</summary>
    private static int ReserveDeviceRegions(IoasObject ioas, DeviceObject binding)
        => ioas.Reserve(SimulatedVtd.MsiStart, SimulatedVtd.MsiLast, binding);

    private static void Link(DeviceObject binding, HwptObject hwpt)
    {
        binding.Hwpt = hwpt;
        hwpt.Devices.Add(binding);
        binding.Device.Dma = hwpt;
    }

    private void DestroyAutoIfUnused(HwptObject hwpt)
    {
        if (hwpt.AutoDomain && hwpt.Devices.Count == 0)
        {
            hwpt.Ioas.RemoveDomain(hwpt);
            Remove(hwpt);
        }
    }

    /// <summary>VFIO_DEVICE_ATTACH_IOMMUFD_PT (vfio_df_ioctl_attach_pt): to a HWPT, or to an IOAS through an auto HWPT.</summary>
    internal int Attach(DeviceObject binding, uint ptId, out uint hwptId)
    {
        hwptId = 0;
        if (!_objects.TryGetValue(ptId, out IommuFdObject? pt))
        {
            return -ENOENT;
        }
        HwptObject? hwpt;
        int rc;
        switch (pt)
        {
            case HwptObject target:
                hwpt = target;
                rc = AttachHwpt(binding, target);
                break;
            case IoasObject ioas:
                rc = AttachIoas(binding, ioas, out hwpt);
                break;
            default:
                return -EINVAL;
        }
        if (rc == 0)
        {
            hwptId = hwpt!.Id;
        }
        return rc;
    }

    private int AttachHwpt(DeviceObject binding, HwptObject hwpt)
    {
        if (binding.Hwpt == hwpt)
        {
            return 0;
        }
        if (binding.Hwpt is not null)
        {
            return Replace(binding, hwpt);
        }
        HwptObject? current = GroupHwpt(binding);
        if (current is not null && current != hwpt)
        {
            return -EINVAL;
        }
        int rc = ReserveDeviceRegions(hwpt.Ioas, binding);
        if (rc < 0)
        {
            return rc;
        }
        Link(binding, hwpt);
        return 0;
    }

    /// <summary>iommufd_device_auto_get_domain: reuse a compatible auto HWPT of the IOAS, else create one (iommufd_device_attach).</summary>
    private int AttachIoas(DeviceObject binding, IoasObject ioas, out HwptObject? hwpt)
    {
        foreach (HwptObject existing in ioas.Hwpts)
        {
            if (!existing.AutoDomain)
            {
                continue;
            }
            int attached = AttachHwpt(binding, existing);
            if (attached != -EINVAL)
            {
                hwpt = existing;
                return attached;
            }
        }
        hwpt = new HwptObject(ioas, autoDomain: true, dirtyCapable: false);
        Insert(hwpt);
        int rc;
        if (binding.Hwpt is not null)
        {
            // Replace: the domain joins the IOAS first, then the group moves over.
            rc = ioas.AddDomain(hwpt);
            if (rc == 0)
            {
                rc = Replace(binding, hwpt);
                if (rc < 0)
                {
                    ioas.RemoveDomain(hwpt);
                }
            }
        }
        else
        {
            // Immediate attach: the device's reserved regions, then the domain (alignment, aperture, fill).
            HwptObject? current = GroupHwpt(binding);
            rc = current is not null ? -EINVAL : ReserveDeviceRegions(ioas, binding);
            if (rc == 0)
            {
                rc = ioas.AddDomain(hwpt);
                if (rc < 0)
                {
                    ioas.RemoveReserved(binding);
                }
                else
                {
                    Link(binding, hwpt);
                }
            }
        }
        if (rc < 0)
        {
            Remove(hwpt);
            hwpt = null;
        }
        return rc;
    }

    /// <summary>iommufd_device_do_replace: every attached device of the IOMMU group moves to <paramref name="hwpt"/>;
    /// an old auto HWPT left without devices is destroyed.</summary>
    private int Replace(DeviceObject binding, HwptObject hwpt)
    {
        HwptObject old = binding.Hwpt!;
        List<DeviceObject> members = [.. old.Devices.Where(d => d.Device.Group == binding.Device.Group)];
        bool newIoas = old.Ioas != hwpt.Ioas;
        if (newIoas)
        {
            for (int i = 0; i < members.Count; i++)
            {
                int rc = ReserveDeviceRegions(hwpt.Ioas, members[i]);
                if (rc < 0)
                {
                    for (int j = 0; j < i; j++)
                    {
                        hwpt.Ioas.RemoveReserved(members[j]);
                    }
                    return rc;
                }
            }
        }
        foreach (DeviceObject member in members)
        {
            old.Devices.Remove(member);
            if (newIoas)
            {
                old.Ioas.RemoveReserved(member);
            }
            Link(member, hwpt);
        }
        DestroyAutoIfUnused(old);
        return 0;
    }

    /// <summary>VFIO_DEVICE_DETACH_IOMMUFD_PT (vfio_df_ioctl_detach_pt) and unbind: DMA is blocked; an unused auto HWPT is destroyed.</summary>
    internal void Detach(DeviceObject binding)
    {
        HwptObject? hwpt = binding.Hwpt;
        if (hwpt is null)
        {
            return;
        }
        hwpt.Devices.Remove(binding);
        binding.Hwpt = null;
        binding.Device.Dma = null;
        hwpt.Ioas.RemoveReserved(binding);
        DestroyAutoIfUnused(hwpt);
    }
}
