// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// A legacy container, <c>/dev/vfio/vfio</c> (drivers/vfio/container.c): groups, the IOMMU backend chosen by
/// <c>VFIO_SET_IOMMU</c>, and the backends' ioctls. It outlives its fd while groups are attached (vfio_group_fops_release).
/// </summary>
internal sealed class ContainerFile(SimulatedKernel kernel) : SimFile
{
    private readonly List<SimGroup> _groups = [];

    internal override FileType Type => FileType.CharacterDevice;

    internal override (uint Major, uint Minor) DeviceNumber => (SimulatedKernel.MiscMajor, SimulatedKernel.VfioContainerMinor);

    internal override string ProcLink => "/dev/vfio/vfio";

    /// <summary>The active IOMMU backend, after a successful SET_IOMMU.</summary>
    internal IVfioIommuDriver? Driver { get; private set; }

    internal IReadOnlyList<SimGroup> Groups => _groups;

    private bool HoldsNoIommuGroups => _groups.Count > 0 && _groups[0].NoIommu;

    /// <summary>The backends this container may use now (vfio_ioctl_set_iommu): with groups attached, only those of their kind.</summary>
    private IEnumerable<IommuBackendRegistration> AllowedBackends
        => kernel.IommuBackends.Where(b => _groups.Count == 0 || b.ForNoIommu == HoldsNoIommuGroups);

    internal override int Ioctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_GET_API_VERSION)
        {
            return VfioUapi.VFIO_API_VERSION;
        }
        if (request == VfioUapi.VFIO_CHECK_EXTENSION)
        {
            uint extension = (uint)argument;
            if (Driver is not null)
            {
                return Driver.CheckExtension(extension);
            }
            foreach (IommuBackendRegistration backend in AllowedBackends)
            {
                int answer = backend.CheckExtension(extension);
                if (answer > 0)
                {
                    return answer;
                }
            }
            return 0;
        }
        if (request == VfioUapi.VFIO_SET_IOMMU)
        {
            return SetIommu((uint)argument);
        }
        // Anything else goes to the backend; with none set, EINVAL (container.c, seen on the real 6.12 kernel).
        return Driver is null ? -(int)Errno.EINVAL : Driver.Ioctl(request, argument);
    }

    private int SetIommu(uint type)
    {
        if (_groups.Count == 0 || Driver is not null)
        {
            return -(int)Errno.EINVAL;
        }
        int result = -(int)Errno.ENODEV;
        foreach (IommuBackendRegistration backend in AllowedBackends)
        {
            if (backend.CheckExtension(type) <= 0)
            {
                continue;
            }
            (int rc, IVfioIommuDriver? driver) = backend.Open(type);
            if (rc < 0 || driver is null)
            {
                result = rc < 0 ? rc : -(int)Errno.EINVAL;
                continue;
            }
            int attached = 0;
            for (; attached < _groups.Count; attached++)
            {
                rc = driver.AttachGroup(_groups[attached]);
                if (rc < 0)
                {
                    break;
                }
            }
            if (attached == _groups.Count)
            {
                Driver = driver;
                return 0;
            }
            for (int i = attached - 1; i >= 0; i--)
            {
                driver.DetachGroup(_groups[i]);
            }
            driver.Release();
            result = rc;
        }
        return result;
    }

    /// <summary>VFIO_GROUP_SET_CONTAINER with this container (vfio_group_ioctl_set_container).</summary>
    internal int AttachGroup(SimGroup group)
    {
        if (group.NoIommu && !kernel.Topology.Privileged)
        {
            return -(int)Errno.EPERM;
        }
        if (_groups.Count > 0 && HoldsNoIommuGroups != group.NoIommu)
        {
            return -(int)Errno.EPERM;
        }
        if (group.KernelOwned || group.UserOwned)
        {
            return -(int)Errno.EPERM;
        }
        if (Driver is not null)
        {
            int rc = Driver.AttachGroup(group);
            if (rc < 0)
            {
                return rc;
            }
        }
        _groups.Add(group);
        group.Container = this;
        group.UserOwned = true;
        return 0;
    }

    /// <summary>The group leaves (UNSET_CONTAINER or its last reference went); the last one releases the backend.</summary>
    internal void DetachGroup(SimGroup group)
    {
        if (!_groups.Remove(group))
        {
            return;
        }
        Driver?.DetachGroup(group);
        group.Container = null;
        group.UserOwned = false;
        if (_groups.Count == 0 && Driver is not null)
        {
            Driver.Release();
            Driver = null;
        }
    }
}
