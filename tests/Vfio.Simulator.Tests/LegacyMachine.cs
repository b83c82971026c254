// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>A device model for container/group tests: its device fds answer nothing (ENOTTY), but it can do DMA.</summary>
internal sealed class InertDevice : EmulatedDevice
{
    internal override VfioBusDriver CreateVfioDriver() => new InertBusDriver();

    private sealed class InertBusDriver : VfioBusDriver
    {
        internal override string DriverName => "vfio-pci";

        internal override int Ioctl(uint request, nint argument) => -(int)Errno.ENOTTY;

        internal override long Read(Span<byte> buffer, long offset) => -(int)Errno.EINVAL;

        internal override long Write(ReadOnlySpan<byte> buffer, long offset) => -(int)Errno.EINVAL;

        internal override int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
        {
            mapping = null;
            return -(int)Errno.ENODEV;
        }
    }
}

/// <summary>
/// A Type1 machine like the testbed's q35 + VT-d: edu-like device 0000:00:02.0 alone in group 2 and another at
/// 0000:00:03.0 alone in group 3, both bound to vfio-pci; helpers issue the real uAPI structs through IKernel.
/// </summary>
internal sealed class LegacyMachine : IDisposable
{
    internal const string Dev2 = "0000:00:02.0";
    internal const string Dev3 = "0000:00:03.0";
    internal const uint ReadWrite = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE;

    internal LegacyMachine(Action<SimulatedTopology>? configure = null, bool addDevices = true)
    {
        var topology = new SimulatedTopology();
        if (addDevices)
        {
            topology.AddPci(Dev2, iommuGroup: 2, new InertDevice()).AddPci(Dev3, iommuGroup: 3, new InertDevice());
        }
        configure?.Invoke(topology);
        Kernel = new SimulatedKernel(topology);
    }

    internal SimulatedKernel Kernel { get; }

    internal SafeFileHandle OpenContainer()
    {
        Kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container).ShouldBe(0);
        return container;
    }

    internal SafeFileHandle OpenGroup(int id)
    {
        Kernel.Open($"/dev/vfio/{id}", OpenFlags.ReadWrite, out SafeFileHandle group).ShouldBe(0);
        return group;
    }

    internal int Ioctl<T>(SafeHandle fd, uint request, ref T argument)
        where T : unmanaged
        => Kernel.Ioctl(fd, request, MemoryMarshal.AsBytes(new Span<T>(ref argument)));

    internal int SetContainer(SafeHandle group, SafeHandle container)
    {
        int fd = (int)container.DangerousGetHandle();
        return Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, ref fd);
    }

    internal int SetContainerFd(SafeHandle group, int fd) => Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, ref fd);

    internal int UnsetContainer(SafeHandle group) => Kernel.Ioctl(group, VfioUapi.VFIO_GROUP_UNSET_CONTAINER, 0);

    internal int SetIommu(SafeHandle container, uint type) => Kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)type);

    internal int CheckExtension(SafeHandle container, uint extension) => Kernel.Ioctl(container, VfioUapi.VFIO_CHECK_EXTENSION, (nint)extension);

    internal int GroupStatus(SafeHandle group, out uint flags, uint argsz = 8)
    {
        var status = new vfio_group_status { argsz = argsz, flags = 0xdead };
        int rc = Ioctl(group, VfioUapi.VFIO_GROUP_GET_STATUS, ref status);
        flags = status.flags;
        return rc;
    }

    /// <summary>A container with group <paramref name="groupId"/> attached and <paramref name="type"/> set.</summary>
    internal (SafeFileHandle Container, SafeFileHandle Group) Ready(uint type = VfioUapi.VFIO_TYPE1v2_IOMMU, int groupId = 2)
    {
        SafeFileHandle container = OpenContainer();
        SafeFileHandle group = OpenGroup(groupId);
        SetContainer(group, container).ShouldBe(0);
        SetIommu(container, type).ShouldBe(0);
        return (container, group);
    }

    internal int GetDeviceFd(SafeHandle group, string name, out SafeFileHandle device)
    {
        byte[] text = Encoding.UTF8.GetBytes(name + "\0");
        int rc = Kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, text.AsSpan());
        device = new SafeFileHandle(rc >= 0 ? rc : -1, ownsHandle: true);
        return rc;
    }

    internal int Map(SafeHandle container, ulong vaddr, ulong iova, ulong size, uint flags = ReadWrite, uint argsz = 32)
    {
        var map = new vfio_iommu_type1_dma_map { argsz = argsz, flags = flags, vaddr = vaddr, iova = iova, size = size };
        return Ioctl(container, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map);
    }

    internal int Unmap(SafeHandle container, ulong iova, ulong size, out ulong unmapped, uint flags = 0, uint argsz = 24)
    {
        var unmap = new vfio_iommu_type1_dma_unmap { argsz = argsz, flags = flags, iova = iova, size = size };
        int rc = Ioctl(container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref unmap);
        unmapped = unmap.size;
        return rc;
    }

    internal Type1Driver Type1(SafeHandle container)
        => (Type1Driver)((ContainerFile)Kernel.ResolveFd((int)container.DangerousGetHandle())!).Driver!;

    internal ContainerFile ContainerOf(SafeHandle container) => (ContainerFile)Kernel.ResolveFd((int)container.DangerousGetHandle())!;

    internal SimDevice Device(string name) => Kernel.FindDevice(name)!;

    public void Dispose() => Kernel.Dispose();
}
