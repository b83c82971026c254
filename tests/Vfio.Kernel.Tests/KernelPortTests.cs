// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Kernel.Tests;

/// <summary>The foundation against the real 6.12 kernel: the port's calls, the uAPI bytes, fd identification.</summary>
public sealed class KernelPortTests
{
    private static readonly IKernel s_kernel = Guest.Kernel;

    [Fact]
    public void Container_ApiVersionAndExtensions()
    {
        using SafeFileHandle container = Guest.Open("/dev/vfio/vfio");
        VfioFdValidator.Identify(s_kernel, container).Kind.ShouldBe(VfioFdKind.Container);
        s_kernel.Ioctl(container, VfioUapi.VFIO_GET_API_VERSION, 0).ShouldBe(VfioUapi.VFIO_API_VERSION);
        s_kernel.Ioctl(container, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(1);
        s_kernel.Ioctl(container, VfioUapi.VFIO_CHECK_EXTENSION, 999).ShouldBe(0);
        // An ioctl the container does not know, before an IOMMU driver is set: EINVAL, not ENOTTY
        // (container.c passes unknown ioctls to the driver and has none yet).
        s_kernel.Ioctl(container, VfioUapi.VFIO_DEVICE_RESET, 0).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    public unsafe void IommuFd_IoasAllocAndDestroy()
    {
        using SafeFileHandle iommufd = Guest.Open("/dev/iommu");
        VfioFdValidator.Identify(s_kernel, iommufd).Kind.ShouldBe(VfioFdKind.IommuFd);
        var alloc = new iommu_ioas_alloc { size = (uint)sizeof(iommu_ioas_alloc) };
        s_kernel.Ioctl(iommufd, IommuUapi.IOMMU_IOAS_ALLOC, &alloc).ShouldBe(0);
        alloc.out_ioas_id.ShouldBeGreaterThan(0u);
        var destroy = new iommu_destroy { size = (uint)sizeof(iommu_destroy), id = alloc.out_ioas_id };
        s_kernel.Ioctl(iommufd, IommuUapi.IOMMU_DESTROY, &destroy).ShouldBe(0);
        s_kernel.Ioctl(iommufd, IommuUapi.IOMMU_DESTROY, &destroy).ShouldBe(-(int)Errno.ENOENT);
        // iommufd's size convention: too small is EINVAL.
        destroy.size = 4;
        s_kernel.Ioctl(iommufd, IommuUapi.IOMMU_DESTROY, &destroy).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    public unsafe void Group_OfEdu_IsViable_AndCanBeOpenedOnce()
    {
        string group = Guest.EduGroup();
        using SafeFileHandle fd = Guest.Open($"/dev/vfio/{group}");
        VfioFdIdentity identity = VfioFdValidator.Identify(s_kernel, fd);
        identity.Kind.ShouldBe(VfioFdKind.Group);
        identity.Name.ShouldBe(group);
        var status = new vfio_group_status { argsz = (uint)sizeof(vfio_group_status) };
        s_kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, &status).ShouldBe(0);
        (status.flags & VfioUapi.VFIO_GROUP_FLAGS_VIABLE).ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE);
        (status.flags & VfioUapi.VFIO_GROUP_FLAGS_CONTAINER_SET).ShouldBe(0u);
        s_kernel.Open($"/dev/vfio/{group}", OpenFlags.ReadWrite, out SafeFileHandle second).ShouldBe(-(int)Errno.EBUSY);
        second.Dispose();
    }

    [Fact]
    public void Cdev_OfEdu_NamesTheDevice()
    {
        string cdev = Guest.EduCdev();
        using SafeFileHandle fd = Guest.Open($"/dev/vfio/devices/{cdev}");
        VfioFdIdentity identity = VfioFdValidator.Identify(s_kernel, fd);
        identity.Kind.ShouldBe(VfioFdKind.DeviceCdev);
        identity.Name.ShouldBe(cdev);
        identity.DeviceName.ShouldBe(Guest.EduAddress);
        Should.Throw<VfioException>(() => VfioFdValidator.Expect(s_kernel, fd, VfioFdKind.IommuFd, "Vfio:IommuFd"))
            .Message.ShouldContain($"a VFIO device cdev (/dev/vfio/devices/vfioN) '{cdev}'");
    }

    [Fact]
    public unsafe void DeviceFd_ThroughGroup_InfoRegionsMmapPreadAndMsi()
    {
        using SafeFileHandle container = Guest.Open("/dev/vfio/vfio");
        using SafeFileHandle group = Guest.Open($"/dev/vfio/{Guest.EduGroup()}");
        int containerFd = (int)container.DangerousGetHandle();
        s_kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, &containerFd).ShouldBe(0);
        s_kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);

        byte[] name = System.Text.Encoding.ASCII.GetBytes(Guest.EduAddress + "\0");
        int deviceFd;
        fixed (byte* p = name)
        {
            deviceFd = s_kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, p);
        }
        deviceFd.ShouldBeGreaterThanOrEqualTo(0);
        using var device = new SafeFileHandle(deviceFd, ownsHandle: true);
        VfioFdValidator.Identify(s_kernel, device).Kind.ShouldBe(VfioFdKind.Device);

        // DEVICE_GET_INFO: as the testbed's kernel reports it (PCI, 9 regions, 5 IRQs).
        var info = new vfio_device_info { argsz = (uint)sizeof(vfio_device_info) };
        s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_GET_INFO, &info).ShouldBe(0);
        (info.flags & VfioUapi.VFIO_DEVICE_FLAGS_PCI).ShouldNotBe(0u);
        info.num_regions.ShouldBe(9u);
        info.num_irqs.ShouldBe(5u);

        // Config space through pread at the config region's offset: vendor 0x1234, device 0x11e8.
        var config = new vfio_region_info { argsz = (uint)sizeof(vfio_region_info), index = VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX };
        s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, &config).ShouldBe(0);
        config.offset.ShouldBe(7UL << 40);
        Span<byte> ids = stackalloc byte[4];
        s_kernel.PRead(device, ids, (long)config.offset).ShouldBe(4);
        BitConverter.ToUInt32(ids).ShouldBe(0x11e81234u);

        // BAR0 through mmap: identification and liveness registers.
        var bar0 = new vfio_region_info { argsz = (uint)sizeof(vfio_region_info), index = VfioUapi.VFIO_PCI_BAR0_REGION_INDEX };
        s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, &bar0).ShouldBe(0);
        bar0.size.ShouldBe(1UL << 20);
        (bar0.flags & VfioUapi.VFIO_REGION_INFO_FLAG_MMAP).ShouldNotBe(0u);
        s_kernel.Map(device, (long)bar0.offset, bar0.size, MemoryProtection.ReadWrite, out MemoryMapping? mapping).ShouldBe(0);
        using (mapping)
        {
            mapping!.Read32(0x00).ShouldBe(0x010000edu);
            mapping.Write32(0x04, 0x12345678);
            mapping.Read32(0x04).ShouldBe(~0x12345678u);

            // The same registers through pread/pwrite on the device fd.
            Span<byte> word = stackalloc byte[4];
            s_kernel.PRead(device, word, (long)bar0.offset).ShouldBe(4);
            BitConverter.ToUInt32(word).ShouldBe(0x010000edu);

            // MSI: an eventfd per vector through SET_IRQS, then edu's "raise interrupt" register. An MSI is a
            // memory write by the device: bus mastering must be on.
            EnableBusMaster(device);
            using var msi = new InterruptEvent();
            Span<byte> set = stackalloc byte[vfio_irq_set.data_offset + sizeof(int)];
            ref vfio_irq_set header = ref System.Runtime.InteropServices.MemoryMarshal.AsRef<vfio_irq_set>(set);
            header.argsz = (uint)set.Length;
            header.flags = VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER;
            header.index = VfioUapi.VFIO_PCI_MSI_IRQ_INDEX;
            header.start = 0;
            header.count = 1;
            BitConverter.TryWriteBytes(set[vfio_irq_set.data_offset..], (int)msi.Handle.DangerousGetHandle()).ShouldBeTrue();
            s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_SET_IRQS, set).ShouldBeGreaterThanOrEqualTo(0);

            ulong received = 0;
            const int Interrupts = 50;
            for (int i = 0; i < Interrupts; i++)
            {
                mapping.Write32(0x60, 1);
                msi.TryWait(TimeSpan.FromSeconds(10), out ulong count).ShouldBeTrue();
                received += count;
                mapping.Write32(0x64, 1);
            }
            received.ShouldBe((ulong)Interrupts);
            msi.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse();

            // Disable: DATA_NONE + TRIGGER with count 0.
            header.argsz = (uint)vfio_irq_set.data_offset;
            header.flags = VfioUapi.VFIO_IRQ_SET_DATA_NONE | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER;
            header.count = 0;
            s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_SET_IRQS, set[..vfio_irq_set.data_offset]).ShouldBe(0);
        }
    }

    [Fact]
    public async Task MsiThroughWaitAsync_NoLostOrExtraInterrupts()
    {
        using SafeFileHandle container = Guest.Open("/dev/vfio/vfio");
        using SafeFileHandle group = Guest.Open($"/dev/vfio/{Guest.EduGroup()}");
        using SafeFileHandle device = AttachEdu(container, group);
        MemoryMapping bar0 = MapBar0(device);
        using (bar0)
        using (var msi = new InterruptEvent())
        {
            EnableBusMaster(device);
            EnableMsi(device, msi);
            ulong received = 0;
            const int Interrupts = 200;
            for (int i = 0; i < Interrupts; i++)
            {
                bar0.Write32(0x60, 1);
                received += await msi.WaitAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
                bar0.Write32(0x64, 1);
            }
            received.ShouldBe((ulong)Interrupts);
            msi.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse();
        }
    }

    private static unsafe SafeFileHandle AttachEdu(SafeFileHandle container, SafeFileHandle group)
    {
        int containerFd = (int)container.DangerousGetHandle();
        VfioException.ThrowIfFailed(s_kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, &containerFd), "VFIO_GROUP_SET_CONTAINER", "edu group");
        VfioException.ThrowIfFailed(s_kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU), "VFIO_SET_IOMMU", "container");
        byte[] name = System.Text.Encoding.ASCII.GetBytes(Guest.EduAddress + "\0");
        fixed (byte* p = name)
        {
            int fd = VfioException.ThrowIfFailed(s_kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, p), "VFIO_GROUP_GET_DEVICE_FD", Guest.EduAddress);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    private static unsafe MemoryMapping MapBar0(SafeFileHandle device)
    {
        var bar0 = new vfio_region_info { argsz = (uint)sizeof(vfio_region_info), index = VfioUapi.VFIO_PCI_BAR0_REGION_INDEX };
        VfioException.ThrowIfFailed(s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, &bar0), "VFIO_DEVICE_GET_REGION_INFO", "edu BAR0");
        VfioException.ThrowIfFailed(s_kernel.Map(device, (long)bar0.offset, bar0.size, MemoryProtection.ReadWrite, out MemoryMapping? mapping), "mmap", "edu BAR0");
        return mapping!;
    }

    /// <summary>Sets Bus Master Enable (bit 2) in the PCI command register (config offset 4) through pread/pwrite.</summary>
    private static void EnableBusMaster(SafeFileHandle device)
    {
        long command = (long)(7UL << 40) + 4;
        Span<byte> value = stackalloc byte[2];
        VfioException.ThrowIfFailed(s_kernel.PRead(device, value, command), "pread", "edu command register");
        value[0] |= 0x4;
        VfioException.ThrowIfFailed(s_kernel.PWrite(device, value, command), "pwrite", "edu command register");
    }

    private static void EnableMsi(SafeFileHandle device, InterruptEvent msi)
    {
        Span<byte> set = stackalloc byte[vfio_irq_set.data_offset + sizeof(int)];
        ref vfio_irq_set header = ref System.Runtime.InteropServices.MemoryMarshal.AsRef<vfio_irq_set>(set);
        header.argsz = (uint)set.Length;
        header.flags = VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER;
        header.index = VfioUapi.VFIO_PCI_MSI_IRQ_INDEX;
        header.count = 1;
        BitConverter.TryWriteBytes(set[vfio_irq_set.data_offset..], (int)msi.Handle.DangerousGetHandle());
        VfioException.ThrowIfFailed(s_kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_SET_IRQS, set), "VFIO_DEVICE_SET_IRQS", "edu MSI");
    }
}
