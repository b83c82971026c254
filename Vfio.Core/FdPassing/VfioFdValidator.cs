// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Runtime.InteropServices;

namespace Vfio.Core;

/// <summary>
/// Checks that an fd received from a management layer or inherited is what it claims to be, from what the kernel
/// says about it: the character device number (<c>fstat</c>) resolved through <c>/sys/dev/char/MAJOR:MINOR</c>,
/// or <c>/proc/self/fd/N</c> for anonymous-inode device fds. Reads go through the kernel port, so a kernel model
/// can answer them.
/// </summary>
public static class VfioFdValidator
{
    /// <summary>Says what <paramref name="fd"/> is.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="fd">The fd to inspect.</param>
    /// <returns>What it is; <see cref="VfioFdKind.Unknown"/> for anything that is not a VFIO or iommufd object.</returns>
    /// <exception cref="VfioException">The fd is not open (<c>EBADF</c>).</exception>
    public static VfioFdIdentity Identify(IKernel kernel, SafeHandle fd)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(fd);
        string fdName = $"fd {fd.DangerousGetHandle()}";
        VfioException.ThrowIfFailed(kernel.GetStatus(fd, out FileStatus status), "fstat", fdName);
        if (status.Type == FileType.CharacterDevice)
        {
            string link = $"/sys/dev/char/{status.DeviceNumber}";
            if (kernel.ReadLink(link, out string target) < 0)
            {
                return new VfioFdIdentity(VfioFdKind.Unknown, $"char {status.DeviceNumber}", null, null);
            }
            string sysfsPath = ResolveSysfs(link, target);
            return Classify(sysfsPath);
        }
        if (kernel.ReadLink($"/proc/self/fd/{fd.DangerousGetHandle()}", out string procTarget) == 0
            && procTarget == "anon_inode:[vfio-device]")
        {
            return new VfioFdIdentity(VfioFdKind.Device, "[vfio-device]", null, null);
        }
        return new VfioFdIdentity(VfioFdKind.Unknown, status.Type.ToString(), null, null);
    }

    /// <summary>Checks that <paramref name="fd"/> is of the <paramref name="expected"/> kind.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="fd">The fd to check.</param>
    /// <param name="expected">The kind it must be.</param>
    /// <param name="description">What the fd was passed as, for the error message (e.g. <c>Vfio:IommuFd</c>).</param>
    /// <returns>What it is.</returns>
    /// <exception cref="VfioException">It is something else, or not open.</exception>
    public static VfioFdIdentity Expect(IKernel kernel, SafeHandle fd, VfioFdKind expected, string description)
    {
        ArgumentException.ThrowIfNullOrEmpty(description);
        ArgumentNullException.ThrowIfNull(fd);
        if (fd.IsClosed)
        {
            throw NotOpen(description, inner: null);
        }
        VfioFdIdentity identity;
        try
        {
            identity = Identify(kernel, fd);
        }
        catch (VfioException e) when (e.Errno == Errno.EBADF)
        {
            throw NotOpen(description, e);
        }
        bool matches = identity.Kind == expected;
        if (!matches)
        {
            throw new VfioException("validate passed fd", description,
                $"expected {Describe(expected)} but the fd is {Describe(identity)}",
                "The management layer passed the wrong fd: check the fd number or name it was given under.");
        }
        return identity;
    }

    /// <summary>The error for a passed fd that is not open, naming the setting it came from (not only a number the
    /// user never wrote).</summary>
    internal static VfioException NotOpen(string description, Exception? inner)
        => new(Errno.EBADF, "validate passed fd", description,
            "The fd is not open in this process: the launcher must pass it open and inheritable (without FD_CLOEXEC), or the management layer must send it before the library needs it; a borrowed fd must stay open while it is in use.",
            inner);

    private static string Describe(VfioFdKind kind) => kind switch
    {
        VfioFdKind.IommuFd => "an iommufd (/dev/iommu)",
        VfioFdKind.Container => "a VFIO container (/dev/vfio/vfio)",
        VfioFdKind.Group => "a VFIO group (/dev/vfio/N)",
        VfioFdKind.NoIommuGroup => "a no-IOMMU VFIO group (/dev/vfio/noiommu-N)",
        VfioFdKind.DeviceCdev => "a VFIO device cdev (/dev/vfio/devices/vfioN)",
        VfioFdKind.Device => "a VFIO device fd",
        _ => "not a VFIO or iommufd object",
    };

    private static string Describe(VfioFdIdentity identity)
        => identity.Kind == VfioFdKind.Unknown ? $"not a VFIO or iommufd object ({identity.Name})" : $"{Describe(identity.Kind)} '{identity.Name}'";

    /// <summary>Makes a /sys/dev/char link target absolute: <c>../../devices/virtual/misc/iommu</c> → <c>/sys/devices/virtual/misc/iommu</c>.</summary>
    private static string ResolveSysfs(string link, string target)
    {
        if (target.StartsWith('/'))
        {
            return target;
        }
        var parts = new List<string>(link.Split('/', StringSplitOptions.RemoveEmptyEntries));
        parts.RemoveAt(parts.Count - 1);
        foreach (string part in target.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "..")
            {
                if (parts.Count > 0)
                {
                    parts.RemoveAt(parts.Count - 1);
                }
            }
            else if (part != ".")
            {
                parts.Add(part);
            }
        }
        return "/" + string.Join('/', parts);
    }

    /// <summary>Classifies a character device by its sysfs directory (Linux 6.12 naming).</summary>
    internal static VfioFdIdentity Classify(string sysfsPath)
    {
        string[] parts = sysfsPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        string name = parts.Length > 0 ? parts[^1] : string.Empty;
        string parent = parts.Length > 1 ? parts[^2] : string.Empty;
        // misc devices: /sys/devices/virtual/misc/{iommu,vfio}
        if (parent == "misc" && name == "iommu")
        {
            return new VfioFdIdentity(VfioFdKind.IommuFd, name, sysfsPath, null);
        }
        if (parent == "misc" && name == "vfio")
        {
            return new VfioFdIdentity(VfioFdKind.Container, name, sysfsPath, null);
        }
        // groups: class "vfio", /sys/devices/virtual/vfio/{N,noiommu-N}
        if (parent == "vfio")
        {
            if (IsNumber(name))
            {
                return new VfioFdIdentity(VfioFdKind.Group, name, sysfsPath, null);
            }
            if (name.StartsWith("noiommu-", StringComparison.Ordinal) && IsNumber(name["noiommu-".Length..]))
            {
                return new VfioFdIdentity(VfioFdKind.NoIommuGroup, name["noiommu-".Length..], sysfsPath, null);
            }
        }
        // cdevs: class "vfio-dev", a child of the device: <device>/vfio-dev/vfioN
        if (parent == "vfio-dev" && name.StartsWith("vfio", StringComparison.Ordinal) && IsNumber(name["vfio".Length..]) && parts.Length > 2)
        {
            return new VfioFdIdentity(VfioFdKind.DeviceCdev, name, sysfsPath, parts[^3]);
        }
        return new VfioFdIdentity(VfioFdKind.Unknown, sysfsPath, sysfsPath, null);
    }

    private static bool IsNumber(string text)
        => text.Length > 0 && uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out _);
}
