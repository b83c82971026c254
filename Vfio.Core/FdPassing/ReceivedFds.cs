// SPDX-License-Identifier: MIT
using System.Diagnostics.CodeAnalysis;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core;

/// <summary>
/// The fds of one received message, by name. They are owned by this object until taken: each can be taken once,
/// and disposing this object closes every fd nobody took.
/// </summary>
public sealed class ReceivedFds : IDisposable
{
    private readonly Dictionary<string, SafeFileHandle?> _fds;

    internal ReceivedFds(Dictionary<string, SafeFileHandle?> fds)
    {
        _fds = fds;
        Names = [.. fds.Keys];
    }

    /// <summary>The names in the message, in the order they were sent.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Takes ownership of the fd sent as <paramref name="name"/>.</summary>
    /// <param name="name">The name.</param>
    /// <returns>The fd, now owned by the caller.</returns>
    /// <exception cref="KeyNotFoundException">The message has no fd of that name.</exception>
    /// <exception cref="InvalidOperationException">The fd was already taken.</exception>
    public SafeFileHandle Take(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_fds.TryGetValue(name, out SafeFileHandle? handle))
        {
            throw new KeyNotFoundException($"No fd named '{name}' was received (received: {string.Join(", ", Names)}).");
        }
        if (handle is null)
        {
            throw new InvalidOperationException($"The fd named '{name}' was already taken.");
        }
        _fds[name] = null;
        return handle;
    }

    /// <summary>Takes ownership of the fd sent as <paramref name="name"/>, if there is one not yet taken.</summary>
    /// <param name="name">The name.</param>
    /// <param name="handle">The fd, now owned by the caller.</param>
    /// <returns>True when it was there.</returns>
    public bool TryTake(string name, [NotNullWhen(true)] out SafeFileHandle? handle)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_fds.TryGetValue(name, out handle) && handle is not null)
        {
            _fds[name] = null;
            return true;
        }
        handle = null;
        return false;
    }

    private bool _disposed;

    /// <summary>Closes every fd that was not taken.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (SafeFileHandle? handle in _fds.Values)
        {
            handle?.Dispose();
        }
        _fds.Clear();
    }
}
