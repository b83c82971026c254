// SPDX-License-Identifier: MIT
using System.Globalization;
using Spectre.Console;
using Vfio.Core;
using Vfio.Devices.Pci;

namespace Vfio.Cli.Commands;

/// <summary>One capability of the standard or extended list.</summary>
internal sealed record PciCapabilityReport(string Name, int Offset, int Size, bool Extended);

/// <summary>The device's interrupts: INTx pin, MSI and MSI-X capacities and where the MSI-X table lives, ERR/REQ.</summary>
internal sealed record PciInterruptsReport(int IntxPin, string IntxPinName, int MsiVectors, bool Msi64Bit, bool MsiPerVectorMasking,
    int MsixVectors, int? MsixTableBar, ulong? MsixTableOffset, int? MsixPbaBar, ulong? MsixPbaOffset, bool ErrNotification, bool ReqNotification);

/// <summary>One decoded BAR: its kind, size and what <c>MapBar</c> would map of it.</summary>
internal sealed record PciBarReport(int Index, string Kind, bool Prefetchable, ulong Size, bool Mappable,
    IReadOnlyList<SparseAreaReport> MapAreas, bool MsixLeftOut);

/// <summary>One device a hot reset would reset, and whether this process's proof covers it.</summary>
internal sealed record PciHotResetDeviceReport(string Address, int? IommuGroup, uint? DeviceId, bool Owned);

/// <summary>The resets: the function reset, and the hot reset with the devices it affects (or why there is none).</summary>
internal sealed record PciResetReport(bool FunctionReset, bool HotReset, string? HotResetProof,
    IReadOnlyList<PciHotResetDeviceReport> HotResetDevices, string? HotResetUnavailable);

/// <summary><c>vfioctl info</c>'s PCI view: what Devices.Pci reads of a vfio-pci device.</summary>
internal sealed record PciInfoReport(string VendorId, string DeviceId, string ClassCode, IReadOnlyList<PciBarReport> Bars, ulong RomSize,
    IReadOnlyList<PciCapabilityReport> Capabilities, PciInterruptsReport Interrupts, PciResetReport Reset);

/// <summary>Collects and prints the PCI view of <c>vfioctl info</c> through Devices.Pci (<see cref="VfioPciDevice"/>).</summary>
internal static class InfoPciView
{
    /// <summary>The PCI view of a vfio-pci device; null for any other device.</summary>
    internal static PciInfoReport? Collect(AttachedDevice attached)
    {
        if (!attached.Device.Info.IsPci)
        {
            return null;
        }
        using var pci = new VfioPciDevice(attached);
        var capabilities = pci.Capabilities.Select(static c => new PciCapabilityReport(CapabilityName(c), c.Offset, c.Size, c.IsExtended)).ToList();
        PciMsixLayout? msix = pci.Msix.Layout;
        PciMsiCapability? msi = pci.Msi.Capability;
        var interrupts = new PciInterruptsReport(pci.Intx.Pin, pci.Intx.PinName, pci.Msi.MaxVectors, msi?.Is64Bit ?? false, msi?.HasPerVectorMasking ?? false,
            pci.Msix.MaxVectors, msix?.TableBar, msix?.TableOffset, msix?.PbaBar, msix?.PbaOffset,
            pci.ErrorNotification.IsAvailable, pci.RequestNotification.IsAvailable);
        var bars = pci.Bars.Select(b => new PciBarReport(b.Index, BarKind(b), b.IsPrefetchable, b.Size, b.CanMap,
            [.. pci.GetMapAreas(b.Index).Select(static a => new SparseAreaReport(a.Offset, a.Size))], pci.LeavesOutMsix(b.Index))).ToList();
        return new PciInfoReport(Hex4(pci.VendorId), Hex4(pci.DeviceId), pci.ClassCode.ToString("x6", CultureInfo.InvariantCulture),
            bars, pci.RomSize, capabilities, interrupts, ResetReport(pci));
    }

    private static PciResetReport ResetReport(VfioPciDevice pci)
    {
        PciHotResetInfo info;
        try
        {
            info = pci.GetHotResetInfo();
        }
        catch (VfioException e)
        {
            // No slot or bus reset (ENODEV: e.g. the root bus), or the kernel refused the query: say why.
            return new PciResetReport(pci.SupportsReset, false, null, [], e.Message);
        }
        return new PciResetReport(pci.SupportsReset, true, info.UsesDeviceIds ? "device-ids" : "group-fds",
            [.. info.Devices.Select(static d => new PciHotResetDeviceReport(d.Address, d.IommuGroup, d.DeviceId, d.IsOwned))], null);
    }

    private static string BarKind(PciBar bar) => bar.Kind switch
    {
        PciBarKind.Io => "io",
        PciBarKind.Memory => bar.Is64Bit ? "mem64" : "mem32",
        PciBarKind.UpperHalf => "upper-half",
        _ => "unimplemented",
    };

    internal static void Print(IAnsiConsole console, PciInfoReport pci)
    {
        var facts = Output.Table("PCI", $"[{pci.VendorId}:{pci.DeviceId}] class {pci.ClassCode}");
        PciInterruptsReport i = pci.Interrupts;
        Output.Row(facts, "INTx", i.IntxPin == 0 ? "none" : i.IntxPinName);
        Output.Row(facts, "MSI", i.MsiVectors == 0 ? "none"
            : string.Create(CultureInfo.InvariantCulture, $"{i.MsiVectors} vector(s), {(i.Msi64Bit ? "64" : "32")}-bit{(i.MsiPerVectorMasking ? ", per-vector mask" : string.Empty)}"));
        Output.Row(facts, "MSI-X", i.MsixVectors == 0 ? "none"
            : string.Create(CultureInfo.InvariantCulture, $"{i.MsixVectors} vector(s), table BAR{i.MsixTableBar}+{Output.Hex(i.MsixTableOffset ?? 0)}, PBA BAR{i.MsixPbaBar}+{Output.Hex(i.MsixPbaOffset ?? 0)}"));
        Output.Row(facts, "ERR / REQ", $"{(i.ErrNotification ? "offered" : "not offered")} / {(i.ReqNotification ? "offered" : "not offered")}");
        Output.Row(facts, "ROM", pci.RomSize == 0 ? "none" : Output.Size(pci.RomSize));
        PciResetReport r = pci.Reset;
        Output.Row(facts, "function reset", r.FunctionReset ? "yes" : "no");
        Output.Row(facts, "hot reset", r.HotReset
            ? string.Create(CultureInfo.InvariantCulture, $"affects {r.HotResetDevices.Count} device(s), proof by {r.HotResetProof}")
            : "no: " + r.HotResetUnavailable);
        console.Write(facts);

        var bars = Output.Table("BAR", "KIND", "SIZE", "MAPS");
        foreach (PciBarReport b in pci.Bars)
        {
            string kind = b.Prefetchable ? b.Kind + ", prefetchable" : b.Kind;
            string maps = !b.Mappable ? "-"
                : string.Join(", ", b.MapAreas.Select(static a => $"{Output.Hex(a.Offset)}+{Output.Hex(a.Size)}")) + (b.MsixLeftOut ? " (MSI-X left out)" : string.Empty);
            Output.Row(bars, b.Index.ToString(CultureInfo.InvariantCulture), kind, b.Size == 0 ? "-" : Output.Size(b.Size), maps);
        }
        console.Write(bars);

        if (r.HotResetDevices.Count > 0)
        {
            var hot = Output.Table("HOT RESET RESETS", "GROUP / DEVID", "OWNED");
            foreach (PciHotResetDeviceReport d in r.HotResetDevices)
            {
                string how = d.IommuGroup is int g ? "group " + g.ToString(CultureInfo.InvariantCulture)
                    : d.DeviceId is uint id ? "devid " + id.ToString(CultureInfo.InvariantCulture) : "devid -";
                Output.Row(hot, d.Address, how, d.Owned ? "yes" : "no");
            }
            console.Write(hot);
        }

        var caps = Output.Table("CAPABILITY", "OFFSET", "SIZE");
        foreach (PciCapabilityReport c in pci.Capabilities)
        {
            Output.Row(caps, c.Extended ? c.Name + " (extended)" : c.Name, Output.Hex((ulong)c.Offset), c.Size.ToString(CultureInfo.InvariantCulture));
        }
        console.Write(caps);
    }

    private static string CapabilityName(PciCapability capability)
    {
        string text = capability.ToString();
        int at = text.IndexOf(" at ", StringComparison.Ordinal);
        return at < 0 ? text : text[..at];
    }

    private static string Hex4(ushort value) => value.ToString("x4", CultureInfo.InvariantCulture);
}
