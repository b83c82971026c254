// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection;
using Vfio.Backends.Legacy;

namespace Vfio.Backends.SpaprTce.Tests;

/// <summary>Bad inputs (typed errors naming the object and the fix, nothing leaked), selection and registration.</summary>
public sealed class SpaprTceBadInputTests
{
    [Fact]
    public void WindowBeyondTheHostsCount_IsATypedError_AndLeavesNothing()
    {
        using var rig = new PowerRig(t => t.SpaprWindows = 1);
        var (kernel, _, space, _, container) = rig;
        using var low = new SpaprTceV2Tests.HostMemory(8192);
        using var high = new SpaprTceV2Tests.HostMemory(8192);
        space.MapAt(0x10_0000, low.Address, 8192);
        ulong pinned = kernel.GetState().PinnedPages;

        var e = Should.Throw<VfioDmaException>(() => space.MapAt(1UL << 59, high.Address, 8192));

        e.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        e.ObjectName.ShouldBe(container.Name);
        e.Message.ShouldContain("the host allows 1");
        e.Hint.ShouldNotBeNull();
        container.Windows.Count.ShouldBe(1);
        container.PreRegisteredRegions.ShouldBe(1);
        kernel.GetState().PinnedPages.ShouldBe(pinned);
        space.TryFind(1UL << 59, out _).ShouldBeFalse();
    }

    [Fact]
    public void HostPageSizesAboveTheBasePage_AreATypedError()
    {
        using var rig = new PowerRig(t => t.SpaprPageSizes = 1UL << 24);
        var (_, _, space, _, container) = rig;
        using var memory = new SpaprTceV2Tests.HostMemory(1 << 24, alignment: 1 << 24);

        var e = Should.Throw<VfioDmaException>(() => space.MapAt(0, memory.Address, 1 << 24));

        e.Failure.ShouldBe(DmaMappingFailure.Misaligned);
        e.ObjectName.ShouldBe(container.Name);
        container.Windows.ShouldBeEmpty();
        container.PreRegisteredRegions.ShouldBe(0);
    }

    [Fact]
    public void MappingOutsideEveryWindow_IsRefusedByTheSpace()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, edu, _) = rig;
        using var memory = new SpaprTceV2Tests.HostMemory(8192);

        var e = Should.Throw<VfioDmaException>(() => space.MapAt((1UL << 59) + (1UL << 40), memory.Address, 8192));

        e.Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        ((SpaprTceContainer)edu.Container).Windows.ShouldBeEmpty();
        kernel.GetState().DmaMappings.ShouldBe(0);
    }

    [Fact]
    public void MemoryOverlappingARegistrationWithOtherBounds_IsATypedError_AndLeavesNothing()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, _, container) = rig;
        using var memory = new SpaprTceV2Tests.HostMemory(16384);
        space.MapAt(0, memory.Address, 8192);

        var e = Should.Throw<VfioDmaException>(() => space.MapAt(0x10000, memory.Address + 4096, 8192));

        e.Operation.ShouldBe("VFIO_IOMMU_SPAPR_REGISTER_MEMORY");
        e.Failure.ShouldBe(DmaMappingFailure.Overlap);
        e.ObjectName.ShouldBe(container.Name);
        e.Hint.ShouldNotBeNull();
        container.PreRegisteredRegions.ShouldBe(1);
        container.Windows.ShouldHaveSingleItem().Mappings.ShouldBe(1);
        kernel.GetState().DmaMappings.ShouldBe(2);
    }

    [Fact]
    public void PreRegistrationOverTheMemlockLimit_IsATypedError_WithTheFix()
    {
        using var rig = new PowerRig(t => t.MemlockLimit = 16UL << 20);
        var (kernel, _, space, _, container) = rig;
        ulong pinned = kernel.GetState().PinnedPages;

        var e = Should.Throw<VfioDmaException>(() => DmaBuffer.Allocate(space, 32 << 20, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask));

        e.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        e.Errno.ShouldBe(Errno.ENOMEM);
        e.Message.ShouldContain("RLIMIT_MEMLOCK");
        e.Hint.ShouldNotBeNull().ShouldContain("ulimit -l");
        container.Windows.ShouldBeEmpty();
        container.PreRegisteredRegions.ShouldBe(0);
        kernel.GetState().PinnedPages.ShouldBe(pinned);
    }

    [Fact]
    public void DeviceMemory_CannotBePreRegistered_IsSkippedWithTheReason()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, _, container) = rig;
        using var bar = new SpaprTceV2Tests.HostMemory(8192);

        space.AddSection(0x20_0000, bar.Address, 8192, DmaAccess.ReadWrite, DmaSectionKind.DeviceMemory, out _).ShouldBeTrue();

        container.PreRegisteredRegions.ShouldBe(0);
        kernel.GetState().DmaMappings.ShouldBe(0, "the kernel maps only pre-registered memory on v2");
        container.Windows.ShouldBeEmpty("the window opened for it closed again");
        space.RemoveSection(0x20_0000, 8192).ShouldBeTrue();
    }

    [Fact]
    public void OnAType1Host_TheBackendIsUnavailable_AndSaysWhy()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci(PowerKit.EduA, 2, new EduDevice()));
        using var backend = new SpaprTceBackend(kernel);
        using var space = new DmaSpace();

        backend.IsAvailable(out string reason).ShouldBeFalse();
        reason.ShouldContain("Type1");
        var e = Should.Throw<VfioBackendUnavailableException>(() => backend.AttachDevice(PowerKit.Edu(), space));
        e.Backend.ShouldBe("spapr-tce");
        e.Hint.ShouldNotBeNull().ShouldContain("Vfio:Backend=legacy");
        PowerKit.ShouldBeClean(kernel);
    }

    [Fact]
    public void Auto_OnAPowerHost_ChoosesSpaprTce_AndLegacyHandsOverThroughTheRegisteredHandler()
    {
        using SimulatedKernel kernel = PowerKit.Host();
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(kernel);
        services.AddVfio().AddLegacyBackend().AddSpaprTceBackend();
        using ServiceProvider provider = services.BuildServiceProvider();
        VfioManager manager = provider.GetRequiredService<VfioManager>();

        IIommuBackend chosen = manager.SelectDefaultBackend();
        chosen.Name.ShouldBe("spapr-tce");
        chosen.IsAvailable(out string reason).ShouldBeTrue();
        reason.ShouldContain("instead of Type1");
        using (DmaSpace space = manager.CreateDmaSpace("edu"))
        using (AttachedDevice edu = manager.AttachDevice(PowerKit.EduA, space))
        {
            edu.Backend.Name.ShouldBe("spapr-tce");
        }

        LegacyBackend legacy = manager.Backends.OfType<LegacyBackend>().Single(b => b.Name == "legacy");
        legacy.IommuTypeHandlers.ShouldHaveSingleItem().ShouldBeOfType<SpaprTceIommuTypeHandler>();
        using (DmaSpace space = manager.CreateDmaSpace("legacy"))
        using (AttachedDevice edu = legacy.AttachDevice(PowerKit.Edu(), space))
        {
            edu.Container.ShouldBeOfType<SpaprTceContainer>().IsV2.ShouldBeTrue();
            using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
            PowerKit.DmaRoundTrip(edu, memory);
        }
    }

    [Fact]
    public void Handler_DrivesV2ThenV1_AndRefusesOtherTypes()
    {
        using SimulatedKernel kernel = PowerKit.Host();
        var handler = new SpaprTceIommuTypeHandler();
        handler.IommuTypes.ShouldBe([VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU, VfioUapi.VFIO_SPAPR_TCE_IOMMU]);
        handler.Name.ShouldBe("spapr-tce");
        using var space = new DmaSpace();
        using var legacy = new LegacyBackend(kernel);
        Should.Throw<ArgumentOutOfRangeException>(() => handler.CreateContainer(legacy, space, new Microsoft.Win32.SafeHandles.SafeFileHandle(-1, false), false, VfioUapi.VFIO_TYPE1v2_IOMMU));
    }
}
