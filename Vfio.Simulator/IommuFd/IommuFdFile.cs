// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// An iommufd context, <c>/dev/iommu</c> (drivers/iommu/iommufd): the ID table of IOAS, HWPT and DEVICE objects, the
/// iommufd ioctls with the <c>size</c> convention of iommufd_fops_ioctl, the VFIO container ioctls of drivers/iommu/iommufd/vfio_compat.c and, used where a container
/// fd goes, the group path of vfio_group_ioctl_set_container and vfio_group_ioctl_get_device_fd. The context lives while its fd, a bound device or an attached
/// group holds it (drivers/iommu/iommufd/main.c): closing the fd does not unmap anything a device still uses.
/// </summary>
internal sealed partial class IommuFdFile : SimFile
{
    private const int EINVAL = (int)Errno.EINVAL;
    private const int ENOENT = (int)Errno.ENOENT;
    private const int EOPNOTSUPP = (int)Errno.EOPNOTSUPP;
    private const int EOVERFLOW = (int)Errno.EOVERFLOW;
    private const int EBUSY = (int)Errno.EBUSY;
    private const int ENODEV = (int)Errno.ENODEV;
    private const int EPERM = (int)Errno.EPERM;
    private const int EFAULT = (int)Errno.EFAULT;

    private readonly Dictionary<uint, IommuFdObject> _objects = [];
    private int _references = 1;

    internal IommuFdFile(SimulatedKernel kernel) => Kernel = kernel;

    internal SimulatedKernel Kernel { get; }

    internal override FileType Type => FileType.CharacterDevice;

    internal override (uint Major, uint Minor) DeviceNumber => (SimulatedKernel.MiscMajor, SimulatedKernel.IommuMinor);

    internal override string ProcLink => "/dev/iommu";

    /// <summary>The VFIO compatibility IOAS (IOMMU_VFIO_IOAS, created by a group's SET_CONTAINER).</summary>
    private IoasObject? CompatIoas { get; set; }

    /// <summary>A no-IOMMU group was attached (vfio_group_ioctl_set_container): no compat IOAS may exist.</summary>
    private bool NoIommuMode { get; set; }

    /// <summary>RLIMIT accounting: false = per user (the default of /dev/iommu), true = per process.</summary>
    internal bool AccountPerProcess { get; private set; }

    internal void AddReference() => _references++;

    internal void DropReference()
    {
        if (--_references == 0)
        {
            // iommufd_fops_release: destroy every object, leaf first. Bound devices are gone by now.
            foreach (IoasObject ioas in _objects.Values.OfType<IoasObject>())
            {
                ioas.Destroy();
            }
            _objects.Clear();
            CompatIoas = null;
        }
    }

    internal override void Release() => DropReference();

    /// <summary>The number of live objects (IOAS, HWPT, bound devices ...), for state queries.</summary>
    internal int ObjectCount => _objects.Count;

    /// <summary>The number of mapped areas over every IOAS of this file, for state queries.</summary>
    internal int AreaCount
    {
        get
        {
            int count = 0;
            foreach (IommuFdObject obj in _objects.Values)
            {
                if (obj is IoasObject ioas)
                {
                    count += ioas.Areas.Count;
                }
            }
            return count;
        }
    }

    private uint Insert(IommuFdObject obj)
    {
        uint id = 1;
        while (_objects.ContainsKey(id))
        {
            id++;
        }
        obj.Id = id;
        _objects[id] = obj;
        return id;
    }

    private void Remove(IommuFdObject obj) => _objects.Remove(obj.Id);

    private T? Find<T>(uint id)
        where T : IommuFdObject
        => _objects.TryGetValue(id, out IommuFdObject? obj) ? obj as T : null;

    internal override int Ioctl(uint request, nint argument)
    {
        uint nr = request & 0xFF;
        if (nr < IoctlEncoding.IOMMUFD_CMD_BASE || nr > IommuUapi.IOMMUFD_CMD_HWPT_INVALIDATE)
        {
            // Outside the iommufd table (6.12's table ends at FAULT_QUEUE_ALLOC, which the model leaves out and
            // treats like a later command): the VFIO container compatibility handler (drivers/iommu/iommufd/vfio_compat.c).
            return nr == IommuUapi.IOMMUFD_CMD_FAULT_QUEUE_ALLOC && request == IoctlEncoding.Io(nr)
                ? -(int)Errno.ENOTTY
                : CompatIoctl(request, argument);
        }
        if (request != IoctlEncoding.Io(nr))
        {
            return -(int)Errno.ENOTTY;
        }
        int rc = UserMemory.Read(argument, sizeof(uint), out uint size);
        if (rc < 0)
        {
            return rc;
        }
        return nr switch
        {
            IommuUapi.IOMMUFD_CMD_DESTROY => Destroy(argument, size),
            IommuUapi.IOMMUFD_CMD_IOAS_ALLOC => IoasAlloc(argument, size),
            IommuUapi.IOMMUFD_CMD_IOAS_ALLOW_IOVAS => IoasAllowIovas(argument, size),
            IommuUapi.IOMMUFD_CMD_IOAS_COPY => IoasCopy(argument, size),
            IommuUapi.IOMMUFD_CMD_IOAS_IOVA_RANGES => IoasIovaRanges(argument, size),
            IommuUapi.IOMMUFD_CMD_IOAS_MAP => IoasMap(argument, size),
            IommuUapi.IOMMUFD_CMD_IOAS_UNMAP => IoasUnmap(argument, size),
            IommuUapi.IOMMUFD_CMD_OPTION => Option(argument, size),
            IommuUapi.IOMMUFD_CMD_VFIO_IOAS => VfioIoas(argument, size),
            IommuUapi.IOMMUFD_CMD_HWPT_ALLOC => HwptAlloc(argument, size),
            IommuUapi.IOMMUFD_CMD_GET_HW_INFO => GetHwInfo(argument, size),
            IommuUapi.IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING => SetDirtyTracking(argument, size),
            IommuUapi.IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP => GetDirtyBitmap(argument, size),
            _ => HwptInvalidate(argument, size),
        };
    }

    /// <summary>iommufd_fops_ioctl: <c>size</c> below the minimum is <c>EINVAL</c>; a shorter struct reads as zero-extended;
    /// a longer one must have an all-zero tail (<c>E2BIG</c>).</summary>
    private static int ReadCommand<T>(nint argument, uint size, int minSize, out T command)
        where T : unmanaged
    {
        command = default;
        if (size < minSize)
        {
            return -EINVAL;
        }
        int kernelSize = Unsafe.SizeOf<T>();
        int rc = UserMemory.Read(argument, (int)Math.Min(size, (uint)kernelSize), out command);
        if (rc < 0 || size <= kernelSize)
        {
            return rc;
        }
        Span<byte> chunk = stackalloc byte[256];
        for (ulong offset = (ulong)kernelSize; offset < size;)
        {
            int n = (int)Math.Min((ulong)chunk.Length, size - offset);
            rc = UserMemory.CopyFrom(argument + (nint)offset, chunk[..n]);
            if (rc < 0)
            {
                return rc;
            }
            if (chunk[..n].ContainsAnyExcept((byte)0))
            {
                return -(int)Errno.E2BIG;
            }
            offset += (ulong)n;
        }
        return 0;
    }

    /// <summary>iommufd_ucmd_respond: writes back <c>min(size, sizeof)</c> bytes.</summary>
    private static int Respond<T>(nint argument, uint size, in T command)
        where T : unmanaged
        => UserMemory.Write(argument, (int)Math.Min(size, (uint)Unsafe.SizeOf<T>()), command);

    /// <summary>IOMMU_DESTROY (iommufd_destroy): <c>ENOENT</c> for no such object, <c>EBUSY</c> while it has users.</summary>
    private int Destroy(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 8, out iommu_destroy cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (!_objects.TryGetValue(cmd.id, out IommuFdObject? obj))
        {
            return -ENOENT;
        }
        switch (obj)
        {
            case DeviceObject:
                return -EBUSY;
            case IoasObject ioas:
                if (ioas.Hwpts.Count > 0)
                {
                    return -EBUSY;
                }
                if (CompatIoas == ioas)
                {
                    CompatIoas = null;
                }
                ioas.Destroy();
                break;
            case HwptObject hwpt:
                if (hwpt.Devices.Count > 0)
                {
                    return -EBUSY;
                }
                hwpt.Ioas.RemoveDomain(hwpt);
                break;
        }
        Remove(obj);
        return 0;
    }

    /// <summary>IOMMU_OPTION (iommufd_option); on success only <c>val64</c> is written back.</summary>
    private int Option(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 24, out iommu_option cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        if (cmd.option_id == IommuUapi.IOMMU_OPTION_RLIMIT_MODE)
        {
            rc = RlimitModeOption(ref cmd);
        }
        else if (cmd.option_id == IommuUapi.IOMMU_OPTION_HUGE_PAGES)
        {
            rc = HugePagesOption(ref cmd);
        }
        else
        {
            return -EOPNOTSUPP;
        }
        return rc < 0 ? rc : UserMemory.Write(argument + 16, sizeof(ulong), cmd.val64);
    }

    private int RlimitModeOption(ref iommu_option cmd)
    {
        if (cmd.object_id != 0)
        {
            return -EOPNOTSUPP;
        }
        if (cmd.op == IommuUapi.IOMMU_OPTION_OP_GET)
        {
            cmd.val64 = AccountPerProcess ? 1UL : 0UL;
            return 0;
        }
        if (cmd.op != IommuUapi.IOMMU_OPTION_OP_SET)
        {
            return -EOPNOTSUPP;
        }
        if (!Kernel.Topology.Privileged)
        {
            return -EPERM;
        }
        if (_objects.Count > 0)
        {
            return -EBUSY;
        }
        if (cmd.val64 > 1)
        {
            return -EINVAL;
        }
        AccountPerProcess = cmd.val64 == 1;
        return 0;
    }

    private int HugePagesOption(ref iommu_option cmd)
    {
        IoasObject? ioas = Find<IoasObject>(cmd.object_id);
        if (ioas is null)
        {
            return -ENOENT;
        }
        if (cmd.op == IommuUapi.IOMMU_OPTION_OP_GET)
        {
            cmd.val64 = ioas.DisableLargePages ? 0UL : 1UL;
            return 0;
        }
        if (cmd.op != IommuUapi.IOMMU_OPTION_OP_SET)
        {
            return -EOPNOTSUPP;
        }
        switch (cmd.val64)
        {
            case 0:
                return ioas.DisableHugePages();
            case 1:
                ioas.EnableHugePages();
                return 0;
            default:
                return -EINVAL;
        }
    }

    /// <summary>IOMMU_VFIO_IOAS (iommufd_vfio_ioas).</summary>
    private int VfioIoas(nint argument, uint size)
    {
        int rc = ReadCommand(argument, size, 12, out iommu_vfio_ioas cmd);
        if (rc < 0)
        {
            return rc;
        }
        if (cmd.__reserved != 0)
        {
            return -EOPNOTSUPP;
        }
        switch (cmd.op)
        {
            case IommuUapi.IOMMU_VFIO_IOAS_GET:
                if (CompatIoas is null)
                {
                    return -ENODEV;
                }
                cmd.ioas_id = CompatIoas.Id;
                return Respond(argument, size, cmd);
            case IommuUapi.IOMMU_VFIO_IOAS_SET:
                IoasObject? ioas = Find<IoasObject>(cmd.ioas_id);
                if (ioas is null)
                {
                    return -ENOENT;
                }
                CompatIoas = ioas;
                return 0;
            case IommuUapi.IOMMU_VFIO_IOAS_CLEAR:
                CompatIoas = null;
                return 0;
            default:
                return -EOPNOTSUPP;
        }
    }
}
