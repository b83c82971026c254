// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The backends created from the registered <see cref="IommuBackendDescriptor"/>s (the last registration of a name
/// wins), most preferred first. A container singleton that owns them: the container disposes it after the
/// <see cref="VfioManager"/> that depends on it, so devices detach before any backend is disposed.
/// </summary>
internal sealed class VfioBackendSet : IDisposable
{
    private readonly HashSet<IIommuBackend> _containerOwned = new(ReferenceEqualityComparer.Instance);
    private readonly Lock _lock = new();
    private bool _disposed;

    internal VfioBackendSet(IEnumerable<IommuBackendDescriptor> descriptors, IServiceProvider services)
    {
        var byName = new Dictionary<string, IommuBackendDescriptor>(StringComparer.OrdinalIgnoreCase);
        var order = new List<string>();
        foreach (IommuBackendDescriptor descriptor in descriptors)
        {
            ArgumentNullException.ThrowIfNull(descriptor, nameof(descriptors));
            ArgumentException.ThrowIfNullOrEmpty(descriptor.Name, nameof(descriptors));
            if (byName.TryAdd(descriptor.Name, descriptor))
            {
                order.Add(descriptor.Name);
            }
            else
            {
                byName[descriptor.Name] = descriptor;
            }
        }
        // OrderByDescending is stable: equal preferences keep registration order.
        IommuBackendDescriptor[] sorted = [.. order.Select(n => byName[n]).OrderByDescending(d => d.Preference)];
        var created = new List<IIommuBackend>(sorted.Length);
        try
        {
            foreach (IommuBackendDescriptor descriptor in sorted)
            {
                created.Add(descriptor.Factory(services)
                    ?? throw new InvalidOperationException($"The factory of the backend descriptor '{descriptor.Name}' returned null."));
            }
        }
        catch
        {
            for (int i = created.Count - 1; i >= 0; i--)
            {
                (created[i] as IDisposable)?.Dispose();
            }
            throw;
        }
        Backends = [.. created];
    }

    internal IIommuBackend[] Backends { get; }

    /// <summary>Records that the container resolved <paramref name="backend"/> as the <see cref="IIommuBackend"/>
    /// service and so disposes it itself; the set then leaves it alone, so that it is disposed once.</summary>
    internal void HandedToContainer(IIommuBackend backend)
    {
        lock (_lock)
        {
            _containerOwned.Add(backend);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
        }
        for (int i = Backends.Length - 1; i >= 0; i--)
        {
            if (!_containerOwned.Contains(Backends[i]) && Backends[i] is IDisposable disposable)
            {
                disposable.Dispose();
            }
        }
    }
}
