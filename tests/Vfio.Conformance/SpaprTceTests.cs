// SPDX-License-Identifier: MIT
using System.Reflection;
using Shouldly;
using Vfio.Backends.SpaprTce;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;

namespace Vfio.Conformance;

/// <summary>
/// What only the sPAPR TCE mode has (the generic IOMMU cases also run in it: attach/detach, sharing, the DMA round trip
/// and blocked DMA after unmap): windows opened and removed with their sections, pre-registration, EEH states, a fault
/// at every ioctl of attach and map, and the bad inputs. Simulator only (no POWER guest in the testbed).
/// </summary>
public sealed class SpaprTceTests
{
    [Theory]
    [Trait("Modes", "spapr")]
    [MemberData(nameof(Target.SpaprTceModes), MemberType = typeof(Target))]
    public void Windows_OpenWithTheirFirstSection_AndCloseWithTheLast_PreRegisteringEachSection(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        AttachedDevice edu = rig.Attach(Target.Edu, space);
        var container = edu.Container.ShouldBeOfType<SpaprTceContainer>();
        container.Windows.ShouldBeEmpty();

        using (DmaBuffer a = DmaBufferPages.Allocate(space, 2))
        using (DmaBuffer b = DmaBufferPages.Allocate(space, 4))
        {
            container.Windows.ShouldHaveSingleItem().Mappings.ShouldBe(2);
            container.PreRegisteredRegions.ShouldBe(2);
            container.PreRegisteredBytes.ShouldBe(6UL * 4096);
            Edu.RoundTrip(edu, b, b.Iova, 2, seed: 9);
        }

        container.Windows.ShouldBeEmpty();
        container.PreRegisteredRegions.ShouldBe(0);
        rig.Simulator!.GetState().DmaMappings.ShouldBe(0);
    }

    [Theory]
    [Trait("Modes", "spapr")]
    [MemberData(nameof(Target.SpaprTceModes), MemberType = typeof(Target))]
    public void Eeh_PeStates_FollowInjectUnfreezeAndReset_AndTwoGroupsAreRefused(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        AttachedDevice edu = rig.Attach(Target.Edu, space);
        var container = (SpaprTceContainer)edu.Container;

        container.EnableEeh();
        container.GetEehState().ShouldBe(SpaprEehState.Normal);
        container.InjectEehError(is64Bit: false, function: 1, address: 0, mask: 0);
        container.GetEehState().ShouldBe(SpaprEehState.Stopped);
        container.UnfreezeMmio();
        container.UnfreezeDma();
        container.GetEehState().ShouldBe(SpaprEehState.Normal);
        container.ResetPe(SpaprEehReset.Fundamental);
        container.GetEehState().ShouldBe(SpaprEehState.Reset);
        container.ResetPe(SpaprEehReset.Deactivate);
        container.ConfigurePe();

        rig.Attach(Target.Edu2, space).Container.ShouldBeSameAs(container);
        VfioException e = Should.Throw<VfioException>(() => container.GetEehState());
        e.Operation.ShouldBe("VFIO_EEH_PE_OP");
        e.ObjectName.ShouldBe(container.Name);
        e.Hint.ShouldNotBeNull();
    }

    /// <summary>The pseries host whose answers the ppc64le probe gave (Linux 6.12 in QEMU's pseries guest): the low
    /// window at 0x0 within the 1 GiB 32-bit window, the high one at 1&lt;&lt;59, one level, shared by two groups, edu's
    /// round trip through each, and no EEH (no PE for an emulated device).</summary>
    [Theory]
    [Trait("Modes", "spapr")]
    [MemberData(nameof(Target.SpaprTceModes), MemberType = typeof(Target))]
    public void PSeriesHost_WindowsWhereTheProbeSawThem_SharedByTwoGroups_NoEeh(Mode mode)
    {
        using Rig rig = Rig.Create(mode, new SimulatedMachine(SpaprPlatform: SimulatedSpaprPlatform.PSeries));
        DmaSpace space = rig.NewSpace();
        AttachedDevice edu = rig.Attach(Target.Edu, space);
        AttachedDevice edu2 = rig.Attach(Target.Edu2, space);
        var container = edu.Container.ShouldBeOfType<SpaprTceContainer>();
        edu2.Container.ShouldBeSameAs(container);
        (container.Dma32WindowSize, container.MaxLevels, container.EehAvailable).ShouldBe((0x4000_0000UL, 1, false));

        using (DmaBuffer low = DmaBufferPages.Allocate(space, 4))
        using (var high = new HighMemory(space))
        {
            container.Windows.Select(static w => (w.Start, w.Levels)).ShouldBe([(0UL, 1), (1UL << 59, 1)]);
            Edu.RoundTrip(edu, low, low.Iova, 2, seed: 5);
            Edu.RoundTrip(edu2, low, low.Iova, 2, seed: 6);
        }

        container.Windows.ShouldBeEmpty();
        rig.Simulator!.GetState().DmaMappings.ShouldBe(0);
        Should.Throw<VfioException>(() => container.EnableEeh()).ObjectName.ShouldBe(container.Name);
    }

    /// <summary>Two pages of process memory mapped at 1&lt;&lt;59 (the high window) for the lifetime of the object.</summary>
    private sealed unsafe class HighMemory : IDisposable
    {
        private readonly DmaSpace _space;
        private readonly void* _pages = System.Runtime.InteropServices.NativeMemory.AlignedAlloc(8192, 4096);

        internal HighMemory(DmaSpace space)
        {
            _space = space;
            space.MapAt(1UL << 59, (nint)_pages, 8192);
        }

        public void Dispose()
        {
            _space.Unmap(1UL << 59);
            System.Runtime.InteropServices.NativeMemory.AlignedFree(_pages);
        }
    }

    [Theory]
    [Trait("Modes", "spapr")]
    [MemberData(nameof(Target.SpaprTceModes), MemberType = typeof(Target))]
    public void V1_SecondGroup_GetsItsOwnContainer_EachWithItsOwnPe(Mode mode)
    {
        using Rig rig = Rig.Create(mode, new SimulatedMachine(SpaprV1Only: true));
        DmaSpace space = rig.NewSpace();
        var a = (SpaprTceContainer)rig.Attach(Target.Edu, space).Container;
        var b = (SpaprTceContainer)rig.Attach(Target.Edu2, space).Container;

        a.ShouldNotBeSameAs(b);
        a.IsV2.ShouldBeFalse();
        a.EehAvailable.ShouldBeTrue();
        b.EehAvailable.ShouldBeTrue();
        using DmaBuffer memory = DmaBufferPages.Allocate(space, 2);
        rig.Simulator!.GetState().DmaMappings.ShouldBe(4);
    }

    [Theory]
    [Trait("Modes", "spapr")]
    [MemberData(nameof(Target.SpaprTceModes), MemberType = typeof(Target))]
    public void BadInputs_AreTypedErrors_NamingTheContainer_NothingLeaked(Mode mode)
    {
        using Rig rig = Rig.Create(mode, new SimulatedMachine(SpaprWindows: 1));
        DmaSpace space = rig.NewSpace();
        var container = (SpaprTceContainer)rig.Attach(Target.Edu, space).Container;
        using DmaBuffer low = DmaBufferPages.Allocate(space, 2);
        using DmaBuffer other = DmaBufferPages.Allocate(space, 2);
        SimulatedKernelState before = rig.Simulator!.GetState();

        // A window beyond the host's count (one window, and it is open).
        VfioDmaException beyond = Should.Throw<VfioDmaException>(() => space.MapAt(1UL << 59, other.Mapping.HostAddress, 8192));
        beyond.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        beyond.ObjectName.ShouldBe(container.Name);
        // Outside every window the container could open.
        Should.Throw<VfioDmaException>(() => space.MapAt(ulong.MaxValue - 0xffff, other.Mapping.HostAddress, 8192))
            .Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        // Memory that overlaps a pre-registered region with other bounds cannot be registered.
        VfioDmaException overlap = Should.Throw<VfioDmaException>(() => space.MapAt(0x100000, low.Mapping.HostAddress + 4096, 8192));
        overlap.Operation.ShouldBe("VFIO_IOMMU_SPAPR_REGISTER_MEMORY");
        overlap.Hint.ShouldNotBeNull();

        rig.Simulator.GetState().ShouldBe(before);
        container.Windows.ShouldHaveSingleItem().Mappings.ShouldBe(2);
        container.PreRegisteredRegions.ShouldBe(2);
    }

    private static readonly uint[] s_requests = [.. typeof(VfioUapi).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(static f => f.IsInitOnly && f.FieldType == typeof(uint))
        .Select(static f => (uint)f.GetValue(null)!)
        .Distinct()];

    public static TheoryData<Mode, bool> SpaprTceVersions()
    {
        var data = new TheoryData<Mode, bool>();
        foreach (TheoryDataRow<Mode> row in Target.SpaprTceModes())
        {
            data.Add(new TheoryDataRow<Mode, bool>(row.Data, false) { Skip = row.Skip });
            data.Add(new TheoryDataRow<Mode, bool>(row.Data, true) { Skip = row.Skip });
        }
        return data;
    }

    /// <summary>Each call of each ioctl that attach and map make, failed in turn (one run per call): a typed error, and
    /// after the rig is disposed nothing is left (fds, TCEs, windows, pre-registrations, locked memory).</summary>
    [Theory]
    [Trait("Modes", "spapr")]
    [MemberData(nameof(SpaprTceVersions))]
    public void FaultAtEveryIoctlOfAttachAndMap_IsTyped_AndNothingIsLeft(Mode mode, bool v1Only)
    {
        var machine = new SimulatedMachine(SpaprV1Only: v1Only);
        List<(uint Request, long Calls)> calls;
        using (Rig clean = Rig.Create(mode, machine))
        {
            Dictionary<uint, long> before = s_requests.ToDictionary(static r => r, clean.Simulator!.Faults.CallCount);
            AttachAndMap(clean);
            calls = [.. s_requests.Select(r => (r, clean.Simulator.Faults.CallCount(r) - before[r])).Where(static c => c.Item2 > 0)];
        }
        calls.Select(static c => c.Request).ShouldContain(v1Only ? VfioUapi.VFIO_IOMMU_ENABLE : VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE);
        var failedRequests = new HashSet<uint>();
        foreach ((uint request, long count) in calls)
        {
            for (int nth = 1; nth <= count; nth++)
            {
                Rig rig = Rig.Create(mode, machine);
                SimulatedKernel simulator = rig.Simulator!;
                simulator.Faults.FailIoctl(request, nth, Errno.EIO);
                Exception? failure = Record.Exception(() => AttachAndMap(rig));
                rig.ReleaseAll();
                simulator.GetState().IsEmpty.ShouldBeTrue($"ioctl 0x{request:x}, call {nth}: {simulator.GetState()}");
                rig.Dispose();
                if (failure is not null)
                {
                    failedRequests.Add(request);
                    failure.ShouldBeAssignableTo<VfioException>($"ioctl 0x{request:x}, call {nth}: {failure}");
                }
            }
        }
        // (A failed VFIO_IOMMU_SPAPR_TCE_CREATE is retried with one more level, so it need not fail the map.)
        uint[] mustFail = v1Only
            ? [VfioUapi.VFIO_SET_IOMMU, VfioUapi.VFIO_IOMMU_SPAPR_TCE_GET_INFO, VfioUapi.VFIO_IOMMU_ENABLE, VfioUapi.VFIO_IOMMU_MAP_DMA]
            : [VfioUapi.VFIO_SET_IOMMU, VfioUapi.VFIO_IOMMU_SPAPR_TCE_GET_INFO, VfioUapi.VFIO_IOMMU_SPAPR_TCE_REMOVE,
               VfioUapi.VFIO_IOMMU_SPAPR_REGISTER_MEMORY, VfioUapi.VFIO_IOMMU_MAP_DMA];
        mustFail.Except(failedRequests).ShouldBeEmpty("a fault at the first call of each of these fails attach or map");
    }

    private static void AttachAndMap(Rig rig)
    {
        DmaSpace space = rig.NewSpace();
        rig.Attach(Target.Edu, space);
        using DmaBuffer memory = DmaBufferPages.Allocate(space, 2);
    }
}
