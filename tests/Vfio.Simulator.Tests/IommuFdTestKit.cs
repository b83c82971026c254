// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>A minimal VFIO bus driver for iommufd/cdev tests: counts open/close and answers one private ioctl.</summary>
internal sealed class CountingBusDriver : VfioBusDriver
{
    internal const uint PingRequest = 0x3B6B; // VFIO_DEVICE_GET_INFO's number; answered with 77

    internal int Opens { get; private set; }

    internal int Closes { get; private set; }

    internal override string DriverName => "vfio-pci";

    internal override void OpenDevice() => Opens++;

    internal override void CloseDevice() => Closes++;

    internal override int Ioctl(uint request, nint argument) => request == PingRequest ? 77 : -(int)Errno.ENOTTY;

    internal override long Read(Span<byte> buffer, long offset) => buffer.Length;

    internal override long Write(ReadOnlySpan<byte> buffer, long offset) => buffer.Length;

    internal override int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        mapping = null;
        return -(int)Errno.EINVAL;
    }
}

internal sealed class CountingDevice : EmulatedDevice
{
    internal CountingBusDriver? Driver { get; private set; }

    internal override VfioBusDriver CreateVfioDriver() => Driver = new CountingBusDriver();
}

/// <summary>Helpers shared by the iommufd, cdev and compat tests: machines, fds, struct ioctls, page-aligned memory.</summary>
internal static class IommuFdTestKit
{
    internal const string Dev0 = "0000:00:02.0";
    internal const string Dev1 = "0000:00:03.0";

    /// <summary>One VFIO device per IOMMU group (2 and 3), or both in group 2.</summary>
    internal static SimulatedKernel Machine(bool sameGroup = false, Action<SimulatedTopology>? configure = null)
    {
        var topology = new SimulatedTopology()
            .AddPci(Dev0, iommuGroup: 2, new CountingDevice())
            .AddPci(Dev1, iommuGroup: sameGroup ? 2 : 3, new CountingDevice());
        configure?.Invoke(topology);
        return new SimulatedKernel(topology);
    }

    internal static CountingBusDriver DriverOf(SimulatedKernel kernel, string name) => (CountingBusDriver)kernel.FindDevice(name)!.VfioDriver!;

    internal static SafeFileHandle OpenOk(SimulatedKernel kernel, string path)
    {
        kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle handle).ShouldBe(0, path);
        return handle;
    }

    internal static int Fd(SafeHandle handle) => (int)handle.DangerousGetHandle();

    internal static int Call<T>(SimulatedKernel kernel, SafeHandle fd, uint request, ref T argument)
        where T : unmanaged
        => kernel.Ioctl(fd, request, MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref argument, 1)));

    internal static uint IoasAlloc(SimulatedKernel kernel, SafeHandle iommufd)
    {
        var alloc = new iommu_ioas_alloc { size = 12 };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOC, ref alloc).ShouldBe(0);
        return alloc.out_ioas_id;
    }

    internal static int Bind(SimulatedKernel kernel, SafeHandle cdev, SafeHandle iommufd, out uint devid)
    {
        var bind = new vfio_device_bind_iommufd { argsz = 16, iommufd = Fd(iommufd) };
        int rc = Call(kernel, cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, ref bind);
        devid = bind.out_devid;
        return rc;
    }

    internal static int Attach(SimulatedKernel kernel, SafeHandle cdev, uint ptId, out uint hwptId)
    {
        var attach = new vfio_device_attach_iommufd_pt { argsz = 12, pt_id = ptId };
        int rc = Call(kernel, cdev, VfioUapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, ref attach);
        hwptId = attach.pt_id;
        return rc;
    }

    internal static int Detach(SimulatedKernel kernel, SafeHandle cdev)
    {
        var detach = new vfio_device_detach_iommufd_pt { argsz = 8 };
        return Call(kernel, cdev, VfioUapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, ref detach);
    }

    internal static int Map(SimulatedKernel kernel, SafeHandle iommufd, uint ioas, nint userVa, ulong length, ref ulong iova, uint flags)
    {
        var map = new iommu_ioas_map { size = 40, flags = flags, ioas_id = ioas, user_va = (ulong)userVa, length = length, iova = iova };
        int rc = Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_MAP, ref map);
        iova = map.iova;
        return rc;
    }

    internal const uint ReadWrite = IommuUapi.IOMMU_IOAS_MAP_READABLE | IommuUapi.IOMMU_IOAS_MAP_WRITEABLE;
    internal const uint Fixed = IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA | ReadWrite;

    internal static int Unmap(SimulatedKernel kernel, SafeHandle iommufd, uint ioas, ulong iova, ulong length, out ulong unmapped)
    {
        var unmap = new iommu_ioas_unmap { size = 24, ioas_id = ioas, iova = iova, length = length };
        int rc = Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_UNMAP, ref unmap);
        unmapped = unmap.length;
        return rc;
    }

    internal static int IovaRanges(SimulatedKernel kernel, SafeHandle iommufd, uint ioas, out iommu_iova_range[] ranges, out ulong alignment)
    {
        var probe = new iommu_ioas_iova_ranges { size = 32, ioas_id = ioas };
        int rc = Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, ref probe);
        ranges = GC.AllocateArray<iommu_iova_range>((int)probe.num_iovas, pinned: true);
        alignment = probe.out_iova_alignment;
        if (rc != -(int)Errno.EMSGSIZE)
        {
            return rc;
        }
        var query = new iommu_ioas_iova_ranges
        {
            size = 32,
            ioas_id = ioas,
            num_iovas = (uint)ranges.Length,
            allowed_iovas = (ulong)Marshal.UnsafeAddrOfPinnedArrayElement(ranges, 0),
        };
        rc = Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, ref query);
        alignment = query.out_iova_alignment;
        return rc;
    }

    /// <summary>A bound + attached cdev on a fresh IOAS: the usual starting point.</summary>
    internal static (SafeFileHandle IommuFd, SafeFileHandle Cdev, uint DevId, uint Ioas, uint Hwpt) Attached(SimulatedKernel kernel, string cdevPath = "/dev/vfio/devices/vfio0")
    {
        SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        SafeFileHandle cdev = OpenOk(kernel, cdevPath);
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        Attach(kernel, cdev, ioas, out uint hwpt).ShouldBe(0);
        return (iommufd, cdev, devid, ioas, hwpt);
    }
}
