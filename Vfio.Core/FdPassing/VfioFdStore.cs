// SPDX-License-Identifier: MIT
using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core;

/// <summary>
/// The fds a management layer handed this process, by name (QEMU's <c>getfd</c>/<c>add-fd</c> idea), and the
/// resolution of the fd references in <see cref="VfioOptions"/>: a decimal number is an inherited fd, anything else
/// a name in this store.
/// </summary>
/// <remarks>
/// The store owns the fds added to it and closes those still in it when disposed. <see cref="Resolve"/> lends an fd
/// (the store or the launcher keeps it); <see cref="TryTake"/> hands one over. Every resolved fd is checked for
/// what it must be (<see cref="VfioFdValidator"/>) before the library uses it.
/// </remarks>
public sealed class VfioFdStore : IDisposable
{
    private readonly IKernel _kernel;
    private readonly Dictionary<string, SafeFileHandle> _fds = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>Creates an empty store.</summary>
    /// <param name="kernel">The kernel port used to check fds.</param>
    public VfioFdStore(IKernel kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        _kernel = kernel;
    }

    /// <summary>The names of the fds in the store.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            lock (_lock)
            {
                return [.. _fds.Keys];
            }
        }
    }

    /// <summary>Adds an fd under <paramref name="name"/>; the store owns it from now on.</summary>
    /// <param name="name">The name options refer to it by; not a decimal number.</param>
    /// <param name="handle">The fd.</param>
    /// <exception cref="ArgumentException">The name is empty, a number, or already used.</exception>
    public void Add(string name, SafeFileHandle handle)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(handle);
        if (IsNumber(name))
        {
            throw new ArgumentException($"'{name}' is a number, which means an inherited fd in an fd reference; give the fd a name.", nameof(name));
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_fds.TryAdd(name, handle))
            {
                throw new ArgumentException($"An fd named '{name}' is already in the store.", nameof(name));
            }
        }
    }

    /// <summary>Moves every fd of <paramref name="received"/> into the store under its name.</summary>
    /// <param name="received">Fds received over a Unix socket (<see cref="FdPassing.Receive"/>).</param>
    public void Add(ReceivedFds received)
    {
        ArgumentNullException.ThrowIfNull(received);
        foreach (string name in received.Names)
        {
            if (received.TryTake(name, out SafeFileHandle? handle))
            {
                Add(name, handle);
            }
        }
    }

    /// <summary>Takes the fd named <paramref name="name"/> out of the store; the caller owns it.</summary>
    /// <param name="name">The fd's name.</param>
    /// <param name="handle">The fd, or null.</param>
    /// <returns>True when the store had it.</returns>
    public bool TryTake(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SafeFileHandle? handle)
    {
        lock (_lock)
        {
            return _fds.Remove(name, out handle);
        }
    }

    /// <summary>
    /// Resolves an fd reference and checks it is <paramref name="expected"/>: a decimal number is an fd inherited
    /// from the launcher (borrowed, never closed by the library), anything else the name of an fd in this store
    /// (lent; the store keeps it).
    /// </summary>
    /// <param name="reference">The reference, e.g. <c>3</c> or <c>iommufd</c>.</param>
    /// <param name="expected">What the fd must be.</param>
    /// <param name="description">What the reference configures, for messages, e.g. <c>Vfio:IommuFd</c>.</param>
    /// <returns>A handle that does not own the fd.</returns>
    /// <exception cref="VfioException">No such fd (not inherited, no such name), or it is not what it must be.</exception>
    public SafeFileHandle Resolve(string reference, VfioFdKind expected, string description)
    {
        ArgumentException.ThrowIfNullOrEmpty(reference);
        ArgumentException.ThrowIfNullOrEmpty(description);
        SafeFileHandle handle;
        if (IsNumber(reference))
        {
            int fd = int.Parse(reference, NumberStyles.None, CultureInfo.InvariantCulture);
            try
            {
                handle = FdPassing.AdoptInherited(fd, ownsHandle: false);
            }
            catch (VfioException e) when (e.Errno == Errno.EBADF)
            {
                throw VfioFdValidator.NotOpen($"{description} ({reference})", e);
            }
        }
        else
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!_fds.TryGetValue(reference, out SafeFileHandle? stored))
                {
                    string known = _fds.Count == 0 ? "none" : string.Join(", ", _fds.Keys);
                    throw new VfioException("resolve passed fd", description,
                        $"no fd named '{reference}' was received (received: {known})",
                        "The management layer must send the fd under this name over the fd socket before the library needs it, or pass an inherited fd number.");
                }
                // A stored handle someone closed has a stale number that may now be another file's: never lend it.
                if (stored.IsClosed)
                {
                    throw VfioFdValidator.NotOpen($"{description} ({reference})", new ObjectDisposedException(reference));
                }
                handle = new SafeFileHandle(stored.DangerousGetHandle(), ownsHandle: false);
            }
        }
        VfioFdValidator.Expect(_kernel, handle, expected, $"{description} ({reference})");
        return handle;
    }

    /// <summary>Closes the fds still in the store.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            foreach (SafeFileHandle handle in _fds.Values)
            {
                handle.Dispose();
            }
            _fds.Clear();
        }
    }

    private static bool IsNumber(string text) => text.Length is > 0 and <= 9 && text.All(char.IsAsciiDigit);
}
