// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>A backend registered for the manager named <paramref name="Manager"/> (empty: the default manager).</summary>
internal sealed record VfioBackendRegistration(string Manager, IommuBackendDescriptor Descriptor)
{
    /// <summary>The descriptors registered for <paramref name="manager"/>, the last registration of a name winning
    /// (in the place of the first), most preferred first; equal preferences keep registration order.</summary>
    internal static IommuBackendDescriptor[] For(IEnumerable<VfioBackendRegistration> registrations, string manager)
    {
        var byName = new Dictionary<string, IommuBackendDescriptor>(StringComparer.OrdinalIgnoreCase);
        var order = new List<string>();
        foreach (VfioBackendRegistration registration in registrations)
        {
            if (registration.Manager != manager)
            {
                continue;
            }
            if (byName.TryAdd(registration.Descriptor.Name, registration.Descriptor))
            {
                order.Add(registration.Descriptor.Name);
            }
            else
            {
                byName[registration.Descriptor.Name] = registration.Descriptor;
            }
        }
        return [.. order.Select(n => byName[n]).OrderByDescending(d => d.Preference)];
    }
}
