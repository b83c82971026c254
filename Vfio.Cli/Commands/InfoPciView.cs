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

/// <summary>The resets the kernel offers (the function reset).</summary>
internal sealed record PciResetReport(bool FunctionReset);

/// <summary><c>vfioctl info</c>'s PCI view: what Devices.Pci reads of a vfio-pci device.</summary>
internal sealed record PciInfoReport(string VendorId, string DeviceId, string ClassCode,
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
        return new PciInfoReport(Hex4(pci.VendorId), Hex4(pci.DeviceId), pci.ClassCode.ToString("x6", CultureInfo.InvariantCulture),
            capabilities, interrupts, new PciResetReport(pci.SupportsReset));
    }

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
        PciResetReport r = pci.Reset;
        Output.Row(facts, "function reset", r.FunctionReset ? "yes" : "no");
        console.Write(facts);

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
