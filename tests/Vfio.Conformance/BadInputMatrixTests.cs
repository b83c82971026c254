// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Tests.Shared;

namespace Vfio.Conformance;

/// <summary>
/// The bad-input matrix a new user meets: device names, DMA arguments, IRQ arguments, region offsets and widths. Each
/// row asserts the exception's exact type, that the message names the object and says what to do, and that nothing
/// leaked (the process's fds and locked memory, and on the simulator the kernel's files, mappings, iommufd objects and
/// pinned pages). The same rows run on Linux in the testbed guest for every mode it provides.
/// </summary>
public sealed class BadInputMatrixTests
{
    private const ulong Page = 4096;
    private const ulong Iova = 0x10_0000;

    // ---- device names -------------------------------------------------------------------------------------------

    /// <summary>A bad name, how it is given, what it must be refused with and what the message must say.</summary>
    private sealed record NameCase(string Name, Type Error, string[] Says);

    private static readonly Dictionary<string, NameCase> s_names = new()
    {
        ["empty"] = new("", typeof(ArgumentException), ["No device was named"]),
        ["blank"] = new("   ", typeof(ArgumentException), ["No device was named"]),
        ["tab-only"] = new("\t", typeof(ArgumentException), ["No device was named"]),
        ["trailing-newline"] = new("0000:00:02.0\n", typeof(ArgumentException), ["\\x0a", "trim"]),
        ["trailing-crlf"] = new("0000:00:02.0\r\n", typeof(ArgumentException), ["\\x0d", "trim"]),
        ["embedded-nul"] = new("0000:00:02.0\0", typeof(ArgumentException), ["\\x00", "remove it"]),
        ["leading-tab"] = new("\t0000:00:02.0", typeof(ArgumentException), ["\\x09"]),
        ["del"] = new("0000:00:02.0\x7f", typeof(ArgumentException), ["\\x7f"]),
        ["escape"] = new("\x1b[31m0000:00:02.0", typeof(ArgumentException), ["\\x1b"]),
        ["dot-dot-suffix"] = new("0000:00:02.0/..", typeof(ArgumentException), ["0000:00:02.0/.."]),
        ["path-traversal"] = new("../../0000:00:04.0", typeof(ArgumentException), ["../../0000:00:04.0"]),
        ["root"] = new("/", typeof(ArgumentException), ["'/'"]),
        ["dot"] = new(".", typeof(ArgumentException), ["'.'"]),
        ["function-8"] = new("0000:00:02.8", typeof(ArgumentException), ["0000:00:02.8", "domain:bus:slot.function"]),
        ["slot-20"] = new("0000:00:20.0", typeof(ArgumentException), ["0000:00:20.0", "domain:bus:slot.function"]),
        ["bus-3-digits"] = new("0000:100:02.0", typeof(ArgumentException), ["0000:100:02.0", "domain:bus:slot.function"]),
        ["not-hex"] = new("zzzz:00:02.0", typeof(ArgumentException), ["zzzz:00:02.0", "domain:bus:slot.function"]),
        ["dashes"] = new("0000-00-02.0", typeof(ArgumentException), ["0000-00-02.0", "domain:bus:slot.function"]),
        ["no-function"] = new("0000:00:02", typeof(ArgumentException), ["0000:00:02", "domain:bus:slot.function"]),
        ["word"] = new("edu", typeof(ArgumentException), ["edu", "domain:bus:slot.function"]),
        ["missing"] = new("0000:00:1e.7", typeof(VfioDeviceUnusableException), ["0000:00:1e.7"]),
        ["missing-domain"] = new("0001:00:02.0", typeof(VfioDeviceUnusableException), ["0001:00:02.0"]),
        ["bridge-no-driver"] = new(Target.Bridge, typeof(VfioDeviceUnusableException), [Target.Bridge, "vfio-pci"]),
        ["host-driver"] = new(Target.VirtioRng, typeof(VfioDeviceUnusableException), [Target.VirtioRng, "vfio-pci"]),
    };

    public static TheoryData<Mode, string> NameRows() => Rows(s_names.Keys, m => m is Mode.Legacy or Mode.IommuFd);

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(NameRows))]
    public void ABadDeviceName_IsRefused_NamingItAndTheFix(Mode mode, string key)
    {
        NameCase bad = s_names[key];
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        rig.Attach(Target.Edu2, space).Dispose();   // the backend's own objects exist before the case
        Expect(bad.Error, rig, () => rig.Backend.AttachDevice(VfioDeviceSource.Pci(bad.Name), space), bad.Says);
        space.Containers.SelectMany(c => c.Devices).ShouldBeEmpty();
        rig.Attach(Target.Edu, space).Dispose();
    }

    // ---- DMA arguments ------------------------------------------------------------------------------------------

    /// <summary>A bad DMA request on a space holding edu and one 4-page mapping at <see cref="Iova"/> (host memory
    /// <c>pages</c>, 8 pages, the first 4 mapped).</summary>
    private sealed record DmaCase(Action<DmaSpace, ProcessPages, DmaMapping> Act, DmaMappingFailure? Failure, Type Error, string[] Says);

    private static readonly Dictionary<string, DmaCase> s_dma = new()
    {
        ["zero-size"] = new((s, p, m) => s.MapAt(0x40_0000, p.Address + (4 * (int)Page), 0), null, typeof(VfioDmaException), ["non-zero"]),
        ["misaligned-iova"] = new((s, p, m) => s.MapAt(0x40_0800, p.Address + (4 * (int)Page), Page), DmaMappingFailure.Misaligned, typeof(VfioDmaException), ["0x400800"]),
        ["misaligned-size"] = new((s, p, m) => s.MapAt(0x40_0000, p.Address + (4 * (int)Page), 0x1800), DmaMappingFailure.Misaligned, typeof(VfioDmaException), []),
        ["misaligned-host"] = new((s, p, m) => s.MapAt(0x40_0000, p.Address + (4 * (int)Page) + 0x800, Page), DmaMappingFailure.Misaligned, typeof(VfioDmaException), []),
        ["overlap-inside"] = new((s, p, m) => s.MapAt(Iova + Page, p.Address + (4 * (int)Page), Page), DmaMappingFailure.Overlap, typeof(VfioDmaException), []),
        ["overlap-start"] = new((s, p, m) => s.MapAt(Iova - Page, p.Address + (4 * (int)Page), 2 * Page), DmaMappingFailure.Overlap, typeof(VfioDmaException), []),
        ["same-iova"] = new((s, p, m) => s.MapAt(Iova, p.Address + (4 * (int)Page), 4 * Page), DmaMappingFailure.Overlap, typeof(VfioDmaException), []),
        ["beyond-aperture"] = new((s, p, m) => s.MapAt(1UL << 48, p.Address + (4 * (int)Page), Page), DmaMappingFailure.OutsideIovaRanges, typeof(VfioDmaException), []),
        ["across-aperture-end"] = new((s, p, m) => s.MapAt((1UL << 48) - Page, p.Address + (4 * (int)Page), 2 * Page), DmaMappingFailure.OutsideIovaRanges, typeof(VfioDmaException), []),
        ["msi-window"] = new((s, p, m) => s.MapAt(0xfee0_0000, p.Address + (4 * (int)Page), Page), DmaMappingFailure.OutsideIovaRanges, typeof(VfioDmaException), []),
        ["into-msi-window"] = new((s, p, m) => s.MapAt(0xfedf_f000, p.Address + (4 * (int)Page), 2 * Page), DmaMappingFailure.OutsideIovaRanges, typeof(VfioDmaException), []),
        ["wraps-around"] = new((s, p, m) => s.MapAt(ulong.MaxValue - Page + 1, p.Address + (4 * (int)Page), 2 * Page), DmaMappingFailure.OutsideIovaRanges, typeof(VfioDmaException), []),
        ["host-null"] = new((s, p, m) => s.MapAt(0x40_0000, 0, Page), null, typeof(VfioDmaException), ["not memory this process has mapped"]),
        ["mask-too-small"] = new((s, p, m) => s.Map(p.Address + (4 * (int)Page), 2 * Page, DmaAccess.ReadWrite, 0xfff), DmaMappingFailure.NoFreeIova, typeof(VfioDmaException), ["mask"]),
        ["unmap-nothing"] = new((s, p, m) => s.Unmap(0x80_0000), DmaMappingFailure.NotMapped, typeof(VfioDmaException), ["0x800000"]),
        ["unmap-inside"] = new((s, p, m) => s.Unmap(Iova + Page), DmaMappingFailure.NotMapped, typeof(VfioDmaException), []),
        ["remove-partial"] = new((s, p, m) => s.RemoveSection(Iova, Page), DmaMappingFailure.NotMapped, typeof(VfioDmaException), ["0x4000 bytes", "range it was added with"]),
        ["unmap-stale"] = new((s, p, m) => s.Unmap(m with { Iova = 0x80_0000 }), DmaMappingFailure.NotMapped, typeof(VfioDmaException), []),
        ["buffer-zero"] = new((s, p, m) => DmaBuffer.Allocate(s, 0).Dispose(), null, typeof(ArgumentOutOfRangeException), ["size"]),
    };

    public static TheoryData<Mode, string> DmaRows() => Rows(s_dma.Keys, m => m is Mode.Legacy or Mode.IommuFd or Mode.IommuFdCompat);

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(DmaRows))]
    public void ABadDmaRequest_IsRefused_AndTheSpaceIsUnchanged(Mode mode, string key)
    {
        DmaCase bad = s_dma[key];
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        DmaSpace space = edu.Space;
        using var pages = new ProcessPages(8 * Page);
        DmaMapping mapping = space.MapAt(Iova, pages.Address, 4 * Page);

        Exception e = Expect(bad.Error, rig, () => bad.Act(space, pages, mapping), bad.Says);
        if (bad.Failure is DmaMappingFailure failure)
        {
            ((VfioDmaException)e).Failure.ShouldBe(failure);
        }
        space.EnumerateMappings().ShouldHaveSingleItem().ShouldBe(mapping);
        space.Unmap(mapping);
    }

    // ---- IRQ arguments ------------------------------------------------------------------------------------------

    private sealed record IrqCase(Action<VfioDevice, InterruptEvent> Act, Type Error, string[] Says);

    private static readonly Dictionary<string, IrqCase> s_irqs = new()
    {
        ["info-negative-index"] = new((d, e) => d.GetIrq(-1), typeof(ArgumentOutOfRangeException), ["-1"]),
        ["info-index-beyond"] = new((d, e) => d.GetIrq(99), typeof(VfioException), ["IRQ index 99", "IRQ indexes (0 to"]),
        ["set-index-beyond"] = new((d, e) => d.SetIrqEventFds(99, 0, [e]), typeof(VfioException), ["IRQ index 99", "IRQ indexes (0 to"]),
        ["set-start-beyond"] = new((d, e) => d.SetIrqEventFds(VfioPciIrq.Msi, 1, [e]), typeof(VfioException), ["IRQ index 1", "beyond it"]),
        ["set-count-beyond"] = new((d, e) => d.SetIrqEventFds(VfioPciIrq.Msi, 0, [e, e]), typeof(VfioException), ["IRQ index 1", "beyond it"]),
        ["set-negative-start"] = new((d, e) => d.SetIrqEventFds(VfioPciIrq.Msi, -1, [e]), typeof(ArgumentOutOfRangeException), ["-1"]),
        ["set-msix-absent"] = new((d, e) => d.SetIrqEventFds(VfioPciIrq.Msix, 0, [e]), typeof(VfioException), ["IRQ index 2", "beyond it"]),
        ["trigger-count-beyond"] = new((d, e) => d.TriggerIrq(VfioPciIrq.Msi, 0, 5), typeof(VfioException), ["IRQ index 1", "beyond it"]),
        ["trigger-zero-count"] = new((d, e) => d.TriggerIrq(VfioPciIrq.Msi, 0, 0), typeof(ArgumentOutOfRangeException), ["count"]),
        ["mask-not-maskable"] = new((d, e) => d.MaskIrq(VfioPciIrq.Msi), typeof(VfioException), ["IRQ index 1", "not maskable"]),
        ["unmask-index-beyond"] = new((d, e) => d.UnmaskIrq(99), typeof(VfioException), ["IRQ index 99", "IRQ indexes (0 to"]),
        ["disable-index-beyond"] = new((d, e) => d.DisableIrq(99), typeof(VfioException), ["IRQ index 99", "IRQ indexes (0 to"]),
        ["mask-eventfd-on-msi"] = new((d, e) => d.SetIrqMaskEventFd(VfioPciIrq.Msi, e), typeof(VfioException), ["IRQ index 1", "not maskable"]),
        ["unmask-eventfd-on-msi"] = new((d, e) => d.SetIrqUnmaskEventFd(VfioPciIrq.Msi, e), typeof(VfioException), ["IRQ index 1", "not maskable"]),
        ["intx-count-beyond"] = new((d, e) => d.SetIrqEventFds(VfioPciIrq.Intx, 0, [e, e]), typeof(VfioException), ["IRQ index 0", "beyond it"]),
        ["event-from-regular-file"] = new((d, e) => NotAnEventFd("/proc/self/status"), typeof(ArgumentException), ["not an eventfd"]),
        ["event-from-dev-null"] = new((d, e) => NotAnEventFd("/dev/null"), typeof(ArgumentException), ["not an eventfd"]),
    };

    private static void NotAnEventFd(string path)
    {
        using Microsoft.Win32.SafeHandles.SafeFileHandle handle = File.OpenHandle(path);
        new InterruptEvent(handle, ownsHandle: false).Dispose();
    }

    public static TheoryData<Mode, string> IrqRows() => Rows(s_irqs.Keys, m => m is Mode.Legacy or Mode.IommuFd or Mode.IommuFdCompat);

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(IrqRows))]
    public void ABadIrqRequest_IsRefused_AndTheIrqStillWorks(Mode mode, string key)
    {
        IrqCase bad = s_irqs[key];
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        using var interrupt = new InterruptEvent();
        Expect(bad.Error, rig, () => bad.Act(edu.Device, interrupt), bad.Says);

        // The IRQs are as they were: MSI takes its one vector and is disabled again.
        edu.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [interrupt]);
        edu.Device.DisableIrq(VfioPciIrq.Msi);
    }

    // ---- region offsets and widths ------------------------------------------------------------------------------

    private sealed record RegionCase(Action<AttachedDevice, VfioRegionMapping> Act, Type Error, string[] Says);

    private const ulong Bar0Size = 0x10_0000;

    private static readonly Dictionary<string, RegionCase> s_regions = new()
    {
        ["read-at-end"] = new((d, m) => d.Device.ReadRegion32(0, Bar0Size), typeof(ArgumentOutOfRangeException), ["region 0", "outside"]),
        ["read-across-end"] = new((d, m) => d.Device.ReadRegion32(0, Bar0Size - 2), typeof(ArgumentOutOfRangeException), ["region 0", "outside"]),
        ["read64-wraps"] = new((d, m) => d.Device.ReadRegion64(0, ulong.MaxValue - 3), typeof(ArgumentOutOfRangeException), ["region 0", "outside"]),
        ["write-at-end"] = new((d, m) => d.Device.WriteRegion32(0, Bar0Size, 1), typeof(ArgumentOutOfRangeException), ["region 0", "outside"]),
        ["write16-across-end"] = new((d, m) => d.Device.WriteRegion16(0, Bar0Size - 1, 1), typeof(ArgumentOutOfRangeException), ["region 0", "outside"]),
        ["span-across-end"] = new((d, m) => d.Device.ReadRegion(0, Bar0Size - 4, new byte[8]), typeof(ArgumentOutOfRangeException), ["region 0", "outside"]),
        ["negative-index"] = new((d, m) => d.Device.ReadRegion32(-1, 0), typeof(ArgumentOutOfRangeException), ["-1"]),
        ["index-beyond"] = new((d, m) => d.Device.ReadRegion32(99, 0), typeof(VfioException), ["region 99", "regions (indexes 0 to"]),
        ["empty-bar"] = new((d, m) => d.Device.ReadRegion8(1, 0), typeof(ArgumentOutOfRangeException), ["region 1", "0x0 bytes"]),
        ["config-beyond"] = new((d, m) => d.Device.ReadRegion32(VfioPciRegion.Config, 0x1000), typeof(ArgumentOutOfRangeException), ["region 7", "outside"]),
        ["info-negative-index"] = new((d, m) => d.Device.GetRegion(-1), typeof(ArgumentOutOfRangeException), ["-1"]),
        ["map-config"] = new((d, m) => d.Device.MapRegion(VfioPciRegion.Config).Dispose(), typeof(InvalidOperationException), ["region 7", "ReadRegion"]),
        ["map-empty-bar"] = new((d, m) => d.Device.MapRegion(1).Dispose(), typeof(InvalidOperationException), ["region 1", "ReadRegion"]),
        ["map-index-beyond"] = new((d, m) => d.Device.MapRegion(99).Dispose(), typeof(VfioException), ["region 99", "regions (indexes 0 to"]),
        ["mapped-read-at-end"] = new((d, m) => m.Read32(Bar0Size), typeof(ArgumentOutOfRangeException), ["region 0", "not inside a mapped area"]),
        ["mapped-read64-across-end"] = new((d, m) => m.Read64(Bar0Size - 4), typeof(ArgumentOutOfRangeException), ["region 0", "not inside a mapped area"]),
        ["mapped-read-unaligned"] = new((d, m) => m.Read32(2), typeof(ArgumentException), ["aligned"]),
        ["mapped-write64-unaligned"] = new((d, m) => m.Write64(4, 0), typeof(ArgumentException), ["aligned"]),
        ["window-beyond"] = new((d, m) => m.Acquire(Bar0Size - 8, 16), typeof(ArgumentOutOfRangeException), ["region 0", "not inside a mapped area"]),
        ["window-width-3"] = new((d, m) => ReadWindow(m, 3, 0), typeof(ArgumentOutOfRangeException), ["3"]),
        ["window-read-beyond"] = new((d, m) => ReadWindow(m, 8, 8), typeof(ArgumentOutOfRangeException), ["8"]),
    };

    /// <summary>A 64-bit read at <paramref name="offset"/> of a window of <paramref name="length"/> bytes at the region's
    /// start. The window is disposed: one left open keeps the region mapped, and on Linux the device open, so the next
    /// attach of its group would fail.</summary>
    private static void ReadWindow(VfioRegionMapping mapping, ulong length, ulong offset)
    {
        using MmioWindow window = mapping.Acquire(0, length);
        window.Read64(offset);
    }

    public static TheoryData<Mode, string> RegionRows() => Rows(s_regions.Keys, m => m is Mode.Legacy or Mode.IommuFd or Mode.IommuFdCompat);

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(RegionRows))]
    public void ABadRegionAccess_IsRefused_AndTheRegionStillWorks(Mode mode, string key)
    {
        RegionCase bad = s_regions[key];
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        using VfioRegionMapping bar0 = edu.Device.MapRegion(0);
        Expect(bad.Error, rig, () => bad.Act(edu, bar0), bad.Says);
        // Edu's identification register answers through both paths.
        bar0.Read32(0).ShouldBe(edu.Device.ReadRegion32(0, 0));
    }

    // ---- shared -------------------------------------------------------------------------------------------------

    private static TheoryData<Mode, string> Rows(IEnumerable<string> keys, Func<Mode, bool> modes)
    {
        var data = new TheoryData<Mode, string>();
        foreach (Mode mode in Target.Modes.Where(modes))
        {
            foreach (string key in keys)
            {
                data.Add(mode, key);
            }
        }
        return data;
    }

    private static Exception Expect(Type error, Rig rig, Action act, string[] says) => Refusal.Expect(error, rig, act, says);
}
