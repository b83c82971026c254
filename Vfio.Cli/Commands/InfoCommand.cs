// SPDX-License-Identifier: MIT
using System.Globalization;
using Spectre.Console;
using Vfio.Backends.IommuFd;
using Vfio.Backends.SpaprTce;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Cli.Commands;

/// <summary><c>vfioctl info</c>: attaches a device through a backend and shows what the kernel says about it and
/// about the container or IOAS it joined.</summary>
internal static class InfoCommand
{
    private static readonly string[] s_pciRegions = ["BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA"];
    private static readonly string[] s_pciIrqs = ["INTx", "MSI", "MSI-X", "ERR", "REQ"];

    internal static int Run(CliEnvironment environment, string device, string backend, bool allowUnsafeNoIommu, bool simulate, bool json)
    {
        using KernelSession session = KernelSession.Open(environment, simulate, fallBackWhenNoVfio: false, backend);
        VfioDeviceSource source = DeviceLookup.Find(session.Kernel, device);
        InfoReport report = Collect(session, source, backend, allowUnsafeNoIommu);
        if (json)
        {
            JsonContract.Write(environment, "info", report, null, static c => c.JsonEnvelopeInfo);
            return 0;
        }
        Print(environment.CreateConsole(), session, report);
        return 0;
    }

    internal static InfoReport Collect(KernelSession session, VfioDeviceSource source, string backendName, bool allowUnsafeNoIommu = false)
    {
        using CliBackends backends = CliBackends.Create(session.Kernel, backendName, allowUnsafeNoIommu);
        using DmaSpace space = backends.Manager.CreateDmaSpace("vfioctl-info");
        using AttachedDevice attached = backends.Manager.AttachDevice(source, space);
        VfioDevice device = attached.Device;
        VfioDeviceInfo info = device.Info;
        var regions = new List<RegionReport>();
        for (int i = 0; i < info.RegionCount; i++)
        {
            regions.Add(Region(device, i, info.IsPci));
        }
        var irqs = new List<IrqReport>();
        for (int i = 0; i < info.IrqCount; i++)
        {
            irqs.Add(Irq(device, i, info.IsPci));
        }
        var capabilities = info.Capabilities.Select(static c => Capability(c.Id, c.Version, device: true)).ToList();
        List<string> flags = Flags(info.Flags);
        flags.AddRange(capabilities.Select(static c => "cap " + c));
        return new InfoReport(session.KernelName, attached.Name, attached.IommuGroup, flags, info.RegionCount, info.IrqCount,
            Container(attached), regions, irqs, InfoPciView.Collect(attached));
    }

    private static RegionReport Region(VfioDevice device, int index, bool pci)
    {
        string name = Name(pci ? s_pciRegions : null, "region", index);
        VfioRegionInfo region;
        try
        {
            region = device.GetRegion(index);
        }
        catch (VfioException e) when (e.Errno == Errno.EINVAL)
        {
            // vfio-pci refuses the VGA region of a device without VGA: the region does not exist.
            return new RegionReport(index, name, false, 0, 0, [], null, null, false, []);
        }
        return new RegionReport(index, name, region.Size != 0, region.Size, region.Offset, Flags(region.Flags),
            region.SparseMmapAreas?.Select(static a => new SparseAreaReport(a.Offset, a.Size)).ToList(),
            region.Type is VfioRegionType t ? string.Create(CultureInfo.InvariantCulture, $"{t.Type:x}:{t.Subtype:x}") : null,
            region.IsMsixMappable, [.. region.Capabilities.Select(static c => Capability(c.Id, c.Version, device: false))]);
    }

    private static IrqReport Irq(VfioDevice device, int index, bool pci)
    {
        string name = Name(pci ? s_pciIrqs : null, "IRQ", index);
        try
        {
            VfioIrqInfo irq = device.GetIrq(index);
            return new IrqReport(index, name, irq.Count > 0, irq.Count, Flags(irq.Flags));
        }
        catch (VfioException e) when (e.Errno == Errno.EINVAL)
        {
            // vfio-pci refuses the ERR index of a device that is not PCI Express: the index does not exist.
            return new IrqReport(index, name, false, 0, []);
        }
    }

    private static ContainerReport Container(AttachedDevice attached)
    {
        DmaContainer container = attached.Container;
        var sizes = new List<ulong>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((container.PageSizes & (1UL << bit)) != 0)
            {
                sizes.Add(1UL << bit);
            }
        }
        string? type = null;
        uint? ioas = null;
        IReadOnlyList<uint>? hwpts = null;
        HardwareInfoReport? hardware = null;
        switch (container)
        {
            case LegacyContainer legacy:
                type = IommuTypeName(legacy.IommuType);
                break;
            case IommuFdContainer iommuFd:
                ioas = iommuFd.IoasId;
                hwpts = [.. iommuFd.HwptIds];
                break;
        }
        if (attached is IommuFdAttachedDevice { HardwareInfo: var hw })
        {
            hardware = new HardwareInfoReport(hw.DataTypeName, hw.Capabilities, hw.MaxPasidLog2, hw.SupportsDirtyTracking);
        }
        return new ContainerReport(container.Name, attached.Backend.Name, type, container.PageSizes, sizes,
            [.. container.IovaRanges.Select(static r => new RangeReport(r.Start, r.Last))], container.DmaMappingsAvailable, ioas, hwpts,
            hardware, Flags(container.Features), container is SpaprTceContainer spapr ? Spapr(spapr) : null);
    }

    private static SpaprReport Spapr(SpaprTceContainer container)
    {
        string eeh;
        if (!container.EehAvailable)
        {
            eeh = (container.Features & IommuBackendFeatures.Eeh) == 0 ? "not offered by the host" : "needs exactly one group in the container";
        }
        else
        {
            try
            {
                eeh = container.GetEehState().ToString();
            }
            catch (VfioException e)
            {
                eeh = $"unknown ({e.Errno})";
            }
        }
        return new SpaprReport(container.IsV2 ? "v2" : "v1", container.Dma32WindowStart, container.Dma32WindowSize, container.HostPageSizes,
            container.MaxWindows, container.MaxLevels, WindowReports(container), container.PreRegisteredRegions, container.PreRegisteredBytes, eeh);
    }

    internal static List<SpaprWindowReport> WindowReports(SpaprTceContainer container)
        => [.. container.Windows.Select(static w => new SpaprWindowReport(w.Start, w.Size, w.PageSize, w.Levels, w.Mappings, w.Fixed))];

    /// <summary>One line per sPAPR fact, for info and the demo.</summary>
    internal static string DescribeWindows(IReadOnlyList<SpaprWindowReport> windows)
        => windows.Count == 0
            ? "none open (v2 opens one per section as mappings need it)"
            : string.Join(", ", windows.Select(static w => string.Create(CultureInfo.InvariantCulture,
                $"{Output.Hex(w.Start)}+{Output.Size(w.Size)} ({Output.Size(w.PageSize)} TCEs, {w.Levels} level{(w.Levels == 1 ? string.Empty : "s")}, {w.Mappings} mapping{(w.Mappings == 1 ? string.Empty : "s")}{(w.Fixed ? ", fixed" : string.Empty)})")));

    private static void Print(IAnsiConsole console, KernelSession session, InfoReport report)
    {
        Output.KernelLine(console, session);
        ContainerReport c = report.Container;
        var facts = Output.Table("DEVICE", report.Device);
        Output.Row(facts, "IOMMU group", report.IommuGroup?.ToString(CultureInfo.InvariantCulture) ?? "-");
        Output.Row(facts, "flags", string.Join(", ", report.Flags));
        Output.Row(facts, "regions / IRQ indexes", string.Create(CultureInfo.InvariantCulture, $"{report.RegionCount} / {report.IrqCount}"));
        Output.Row(facts, "backend", c.Backend);
        Output.Row(facts, c.Backend == "iommufd" ? "IOAS" : "container", c.Name + (c.IommuType is null ? string.Empty : $" ({c.IommuType})"));
        if (c.HwptIds is not null)
        {
            Output.Row(facts, "HWPTs", c.HwptIds.Count == 0 ? "(IOAS attached directly)" : string.Join(", ", c.HwptIds));
        }
        Output.Row(facts, "IOMMU page sizes", $"{string.Join(", ", c.PageSizes.Select(Output.Size))} (mask {Output.Hex(c.PageSizeMask)})");
        Output.Row(facts, "IOVA ranges", c.IovaRanges.Count == 0 && c.Spapr is not null
            ? "(no DMA window open yet)"
            : string.Join(", ", c.IovaRanges.Select(static r => $"{Output.Hex(r.Start)}-{Output.Hex(r.Last)}")));
        Output.Row(facts, "DMA mappings available", c.DmaMappingsAvailable?.ToString(CultureInfo.InvariantCulture)
            ?? (c.Backend == "iommufd" ? "no limit (iommufd counts no entries)" : "not reported (no DMA_AVAIL capability)"));
        if (c.HardwareInfo is HardwareInfoReport hw)
        {
            Output.Row(facts, "IOMMU hardware", string.Create(CultureInfo.InvariantCulture,
                $"{hw.Type}, capabilities {Output.Hex(hw.Capabilities)}{(hw.DirtyTracking ? " (dirty tracking)" : string.Empty)}, max PASID bits {hw.MaxPasidLog2}"));
        }
        if (c.Spapr is SpaprReport p)
        {
            Output.Row(facts, "sPAPR TCE", string.Create(CultureInfo.InvariantCulture,
                $"{p.Version}: 32-bit window {Output.Hex(p.Dma32WindowStart)}+{Output.Size(p.Dma32WindowSize)}, window page sizes {Output.Hex(p.HostPageSizeMask)}, up to {p.MaxWindows} windows of up to {p.MaxLevels} levels"));
            Output.Row(facts, "DMA windows", DescribeWindows(p.Windows));
            Output.Row(facts, "pre-registered", string.Create(CultureInfo.InvariantCulture, $"{p.PreRegisteredRegions} regions, {Output.Size(p.PreRegisteredBytes)}"));
            Output.Row(facts, "EEH", p.EehState);
        }
        Output.Row(facts, "features", c.Features.Count == 0 ? "-" : string.Join(", ", c.Features));
        console.WriteFitted(facts);

        var regions = Output.Table("REGION", "SIZE", "OFFSET", "FLAGS", "CAPABILITIES");
        foreach (RegionReport r in report.Regions)
        {
            if (!r.Present)
            {
                Output.Row(regions, $"{r.Index} {r.Name}", "-", "-", "(none)", string.Empty);
                continue;
            }
            var caps = new List<string>(r.Capabilities.Where(static x => !x.StartsWith("sparse", StringComparison.Ordinal) && !x.StartsWith("type", StringComparison.Ordinal) && !x.StartsWith("msix", StringComparison.Ordinal)));
            if (r.SparseMmapAreas is { } areas)
            {
                caps.Add("sparse mmap: " + (areas.Count == 0 ? "no area" : string.Join(", ", areas.Select(static a => $"{Output.Hex(a.Offset)}+{Output.Hex(a.Size)}"))));
            }
            if (r.Type is not null)
            {
                caps.Add("type " + r.Type);
            }
            if (r.MsixMappable)
            {
                caps.Add("MSI-X mappable");
            }
            Output.Row(regions, $"{r.Index} {r.Name}", Output.Size(r.Size), Output.Hex(r.Offset), string.Join(", ", r.Flags),
                caps.Count == 0 ? "-" : string.Join("; ", caps));
        }
        console.WriteFitted(regions);

        var irqs = Output.Table("IRQ INDEX", "COUNT", "FLAGS");
        foreach (IrqReport irq in report.Irqs)
        {
            Output.Row(irqs, $"{irq.Index} {irq.Name}", irq.Count.ToString(CultureInfo.InvariantCulture), irq.Flags.Count == 0 ? "(none)" : string.Join(", ", irq.Flags));
        }
        console.WriteFitted(irqs);
        if (report.Pci is PciInfoReport pci)
        {
            InfoPciView.Print(console, pci);
        }
    }

    private static string Name(string[]? names, string kind, int index)
        => names is not null && index < names.Length ? names[index] : kind + " " + index.ToString(CultureInfo.InvariantCulture);

    private static List<string> Flags<T>(T flags) where T : struct, Enum
    {
        string text = flags.ToString();
        return text == "0" || text == "None" ? [] : [.. text.Split(", ", StringSplitOptions.RemoveEmptyEntries)];
    }

    private static string Capability(ushort id, ushort version, bool device)
    {
        string name = (device, id) switch
        {
            (false, VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP) => "sparse mmap",
            (false, VfioUapi.VFIO_REGION_INFO_CAP_TYPE) => "type",
            (false, VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) => "msix mappable",
            (false, VfioUapi.VFIO_REGION_INFO_CAP_NVLINK2_SSATGT) => "nvlink2 ssatgt",
            (false, VfioUapi.VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD) => "nvlink2 lnkspd",
            (true, VfioUapi.VFIO_DEVICE_INFO_CAP_ZPCI_BASE) => "zpci base",
            (true, VfioUapi.VFIO_DEVICE_INFO_CAP_ZPCI_GROUP) => "zpci group",
            (true, VfioUapi.VFIO_DEVICE_INFO_CAP_ZPCI_UTIL) => "zpci util",
            (true, VfioUapi.VFIO_DEVICE_INFO_CAP_ZPCI_PFIP) => "zpci pfip",
            (true, VfioUapi.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP) => "pci atomic completer",
            _ => "id " + id.ToString(CultureInfo.InvariantCulture),
        };
        return name + " v" + version.ToString(CultureInfo.InvariantCulture);
    }

    private static string IommuTypeName(uint type) => type switch
    {
        VfioUapi.VFIO_TYPE1_IOMMU => "Type1",
        VfioUapi.VFIO_SPAPR_TCE_IOMMU => "sPAPR TCE v1",
        VfioUapi.VFIO_TYPE1v2_IOMMU => "Type1 v2",
        VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU => "sPAPR TCE v2",
        VfioUapi.VFIO_NOIOMMU_IOMMU => "no-IOMMU",
        _ => "IOMMU type " + type.ToString(CultureInfo.InvariantCulture),
    };
}
