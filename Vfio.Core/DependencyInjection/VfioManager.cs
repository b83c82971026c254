// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vfio.Core;

/// <summary>
/// The facade a host application uses: the registered backends, backend selection by <see cref="VfioOptions.Backend"/>
/// (explicit, or <c>auto</c> by preference and <see cref="IIommuBackend.CanAttach"/>), DMA spaces with the library's
/// logging and metrics, and attaching devices.
/// </summary>
/// <remarks>
/// <para>
/// <b>Ownership.</b> Disposing the manager disposes the DMA spaces it created (each detaches its devices first, then
/// unmaps and releases its containers), then the backends it owns. Under dependency injection (<c>AddVfio</c>) the
/// manager creates its backends from the registered <see cref="IommuBackendDescriptor"/>s and owns them, so disposing
/// the service provider tears down in the required order — devices, mappings, containers, backends — whatever was
/// resolved first. Backends given to the public constructor belong to the caller (dispose them after the manager).
/// </para>
/// </remarks>
public sealed partial class VfioManager : IDisposable
{
    private readonly IIommuBackend[] _backends;
    private readonly bool _ownsBackends;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly VfioMetrics? _metrics;
    private readonly List<DmaSpace> _spaces = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>Creates a manager without dependency injection, over backends the caller created and keeps owning.</summary>
    /// <param name="options">The options; <see cref="VfioOptions.Backend"/> picks the backend.</param>
    /// <param name="backends">The backends, in order of preference under <c>auto</c> (first asked first).</param>
    /// <param name="loggerFactory">Where the manager and its spaces log; null for nowhere.</param>
    /// <param name="metrics">Where its spaces record mappings; null for no metrics.</param>
    /// <exception cref="ArgumentException">The options break a rule (an unknown backend, conflicting fd settings), or two
    /// backends have the same name.</exception>
    public VfioManager(VfioOptions options, IEnumerable<IIommuBackend> backends, ILoggerFactory? loggerFactory = null,
        VfioMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backends);
        IIommuBackend[] list = [.. backends];
        foreach (IIommuBackend backend in list)
        {
            ArgumentNullException.ThrowIfNull(backend, nameof(backends));
        }
        string? duplicate = list.GroupBy(b => b.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1)?.Key;
        if (duplicate is not null)
        {
            throw new ArgumentException($"Two backends are named '{duplicate}'; give each backend kind once.", nameof(backends));
        }
        List<string> failures = VfioOptionsValidator.Check(options, list.Select(b => b.Name));
        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", failures), nameof(options));
        }
        Options = options;
        _backends = list;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<VfioManager>();
        _metrics = metrics;
    }

    /// <summary>The dependency-injection path: the manager creates its backends from <paramref name="descriptors"/>
    /// (most preferred first) and owns them.</summary>
    internal VfioManager(string name, VfioOptions options, IommuBackendDescriptor[] descriptors, IKernel kernel, VfioFdStore fdStore,
        ILoggerFactory? loggerFactory, VfioMetrics? metrics, IServiceProvider? services)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(descriptors);
        ArgumentNullException.ThrowIfNull(kernel);
        Name = name;
        Options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<VfioManager>();
        _metrics = metrics;
        var context = new VfioBackendContext(name, options, kernel, fdStore, _loggerFactory, services);
        var created = new List<IIommuBackend>(descriptors.Length);
        try
        {
            foreach (IommuBackendDescriptor descriptor in descriptors)
            {
                IIommuBackend backend = descriptor.Factory(context)
                    ?? throw new InvalidOperationException($"The factory of the backend descriptor '{descriptor.Name}' returned null.");
                created.Add(backend);
                if (!VfioBackendNames.Is(backend.Name, descriptor.Name))
                {
                    throw new InvalidOperationException($"The backend descriptor '{descriptor.Name}' created a backend named '{backend.Name}'; a descriptor's name must be its backend's name.");
                }
            }
        }
        catch
        {
            DisposeBackends(created);
            throw;
        }
        _backends = [.. created];
        _ownsBackends = true;
    }

    /// <summary>The manager's name: empty for the default manager, else its service key (<c>AddVfio(name, ...)</c>).</summary>
    public string Name { get; } = string.Empty;

    /// <summary>The options the manager selects by.</summary>
    public VfioOptions Options { get; }

    /// <summary>The available backends, most preferred first.</summary>
    public IReadOnlyList<IIommuBackend> Backends => _backends;

    /// <summary>
    /// Picks the backend for <paramref name="device"/>: the configured one when <see cref="VfioOptions.Backend"/>
    /// names one, or under <c>auto</c> the first, by preference, whose <see cref="IIommuBackend.CanAttach"/> holds
    /// (logged with the reasons of the backends passed over).
    /// </summary>
    /// <param name="device">The device to attach.</param>
    /// <returns>The backend.</returns>
    /// <exception cref="VfioBackendUnavailableException">The configured backend's package was not registered, or under
    /// <c>auto</c> no backend can attach the device (the message gives each backend's reason).</exception>
    public IIommuBackend SelectBackend(VfioDeviceSource device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!VfioBackendNames.IsAuto(Options.Backend))
        {
            IIommuBackend chosen = Configured();
            LogConfigured(_logger, chosen.Name, device.Name);
            return chosen;
        }
        if (_backends.Length == 0)
        {
            throw NoneRegistered();
        }
        var passedOver = new List<string>();
        foreach (IIommuBackend backend in _backends)
        {
            if (backend.CanAttach(device, out string reason))
            {
                LogChosen(_logger, backend.Name, device.Name, reason, passedOver.Count == 0 ? "none" : string.Join("; ", passedOver));
                return backend;
            }
            passedOver.Add($"{backend.Name}: {reason}");
        }
        throw new VfioBackendUnavailableException(VfioBackendNames.Auto,
            $"a backend that can attach {device.Name} ({string.Join("; ", passedOver)})",
            hint: "Make the kernel interface a backend needs available (e.g. bind the device to vfio-pci, load the vfio or iommufd module), or register another backend.");
    }

    /// <summary>
    /// Picks the backend for this machine without a particular device: the configured one when
    /// <see cref="VfioOptions.Backend"/> names one; under <c>auto</c>, by preference, the first backend that says it is
    /// available (<see cref="IIommuBackend.IsAvailable"/>: its kernel interface exists or its fd was passed). Prefer
    /// <see cref="SelectBackend"/> when the device is known (it also checks the device's cdev).
    /// </summary>
    /// <returns>The backend.</returns>
    /// <exception cref="VfioBackendUnavailableException">The configured backend's package was not registered, or none
    /// is usable on this machine.</exception>
    public IIommuBackend SelectDefaultBackend()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!VfioBackendNames.IsAuto(Options.Backend))
        {
            return Configured();
        }
        if (_backends.Length == 0)
        {
            throw NoneRegistered();
        }
        var passedOver = new List<string>();
        foreach (IIommuBackend backend in _backends)
        {
            if (!backend.IsAvailable(out string reason))
            {
                passedOver.Add($"{backend.Name}: {reason}");
                continue;
            }
            LogChosen(_logger, backend.Name, "this machine", reason, passedOver.Count == 0 ? "none" : string.Join("; ", passedOver));
            return backend;
        }
        throw new VfioBackendUnavailableException(VfioBackendNames.Auto, $"a usable backend ({string.Join("; ", passedOver)})",
            hint: VfioBackendNames.RegistrationHint(VfioBackendNames.Legacy));
    }

    /// <summary>Creates a DMA space that logs through the manager's logger factory and records into its metrics; the
    /// manager disposes it (before its backends) unless the caller did first.</summary>
    /// <param name="name">The space's name in messages.</param>
    /// <returns>The space.</returns>
    public DmaSpace CreateDmaSpace(string name = "dma")
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _spaces.RemoveAll(s => s.IsDisposed);
            var space = new DmaSpace(name, _loggerFactory.CreateLogger<DmaSpace>(), _metrics);
            _spaces.Add(space);
            return space;
        }
    }

    /// <summary>Selects a backend for <paramref name="device"/> (<see cref="SelectBackend"/>) and attaches the device
    /// into <paramref name="space"/>. Under <c>auto</c>, when no backend can attach the device but one is available on
    /// the machine, that one attempts the attach, so the error names what is wrong with the device (e.g. no such device,
    /// errno <c>ENOENT</c>) rather than the backends.</summary>
    /// <param name="device">The device.</param>
    /// <param name="space">The DMA space it joins.</param>
    /// <returns>The attached device; disposing it detaches it.</returns>
    /// <exception cref="VfioBackendUnavailableException">No backend is available on this machine.</exception>
    /// <exception cref="VfioDeviceUnusableException">The device cannot be used as it is.</exception>
    /// <exception cref="VfioException">A kernel call failed.</exception>
    public AttachedDevice AttachDevice(VfioDeviceSource device, DmaSpace space)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(space);
        IIommuBackend backend;
        try
        {
            backend = SelectBackend(device);
        }
        catch (VfioBackendUnavailableException) when (VfioBackendNames.IsAuto(Options.Backend) && FirstAvailable() is IIommuBackend available)
        {
            // No backend can attach the device, yet one works on this machine: its attach says why in the device's
            // terms (no such device, not bound to VFIO, group not viable), with the same errno whichever backend it is.
            backend = available;
        }
        return backend.AttachDevice(device, space);
    }

    private IIommuBackend? FirstAvailable()
    {
        foreach (IIommuBackend backend in _backends)
        {
            if (backend.IsAvailable(out _))
            {
                return backend;
            }
        }
        return null;
    }

    /// <summary>Attaches a device named as a user writes it (<see cref="VfioDeviceSource.Parse"/>): a PCI address, a
    /// sysfs path, or a platform device name.</summary>
    /// <param name="device">The device, e.g. <c>0000:00:02.0</c>.</param>
    /// <param name="space">The DMA space it joins.</param>
    /// <returns>The attached device; disposing it detaches it.</returns>
    /// <exception cref="ArgumentException">The text names no device in a valid form.</exception>
    /// <exception cref="VfioBackendUnavailableException">No backend is available for it.</exception>
    /// <exception cref="VfioException">The device cannot be attached.</exception>
    public AttachedDevice AttachDevice(string device, DmaSpace space) => AttachDevice(VfioDeviceSource.Parse(device), space);

    /// <summary>Disposes the spaces the manager created (their devices detach first), then the backends it owns (those
    /// it created from descriptors under dependency injection).</summary>
    public void Dispose()
    {
        DmaSpace[] spaces;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            spaces = [.. _spaces];
            _spaces.Clear();
        }
        for (int i = spaces.Length - 1; i >= 0; i--)
        {
            try
            {
                spaces[i].Dispose();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                LogTeardownFailed(_logger, spaces[i].ToString(), e);
            }
        }
        if (_ownsBackends)
        {
            DisposeBackends(_backends);
        }
    }

    private void DisposeBackends(IReadOnlyList<IIommuBackend> backends)
    {
        for (int i = backends.Count - 1; i >= 0; i--)
        {
            try
            {
                (backends[i] as IDisposable)?.Dispose();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                LogTeardownFailed(_logger, backends[i].Name + " backend", e);
            }
        }
    }

    private IIommuBackend Configured()
    {
        foreach (IIommuBackend backend in _backends)
        {
            if (VfioBackendNames.Is(backend.Name, Options.Backend))
            {
                return backend;
            }
        }
        string registered = _backends.Length == 0 ? "none" : string.Join(", ", _backends.Select(b => b.Name));
        throw new VfioBackendUnavailableException(Options.Backend,
            $"its package: Vfio:Backend is '{Options.Backend}' but that backend was not registered (registered: {registered})",
            hint: VfioBackendNames.RegistrationHint(Options.Backend));
    }

    private static VfioBackendUnavailableException NoneRegistered() => new(VfioBackendNames.Auto,
        "a registered backend: no backend package was added",
        hint: "Call AddIommuFdBackend() and/or AddLegacyBackend() on the VfioBuilder that services.AddVfio(...) returned.");

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "VFIO backend {Backend} chosen for {Device}: {Reason}; passed over: {PassedOver}")]
    private static partial void LogChosen(ILogger logger, string backend, string device, string reason, string passedOver);

    [LoggerMessage(EventId = 112, Level = LogLevel.Debug, Message = "VFIO backend {Backend} used for {Device}, as configured (Vfio:Backend)")]
    private static partial void LogConfigured(ILogger logger, string backend, string device);

    [LoggerMessage(EventId = 113, Level = LogLevel.Warning, Message = "Disposing {Object} failed while disposing the VFIO manager")]
    private static partial void LogTeardownFailed(ILogger logger, string @object, Exception exception);
}
