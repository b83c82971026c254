// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Cli.Commands;

/// <summary>Turns a device as the user wrote it into a source, failing with "device not found" before any backend
/// gets to say something vaguer.</summary>
internal static class DeviceLookup
{
    internal static VfioDeviceSource Find(IKernel kernel, string text)
    {
        if (text.StartsWith('-'))
        {
            throw new CliException(ExitCode.Usage, $"'{text}' is not a device name (it looks like an unknown option).", "See vfioctl --help.");
        }
        VfioDeviceSource source;
        try
        {
            source = VfioDeviceSource.Parse(text);
        }
        catch (ArgumentException e)
        {
            throw new CliException(ExitCode.Usage, $"'{text}' is not a device name: {e.Message}",
                "Give a PCI address (0000:00:02.0), a platform device name, or a /sys/bus/*/devices path.");
        }
        if (source.SysfsPath is null || !kernel.Exists(source.SysfsPath))
        {
            throw new CliException(ExitCode.DeviceNotFound, $"There is no device {source.Name} ({source.SysfsPath ?? text} does not exist).",
                "Run 'vfioctl list' for the devices VFIO can use (add --simulate for the simulator's).");
        }
        return source;
    }
}
