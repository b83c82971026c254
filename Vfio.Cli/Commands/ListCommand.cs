// SPDX-License-Identifier: MIT
using System.Globalization;
using Spectre.Console;
using Vfio.Core;

namespace Vfio.Cli.Commands;

/// <summary><c>vfioctl list</c>: the devices VFIO can use, from sysfs, and which backends could attach each.</summary>
internal static class ListCommand
{
    internal static int Run(CliEnvironment environment, bool simulate, bool json)
    {
        using KernelSession session = KernelSession.Open(environment, simulate, fallBackWhenNoVfio: false);
        ListReport report = Collect(session);
        if (json)
        {
            JsonContract.Write(environment, "list", report, null, static c => c.JsonEnvelopeList);
            return 0;
        }
        IAnsiConsole console = environment.CreateConsole();
        Output.KernelLine(console, session);
        if (report.Devices.Count == 0)
        {
            console.WriteLine("No device is in an IOMMU group or bound to a VFIO driver. Run 'vfioctl doctor' to see why.");
            return 0;
        }
        var table = Output.Table("DEVICE", "VENDOR:DEVICE", "DRIVER", "GROUP", "VIABLE", "CDEV", "BACKENDS");
        foreach (DeviceReport device in report.Devices)
        {
            string group = device.IommuGroup is int g ? (device.NoIommu ? "noiommu-" : string.Empty) + g.ToString(CultureInfo.InvariantCulture) : "-";
            string viable = device.IommuGroup is null ? "-"
                : device.Viable ? "yes"
                : "no: " + string.Join(", ", device.Blockers.Select(static b => $"{b.Name} ({b.Driver})"));
            Output.Row(table, device.Name, device.VendorDevice ?? "-", device.Driver ?? "(none)", group, viable, device.Cdev ?? "-",
                device.Backends.Count == 0 ? "none" : string.Join(", ", device.Backends));
        }
        console.WriteFitted(table);
        foreach (DeviceReport device in report.Devices.Where(static d => d.Backends.Count == 0))
        {
            console.WriteLine($"{device.Name}: not usable: {string.Join("; ", device.NotUsableBecause)}");
        }
        return 0;
    }

    internal static ListReport Collect(KernelSession session)
    {
        using CliBackends backends = CliBackends.Create(session.Kernel);
        var devices = new List<DeviceReport>();
        foreach (VfioDeviceEntry entry in VfioSysfs.ListDevices(session.Kernel))
        {
            var reasons = new List<string>();
            string? pciClass = entry.PciClass is uint c ? $"0x{c:x6}" : null;
            if (entry.IsPciBridge)
            {
                // vfio-pci refuses a bridge's type-1/2 header, so binding it is no fix: only its group matters (the
                // VIABLE column names what blocks it).
                reasons.Add($"a PCI bridge (class {pciClass}), which VFIO does not assign"
                    + (entry.IommuGroup is int bridgeGroup ? $"; the viability of its IOMMU group {bridgeGroup} matters for the devices behind it" : string.Empty));
            }
            else if (!entry.IsBoundToVfio)
            {
                reasons.Add(entry.Driver is null ? "bound to no driver (bind it to vfio-pci)" : $"bound to {entry.Driver}, not to a VFIO driver");
            }
            if (entry.IommuGroup is int group && !entry.IsGroupViable && !entry.IsPciBridge)
            {
                reasons.Add($"IOMMU group {group} is not viable: {string.Join(", ", entry.GroupBlockers.Select(static b => $"{b.Name} is bound to {b.Driver}"))}");
            }
            // The backends' own conditions (nodes, cdev, no-IOMMU opt-in) matter once the device itself is usable.
            var usable = new List<string>();
            if (reasons.Count == 0)
            {
                VfioDeviceSource source = entry.ToSource();
                foreach (IIommuBackend backend in backends.All)
                {
                    if (backend.CanAttach(source, out string reason))
                    {
                        usable.Add(backend.Name);
                    }
                    else
                    {
                        reasons.Add(Cli.WithFlags($"{backend.Name}: {reason}"));
                    }
                }
            }
            devices.Add(new DeviceReport(entry.Name, entry.Bus == VfioBus.Pci ? "pci" : "platform",
                entry.VendorId is ushort v && entry.DeviceId is ushort d ? $"{v:x4}:{d:x4}" : null, pciClass, entry.IsPciBridge,
                entry.Driver, entry.IommuGroup, entry.IsGroupViable, entry.IsNoIommuGroup,
                [.. entry.GroupBlockers.Select(static b => new GroupMemberReport(b.Name, b.Driver))],
                entry.GroupNode, entry.CdevPath, usable, usable.Count == 0 ? reasons : []));
        }
        return new ListReport(session.KernelName, devices);
    }
}
