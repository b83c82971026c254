// SPDX-License-Identifier: MIT
using System.Text;
using Microsoft.Extensions.Options;

namespace Vfio.Core;

/// <summary>
/// Checks <see cref="VfioOptions"/> at start (<c>ValidateOnStart</c>): the backend name, fd references, and fd
/// settings that contradict the backend. Whether the named backend's package was registered is checked when a backend
/// is selected (<see cref="VfioManager.SelectBackend"/>), where the message can say which call to add.
/// </summary>
internal sealed class VfioOptionsValidator(IEnumerable<VfioBackendRegistration> registrations) : IValidateOptions<VfioOptions>
{
    public ValidateOptionsResult Validate(string? name, VfioOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Each manager (options name) has its own backends; the default manager's name is empty.
        List<string> failures = Check(options, VfioBackendRegistration.For(registrations, name ?? string.Empty).Select(d => d.Name));
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every rule <paramref name="options"/> breaks, one message each.</summary>
    /// <param name="options">The options.</param>
    /// <param name="registered">Names of registered backends, valid besides the built-in ones.</param>
    internal static List<string> Check(VfioOptions options, IEnumerable<string> registered)
    {
        var failures = new List<string>();
        string[] valid = [.. VfioBackendNames.Known.Concat(registered).Distinct(StringComparer.OrdinalIgnoreCase)];
        string backend = options.Backend;
        bool known = !string.IsNullOrWhiteSpace(backend) && valid.Contains(backend, StringComparer.OrdinalIgnoreCase);
        if (!known)
        {
            failures.Add($"Vfio:Backend '{backend}' is not a backend; valid values are: {string.Join(", ", valid)}.");
        }

        bool iommufd = VfioBackendNames.Is(backend, VfioBackendNames.IommuFd);
        bool legacy = VfioBackendNames.Is(backend, VfioBackendNames.Legacy) || VfioBackendNames.Is(backend, VfioBackendNames.SpaprTce);
        if (iommufd)
        {
            if (options.ContainerFd is not null)
            {
                failures.Add("Vfio:ContainerFd passes a legacy container (/dev/vfio/vfio), but Vfio:Backend is iommufd; remove it, or set Backend to legacy.");
            }
            if (options.GroupFds.Count > 0)
            {
                failures.Add("Vfio:GroupFds passes legacy groups (/dev/vfio/N), but Vfio:Backend is iommufd, which attaches device cdevs; pass Vfio:DeviceFds instead, or set Backend to legacy.");
            }
            if (options.IommuFdAsContainer)
            {
                failures.Add("Vfio:IommuFdAsContainer makes the legacy backend use /dev/iommu as its container, but Vfio:Backend is iommufd, which uses /dev/iommu natively; remove it, or set Backend to legacy.");
            }
        }
        if (legacy)
        {
            if (options.DeviceFds.Count > 0)
            {
                failures.Add($"Vfio:DeviceFds passes device cdevs, which only the iommufd backend can use, but Vfio:Backend is {backend}; pass Vfio:GroupFds instead, or set Backend to iommufd.");
            }
            if (options.IommuFd is not null && !options.IommuFdAsContainer)
            {
                failures.Add($"Vfio:IommuFd passes /dev/iommu, but Vfio:Backend is {backend} without Vfio:IommuFdAsContainer; set IommuFdAsContainer=true to use it as the container, or set Backend to iommufd.");
            }
        }

        CheckReference(failures, "Vfio:IommuFd", options.IommuFd);
        CheckReference(failures, "Vfio:ContainerFd", options.ContainerFd);
        foreach ((string group, string reference) in options.GroupFds)
        {
            if (group.Length is 0 or > 9 || !group.All(char.IsAsciiDigit))
            {
                failures.Add($"Vfio:GroupFds:{group}: '{group}' is not an IOMMU group number (the N of /dev/vfio/N).");
            }
            CheckReference(failures, $"Vfio:GroupFds:{group}", reference);
        }
        foreach ((string device, string reference) in options.DeviceFds)
        {
            CheckReference(failures, $"Vfio:DeviceFds:{device}", reference);
        }

        if (options.FdSocket is int socket && socket < 0)
        {
            failures.Add($"Vfio:FdSocket {socket} is not an fd number; give the inherited socket's fd (0 or more), or leave it unset.");
        }
        if (options.FdReceiveTimeout <= TimeSpan.Zero && options.FdReceiveTimeout != Timeout.InfiniteTimeSpan)
        {
            failures.Add($"Vfio:FdReceiveTimeout {options.FdReceiveTimeout} must be positive (or infinite, -00:00:00.001).");
        }
        return failures;
    }

    /// <summary>An fd reference is a decimal fd number (0 to 999999999) or a name: 1 to 255 bytes of UTF-8 with no
    /// control character and no surrounding space, not a negative number.</summary>
    private static void CheckReference(List<string> failures, string setting, string? reference)
    {
        if (reference is null)
        {
            return;
        }
        string? problem = null;
        if (reference.Length > 0 && reference.All(char.IsAsciiDigit))
        {
            if (reference.Length > 9)
            {
                problem = "is too large for an fd number";
            }
        }
        else if (string.IsNullOrWhiteSpace(reference))
        {
            problem = "is empty";
        }
        else if (reference[0] == '-' && reference.Length > 1 && reference.Skip(1).All(char.IsAsciiDigit))
        {
            problem = "is a negative number";
        }
        else if (reference.Any(char.IsControl) || char.IsWhiteSpace(reference[0]) || char.IsWhiteSpace(reference[^1]))
        {
            problem = "contains control characters or surrounding spaces";
        }
        else if (Encoding.UTF8.GetByteCount(reference) > 255)
        {
            problem = "is longer than an fd name may be (255 bytes)";
        }
        if (problem is not null)
        {
            failures.Add($"{setting} '{reference}' {problem}: an fd reference is an inherited fd number (e.g. 3) or the name of an fd received over Vfio:FdSocket (e.g. iommufd).");
        }
    }
}
