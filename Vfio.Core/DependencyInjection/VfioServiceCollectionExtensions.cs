// SPDX-License-Identifier: MIT
using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Vfio.Core;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds VFIO to a service collection: options, the kernel port, the fd store, metrics and a
/// <see cref="VfioManager"/>. Backend packages then add themselves on the returned <see cref="VfioBuilder"/>.</summary>
/// <example>
/// <code>
/// builder.Services.AddVfio(builder.Configuration.GetSection(VfioOptions.SectionName))
///     .AddIommuFdBackend()
///     .AddLegacyBackend();
///
/// // Two independent managers (e.g. two VM hosts), each with its own options and backends:
/// builder.Services.AddVfio("vm1", builder.Configuration.GetSection("Vm1:Vfio")).AddLegacyBackend();
/// builder.Services.AddVfio("vm2", builder.Configuration.GetSection("Vm2:Vfio")).AddIommuFdBackend();
/// // ... services.GetRequiredKeyedService&lt;VfioManager&gt;("vm1")
/// </code>
/// </example>
/// <remarks>
/// <para>
/// <b>Ownership.</b> The manager is the one owner of its backends: it creates each registered backend once (from its
/// <see cref="IommuBackendDescriptor"/>), and disposing it disposes its DMA spaces (devices detach first, then mappings
/// and containers go) and then its backends. The service provider disposes the manager; nothing depends on the order in
/// which services were resolved.
/// </para>
/// <para>
/// Registered: <see cref="VfioOptions"/> (bound by the configuration binding source generator, validated on start: an
/// unknown backend, conflicting fd settings, malformed fd references), <see cref="IKernel"/> (the running kernel unless
/// one is registered already), <see cref="VfioFdStore"/> (filled from <see cref="VfioOptions.FdSocket"/> on first
/// use), <see cref="VfioMetrics"/> and <see cref="VfioManager"/>; for a named manager the fd store and the manager are
/// keyed services under its name. Logging is the host's: with no <see cref="ILoggerFactory"/> registered nothing is
/// logged.
/// </para>
/// </remarks>
public static class VfioServiceCollectionExtensions
{
    /// <summary>
    /// Adds the default <see cref="VfioManager"/> with options bound from <paramref name="configuration"/>, the
    /// <c>Vfio</c> section (e.g. <c>Vfio:Backend=iommufd</c>), validated when the host starts.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The <c>Vfio</c> section (<c>configuration.GetSection(VfioOptions.SectionName)</c>).</param>
    /// <returns>The builder, for the backend packages' <c>Add...Backend()</c>.</returns>
    public static VfioBuilder AddVfio(this IServiceCollection services, IConfiguration configuration)
        => AddVfio(services, string.Empty, configuration);

    /// <summary>Adds the default <see cref="VfioManager"/> with options set in code, validated when the host starts.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options; null keeps the defaults (<c>Backend=auto</c>).</param>
    /// <returns>The builder, for the backend packages' <c>Add...Backend()</c>.</returns>
    public static VfioBuilder AddVfio(this IServiceCollection services, Action<VfioOptions>? configure = null)
        => AddVfio(services, string.Empty, configure);

    /// <summary>
    /// Adds a <see cref="VfioManager"/> named <paramref name="name"/>, a keyed service
    /// (<c>GetRequiredKeyedService&lt;VfioManager&gt;(name)</c>, <c>[FromKeyedServices(name)]</c>) with its own options
    /// bound from <paramref name="configuration"/> and its own backends; an empty name adds the default manager.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The manager's name (its service key and options name).</param>
    /// <param name="configuration">Its configuration section.</param>
    /// <returns>The builder, for the backend packages' <c>Add...Backend()</c>.</returns>
    public static VfioBuilder AddVfio(this IServiceCollection services, string name, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<VfioOptions>(name).Bind(configuration);
        return AddVfioCore(services, name);
    }

    /// <summary>Adds a <see cref="VfioManager"/> named <paramref name="name"/> (a keyed service) with options set in
    /// code; an empty name adds the default manager.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The manager's name (its service key and options name).</param>
    /// <param name="configure">Sets the options; null keeps the defaults (<c>Backend=auto</c>).</param>
    /// <returns>The builder, for the backend packages' <c>Add...Backend()</c>.</returns>
    public static VfioBuilder AddVfio(this IServiceCollection services, string name, Action<VfioOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(name);
        OptionsBuilder<VfioOptions> options = services.AddOptions<VfioOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }
        return AddVfioCore(services, name);
    }

    private static VfioBuilder AddVfioCore(IServiceCollection services, string name)
    {
        services.AddOptions<VfioOptions>(name).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VfioOptions>, VfioOptionsValidator>());
        services.TryAddSingleton<IKernel>(LinuxKernel.Instance);
        services.TryAddSingleton(sp => new VfioMetrics(sp.GetService<IMeterFactory>()));
        if (name.Length == 0)
        {
            services.TryAddSingleton(sp => CreateFdStore(sp, name));
            services.TryAddSingleton(sp => CreateManager(sp, name, sp.GetRequiredService<VfioFdStore>()));
        }
        else
        {
            services.TryAddKeyedSingleton(name, (sp, _) => CreateFdStore(sp, name));
            services.TryAddKeyedSingleton(name, (sp, _) => CreateManager(sp, name, sp.GetRequiredKeyedService<VfioFdStore>(name)));
        }
        return new VfioBuilder(services, name);
    }

    /// <summary>Creates a manager. Its fd store is resolved first, so the container (which disposes in the reverse order
    /// of creation) disposes the manager, and with it the backends that borrow the store's fds, before the store.</summary>
    private static VfioManager CreateManager(IServiceProvider sp, string name, VfioFdStore fdStore) => new(
        name,
        sp.GetRequiredService<IOptionsMonitor<VfioOptions>>().Get(name),
        VfioBackendRegistration.For(sp.GetServices<VfioBackendRegistration>(), name),
        sp.GetRequiredService<IKernel>(),
        fdStore,
        sp.GetService<ILoggerFactory>(),
        sp.GetRequiredService<VfioMetrics>(),
        sp);

    /// <summary>The fd store; with <see cref="VfioOptions.FdSocket"/> set, first receives one message of named fds
    /// from that inherited socket (borrowed: never closed here) and adds them.</summary>
    private static VfioFdStore CreateFdStore(IServiceProvider services, string name)
    {
        VfioOptions options = services.GetRequiredService<IOptionsMonitor<VfioOptions>>().Get(name);
        VfioFdStore? store = new(services.GetRequiredService<IKernel>());
        try
        {
            if (options.FdSocket is int fd)
            {
                Receive(store, fd, options.FdReceiveTimeout);
            }
            VfioFdStore result = store;
            store = null;
            return result;
        }
        finally
        {
            store?.Dispose();
        }
    }

    private static void Receive(VfioFdStore store, int fd, TimeSpan timeout)
    {
        try
        {
            // The socket is inherited: borrowed, its fd never closed here.
            using var handle = new SafeSocketHandle(fd, ownsHandle: false);
            using var socket = new Socket(handle);
            using ReceivedFds received = FdPassing.Receive(socket, timeout);
            store.Add(received);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException(
                $"Vfio:FdSocket ({fd}): no fds arrived within Vfio:FdReceiveTimeout ({timeout}); the launcher must send the named fds on that socket (FdPassing.Send).", e);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            throw new VfioException("receive passed fds", $"Vfio:FdSocket ({fd})",
                $"no fds were received: {e.Message}",
                "The launcher must start this process with a connected Unix stream or seqpacket socket at that fd number and send the named fds on it (FdPassing.Send) within Vfio:FdReceiveTimeout.");
        }
    }
}
