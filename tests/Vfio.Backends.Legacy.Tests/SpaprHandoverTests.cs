// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>
/// The legacy → sPAPR container handover on the simulator's POWER host (its containers offer sPAPR TCE v1/v2 and no
/// Type1): chosen by the IOMMU type handlers the backend is built with, not by a derived backend; without one, a typed
/// error that names the registration.
/// </summary>
public sealed class SpaprHandoverTests
{
    private const ulong Window = 256UL << 20;

    private static SimulatedKernel PowerHost() => Kit.TwoEdus(t => t.Iommu = SimulatedIommu.SpaprTce);

    [Fact]
    public void SpaprHost_WithoutAHandler_IsBackendUnavailable_NamingTheRegistration()
    {
        using SimulatedKernel kernel = PowerHost();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();

        var e = Should.Throw<VfioBackendUnavailableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));

        e.Backend.ShouldBe("legacy");
        e.Hint.ShouldNotBeNull().ShouldContain("AddSpaprTceBackend()");
        e.Hint.ShouldContain("Vfio:Backend=spapr-tce");
        kernel.GetState().IsEmpty.ShouldBeTrue();
        space.Containers.ShouldBeEmpty();
    }

    [Fact]
    public void SpaprHost_HandsTheContainerToTheRegisteredHandler_WhichMapsThroughAWindowItOpens()
    {
        using SimulatedKernel kernel = PowerHost();
        var handler = new TestSpaprHandler();
        using var backend = new LegacyBackend(kernel, iommuTypeHandlers: [handler]);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);

        var container = edu.Container.ShouldBeOfType<WindowedSpaprContainer>();
        handler.Created.ShouldBe(1);
        container.IommuType.ShouldBe(VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU);
        container.IovaRanges.ShouldBeEmpty("the default window was removed");
        space.IovaRanges.ShouldBe([new IovaRange(0, Window - 1)]);

        DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, Kit.EduMask);
        container.IovaRanges.ShouldBe([new IovaRange(0, Window - 1)]);
        kernel.GetState().DmaMappings.ShouldBe(2, "one TCE per 4 KiB page");
        Kit.RoundTripThrough(edu, buffer);

        buffer.Dispose();
        container.IovaRanges.ShouldBeEmpty("the window went with its last mapping");
        kernel.GetState().DmaMappings.ShouldBe(0);
    }

    private sealed class TestSpaprHandler : LegacyIommuTypeHandler
    {
        public int Created { get; private set; }

        public override string Name => "spapr-tce (test)";

        public override IReadOnlyList<uint> IommuTypes => [VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU];

        public override LegacyContainer CreateContainer(LegacyBackend backend, DmaSpace space, Microsoft.Win32.SafeHandles.SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType)
        {
            Created++;
            return new WindowedSpaprContainer(backend, space, containerFd, ownsContainerFd, iommuType);
        }
    }

    /// <summary>An sPAPR TCE v2 container reduced to what the handover needs: no default window, one 256 MiB window of
    /// 4 KiB TCEs at 0 opened on demand, memory pre-registered per mapping.</summary>
    private sealed unsafe class WindowedSpaprContainer : LegacyContainer
    {
        private int _users;

        public WindowedSpaprContainer(LegacyBackend backend, DmaSpace space, Microsoft.Win32.SafeHandles.SafeFileHandle fd, bool owns, uint type)
            : base(backend, space, fd, owns, type)
        {
            OpensDmaWindows = true;
        }

        protected override void SetIommu()
        {
            base.SetIommu();
            var remove = new vfio_iommu_spapr_tce_remove { argsz = 16, start_addr = 0 };
            VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove), "VFIO_IOMMU_SPAPR_TCE_REMOVE", Name);
        }

        protected override void ReadInfo() => SetLimits(4096, [], [new IovaRange(0, Window - 1)]);

        protected override void OpenDmaWindow(in DmaMapping mapping)
        {
            if (_users++ > 0)
            {
                return;
            }
            var create = new vfio_iommu_spapr_tce_create { argsz = 40, page_shift = 12, window_size = Window, levels = 1 };
            int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE, &create);
            if (rc < 0)
            {
                _users--;
                VfioException.Throw(rc, "VFIO_IOMMU_SPAPR_TCE_CREATE", Name);
            }
            create.start_addr.ShouldBe(0UL);
            IovaRanges = [new IovaRange(0, Window - 1)];
        }

        protected override void CloseDmaWindow(in DmaMapping mapping)
        {
            if (--_users > 0)
            {
                return;
            }
            var remove = new vfio_iommu_spapr_tce_remove { argsz = 16, start_addr = 0 };
            Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove).ShouldBe(0);
            IovaRanges = [];
        }

        protected override void MapCore(in DmaMapping mapping)
        {
            var register = new vfio_iommu_spapr_register_memory { argsz = 24, vaddr = (ulong)mapping.HostAddress, size = mapping.Size };
            VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &register), "VFIO_IOMMU_SPAPR_REGISTER_MEMORY", Name);
            base.MapCore(mapping);
        }

        protected override void UnmapCore(in DmaMapping mapping)
        {
            base.UnmapCore(mapping);
            var register = new vfio_iommu_spapr_register_memory { argsz = 24, vaddr = (ulong)mapping.HostAddress, size = mapping.Size };
            VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &register), "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", Name);
        }
    }
}
