// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vfio.Core;

/// <summary>
/// What a backend factory (<see cref="IommuBackendDescriptor.Factory"/>) builds a backend from: the options of the
/// <see cref="VfioManager"/> the backend is for, and the shared services (kernel port, fd store, logging).
/// </summary>
public sealed class VfioBackendContext
{
    internal VfioBackendContext(string managerName, VfioOptions options, IKernel kernel, VfioFdStore fdStore,
        ILoggerFactory? loggerFactory, IServiceProvider? services)
    {
        ManagerName = managerName;
        Options = options;
        Kernel = kernel;
        FdStore = fdStore;
        LoggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        Services = services;
    }

    /// <summary>The manager's name: empty for the default manager, else the name given to <c>AddVfio(name, ...)</c>.</summary>
    public string ManagerName { get; }

    /// <summary>The manager's options (its <c>Vfio</c> configuration section).</summary>
    public VfioOptions Options { get; }

    /// <summary>The kernel port.</summary>
    public IKernel Kernel { get; }

    /// <summary>The manager's fd store: the fds a management layer passed by name (received from
    /// <see cref="VfioOptions.FdSocket"/>). Backends borrow the fds they resolve from it; it outlives the manager.</summary>
    public VfioFdStore FdStore { get; }

    /// <summary>Where the backend logs.</summary>
    public ILoggerFactory LoggerFactory { get; }

    /// <summary>The service provider, for a backend package's own services; null without dependency injection.</summary>
    public IServiceProvider? Services { get; }

    /// <summary>Creates a logger whose category is <typeparamref name="T"/>'s full name.</summary>
    /// <typeparam name="T">The category type, usually the backend.</typeparam>
    /// <returns>The logger.</returns>
    public ILogger<T> CreateLogger<T>() => LoggerFactory.CreateLogger<T>();
}
