// SPDX-License-Identifier: MIT

namespace Vfio.Backends.SpaprTce.Tests;

/// <summary>The v1 fallback (ENABLE, the fixed 32-bit window, one group per container) and the EEH PE operations
/// (exactly one group).</summary>
public sealed class SpaprTceV1AndEehTests
{
    [Fact]
    public void V1_IsTheFallback_EnabledOnThe32BitWindow_AndEduRoundTrips()
    {
        using var rig = new PowerRig(t => t.SpaprTceV1Only = true);
        var (kernel, _, space, edu, container) = rig;

        edu.Container.ShouldBeOfType<SpaprTceContainer>();
        container.IsV2.ShouldBeFalse();
        container.IommuType.ShouldBe(VfioUapi.VFIO_SPAPR_TCE_IOMMU);
        container.OpensDmaWindows.ShouldBeFalse();
        container.IovaRanges.ShouldBe([new IovaRange(0, 0x7fff_ffff)]);
        SpaprDmaWindow window = container.Windows.ShouldHaveSingleItem();
        window.Fixed.ShouldBeTrue();
        window.PageSize.ShouldBe(4096UL);
        kernel.GetState().PinnedPages.ShouldBe(0x8000_0000UL >> 12, "ENABLE accounts the whole 32-bit window");

        using (DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask))
        {
            container.PreRegisteredRegions.ShouldBe(0, "v1 does not pre-register");
            PowerKit.DmaRoundTrip(edu, memory);
        }
        container.Windows.ShouldHaveSingleItem("v1's window is the platform's, never removed");
    }

    [Fact]
    public void V1_SecondGroup_IsRefusedByTheKernel_AndGetsAContainerOfItsOwn()
    {
        using SimulatedKernel kernel = PowerKit.Host(t => t.SpaprTceV1Only = true);
        using var backend = new SpaprTceBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice a = backend.AttachDevice(PowerKit.Edu(PowerKit.EduA), space);
        using AttachedDevice b = backend.AttachDevice(PowerKit.Edu(PowerKit.EduB), space);

        a.Container.ShouldNotBeSameAs(b.Container);
        ((SpaprTceContainer)a.Container).Groups.ShouldBe([2]);
        ((SpaprTceContainer)b.Container).Groups.ShouldBe([3]);
        using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        PowerKit.DmaRoundTrip(b, memory);
        kernel.GetState().DmaMappings.ShouldBe(4, "each container holds the space's mappings");
    }

    [Fact]
    public void V1_SecondGroupPutIntoAPassedContainer_IsATypedEbusy_NamingTheGroupAndTheFix_AndLeavesNothing()
    {
        using SimulatedKernel kernel = PowerKit.Host(t => t.SpaprTceV1Only = true);
        // A management layer's v1 container that already holds group 2, passed as Vfio:ContainerFd.
        kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out Microsoft.Win32.SafeHandles.SafeFileHandle container).ShouldBe(0);
        kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out Microsoft.Win32.SafeHandles.SafeFileHandle group).ShouldBe(0);
        int fd = (int)container.DangerousGetHandle();
        kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, System.Runtime.InteropServices.MemoryMarshal.AsBytes(new Span<int>(ref fd))).ShouldBe(0);
        kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_SPAPR_TCE_IOMMU).ShouldBe(0);
        using (group)
        using (var store = new VfioFdStore(kernel))
        {
            store.Add("container", container);
            SimulatedKernelState before = kernel.GetState();
            using var backend = new SpaprTceBackend(kernel, new VfioOptions { ContainerFd = "container" }, store);
            using var space = new DmaSpace();

            var e = Should.Throw<VfioException>(() => backend.AttachDevice(PowerKit.Edu(PowerKit.EduB), space));

            e.Errno.ShouldBe(Errno.EBUSY);
            e.Operation.ShouldBe("VFIO_GROUP_SET_CONTAINER");
            e.ObjectName.ShouldBe("group 3");
            e.Hint.ShouldNotBeNull().ShouldContain("an sPAPR TCE v1 container takes exactly one");
            e.Hint.ShouldContain("Pass an empty container, or pass none");
            space.Containers.ShouldBeEmpty();
            kernel.GetState().ShouldBe(before, "the group the backend opened is closed again");
        }
    }

    [Fact]
    public void V1_EnableOverTheMemlockLimit_IsATypedError_WithTheFix_AndLeavesNothing()
    {
        using SimulatedKernel kernel = PowerKit.Host(t =>
        {
            t.SpaprTceV1Only = true;
            t.MemlockLimit = 64UL << 20;
        });
        using (var backend = new SpaprTceBackend(kernel))
        using (var space = new DmaSpace())
        {
            var e = Should.Throw<VfioException>(() => backend.AttachDevice(PowerKit.Edu(), space));
            e.Operation.ShouldBe("VFIO_IOMMU_ENABLE");
            e.Message.ShouldContain("RLIMIT_MEMLOCK");
            e.Hint.ShouldNotBeNull().ShouldContain("ulimit -l");
            space.Containers.ShouldBeEmpty();
        }
        PowerKit.ShouldBeClean(kernel);
    }

    [Fact]
    public void Eeh_OneGroup_EnableStateInjectResetConfigure()
    {
        using var rig = new PowerRig();
        var (_, _, _, _, container) = rig;

        container.EehAvailable.ShouldBeTrue();
        container.EnableEeh();
        container.GetEehState().ShouldBe(SpaprEehState.Normal);
        container.InjectEehError(is64Bit: false, function: 0, address: 0, mask: 0);
        container.GetEehState().ShouldBe(SpaprEehState.Stopped);
        container.UnfreezeMmio();
        container.GetEehState().ShouldBe(SpaprEehState.StoppedDma);
        container.UnfreezeDma();
        container.GetEehState().ShouldBe(SpaprEehState.Normal);
        container.ResetPe(SpaprEehReset.Hot);
        container.GetEehState().ShouldBe(SpaprEehState.Reset);
        container.ResetPe(SpaprEehReset.Deactivate);
        container.ConfigurePe();
        container.GetEehState().ShouldBe(SpaprEehState.Normal);
        container.DisableEeh();
        Should.Throw<ArgumentOutOfRangeException>(() => container.InjectEehError(true, 20, 0, 0));
        Should.Throw<ArgumentOutOfRangeException>(() => container.ResetPe((SpaprEehReset)42));
    }

    [Fact]
    public void Eeh_FrozenPe_BlocksDma_UntilUnfrozen()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, edu, container) = rig;
        using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);

        container.InjectEehError(is64Bit: true, function: 4, address: 0, mask: 0);
        using (var driver = new EduDriver(edu, useMmap: true))
        {
            driver.EnableBusMaster();
            driver.DmaToDevice(memory.Iova, 0, 64, TimeSpan.FromSeconds(10));
        }
        kernel.DmaFaults.ShouldNotBeEmpty("a frozen PE does no DMA");
        container.ResetPe(SpaprEehReset.Deactivate);
        PowerKit.DmaRoundTrip(edu, memory);
    }

    [Fact]
    public void Eeh_TwoGroupsInOneV2Container_IsATypedError_NamingTheGroupsAndTheFix()
    {
        using SimulatedKernel kernel = PowerKit.Host();
        using var backend = new SpaprTceBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice a = backend.AttachDevice(PowerKit.Edu(PowerKit.EduA), space);
        using AttachedDevice b = backend.AttachDevice(PowerKit.Edu(PowerKit.EduB), space);
        var container = (SpaprTceContainer)a.Container;
        b.Container.ShouldBeSameAs(container, "v2 containers are shared by the space's groups");

        container.EehAvailable.ShouldBeFalse();
        var e = Should.Throw<VfioException>(() => container.GetEehState());
        e.ObjectName.ShouldBe(container.Name);
        e.Message.ShouldContain("exactly one IOMMU group");
        e.Message.ShouldContain("groups 2, 3");
        e.Hint.ShouldNotBeNull().ShouldContain("DMA space of its own");

        backend.DetachDevice(b);
        container.GetEehState().ShouldBe(SpaprEehState.Normal, "one group again");
    }

    [Fact]
    public void Eeh_HostWithoutEeh_IsATypedError()
    {
        using var rig = new PowerRig(t => t.Eeh = false);
        var (_, _, _, _, container) = rig;

        (container.Features & IommuBackendFeatures.Eeh).ShouldBe(IommuBackendFeatures.None);
        container.EehAvailable.ShouldBeFalse();
        Should.Throw<VfioException>(() => container.EnableEeh()).Message.ShouldContain("does not offer EEH");
    }
}
