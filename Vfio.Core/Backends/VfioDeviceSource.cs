// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core;

/// <summary>The bus a VFIO device sits on.</summary>
public enum VfioBus
{
    /// <summary>PCI (vfio-pci and its variant drivers).</summary>
    Pci,

    /// <summary>Platform and AMBA devices (vfio-platform, vfio-amba).</summary>
    Platform,
}

/// <summary>
/// Which device to attach: a PCI address, a platform device name, a sysfs path, or a device fd a management layer
/// passed (a bound-to-nothing cdev, usable with iommufd only).
/// </summary>
/// <remarks>
/// A name is the last component of the device's sysfs path; one that contains <c>/</c> or is <c>.</c> or
/// <c>..</c> is refused, so a name from configuration can never point outside <c>/sys/bus/*/devices</c>.
/// </remarks>
public sealed partial class VfioDeviceSource
{
    private VfioDeviceSource(string name, VfioBus bus, string? sysfsPath, SafeFileHandle? deviceFd, bool ownsDeviceFd)
    {
        Name = name;
        Bus = bus;
        SysfsPath = sysfsPath;
        DeviceFd = deviceFd;
        OwnsDeviceFd = ownsDeviceFd;
    }

    /// <summary>The device's name, e.g. <c>0000:00:02.0</c> or <c>LNRO0005:02</c>.</summary>
    public string Name { get; }

    /// <summary>The device's bus.</summary>
    public VfioBus Bus { get; }

    /// <summary>The device's sysfs directory, e.g. <c>/sys/bus/pci/devices/0000:00:02.0</c>; null for a passed fd
    /// whose sysfs entry is unknown.</summary>
    public string? SysfsPath { get; }

    /// <summary>A device cdev fd a management layer passed (iommufd only); null when the backend opens the device.</summary>
    public SafeFileHandle? DeviceFd { get; }

    /// <summary>True when the attached device takes over <see cref="DeviceFd"/> (closes it on detach); false when it
    /// is borrowed and the caller keeps it open for as long as the device is attached.</summary>
    public bool OwnsDeviceFd { get; }

    /// <summary>A PCI device by its address.</summary>
    /// <param name="address">The address, <c>0000:00:02.0</c>; <c>00:02.0</c> gets domain 0000.</param>
    /// <returns>The source.</returns>
    /// <exception cref="ArgumentException">The address is not of the form <c>[dddd:]bb:ss.f</c>.</exception>
    public static VfioDeviceSource Pci(string address)
    {
        RequireText(address, nameof(address));
        string full = ShortPciAddress().IsMatch(address) ? "0000:" + address : address;
        if (!PciAddress().IsMatch(full))
        {
            throw new ArgumentException(
                $"'{address}' is not a PCI address; write it as domain:bus:slot.function in hex, e.g. 0000:00:02.0 (see lspci -D).",
                nameof(address));
        }
        string name = full.ToLowerInvariant();
        return new VfioDeviceSource(name, VfioBus.Pci, "/sys/bus/pci/devices/" + name, null, false);
    }

    /// <summary>A platform (or AMBA) device by its name in <c>/sys/bus/platform/devices</c>.</summary>
    /// <param name="name">The name, e.g. <c>LNRO0005:02</c> or <c>fff51000.ethernet</c>.</param>
    /// <returns>The source.</returns>
    /// <exception cref="ArgumentException">The name contains <c>/</c>, is <c>.</c> or <c>..</c>, or is empty.</exception>
    public static VfioDeviceSource Platform(string name)
    {
        ValidateName(name, nameof(name));
        return new VfioDeviceSource(name, VfioBus.Platform, "/sys/bus/platform/devices/" + name, null, false);
    }

    /// <summary>A device by its sysfs directory: <c>/sys/bus/pci/devices/NAME</c>, <c>/sys/bus/platform/devices/NAME</c>
    /// or <c>/sys/bus/amba/devices/NAME</c>.</summary>
    /// <param name="path">The path.</param>
    /// <returns>The source.</returns>
    /// <exception cref="ArgumentException">The path is not a device directory of those buses, or contains <c>..</c>.</exception>
    public static VfioDeviceSource FromSysfsPath(string path)
    {
        RequireText(path, nameof(path));
        string trimmed = path.TrimEnd('/');
        Match match = SysfsDevicePath().Match(trimmed);
        if (!match.Success || match.Groups["name"].Value is "." or "..")
        {
            throw new ArgumentException(
                $"'{path}' is not a device directory; give /sys/bus/pci/devices/<address> or /sys/bus/platform/devices/<name>.",
                nameof(path));
        }
        string name = match.Groups["name"].Value;
        return match.Groups["bus"].Value == "pci"
            ? Pci(name)
            : new VfioDeviceSource(name, VfioBus.Platform, trimmed, null, false);
    }

    /// <summary>Reads a device as a user writes it: a sysfs path (starts with <c>/sys/</c>), a PCI address, or else a
    /// platform device name.</summary>
    /// <param name="text">The text, e.g. from configuration or a command line.</param>
    /// <returns>The source.</returns>
    /// <exception cref="ArgumentException">The text names no device in a valid form (see the other factories).</exception>
    public static VfioDeviceSource Parse(string text)
    {
        RequireText(text, nameof(text));
        if (text.StartsWith("/sys/", StringComparison.Ordinal))
        {
            return FromSysfsPath(text);
        }
        if (PciAddress().IsMatch(text) || ShortPciAddress().IsMatch(text))
        {
            return Pci(text);
        }
        return Platform(text);
    }

    /// <summary>A device cdev (<c>/dev/vfio/devices/vfioN</c>) fd that a management layer opened and passed; only the
    /// iommufd backend accepts it, as the kernel binds a cdev to an iommufd and nothing else.</summary>
    /// <param name="deviceFd">The open cdev.</param>
    /// <param name="name">The device's name for messages and sysfs lookups, e.g. <c>0000:00:02.0</c>.</param>
    /// <param name="bus">The device's bus.</param>
    /// <param name="ownsHandle">True to hand the fd over (closed when the device detaches, or when a backend refuses the
    /// attach); false to lend it (never closed by the library).</param>
    /// <returns>The source.</returns>
    /// <exception cref="ArgumentException">The fd is closed or invalid, or the name is not a valid device name.</exception>
    public static VfioDeviceSource FromDeviceFd(SafeFileHandle deviceFd, string name, VfioBus bus = VfioBus.Pci, bool ownsHandle = false)
    {
        ArgumentNullException.ThrowIfNull(deviceFd);
        ValidateName(name, nameof(name));
        if (deviceFd.IsInvalid || deviceFd.IsClosed)
        {
            throw new ArgumentException(
                $"The device fd given for {name} is closed or invalid: pass an open VFIO device cdev (/dev/vfio/devices/vfioN) and keep it open until the attach has taken it (or hand it over with ownsHandle).",
                nameof(deviceFd));
        }
        string? sysfs = bus == VfioBus.Pci ? "/sys/bus/pci/devices/" + name : "/sys/bus/platform/devices/" + name;
        return new VfioDeviceSource(name, bus, sysfs, deviceFd, ownsHandle);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    private static void ValidateName(string name, string parameter)
    {
        RequireText(name, parameter);
        if (name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
        {
            throw new ArgumentException(
                $"'{name}' is not a device name: a name is the last component of the device's sysfs path (no '/', not '.' or '..'), e.g. 0000:00:02.0; pass a path with FromSysfsPath.",
                parameter);
        }
    }

    // A device's text comes from configuration or a command line: an empty one, or one with a control character (a
    // trailing newline from a file, a NUL), names nothing the user can see, so it is refused with what to write instead.
    private static void RequireText(string text, string parameter)
    {
        ArgumentNullException.ThrowIfNull(text, parameter);
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ArgumentException(
                "No device was named (the name is empty); give a PCI address such as 0000:00:02.0, a platform device name, or a sysfs device path (vfioctl list shows them).",
                parameter);
        }
        int bad = text.AsSpan().IndexOfAnyInRange('\0', '\x1f');
        if (bad < 0)
        {
            bad = text.IndexOf('\x7f', StringComparison.Ordinal);
        }
        if (bad >= 0)
        {
            throw new ArgumentException(
                $"The device name \"{Escape(text)}\" contains a control character (U+{(int)text[bad]:X4} at position {bad}); remove it (a name read from a file often ends in a newline: trim it).",
                parameter);
        }
    }

    private static string Escape(string text)
    {
        var escaped = new System.Text.StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            _ = c is < ' ' or '\x7f' ? escaped.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}") : escaped.Append(c);
        }
        return escaped.ToString();
    }

    // \z, not $: $ also matches before a trailing newline, which would let "0000:00:02.0\n" pass as an address.
    [GeneratedRegex("^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\\.[0-7]\\z", RegexOptions.CultureInvariant)]
    private static partial Regex PciAddress();

    [GeneratedRegex("^[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\\.[0-7]\\z", RegexOptions.CultureInvariant)]
    private static partial Regex ShortPciAddress();

    [GeneratedRegex("^/sys/bus/(?<bus>pci|platform|amba)/devices/(?<name>[^/\\x00-\\x1f\\x7f]+)\\z", RegexOptions.CultureInvariant)]
    private static partial Regex SysfsDevicePath();
}
