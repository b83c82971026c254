// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// What differs per bus where a device is checked and a fix is suggested: the sysfs bus name, the VFIO driver, how to
/// find a device and how to bind one. Backends know no bus: <see cref="IommuBackend"/>'s preflight and the error
/// factories take these facts from the device source's <see cref="VfioBus"/>.
/// </summary>
internal static class VfioBusFacts
{
    /// <summary>The bus's directory name under <c>/sys/bus</c>.</summary>
    internal static string SysfsName(this VfioBus bus) => bus == VfioBus.Pci ? "pci" : "platform";

    /// <summary>The VFIO driver of the bus.</summary>
    internal static string VfioDriver(this VfioBus bus) => bus == VfioBus.Pci ? "vfio-pci" : "vfio-platform";

    /// <summary>How to find the right name of a device that does not exist.</summary>
    internal static string MissingDeviceHint(this VfioBus bus)
        => bus == VfioBus.Pci ? "Check the address with lspci -D." : "Check the name in /sys/bus/platform/devices.";

    /// <summary>The device's sysfs directory (its source's, or the bus's standard one).</summary>
    internal static string SysfsDirectory(this VfioDeviceSource device) => device.SysfsPath ?? $"/sys/bus/{device.Bus.SysfsName()}/devices/{device.Name}";

    /// <summary>How to bind <paramref name="device"/> to its bus's VFIO driver: driver_override, unbind from the
    /// current driver, drivers_probe (the commands the kernel documents; driverctl does the same for PCI).</summary>
    /// <param name="device">The device.</param>
    /// <param name="currentDriver">The driver it is bound to now, or null.</param>
    /// <returns>The hint.</returns>
    internal static string BindHint(this VfioDeviceSource device, string? currentDriver)
    {
        string vfio = device.Bus.VfioDriver();
        string dir = device.SysfsDirectory();
        string unbind = currentDriver is null ? string.Empty : $"echo {device.Name} > {dir}/driver/unbind; ";
        string driverctl = device.Bus == VfioBus.Pci ? $" (or driverctl set-override {device.Name} {vfio})" : string.Empty;
        return $"Bind it to {vfio}: modprobe {vfio}; echo {vfio} > {dir}/driver_override; {unbind}echo {device.Name} > /sys/bus/{device.Bus.SysfsName()}/drivers_probe{driverctl}.";
    }
}
